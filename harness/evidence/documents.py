"""The run's documents, manifest, failure analysis and summary, rendered from its record; the
session writes them after every phase and once more when it closes the run."""

from __future__ import annotations

from harness.evidence import bundle
from harness.evidence.failure_analysis import failure_analysis
from harness.evidence.manifest import run_manifest
from harness.evidence.summary import summary
from harness.record.run import MilestoneRun


def write_documents(run: MilestoneRun) -> None:
    """Re-render the manifest, failure analysis and summary from what the run has recorded."""
    bundle.write_json(run.run_dir / bundle.RUN_MANIFEST, run_manifest(run))
    if any(not o.ok for o in run.all_outcomes()):
        bundle.write_text(run.run_dir / bundle.FAILURE_ANALYSIS, failure_analysis(run))
    else:
        (run.run_dir / bundle.FAILURE_ANALYSIS).unlink(missing_ok=True)
    bundle.write_text(run.run_dir / bundle.summary_name(run.milestone.id), summary(run))
