"""Several verified bundles read side by side for ``python -m harness compare``: outcomes,
criteria, metrics, the run settings that differ, the loss curves and the items that flipped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.evidence.baseline import correctness
from harness.evidence.measurements import measure_bundle, read_or_empty
from harness.evidence.verify import verify_bundle
from harness.record.rescoring import lookup
from harness.record.statistics import PairedComparison, paired

# What a run was set up with, from its manifest: a row of the table wherever two runs differ.
SETTINGS = (
    "milestone", "model", "backend", "hardware_required", "device", "batch_size", "max_seq_len",
    "precision", "seed", "run_shape", "training_config.sha256", "dataset.sha256",
    "evalset.sha256", "commit", "dirty",
)
ABSENT = "(absent)"
# Enough of a bundle's problems to say what is wrong; verify lists them all.
FIRST_PROBLEMS = 3


@dataclass(frozen=True)
class ComparedRun:
    """One verified bundle, as compare reads it."""

    path: Path
    label: str
    manifest: dict[str, Any]
    metrics: dict[str, float]
    losses: tuple[tuple[int, float], ...]
    correct: dict[str, bool]


@dataclass(frozen=True)
class Comparison:
    """The runs in the order given; each later run is held against the first."""

    runs: tuple[ComparedRun, ...]
    changed: tuple[tuple[str, tuple[str, ...]], ...]
    """(setting, its value in each run) for every setting whose values are not all equal."""
    flips: tuple[PairedComparison | str, ...]
    """Per later run, its paired comparison with the first, or why there is none."""


def refusals(paths: Sequence[Path]) -> list[str]:
    """One line per bundle that does not verify, naming it and its first problems."""
    lines = []
    for path in paths:
        found = verify_bundle(path) if path.is_dir() else ["not a folder"]
        if found:
            more = len(found) - FIRST_PROBLEMS
            tail = f" (+{more} more; python -m harness verify {path})" if more > 0 else ""
            lines.append(f"{path}: does not verify: {'; '.join(found[:FIRST_PROBLEMS])}{tail}")
    return lines


def loss_curve(training_metrics: dict[str, Any]) -> tuple[tuple[int, float], ...]:
    """(step, loss) of every logged step with a finite loss."""
    steps = training_metrics.get("per_step")
    return tuple(
        (step["step"], float(step["loss"]))
        for step in (steps if isinstance(steps, list) else [])
        if isinstance(step, dict) and isinstance(step.get("step"), int)
        and isinstance(step.get("loss"), int | float) and math.isfinite(step["loss"])
    )


def read_run(path: Path) -> ComparedRun:
    """A bundle's manifest, registry metrics, per-step losses and per-item correctness."""
    manifest = read_or_empty(path, bundle.RUN_MANIFEST)
    return ComparedRun(
        path=path,
        label=str(manifest.get("run_id", path.name)),
        manifest=manifest,
        metrics=measure_bundle(path),
        losses=loss_curve(read_or_empty(path, bundle.TRAINING_METRICS)),
        correct=correctness(path),
    )


def settings(manifest: dict[str, Any]) -> dict[str, str]:
    """The run's settings as text, an object's keys as settings of their own."""
    found = {}
    for name in SETTINGS:
        try:
            value = lookup(manifest, name)
        except KeyError:
            value = ABSENT
        parts = value.items() if isinstance(value, dict) else [("", value)]
        for key, part in parts:
            found[f"{name}.{key}" if key else name] = str(part)
    return found


def changed_settings(runs: Sequence[ComparedRun]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every setting whose value is not the same in all runs, in ``SETTINGS`` order."""
    each = [settings(run.manifest) for run in runs]
    names = list(dict.fromkeys(name for found in each for name in found))
    values = [(name, tuple(found.get(name, ABSENT) for found in each)) for name in names]
    return tuple((name, row) for name, row in values if len(set(row)) > 1)


def flipped(first: ComparedRun, other: ComparedRun) -> PairedComparison | str:
    """``other`` held against ``first`` item by item, or why it cannot be."""
    for run in (first, other):
        if not run.correct:
            return f"{run.label} has no scored {bundle.PREDICTIONS}"
    try:
        return paired(first.correct, other.correct, against=first.label)
    except ValueError as error:  # no item was scored in both
        return str(error)


def _labelled(runs: list[ComparedRun]) -> tuple[ComparedRun, ...]:
    """The runs, each named by its run id, or by its path where two share a run id."""
    ids = [run.label for run in runs]
    return tuple(
        run if ids.count(run.label) == 1 else replace(run, label=str(run.path)) for run in runs
    )


def compare(paths: Sequence[Path]) -> Comparison:
    """The verified bundles at ``paths`` side by side (``refusals`` first: it verifies them)."""
    runs = _labelled([read_run(path) for path in paths])
    first, others = runs[0], runs[1:]
    return Comparison(runs, changed_settings(runs), tuple(flipped(first, o) for o in others))
