"""A baseline: an earlier bundle whose integrity is checked before its metrics are compared."""

from __future__ import annotations

from pathlib import Path

from harness.evidence import bundle
from harness.evidence.measurements import measure_bundle
from harness.evidence.verify import verify_bundle
from harness.record.measurements import Baseline


class BaselineError(ValueError):
    """The baseline cannot be used; one line naming the folder and the problem."""


def load_baseline(path: Path) -> Baseline:
    """Verify the bundle at ``path`` and measure it."""
    if not (path / bundle.RUN_MANIFEST).is_file():
        raise BaselineError(f"{path}: not an evidence bundle (no {bundle.RUN_MANIFEST})")
    problems = verify_bundle(path)
    if problems:
        raise BaselineError(f"{path}: fails verification: {'; '.join(problems)}")
    return Baseline(path=path, run_id=path.name, metrics=measure_bundle(path))
