"""Phase outcomes: what happened in a phase, why, and the cause class it falls under."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pytest


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not run"


class Cause(StrEnum):
    """Cause classes a phase outcome is filed under."""

    COMPLETED = "completed"
    MISSING_HARDWARE = "missing hardware"
    UNSUPPORTED_PLATFORM = "unsupported platform"
    MISSING_DEPENDENCY = "missing dependency"
    BLOCKED = "blocked by an earlier phase"
    NOT_SELECTED = "not selected"
    SKIPPED = "skipped by the session"
    OUT_OF_MEMORY = "out of memory"
    CHECK_FAILED = "acceptance check failed"
    INTERRUPTED = "interrupted"
    ERROR = "error"


@dataclass(frozen=True)
class PhaseOutcome:
    """The documented outcome of one phase."""

    phase: str
    status: Status
    cause: Cause
    reason: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.status is Status.PASSED


class PhaseBlocked(pytest.skip.Exception):
    """Skip a phase for a documented cause (missing hardware, an earlier phase did not pass)."""

    def __init__(self, cause: Cause, reason: str) -> None:
        # Reported at the phase's own location, not at the hook that raised it.
        super().__init__(msg=reason, _use_item_location=True)
        self.cause = cause


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, for one-line reasons."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def classify(error: BaseException) -> Cause:
    """File an exception raised by a phase under its cause class."""
    if isinstance(error, PhaseBlocked):
        return error.cause
    if isinstance(error, KeyboardInterrupt):
        return Cause.INTERRUPTED
    if isinstance(error, AssertionError):
        return Cause.CHECK_FAILED
    if isinstance(error, ModuleNotFoundError):
        return Cause.MISSING_DEPENDENCY
    if type(error).__name__ == "OutOfMemoryError" or "RESOURCE_EXHAUSTED" in str(error):
        return Cause.OUT_OF_MEMORY
    return Cause.ERROR


def describe(error: BaseException) -> str:
    """A one-line reason for ``error``: its type and the first line of its message."""
    message = first_line(str(error))
    if isinstance(error, (AssertionError, pytest.skip.Exception)) or type(error).__name__ == "Failed":
        return message or type(error).__name__
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
