"""An earlier bundle that a new run goes on from (``--resume``): a verified bundle of the same
milestone whose training ended interrupted or over budget, made from the same commit, config,
data and dependencies, with a complete checkpoint. Read only; never written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.evidence.earlier_run import (
    EarlierRunError,
    step_record,
    training_metrics,
    verified_manifest,
)
from harness.evidence.verify import Unreadable, read_object
from harness.record.failures import Cause
from harness.record.resumption import Resumption, RunInputs
from harness.spec.phase_order import TRAIN
from trainers.checkpoints import complete

RESUMABLE = (Cause.INTERRUPTED, Cause.OVER_BUDGET)


def check_resumable(path: Path, milestone_id: str, here: RunInputs) -> Resumption:
    """What the new run goes on from, once ``path`` passes every check; an ``EarlierRunError``
    naming the first difference otherwise."""
    manifest = verified_manifest(path, milestone_id)
    train = manifest.get("phases", {}).get(TRAIN, {})
    if train.get("cause") not in RESUMABLE:
        raise EarlierRunError(
            f"{path}: its train phase {train.get('status')} ({train.get('cause')}); only a run "
            "that ended interrupted or over budget can be resumed"
        )
    if (difference := _difference(path, manifest, here)) is not None:
        raise EarlierRunError(f"{path}: {difference}; a resumed run must match it")
    return _resumption(path)


def _difference(path: Path, manifest: dict[str, Any], here: RunInputs) -> str | None:
    """The first input that differs between the earlier run and this one, in one phrase."""
    if manifest.get("commit") != here.commit:
        return f"commit {manifest.get('commit')} there, {here.commit} here"
    for key in ("training_config", "dataset", "evalset"):
        theirs = manifest.get(key, {}).get("sha256")
        ours = getattr(here, key)
        if theirs != ours:
            return f"{key} sha256 {str(theirs)[:12]} there, {ours[:12]} here"
    try:
        theirs = read_object(path, bundle.GUARDRAILS).get("before", {}).get("dependencies", {})
    except Unreadable as error:
        return f"no dependency versions to compare ({error})"
    for name in sorted(theirs.keys() | here.dependencies.keys()):
        there, now = theirs.get(name, "not installed"), here.dependencies.get(name, "not installed")
        if there != now:
            return f"dependency {name} {there} there, {now} here"
    return None


def _resumption(path: Path) -> Resumption:
    """The newest complete checkpoint whose steps the earlier bundle's metrics hold."""
    metrics = training_metrics(path)
    steps = [step_record(record) for record in metrics.get("per_step", [])]
    logged = {record.step for record in steps}
    found = complete(path / bundle.CHECKPOINTS_DIR)
    usable = [(step, folder) for step, folder in found if step in logged]
    if not usable:
        raise EarlierRunError(
            f"{path}: no complete checkpoint in {bundle.CHECKPOINTS_DIR}/ to resume from"
        )
    step, folder = usable[-1]
    return Resumption(
        path.name, path.resolve(), step, folder.resolve(), tuple(s for s in steps if s.step <= step)
    )

