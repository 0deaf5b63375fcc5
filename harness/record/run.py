"""One milestone run: the options it was opened with, the record its phases fill, and what the
next phase may rely on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.record.contamination import Contamination
from harness.record.evaluation import EvalResult
from harness.record.failures import Cause
from harness.record.fingerprints import Fingerprints
from harness.record.journal import JournalEntry, Listing
from harness.record.measurements import Baseline
from harness.record.outcomes import PhaseOutcome, Status
from harness.record.resources import EstimatedPeak, ResourceRecord
from harness.record.resumption import Resumption
from harness.record.statistics import PairedComparison, paired
from harness.spec.criteria import Judgement
from harness.spec.milestones import FreezeMilestone, Milestone
from harness.spec.phase_order import NEEDS
from trainers.protocol import StepRecord, TrainRequest, TrainResult

BASE_MODEL = "the base model"
GUARD_NOT_REACHED = "not checked: pre-flight did not reach the memory guard"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunOptions:
    """What the session decided for a run before its first phase; fixed for the run's life."""

    progress: Callable[[str], None] = print
    """Where progress lines go: the terminal, even while pytest captures output."""
    allowed_outputs: tuple[Path, ...] = ()
    """Every path the session may write besides its run folder (locks, the report, goldens)."""
    baseline: Baseline | None = None
    update_goldens: bool = False
    update_snapshots: bool = False
    reevaluates: Path | None = None
    """An earlier bundle whose checkpoint this run evaluates anew instead of training one."""
    resumes: Resumption | None = None
    """An interrupted or over-budget bundle whose training this run goes on with."""
    primary_run_dir: Path | None = None
    """In a non-zero process of a run of several: process 0's run folder, which holds the bundle
    and the checkpoint this process writes its shards of (its own folder is scratch)."""


@dataclass
class RunRecord:
    """What the phases collected, in the order they collect it; renderers turn it into files."""

    started_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    follows: str | None = None
    """The run folder of this milestone that came before this one, if any."""
    session_finished: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """Pre-flight's facts about this machine (``env_snapshot.txt``)."""
    model_lineage: dict[str, Any] | None = None
    contamination: Contamination | None = None
    """Eval items pre-flight found in the training data."""
    memory_guard: str = GUARD_NOT_REACHED
    """What the memory guard found (pre-flight), in one line."""
    memory_estimate: EstimatedPeak | None = None
    start_fingerprints: Fingerprints | None = None
    """What guardrails-before saw, for guardrails-after to compare with."""
    training_request: TrainRequest | None = None
    steps: list[StepRecord] = field(default_factory=list)
    base_eval_result: EvalResult | None = None
    """The untuned model's score (``evaluate-base``)."""
    train_result: TrainResult | None = None
    checkpoints: list[int] = field(default_factory=list)
    """The steps this run wrote a resumable checkpoint after (the older ones may be pruned)."""
    budget_estimate_s: float | None = None
    """The train phase's latest estimate of the session's wall time, against the spec's budget."""
    eval_result: EvalResult | None = None
    judgements: dict[str, list[Judgement]] = field(default_factory=dict)
    outcomes: dict[str, PhaseOutcome] = field(default_factory=dict)
    resources: ResourceRecord = field(default_factory=ResourceRecord)
    """What the sampler measured while the phases ran (``resources.jsonl``)."""
    journal: list[JournalEntry] = field(default_factory=list)

    def add_outcome(self, outcome: PhaseOutcome) -> None:
        self.outcomes[outcome.phase] = outcome
        self.updated_at = utc_now()


@dataclass(frozen=True)
class PhaseInProgress:
    """The phase running now, and the bundle's files as it started (to tell what it wrote)."""

    name: str
    files_before: Listing


@dataclass
class MilestoneRun:
    """A run: its milestone and folder, the session's options, and the record its phases fill."""

    milestone: Milestone | FreezeMilestone
    root: Path
    run_dir: Path
    options: RunOptions = RunOptions()
    record: RunRecord = field(default_factory=RunRecord)
    in_progress: PhaseInProgress | None = None

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def phases(self) -> tuple[str, ...]:
        return self.milestone.spec.phases

    def progress(self, message: str) -> None:
        """Tell the operator ``message``, prefixed with the run id."""
        self.options.progress(f"[{self.run_id}] {message}")

    def blocker(self, phase: str) -> tuple[Cause, str] | None:
        """Why ``phase`` must not run: the phase it needs did not pass (with that phase's reason)."""
        needed = NEEDS.get(phase)
        if needed is None:
            return None
        outcome = self.record.outcomes.get(needed)
        if outcome is None:
            return Cause.BLOCKED, f"{needed} did not run"
        if outcome.ok or outcome.cause is Cause.CRITERIA_NOT_MET:
            return None  # missed criteria leave real state behind: the next phase still runs
        return Cause.BLOCKED, f"{needed} {outcome.status}: {outcome.reason}"

    def outcome_of(self, phase: str) -> PhaseOutcome:
        """The recorded outcome, or ``not run`` for a phase the session never reached."""
        return self.record.outcomes.get(
            phase,
            PhaseOutcome(
                phase, Status.NOT_RUN, Cause.NOT_SELECTED, "the session did not run it", 0.0
            ),
        )

    def all_outcomes(self) -> list[PhaseOutcome]:
        return [self.outcome_of(phase) for phase in self.phases]

    def comparisons(self) -> dict[str, PairedComparison]:
        """This run's evaluation against the base model's and the baseline's, item by item, where
        both sides were scored."""
        tuned, found = self.record.eval_result, {}
        if tuned is None:
            return found
        if self.record.base_eval_result is not None:
            base = self.record.base_eval_result.correctness()
            found["base"] = paired(base, tuned.correctness(), BASE_MODEL)
        baseline = self.options.baseline
        if baseline is not None and baseline.correct:
            found["baseline"] = paired(baseline.correct, tuned.correctness(), baseline.run_id)
        return found

    @property
    def verdict(self) -> str:
        """``passed`` only when every phase passed; else the first phase that did not."""
        for outcome in self.all_outcomes():
            if not outcome.ok:
                return f"{outcome.phase} {outcome.status}"
        return "passed"
