"""The evidence phase: verify the bundle the session has written so far, as a reviewer later
would."""

from __future__ import annotations

from harness.evidence.verify import verify_bundle
from harness.record.run import MilestoneRun


def consolidate(run: MilestoneRun) -> list[str]:
    """The bundle's problems: its documents, rendered after every phase, and the files they name.

    Checksums are left out here: ``SHA256SUMS`` is written when the session closes the bundle.
    """
    return verify_bundle(run.run_dir, checksums=False)
