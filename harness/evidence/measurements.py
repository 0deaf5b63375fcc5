"""Registry metrics of a run: of a bundle on disk (its documents read as verify reads them), or of
this run (its documents rendered in memory), measured the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.evidence.comparison import comparison_facts
from harness.evidence.inputs import contamination_facts, input_facts
from harness.evidence.verify import Unreadable, read_object
from harness.evidence.writers import evaluation_results, training_metrics
from harness.record.measurements import measure
from harness.record.run import MilestoneRun


def read_or_empty(run_dir: Path, name: str) -> dict[str, Any]:
    """The JSON object in ``name``, or nothing: never through a symlink."""
    try:
        return read_object(run_dir, name)
    except Unreadable:
        return {}


def measure_bundle(run_dir: Path) -> dict[str, float]:
    """Every registry metric that the bundle in ``run_dir`` holds so far."""
    return measure(
        read_or_empty(run_dir, bundle.RUN_MANIFEST),
        read_or_empty(run_dir, bundle.TRAINING_METRICS),
        read_or_empty(run_dir, bundle.EVALUATION_RESULTS),
        read_or_empty(run_dir, bundle.BASE_EVALUATION_RESULTS),
    )


def measured(run: MilestoneRun) -> dict[str, float]:
    """Every registry metric of this run so far, from its documents rendered in memory: the same
    documents, measured the same way, as a later reader of the bundle would."""
    record = run.record
    metrics = training_metrics(run) if record.training_request else {}
    results = evaluation_results(run, record.eval_result) if record.eval_result else {}
    base = evaluation_results(run, record.base_eval_result) if record.base_eval_result else {}
    manifest = input_facts(run) | contamination_facts(run) | comparison_facts(run)
    return measure(manifest, metrics, results, base)
