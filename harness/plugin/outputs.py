"""What a session may write: its run folders and lock files, and nothing else; with
--update-goldens also the golden curves it was asked to record, with --snapshot-update the
frozen ZIPs and their locks, and the HTML report wherever --html put it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.evidence import bundle
from harness.phases.goldens import golden_path
from harness.plugin.runs import series
from harness.spec.milestones import LOCKS_DIR, FreezeMilestone, Milestone


def allowed_outputs(
    root: Path,
    runs_root: Path,
    milestones: Sequence[Milestone | FreezeMilestone],
    run_dirs: Iterable[Path],
    *,
    update_goldens: bool,
    update_snapshots: bool,
    report: Path | None,
) -> tuple[Path, ...]:
    """Every path the session may write; ``report`` is the HTML report's path, if any."""
    allowed = [*run_dirs, *(bundle.lock_path(runs_root, series(m)) for m in milestones)]
    if update_goldens:
        allowed += [golden_path(root, m) for m in milestones if isinstance(m, Milestone)]
    if update_snapshots:
        allowed += [runs_root / m.id for m in milestones]
        allowed += [root / LOCKS_DIR / f"{m.id}.json" for m in milestones]
    if report is not None:
        # The report is rewritten after each phase, so it and its assets folder (where --html put
        # them) are outputs of the run as well.
        allowed += [report, report.parent / "assets"]
    return tuple(allowed)
