"""The wall-time budget's rule, on step records: no estimate during the warm-up, then the time so
far plus the steps left; a stop only once the estimate exceeds the budget and the next step with
room for the save would not fit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.phases.budget import BudgetWatch
from trainers.protocol import StepRecord


def started(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


def step(number: int, seconds: float) -> StepRecord:
    return StepRecord(number, 1.0, 1e-3, 1.0, 4, 100, seconds)


def test_no_estimate_during_the_warm_up_then_time_so_far_plus_the_steps_left() -> None:
    watch = BudgetWatch(budget_s=3600.0, started_at=started(100.0), total=100)
    assert watch.estimate(step(1, 30.0)) is None  # compiling, allocating: not the pace
    assert watch.estimate(step(2, 20.0)) is None
    estimate = watch.estimate(step(3, 2.0))
    assert estimate == pytest.approx(100.0 + 97 * 2.0, abs=2.0)
    assert watch.stop_after(step(3, 2.0), estimate) is None  # fits the hour


def test_over_the_estimate_training_goes_on_while_a_step_and_the_save_still_fit() -> None:
    watch = BudgetWatch(budget_s=600.0, started_at=started(300.0), total=1000)
    for number in (1, 2):
        watch.estimate(step(number, 1.0))
    estimate = watch.estimate(step(3, 1.0))
    assert estimate is not None and estimate > 600.0  # 300 s so far + 997 s to go
    assert watch.stop_after(step(3, 1.0), estimate) is None  # 300 s of 570 used: go on


def test_it_stops_after_the_last_step_that_fits_but_never_after_the_last_step() -> None:
    watch = BudgetWatch(budget_s=600.0, started_at=started(569.0), total=1000)
    for number in (1, 2):
        watch.estimate(step(number, 1.0))
    estimate = watch.estimate(step(3, 1.0))
    stop = watch.stop_after(step(3, 1.0), estimate)
    assert stop is not None and stop.resumable and stop.step == 3
    assert "its budget is 10 min; stopped after step 3 of 1000" in str(stop)
    assert watch.stop_after(step(1000, 1.0), estimate) is None  # done: nothing to resume
