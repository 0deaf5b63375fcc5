"""Registry metrics measured from a bundle's files, the same way for this run and for a baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from harness import bundle


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = bundle.read_json(path)
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def measure(run_dir: Path) -> dict[str, float]:
    """Every registry metric that the bundle in ``run_dir`` holds so far."""
    found: dict[str, float] = {}
    manifest = _read(run_dir / bundle.RUN_MANIFEST) or {}
    for kind in ("dataset", "evalset"):
        records = manifest.get(kind, {}).get("records") if isinstance(manifest.get(kind), dict) else None
        if _finite(records):
            found[f"preflight.{kind}_records"] = float(records)
    metrics = _read(run_dir / bundle.TRAINING_METRICS)
    if metrics and metrics.get("per_step"):
        losses = [step["loss"] for step in metrics["per_step"]]
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
    results = _read(run_dir / bundle.EVALUATION_RESULTS)
    if results:
        for key in ("accuracy", "format_compliance", "count"):
            if _finite(results.get(key)):
                found[f"eval.{key}"] = float(results[key])
    return found
