"""Milestone specs and training configs: YAML files validated on load, errors naming file and key."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    model_validator,
)

from harness.criteria import Comparison, CriterionError, check_metric_name, parse_comparison
from harness.outcomes import first_line
from trainers.config import BF16_PURE_IS_TORCH_ONLY, TrainingConfig

MILESTONES_DIR = Path("configs/milestones")
TRAINING_DIR = Path("configs/training")
DATASETS_DIR = Path("datasets")
EVALSETS_DIR = Path("evalsets")

MODEL_SOURCE = re.compile(r"^(random|hf|local):\S+$")
# Training settings only one backend reads: set on the other backend's milestone they would be
# silently ignored, so loading refuses them.
BACKEND_ONLY_SETTINGS = {
    "torch": ("grad_accum_steps", "batching", "gradient_checkpointing", "compile", "parallel"),
    "jax": ("lora", "mesh"),
}


class SpecError(ValueError):
    """A spec or config problem; its message is one line naming the file and the key."""


def shown(path: Path) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HardwareRequirement(_Strict):
    """What a milestone must run on; detected for real in pre-flight."""

    accelerator: Literal["cpu", "cuda", "tpu"]
    count: PositiveInt
    platform: Literal["any", "linux", "windows", "darwin"]
    label: str = Field(min_length=1)


class RunShape(_Strict):
    """How long to train: a step budget or a number of epochs, never both."""

    max_steps: PositiveInt | None = None
    epochs: PositiveInt | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RunShape:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'max_steps' or 'epochs'")
        return self


class GuardrailSpec(_Strict):
    """The run's rules: a clean tree at start (for real runs), and an optional dependency lock."""

    clean_tree: bool
    dependency_lock: str | None = None


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


class MilestoneSpec(_Strict):
    """One training milestone as written in ``configs/milestones/<id>.yaml``."""

    kind: Literal["train"] = "train"
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    backend: Literal["torch", "jax"]
    hardware: HardwareRequirement
    model: str = Field(pattern=MODEL_SOURCE.pattern)
    training_config: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    evalset: str = Field(min_length=1)
    run: RunShape
    frozen: tuple[str, ...] = ()
    guardrails: GuardrailSpec
    acceptance: Criteria = Field(default_factory=dict)
    baseline: str | None = None
    closing_statement: str = Field(min_length=1)

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


class FreezeSpec(_Strict):
    """A freeze milestone: which files of which run bundle become the frozen submission ZIP."""

    kind: Literal["freeze"]
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    purpose: str = Field(min_length=1)
    source: str = Field(min_length=1)
    files: tuple[str, ...] = Field(min_length=1)
    extra_files: tuple[str, ...] = ()
    size_budget_mb: float = Field(gt=0)
    frozen: tuple[str, ...] = ()
    guardrails: GuardrailSpec
    closing_statement: str = Field(min_length=1)

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
    evalset_path: Path
    rehearsal: bool = False

    @property
    def id(self) -> str:
        return self.spec.id


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model``; any problem is a one-line SpecError."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{shown(path)}: no such file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or first_line(str(exc))
        raise SpecError(f"{shown(path)}{where}: invalid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{shown(path)}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(error, model) for error in exc.errors())
        raise SpecError(f"{shown(path)}: {problems}") from None


def _describe(error: Any, model: type[BaseModel]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(valid)})"
        return f"unknown key '{key}'{hint}"
    if kind == "missing":
        return f"missing key '{key}'"
    message = error["msg"].removeprefix("Value error, ")
    if not key:
        return message
    value = error.get("input")
    got = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return f"key '{key}': {message}{got}"


def _fields_at(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """The valid key names of the (nested) model found at ``loc``."""
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def backend_mismatch(backend: str, training: TrainingConfig) -> str | None:
    """The first training setting ``backend`` cannot honour, as ``key '...': why``; None if none."""
    if backend == "jax" and training.precision == "bf16-pure":
        return f"key 'precision': {BF16_PURE_IS_TORCH_ONLY}"
    for other, names in BACKEND_ONLY_SETTINGS.items():
        if other == backend:
            continue
        for name in names:
            if getattr(training, name) != TrainingConfig.model_fields[name].get_default(call_default_factory=True):
                return f"key '{name}': only the {other} backend reads it"
    return None


class MilestoneRegistry:
    """The milestones of one project: ``<id>.yaml`` specs in its milestone folders.

    A spec's training config is looked up in ``configs/training``, then next to the spec;
    datasets and evalsets live in the project's ``datasets/`` and ``evalsets/``.
    """

    def __init__(self, root: Path, milestone_dirs: Sequence[Path] = (MILESTONES_DIR,)) -> None:
        self.root = root
        self.milestone_dirs = [root / folder for folder in milestone_dirs]

    def spec_paths(self) -> dict[str, Path]:
        """Every spec by id; an id defined in two folders is an error naming both files."""
        found: dict[str, Path] = {}
        for folder in self.milestone_dirs:
            for path in sorted(folder.glob("*.yaml")):
                if path.stem in found:
                    raise SpecError(
                        f"{shown(path)}: milestone {path.stem!r} is also defined in {shown(found[path.stem])}"
                    )
                found[path.stem] = path
        return found

    def ids(self) -> list[str]:
        return sorted(self.spec_paths())

    def kind_of(self, spec_path: Path) -> str:
        try:
            raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return "train"  # the full load reports the problem with file and line
        return str(raw.get("kind", "train")) if isinstance(raw, dict) else "train"

    def load(self, milestone_id: str) -> Milestone | FreezeMilestone:
        """Load and fully validate one milestone, its training config and data paths."""
        known = self.spec_paths()
        if milestone_id not in known:
            folders = ", ".join(shown(folder) for folder in self.milestone_dirs)
            raise SpecError(
                f"unknown milestone {milestone_id!r} in {folders}; known milestones: {', '.join(sorted(known)) or 'none'}"
            )
        spec_path = known[milestone_id]
        if self.kind_of(spec_path) == "freeze":
            freeze = load_yaml_model(spec_path, FreezeSpec)
            self._check_id(freeze.id, milestone_id, spec_path)
            return FreezeMilestone(freeze, spec_path)
        spec = load_yaml_model(spec_path, MilestoneSpec)
        self._check_id(spec.id, milestone_id, spec_path)
        for frozen_id in spec.frozen:
            if frozen_id not in known or self.kind_of(known[frozen_id]) != "freeze":
                raise SpecError(f"{shown(spec_path)}: key 'frozen': no freeze milestone {frozen_id!r}")
        training_path = self._training_path(spec_path, spec.training_config)
        dataset_path = self.root / DATASETS_DIR / spec.dataset
        if not dataset_path.is_dir():
            raise SpecError(f"{shown(spec_path)}: key 'dataset': no dataset folder {shown(dataset_path)}")
        evalset_path = self.root / EVALSETS_DIR / f"{spec.evalset}.jsonl"
        if not evalset_path.is_file():
            raise SpecError(f"{shown(spec_path)}: key 'evalset': no evalset file {shown(evalset_path)}")
        training = load_yaml_model(training_path, TrainingConfig)
        problem = backend_mismatch(spec.backend, training)
        if problem is not None:
            raise SpecError(f"{shown(training_path)}: {problem} (milestone {spec.id} trains with {spec.backend})")
        return Milestone(
            spec=spec,
            training=training,
            spec_path=spec_path,
            training_path=training_path,
            dataset_path=dataset_path,
            evalset_path=evalset_path,
        )

    def _training_path(self, spec_path: Path, name: str) -> Path:
        candidates = [self.root / TRAINING_DIR / name, spec_path.parent / name]
        for path in candidates:
            if path.is_file() and path != spec_path:
                return path
        tried = " or ".join(shown(path) for path in candidates)
        raise SpecError(f"{shown(spec_path)}: key 'training_config': no file {tried}")

    @staticmethod
    def _check_id(spec_id: str, milestone_id: str, spec_path: Path) -> None:
        if spec_id != milestone_id:
            raise SpecError(f"{shown(spec_path)}: key 'id': {spec_id!r} does not match the file name")
