"""The milestones of one project: ``<id>.yaml`` specs in its milestone folders, each loaded and
fully validated with its training config, inputs and model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from harness.spec.data import DataError, dataset_file, evalset_file, probe
from harness.spec.dependency_lock import lock_problem
from harness.spec.freeze_paths import escape_problem
from harness.spec.milestones import (
    MILESTONES_DIR,
    TRAINING_DIR,
    FreezeMilestone,
    FreezeSpec,
    Milestone,
    MilestoneSpec,
)
from harness.spec.yaml_files import SpecError, load_yaml_model, read_yaml, shown
from trainers.config import TrainingConfig, backend_mismatch


class MilestoneRegistry:
    """The milestones of one project: ``<id>.yaml`` specs in its milestone folders.

    Inputs are read where the spec names them: an absolute path as written (a file of any name,
    or a folder: ``harness.spec.data.dataset_file``); a relative name in the project's
    ``datasets/<name>/``, ``evalsets/<name>.jsonl`` and ``configs/training/<name>`` (then next to
    the spec), ``..`` and symlinks followed. The resolved files are what is read and what the
    manifest records.
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
        dataset_path = self._input(spec_path, "dataset", dataset_file, spec.dataset)
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
