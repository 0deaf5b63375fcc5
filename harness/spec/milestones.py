"""Milestone specs: the typed, frozen form of ``configs/milestones/<id>.yaml``, training and freeze
milestones alike, with their training config and inputs resolved."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from harness.spec.criteria import Comparison, CriterionError, check_metric_name, parse_comparison
from harness.spec.data import EvalItem
from harness.spec.freeze_paths import unsafe_name
from harness.spec.phase_order import phases_of
from trainers.config import Count, PositiveFinite, StepCount, StrictModel, TrainingConfig
from trainers.models import KINDS, ModelSource

MILESTONES_DIR = Path("configs/milestones")
TRAINING_DIR = Path("configs/training")
LOCKS_DIR = Path("configs/frozen")

MILESTONE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MODEL_SOURCE = re.compile(rf"^({'|'.join(KINDS)}):\S+$")


class HardwareRequirement(StrictModel):
    """What a milestone must run on; detected for real in pre-flight."""

    accelerator: Literal["cpu", "cuda", "tpu"]
    count: Count
    platform: Literal["any", "linux", "windows", "darwin"]
    label: str = Field(min_length=1)


class RunShape(StrictModel):
    """How long to train: a step budget or a number of epochs, never both (an epoch is at least
    one step, so both share the step bound)."""

    max_steps: StepCount | None = None
    epochs: StepCount | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RunShape:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'max_steps' or 'epochs'")
        return self


class GuardrailSpec(StrictModel):
    """The run's rules: a clean tree at start (for real runs), and an optional dependency lock."""

    clean_tree: bool
    dependency_lock: str | None = None


def _own_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    # The evalset's own keys only: the known ones are either scored (category, per_category) or
    # unique per item (id, prompt, expected_answer), and a key named twice is a slip.
    for key in keys:
        if key in EvalItem.model_fields:
            raise ValueError(f"{key!r} is a key the harness reads, not one of the evalset's own")
        if keys.count(key) > 1:
            raise ValueError(f"{key!r} is named twice")
    return keys


class EvaluationSpec(StrictModel):
    """How the evaluate phase reports beyond the overall and per-category scores."""

    breakdown: Annotated[
        tuple[Annotated[str, Field(min_length=1)], ...], AfterValidator(_own_keys)
    ] = ()
    """Keys of the evalset's own (``section``, ``difficulty``) to break the scores down by."""


def _valid_criteria(criteria: dict[str, str]) -> dict[str, str]:
    for name, text in criteria.items():
        try:
            check_metric_name(name)
        except CriterionError as error:
            raise ValueError(str(error)) from None
        try:
            parse_comparison(text)
        except CriterionError as error:
            raise ValueError(f"{name}: {error}") from None
    return criteria


Criteria = Annotated[dict[str, str], AfterValidator(_valid_criteria)]


def _known_model(source: str) -> str:
    ModelSource.parse(source)  # an unknown random:<arch> raises, naming the known ones
    return source


def _inside(name: str) -> str:
    # Freeze paths are read below the project or the source bundle, and files become ZIP entry
    # names as written: nothing absolute, nothing that climbs out.
    if unsafe_name(name):
        raise ValueError("must be a relative path without '..', '\\' or ':'")
    return name


ModelName = Annotated[str, Field(pattern=MODEL_SOURCE.pattern), AfterValidator(_known_model)]
InsidePath = Annotated[str, Field(min_length=1), AfterValidator(_inside)]


class MilestoneSpec(StrictModel):
    """One training milestone as written in ``configs/milestones/<id>.yaml``."""

    kind: Literal["train"] = "train"
    id: str = Field(pattern=MILESTONE_ID.pattern)
    title: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    backend: Literal["torch", "jax"]
    hardware: HardwareRequirement
    model: ModelName
    training_config: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    evalset: str = Field(min_length=1)
    run: RunShape
    frozen: tuple[str, ...] = ()
    guardrails: GuardrailSpec
    acceptance: Criteria = Field(default_factory=dict)
    evaluation: EvaluationSpec = EvaluationSpec()
    baseline: str | None = None
    evaluate_base: bool = False
    """Score the untuned model before training, for the summary's before/after comparison."""
    closing_statement: str = Field(min_length=1)

    @property
    def phases(self) -> tuple[str, ...]:
        return phases_of(self.kind, self.evaluate_base)

    @property
    def criteria(self) -> dict[str, Comparison]:
        """The acceptance criteria, parsed: metric name -> comparison."""
        return {name: parse_comparison(text) for name, text in self.acceptance.items()}

    def criteria_needing_baseline(self) -> list[str]:
        return [name for name, comparison in self.criteria.items() if comparison.relative_to_baseline]

    @property
    def markers(self) -> tuple[str, ...]:
        """The hardware markers every phase of this milestone carries."""
        extra = ("windows",) if self.hardware.platform == "windows" else ()
        return (self.hardware.accelerator, *extra)


class FreezeSpec(StrictModel):
    """A freeze milestone: which files of which run bundle become the frozen submission ZIP."""

    kind: Literal["freeze"]
    id: str = Field(pattern=MILESTONE_ID.pattern)
    title: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    source: InsidePath
    files: tuple[InsidePath, ...] = Field(min_length=1)
    extra_files: tuple[InsidePath, ...] = ()
    size_budget_mb: PositiveFinite
    frozen: tuple[str, ...] = ()
    guardrails: GuardrailSpec
    closing_statement: str = Field(min_length=1)

    @property
    def phases(self) -> tuple[str, ...]:
        return phases_of(self.kind)

    @property
    def markers(self) -> tuple[str, ...]:
        return ("cpu",)

    @property
    def criteria(self) -> dict[str, Comparison]:
        return {}


@dataclass(frozen=True)
class FreezeMilestone:
    """A validated freeze spec."""

    spec: FreezeSpec
    spec_path: Path
    rehearsal: bool = False

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class Milestone:
    """A validated spec with its training config and data files resolved."""

    spec: MilestoneSpec
    training: TrainingConfig
    spec_path: Path
    training_path: Path
    dataset_path: Path
    """The dataset's JSON Lines file, resolved (a folder named in the spec is resolved to it)."""
    evalset_path: Path
    rehearsal: bool = False

    @property
    def id(self) -> str:
        return self.spec.id
