"""The evidence phase: render the documents, then verify the bundle as a reviewer later would."""

from __future__ import annotations

from harness.documents import write_documents
from harness.run import MilestoneRun
from harness.verify import verify_bundle


def consolidate(run: MilestoneRun) -> list[str]:
    """Render the documents from what was recorded, then list the bundle's problems.

    Checksums are left out here: ``SHA256SUMS`` is written when the session closes the bundle.
    """
    write_documents(run)
    return verify_bundle(run.run_dir, checksums=False)
