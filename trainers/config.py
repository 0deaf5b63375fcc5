"""The typed training configuration read from ``configs/training/*.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerConfig(_Strict):
    """AdamW settings."""

    name: Literal["adamw"]
    lr: PositiveFloat
    weight_decay: float = Field(ge=0.0)
    betas: tuple[float, float]
    eps: PositiveFloat


class ScheduleConfig(_Strict):
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak."""

    warmup_steps: int = Field(ge=0)
    decay: Literal["cosine", "constant"]
    min_lr_ratio: float = Field(ge=0.0, le=1.0)


class EvalConfig(_Strict):
    """Greedy generation settings for the evaluation phase."""

    batch_size: PositiveInt
    max_new_tokens: PositiveInt


class DivergenceConfig(_Strict):
    """Stop when the loss stays above ``factor`` x its running minimum for ``patience`` steps."""

    factor: float = Field(gt=1.0)
    patience: PositiveInt


class LoraConfig(_Strict):
    """Low-rank adapters on the attention and MLP projections; only the adapters are trained."""

    rank: PositiveInt
    alpha: PositiveFloat


class MeshConfig(_Strict):
    """A ``data`` x ``fsdp`` device mesh: batches split over both axes, weights over ``fsdp``."""

    data: PositiveInt = 1
    fsdp: PositiveInt = 1


class ParallelConfig(_Strict):
    """How the torch backend spreads one run over processes, launched through ``torchrun``.

    ``single`` trains in the pytest process on one device; ``ddp`` and ``fsdp`` start
    ``processes`` workers (one per GPU, or CPU processes with the gloo backend).
    """

    strategy: Literal["single", "ddp", "fsdp"] = "single"
    processes: PositiveInt = 1

    @model_validator(mode="after")
    def _processes_match_strategy(self) -> ParallelConfig:
        if self.strategy == "single" and self.processes != 1:
            raise ValueError(
                f"strategy single runs 1 process, not {self.processes}; use ddp or fsdp"
            )
        if self.strategy != "single" and self.processes < 2:
            raise ValueError(
                f"strategy {self.strategy} needs at least 2 processes, got {self.processes}"
            )
        return self


# Why a jax run refuses ``precision: bf16-pure``, both where the spec is loaded and in the trainer.
BF16_PURE_IS_TORCH_ONLY = (
    "bf16-pure is torch-only: the jax backend keeps float32 weights and optimizer state "
    "(use fp32 or bf16)"
)


class TrainingConfig(_Strict):
    """Everything about how a model is trained, apart from what and for how long."""

    seed: int
    batch_size: PositiveInt
    max_seq_len: PositiveInt
    precision: Literal["fp32", "bf16", "bf16-pure"]
    """``fp32``; ``bf16``: autocast over float32 weights, gradients and AdamW state; ``bf16-pure``
    (torch backend): all three in bfloat16, half their memory, though bf16 rounds away the AdamW
    updates smaller than a weight's last bit (docs/training.md)."""
    grad_clip: PositiveFloat
    log_every: PositiveInt
    optimizer: OptimizerConfig
    schedule: ScheduleConfig
    divergence: DivergenceConfig
    eval: EvalConfig
    lora: LoraConfig | None = None
    """LoRA adapters (jax backend only); None trains every weight."""
    mesh: MeshConfig = MeshConfig()
    """The jax backend's device mesh (jax backend only)."""
    grad_accum_steps: PositiveInt = 1
    """Micro-batches per optimizer step: ``batch_size`` examples are split into this many, so the
    effective batch (and the loss curve) stays the same while activation memory shrinks."""
    batching: Literal["padded", "length_grouped", "packed"] = "padded"
    """torch backend: ``padded`` pads each batch to its longest row; ``length_grouped`` batches
    rows of similar length together; ``packed`` concatenates rows into full sequences with
    attention kept inside each row."""
    gradient_checkpointing: bool = False
    """torch backend: recompute activations in the backward pass to save memory."""
    compile: bool = False
    """torch backend: ``torch.compile`` the model before training."""
    parallel: ParallelConfig = ParallelConfig()
    """torch backend: one device, or DDP/FSDP over several processes."""

    @model_validator(mode="after")
    def _batch_splits_evenly(self) -> TrainingConfig:
        shards = self.grad_accum_steps * self.parallel.processes
        if self.batch_size % shards:
            raise ValueError(
                f"batch_size {self.batch_size} does not split into grad_accum_steps x "
                f"parallel.processes = {self.grad_accum_steps} x {self.parallel.processes} "
                "equal micro-batches"
            )
        return self
