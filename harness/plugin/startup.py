"""The options a milestone session starts with, checked before any run folder opens: a baseline
that verifies, and the updates (goldens, lock snapshots) that are only trusted from one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evidence.baseline import BaselineError, load_baseline
from harness.evidence.earlier_run import EarlierRunError, check_earlier_run
from harness.evidence.resumable import check_resumable
from harness.probes.fingerprints import dependency_fingerprint
from harness.probes.git import GitError, dirty_paths, git_state, git_top
from harness.record.measurements import Baseline
from harness.record.resumption import Resumption, RunInputs
from harness.spec.data import file_sha256
from harness.spec.milestones import FreezeMilestone, Milestone
from harness.spec.yaml_files import shown


def baseline_for(config: pytest.Config, milestone: Milestone | FreezeMilestone, root: Path) -> Baseline | None:
    """The verified baseline from --baseline or the spec; criteria naming one need one."""
    if isinstance(milestone, FreezeMilestone):
        return None
    given = config.option.baseline or milestone.spec.baseline
    if given is None:
        needing = milestone.spec.criteria_needing_baseline()
        if needing:
            raise pytest.UsageError(
                f"{shown(milestone.spec_path)}: key 'acceptance.{needing[0]}' compares with the baseline, "
                "but none is given (--baseline PATH or the spec's 'baseline')"
            )
        return None
    try:
        return load_baseline((root / given).resolve())
    except BaselineError as error:
        raise pytest.UsageError(f"--baseline: {error}") from None


def reevaluation_source(
    config: pytest.Config, milestones: list[Milestone | FreezeMilestone], root: Path
) -> Path | None:
    """The verified earlier bundle --reevaluate names, for the one training milestone selected."""
    given = config.option.reevaluate
    if given is None:
        return None
    if len(milestones) != 1 or not isinstance(milestones[0], Milestone):
        raise pytest.UsageError("--reevaluate: select exactly one training milestone")
    try:
        return check_earlier_run((root / given).resolve(), milestones[0].id)
    except EarlierRunError as error:
        raise pytest.UsageError(f"--reevaluate: {error}") from None


def resumption_source(
    config: pytest.Config, milestones: list[Milestone | FreezeMilestone], root: Path
) -> Resumption | None:
    """What --resume goes on from, for the one training milestone selected. Checked once the run
    folders are allocated: a killed session's bundle is marked interrupted by then."""
    given = config.option.resume
    if given is None:
        return None
    if config.option.reevaluate is not None:
        raise pytest.UsageError("--resume: not together with --reevaluate, which trains nothing")
    milestone = milestones[0] if len(milestones) == 1 else None
    if not isinstance(milestone, Milestone):
        raise pytest.UsageError("--resume: select exactly one training milestone")
    here = RunInputs(
        commit=git_state(root).commit,
        training_config=file_sha256(milestone.training_path),
        dataset=file_sha256(milestone.dataset_path),
        evalset=file_sha256(milestone.evalset_path),
        dependencies=dependency_fingerprint().entries,
    )
    try:
        return check_resumable((root / given).resolve(), milestone.id, here)
    except EarlierRunError as error:
        raise pytest.UsageError(f"--resume: {error}") from None


def refuse_snapshot_update(config: pytest.Config, milestones: list[Milestone | FreezeMilestone]) -> None:
    """Only a freeze milestone may rewrite a lock, and only from one process (xdist can lose snapshots)."""
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        raise pytest.UsageError("--snapshot-update: refused under xdist (-n), where snapshots can be lost")
    for milestone in milestones:
        if not isinstance(milestone, FreezeMilestone):
            raise pytest.UsageError(
                f"--snapshot-update: only a freeze milestone may rewrite a lock, and {milestone.id} is not one"
            )


def refuse_golden_update(config: pytest.Config, root: Path) -> None:
    """Goldens are rewritten only from one process and a committed tree, so they can be trusted."""
    if getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput"):
        raise pytest.UsageError("--update-goldens: refused under xdist (-n); run it in one process")
    try:
        dirty = dirty_paths(git_top(root))
    except GitError as error:
        raise pytest.UsageError(f"--update-goldens: {error}") from None
    if dirty:
        raise pytest.UsageError(
            f"--update-goldens: refused on a dirty tree ({len(dirty)} changed: {dirty[0]}, ...); commit first"
        )
