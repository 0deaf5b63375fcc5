"""The wall-time budget of a session (a Kaggle session's limit, a preemptible VM's lease): after
the warm-up steps the train phase estimates the session's wall time; when the estimate exceeds
the budget, training goes on while one more step and the save still fit, then stops resumably."""

from __future__ import annotations

import time
from datetime import datetime

from harness.record.metrics import THROUGHPUT_WARMUP_STEPS
from trainers.guards import OverBudget
from trainers.protocol import StepRecord

RESERVE = 0.05
"""The share of the budget kept back for the checkpoint, the final save and the bundle."""


class BudgetWatch:
    """Estimates the session's wall time step by step and says when to stop."""

    def __init__(self, budget_s: float, started_at: str, total: int) -> None:
        self.budget_s, self.total = budget_s, total
        self.started = datetime.fromisoformat(started_at).timestamp()
        self.seen = 0
        self.timed_s = 0.0
        self.timed = 0

    def estimate(self, record: StepRecord) -> float | None:
        """The session's estimated wall time after ``record``: its time so far plus the steps
        left at the mean step time after this session's warm-up; None during the warm-up."""
        self.seen += 1
        if self.seen <= THROUGHPUT_WARMUP_STEPS:
            return None
        self.timed += 1
        self.timed_s += record.seconds
        return self.elapsed() + (self.total - record.step) * self.step_s

    @property
    def step_s(self) -> float:
        return self.timed_s / self.timed if self.timed else 0.0

    def elapsed(self) -> float:
        return time.time() - self.started

    def stop_after(self, record: StepRecord, estimate: float | None) -> OverBudget | None:
        """The stop after ``record``, once the estimate exceeds the budget and the next step with
        room for the save no longer fits before the reserve; None while training goes on."""
        if estimate is None or estimate <= self.budget_s or record.step >= self.total:
            return None
        if self.elapsed() + 2 * self.step_s <= self.budget_s * (1 - RESERVE):
            return None
        return OverBudget(
            f"over budget: the session would take {estimate / 60:.2f} min, its budget is "
            f"{self.budget_s / 60:g} min; stopped after step {record.step} of {self.total} with a "
            "checkpoint to resume from",
            record.step,
            record.loss,
        )
