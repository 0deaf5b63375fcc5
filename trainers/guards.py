"""Loss guards shared by every backend: stop at the first non-finite loss or a sustained
divergence."""

from __future__ import annotations

import math


class TrainingStopped(Exception):
    """Training stopped on purpose at ``step``; the weights are those from before that step."""

    resumable = False
    """Whether the run may go on later from a checkpoint of the step it stopped at."""

    def __init__(self, message: str, step: int, loss: float) -> None:
        super().__init__(message)
        self.step, self.loss = step, loss


class OverBudget(TrainingStopped):
    """The run would outlast its wall-time budget: stopped after ``step``, whose update is in the
    weights, with a checkpoint to resume from."""

    resumable = True


class NonFiniteLoss(TrainingStopped):
    """The loss was NaN or infinite."""


class Divergence(TrainingStopped):
    """The loss stayed above ``factor`` times its running minimum for ``patience`` steps."""


class LossGuard:
    """Checks each step's loss before the optimizer applies it."""

    def __init__(self, factor: float, patience: int) -> None:
        self.factor, self.patience = factor, patience
        self.best = math.inf
        self.strikes = 0

    def check(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"loss is {loss} at step {step}", step, loss)
        self.best = min(self.best, loss)
        self.strikes = self.strikes + 1 if loss > self.factor * self.best else 0
        if self.strikes >= self.patience:
            raise Divergence(
                f"loss {loss:.4g} at step {step} stayed above {self.factor:g} x its running "
                f"minimum {self.best:.4g} for {self.patience} steps",
                step,
                loss,
            )
