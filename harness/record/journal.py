"""Journal entries: one per phase, as the phase ended, with the bundle files it wrote."""

from __future__ import annotations

from dataclasses import dataclass

from harness.record.outcomes import PhaseOutcome

# Size and modification time (ns) by relative path: enough to tell which files a phase wrote.
Listing = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class JournalEntry:
    """One phase as the journal tells it."""

    at: str
    outcome: PhaseOutcome
    written: tuple[str, ...]
    checkpoints: tuple[int, ...] = ()
    """The steps after which the phase wrote a resumable checkpoint (pruned ones included)."""
