"""Registry metrics measured from a bundle's files, the same way for this run and for a baseline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.evidence.verify import Unreadable, read_object


def _read(run_dir: Path, name: str) -> dict[str, Any]:
    """The JSON object in ``name``, or nothing: read like verify reads, never through a symlink."""
    try:
        return read_object(run_dir, name)
    except Unreadable:
        return {}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _losses(per_step: Any) -> list[Any]:
    """Each step's loss; a step that is not an object, or has no loss, has no finite one."""
    steps = per_step if isinstance(per_step, list) else []
    return [step.get("loss") if isinstance(step, dict) else None for step in steps]


def measure(run_dir: Path) -> dict[str, float]:
    """Every registry metric that the bundle in ``run_dir`` holds so far."""
    found: dict[str, float] = {}
    manifest = _read(run_dir, bundle.RUN_MANIFEST)
    for kind in ("dataset", "evalset"):
        data = manifest.get(kind)
        records = data.get("records") if isinstance(data, dict) else None
        if _finite(records):
            found[f"preflight.{kind}_records"] = float(records)
    metrics = _read(run_dir, bundle.TRAINING_METRICS)
    losses = _losses(metrics.get("per_step"))
    if losses:
        finite = [loss for loss in losses if _finite(loss)]
        found["train.nonfinite_steps"] = float(len(losses) - len(finite))
        found["train.steps_completed"] = float(len(losses))
        if finite:
            found["train.first_loss"] = finite[0]
            found["train.final_loss"] = finite[-1]
            found["train.min_loss"] = min(finite)
            if finite[0]:
                found["train.loss_ratio"] = finite[-1] / finite[0]
        for key, name in (("runtime_s", "train.runtime_s"), ("tokens_per_s", "perf.tokens_per_s"),
                          ("samples_per_s", "perf.samples_per_s")):
            if _finite(metrics.get(key)):
                found[name] = float(metrics[key])
    results = _read(run_dir, bundle.EVALUATION_RESULTS)
    for key in ("accuracy", "format_compliance", "count"):
        if _finite(results.get(key)):
            found[f"eval.{key}"] = float(results[key])
    return found
