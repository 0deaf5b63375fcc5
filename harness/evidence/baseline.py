"""A baseline: an earlier bundle whose integrity is checked before its metrics are compared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.evidence import bundle
from harness.evidence.measurements import measure
from harness.evidence.verify import verify_bundle


class BaselineError(ValueError):
    """The baseline cannot be used; one line naming the folder and the problem."""


@dataclass(frozen=True)
class Baseline:
    """The run a new run is held against."""

    path: Path
    run_id: str
    metrics: dict[str, float]


def load_baseline(path: Path) -> Baseline:
    """Verify the bundle at ``path`` and measure it."""
    if not (path / bundle.RUN_MANIFEST).is_file():
        raise BaselineError(f"{path}: not an evidence bundle (no {bundle.RUN_MANIFEST})")
    problems = verify_bundle(path)
    if problems:
        raise BaselineError(f"{path}: fails verification: {'; '.join(problems)}")
    return Baseline(path=path, run_id=path.name, metrics=measure(path))


def deltas(current: dict[str, float], baseline: Baseline) -> list[tuple[str, float, float, float]]:
    """(metric, value, baseline, value - baseline) for every metric both runs have."""
    shared = sorted(current.keys() & baseline.metrics.keys())
    before = baseline.metrics
    return [(name, current[name], before[name], current[name] - before[name]) for name in shared]
