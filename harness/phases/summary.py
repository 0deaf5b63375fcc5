"""The summary phase: close the run and render its summary with the spec's closing statement."""

from __future__ import annotations

from harness.evidence.summary import summary
from harness.record.run import MilestoneRun, utc_now


def finalize(run: MilestoneRun) -> str:
    """Mark the run finished and return its summary (the session writes it with the other
    documents once the phase has ended)."""
    run.record.finished_at = utc_now()
    return summary(run)
