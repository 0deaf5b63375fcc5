"""The trainer protocol: what every backend takes, yields per step, and returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trainers.checkpoints import CheckpointPlan
from trainers.config import TrainingConfig
from trainers.flops import FlopsBasis


@dataclass(frozen=True)
class Example:
    """One supervised pair; the loss is taken on ``completion`` only."""

    prompt: str
    completion: str


@dataclass(frozen=True)
class TrainRequest:
    """What to train, on what, for how long, and where the final checkpoint goes."""

    model_source: str
    config: TrainingConfig
    examples: tuple[Example, ...]
    max_steps: int | None
    epochs: int | None
    device: str
    checkpoint_dir: Path
    # The Hugging Face cache an ``hf:`` source is read from; None: the user's own.
    hub_cache: Path | None = None
    checkpoints: CheckpointPlan | None = None
    """Where resumable checkpoints go; None: none are written."""
    resume_from: Path | None = None
    """A complete resumable checkpoint (trainers/checkpoints.py) to go on from."""

    def total_steps(self) -> int:
        if self.max_steps is not None:
            return self.max_steps
        assert self.epochs is not None
        per_epoch = -(-len(self.examples) // self.config.batch_size)
        return per_epoch * self.epochs


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step; ``tokens`` counts real (non-padding) tokens of the batch."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    samples: int
    tokens: int
    seconds: float
    positions: int | None = None
    """Token positions the model computed, padding included; None where a backend does not count."""


@dataclass(frozen=True)
class TrainResult:
    """What a finished training run leaves behind."""

    backend: str
    device: str
    model_parameters: int
    steps: tuple[StepRecord, ...]
    runtime_s: float
    checkpoint_dir: Path
    flops: FlopsBasis | None = None
    """What MFU is computed from; None where a backend does not count FLOPs."""


StepHook = Callable[[StepRecord], None]


class Trainer(Protocol):
    """A backend: trains a model to a checkpoint, and generates greedily from a checkpoint or from
    the untuned model a request starts from (built as training would build it, no checkpoint
    written: a second copy of a 2B model would double the bundle)."""

    backend: str

    def train(self, request: TrainRequest, on_step: StepHook) -> TrainResult: ...

    def generate(
        self,
        checkpoint_dir: Path,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
        device: str,
    ) -> list[str]: ...

    def generate_untuned(
        self,
        request: TrainRequest,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
    ) -> list[str]: ...
