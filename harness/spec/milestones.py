"""Milestone specs and training configs: YAML files validated on load, errors naming file and key."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from harness.evidence.submission_zip import escape_problem, unsafe_name
from harness.probes.fingerprints import lock_problem
from harness.record.outcomes import first_line
from harness.spec.criteria import Comparison, CriterionError, check_metric_name, parse_comparison
from harness.spec.data import DataError, dataset_folder, evalset_file, probe
from trainers.config import (
    Count,
    PositiveFinite,
    StepCount,
    TrainingConfig,
    UniqueKeyLoader,
    backend_mismatch,
)
from trainers.models import KINDS, ModelSource

MILESTONES_DIR = Path("configs/milestones")
TRAINING_DIR = Path("configs/training")

MODEL_SOURCE = re.compile(rf"^({'|'.join(KINDS)}):\S+$")


class SpecError(ValueError):
    """A spec or config problem; its message is one line naming the file and the key."""


def shown(path: Path) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it, with
    unprintable characters escaped so that a message stays on one line."""
    try:
        text = str(path.resolve().relative_to(Path.cwd()))
    except (OSError, RuntimeError, ValueError):  # outside it, or a NUL byte or symlink loop
        text = str(path)
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HardwareRequirement(_Strict):
    """What a milestone must run on; detected for real in pre-flight."""

    accelerator: Literal["cpu", "cuda", "tpu"]
    count: Count
    platform: Literal["any", "linux", "windows", "darwin"]
    label: str = Field(min_length=1)


class RunShape(_Strict):
    """How long to train: a step budget or a number of epochs, never both (an epoch is at least
    one step, so both share the step bound)."""

    max_steps: StepCount | None = None
    epochs: StepCount | None = None

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


class MilestoneSpec(_Strict):
    """One training milestone as written in ``configs/milestones/<id>.yaml``."""

    kind: Literal["train"] = "train"
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
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
    source: InsidePath
    files: tuple[InsidePath, ...] = Field(min_length=1)
    extra_files: tuple[InsidePath, ...] = ()
    size_budget_mb: PositiveFinite
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


def read_yaml(path: Path) -> Any:
    """Parse a YAML file strictly (UTF-8, no key twice); any problem is a one-line SpecError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{shown(path)}: no such file") from None
    except OSError as error:
        raise SpecError(f"{shown(path)}: cannot read ({error.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise SpecError(f"{shown(path)}:{line}: not valid UTF-8 (byte {byte:#04x})") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or first_line(str(exc))
        raise SpecError(f"{shown(path)}{where}: invalid YAML ({problem})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an impossible date, or nesting too deep
        problem = first_line(str(exc)) or type(exc).__name__
        raise SpecError(f"{shown(path)}: invalid YAML ({problem})") from None


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model``; any problem is a one-line SpecError."""
    raw = read_yaml(path)
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


class MilestoneRegistry:
    """The milestones of one project: ``<id>.yaml`` specs in its milestone folders.

    Inputs are read where the spec names them: an absolute path as written; a relative name in
    the project's ``datasets/<name>/``, ``evalsets/<name>.jsonl`` and ``configs/training/<name>``
    (then next to the spec), ``..`` and symlinks followed. The resolved paths are what is read and
    what the manifest records.
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
            raw = read_yaml(spec_path)
        except SpecError:
            return "train"  # the full load reports the problem with file and line
        return str(raw.get("kind", "train")) if isinstance(raw, dict) else "train"

    def load(self, milestone_id: str) -> Milestone | FreezeMilestone:
        """Load and fully validate one milestone, its training config, inputs and model."""
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
            problem = escape_problem(self.root, freeze.source, freeze.files, freeze.extra_files)
            if problem:
                raise SpecError(f"{shown(spec_path)}: {problem}")
            return FreezeMilestone(freeze, spec_path)
        spec = load_yaml_model(spec_path, MilestoneSpec)
        self._check_id(spec.id, milestone_id, spec_path)
        for frozen_id in spec.frozen:
            if frozen_id not in known or self.kind_of(known[frozen_id]) != "freeze":
                raise SpecError(f"{shown(spec_path)}: key 'frozen': no freeze milestone {frozen_id!r}")
        training_path = self._training_path(spec_path, spec.training_config)
        dataset_path = self._input(spec_path, "dataset", dataset_folder, spec.dataset)
        evalset_path = self._input(spec_path, "evalset", evalset_file, spec.evalset)
        if problem := local_model_problem(spec.model):
            raise SpecError(f"{shown(spec_path)}: key 'model': {problem}")
        if problem := lock_problem(self.root, spec.guardrails.dependency_lock):
            raise SpecError(f"{shown(spec_path)}: key 'guardrails.dependency_lock': {problem}")
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
        """An absolute ``training_config`` as written; a relative one in ``configs/training``, then
        next to the spec; resolved."""
        if Path(name).is_absolute():
            candidates = [Path(name)]
        else:
            candidates = [self.root / TRAINING_DIR / name, spec_path.parent / name]
        for path in candidates:
            if probe(path.is_file) and path.resolve() != spec_path.resolve():
                return path.resolve()
        tried = " or ".join(shown(path) for path in candidates)
        raise SpecError(f"{shown(spec_path)}: key 'training_config': no file {tried}")

    def _input(
        self, spec_path: Path, key: str, locate: Callable[[Path, str], Path], name: str
    ) -> Path:
        try:
            return locate(self.root, name)
        except DataError as error:
            raise SpecError(f"{shown(spec_path)}: key '{key}': {error}") from None

    @staticmethod
    def _check_id(spec_id: str, milestone_id: str, spec_path: Path) -> None:
        if spec_id != milestone_id:
            raise SpecError(f"{shown(spec_path)}: key 'id': {spec_id!r} does not match the file name")


def local_model_problem(source: str) -> str | None:
    """What is wrong with a ``local:`` model folder (read from the working directory, as the
    trainers read it), or None; an ``hf:`` model is pre-flight's to find, cached or fetched."""
    kind, _, location = source.partition(":")
    folder = Path(location)
    if kind != "local" or probe((folder / "config.json").is_file):
        return None
    if probe(folder.is_dir):
        return f"no config.json in the model folder {location} (from {Path.cwd()})"
    return f"no model folder {location} (from {Path.cwd()})"
