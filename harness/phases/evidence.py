"""The evidence phase: render the documents, then verify the bundle as a reviewer later would."""

from __future__ import annotations

from harness.evidence.documents import write_documents
from harness.evidence.verify import verify_bundle
from harness.record.run import MilestoneRun


def consolidate(run: MilestoneRun) -> list[str]:
    """Render the documents from what was recorded, then list the bundle's problems.

    Checksums are left out here: ``SHA256SUMS`` is written when the session closes the bundle.
    """
    write_documents(run)
    return verify_bundle(run.run_dir, checksums=False)
