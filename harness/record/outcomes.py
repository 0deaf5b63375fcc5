"""Phase outcomes: what happened in a phase, why, and the cause class it falls under."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pytest

from harness.record.failures import Cause
from harness.text import first_line


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    NOT_RUN = "not run"


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


def describe(error: BaseException) -> str:
    """A one-line reason for ``error``: its type and the first line of its message."""
    message = first_line(str(error))
    if isinstance(error, AssertionError | pytest.skip.Exception | pytest.fail.Exception):
        return message or type(error).__name__
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
