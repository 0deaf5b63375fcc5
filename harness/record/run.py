"""One milestone run: its folder, what each phase recorded, and what the next phase may rely on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.record.failures import Cause
from harness.record.outcomes import PhaseOutcome, Status
from harness.spec.milestones import FreezeMilestone, Milestone
from harness.spec.phase_order import NEEDS, phases_of

if TYPE_CHECKING:
    from harness.evidence.baseline import Baseline
    from harness.evidence.journal import JournalEntry, Listing
    from harness.phases.evaluate import EvalResult
    from harness.phases.guardrails import Fingerprints
    from harness.spec.criteria import Judgement
    from trainers.protocol import StepRecord, TrainResult


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class MilestoneRun:
    """The mutable state of one run, filled phase by phase, rendered into the bundle by writers."""

    milestone: Milestone | FreezeMilestone
    root: Path
    run_dir: Path
    progress: Callable[[str], None] = print
    started_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    outcomes: dict[str, PhaseOutcome] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)
    follows: str | None = None
    current_phase: str | None = None
    session_finished: bool = False
    rules_start: Fingerprints | None = None
    allowed_outputs: list[Path] = field(default_factory=list)
    baseline: Baseline | None = None
    update_goldens: bool = False
    update_snapshots: bool = False
    judgements: dict[str, list[Judgement]] = field(default_factory=dict)
    train_result: TrainResult | None = None
    model_lineage: dict[str, Any] | None = None
    eval_result: EvalResult | None = None
    files_before_phase: Listing = field(default_factory=dict)
    journal: list[JournalEntry] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def record(self, outcome: PhaseOutcome) -> None:
        self.outcomes[outcome.phase] = outcome
        self.updated_at = utc_now()

    def blocker(self, phase: str) -> tuple[Cause, str] | None:
        """Why ``phase`` must not run: the phase it needs did not pass (with that phase's reason)."""
        needed = NEEDS.get(phase)
        if needed is None:
            return None
        outcome = self.outcomes.get(needed)
        if outcome is None:
            return Cause.BLOCKED, f"{needed} did not run"
        if outcome.ok or outcome.cause is Cause.CRITERIA_NOT_MET:
            return None  # missed criteria leave real state behind: the next phase still runs
        return Cause.BLOCKED, f"{needed} {outcome.status}: {outcome.reason}"

    def outcome_of(self, phase: str) -> PhaseOutcome:
        """The recorded outcome, or ``not run`` for a phase the session never reached."""
        return self.outcomes.get(
            phase, PhaseOutcome(phase, Status.NOT_RUN, Cause.NOT_SELECTED, "the session did not run it", 0.0)
        )

    def all_outcomes(self) -> list[PhaseOutcome]:
        return [self.outcome_of(phase) for phase in self.phases]

    @property
    def phases(self) -> tuple[str, ...]:
        return phases_of(self.milestone.spec.kind)

    @property
    def verdict(self) -> str:
        """``passed`` only when every phase passed; else the first phase that did not."""
        for outcome in self.all_outcomes():
            if not outcome.ok:
                return f"{outcome.phase} {outcome.status}"
        return "passed"
