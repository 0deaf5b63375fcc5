"""A milestone of one's own, derived from a shipped one: the same spec with another model, dataset,
evalset or breakdown, written beside it as ``<new id>.yaml`` and validated like any spec.

A notebook on Kaggle names its attached model and data by path (``/kaggle/input/...``); the run
still starts from a spec file, so the bundle and the commit say exactly what ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.spec.data import DataError, count_records, load_evalset
from harness.spec.milestones import MILESTONE_ID, FreezeMilestone, Milestone
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError, read_yaml, shown

# The second line of every derived spec: a file without it is never overwritten.
MARK = "# Derived from "
# Criteria that count the shipped data's records: they describe that data, not the data named
# anew, so a derived spec holds the new files to their own counts (every record read, every item
# scored).
COUNTS = {
    "dataset": ("preflight.dataset_records",),
    "evalset": ("preflight.evalset_records", "eval.count"),
}


@dataclass(frozen=True)
class Changes:
    """What a derived milestone names anew; None keeps the source spec's value."""

    model: str | None = None
    dataset: str | None = None
    evalset: str | None = None
    breakdown: Sequence[str] | None = None

    def named(self) -> list[str]:
        return [
            key
            for key in ("model", "dataset", "evalset", "breakdown")
            if getattr(self, key) is not None
        ]


def derive(registry: MilestoneRegistry, source_id: str, new_id: str, changes: Changes) -> Path:
    """Write ``<new_id>.yaml`` beside the spec of ``source_id`` with ``changes``, load it, and
    return its path. A problem is a one-line SpecError; the file is then left as it was."""
    if not MILESTONE_ID.fullmatch(new_id):
        raise SpecError(f"{new_id!r} is not a milestone id (lowercase letters, digits and '-')")
    source = registry.load(source_id)
    if isinstance(source, FreezeMilestone):
        raise SpecError(
            f"{shown(source.spec_path)}: a freeze milestone has no model or data to change"
        )
    target = source.spec_path.with_name(f"{new_id}.yaml")
    if target.exists() and not _derived(target):
        raise SpecError(f"{shown(target)}: not a derived spec, left as it is (choose another id)")
    raw = read_yaml(source.spec_path)
    raw |= {"id": new_id, **_renamed(changes)}
    if changes.breakdown is not None:
        raw["evaluation"] = {**raw.get("evaluation", {}), "breakdown": list(changes.breakdown)}
    if changes.named():
        raw["purpose"] = (
            f"{raw['purpose']} Derived from {source_id}: {', '.join(changes.named())} named anew."
        )
    previous = target.read_bytes() if target.exists() else None
    try:
        _write(target, source, raw)
        derived = registry.load(new_id)  # the data's files are located and the spec validated
        assert isinstance(derived, Milestone)
        _check_breakdown(derived)
        _count_criteria(raw, derived, changes)
        _write(target, source, raw)
        registry.load(new_id)
    except BaseException:
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(previous)
        raise
    return target


def _renamed(changes: Changes) -> dict[str, str]:
    named = {"model": changes.model, "dataset": changes.dataset, "evalset": changes.evalset}
    return {key: value for key, value in named.items() if value is not None}


def _count_criteria(raw: dict[str, Any], derived: Milestone, changes: Changes) -> None:
    """Hold the record-count criteria of each input named anew to that input's own count."""
    criteria = raw.get("acceptance") or {}
    files = {"dataset": derived.dataset_path, "evalset": derived.evalset_path}
    for kind, metrics in COUNTS.items():
        if getattr(changes, kind) is None:
            continue
        count = count_records(files[kind])
        for metric in metrics:
            if metric in criteria:
                criteria[metric] = f"== {count}"


def _check_breakdown(derived: Milestone) -> None:
    """The evalset holds every breakdown key: said now, not in pre-flight on the accelerator."""
    keys = derived.spec.evaluation.breakdown
    if keys:
        try:
            load_evalset(derived.evalset_path, keys)
        except DataError as error:
            raise SpecError(
                f"{shown(derived.spec_path)}: key 'evaluation.breakdown': {error}"
            ) from None


def _derived(path: Path) -> bool:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return len(lines) > 1 and lines[1].startswith(MARK)


def _write(target: Path, source: Milestone, raw: dict[str, Any]) -> None:
    header = (
        f"# pytest acceptance --milestone {raw['id']}\n"
        f"{MARK}{source.spec_path.name} by `python -m harness derive`: rewritten on every derive.\n"
    )
    body = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=100)
    target.write_text(header + body, encoding="utf-8")
