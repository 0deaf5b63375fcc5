"""The summary phase: close the run and render its summary with the spec's closing statement."""

from __future__ import annotations

from harness.evidence import bundle
from harness.evidence.documents import write_documents
from harness.record.run import MilestoneRun, utc_now


def finalize(run: MilestoneRun) -> str:
    """Mark the run finished, render every document, and return the summary text."""
    run.finished_at = utc_now()
    write_documents(run)
    return (run.run_dir / bundle.summary_name(run.milestone.id)).read_text(encoding="utf-8")
