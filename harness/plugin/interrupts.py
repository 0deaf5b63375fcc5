"""How a session learns that it is being stopped: SIGTERM ends it like Ctrl-C, and the reason is
kept for the phase it cuts short."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest

from harness.record.outcomes import describe


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the session like Ctrl-C, so the phase in progress is recorded as interrupted."""
    raise KeyboardInterrupt("SIGTERM received")


class Interrupts:
    """Turns SIGTERM into KeyboardInterrupt for the session, and remembers why it stopped."""

    def __init__(self) -> None:
        self.reason = "the session stopped during this phase"
        self.previous_sigterm: Any = None

    def pytest_sessionstart(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.previous_sigterm = signal.signal(signal.SIGTERM, _terminate)

    def pytest_unconfigure(self) -> None:
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.reason = describe(excinfo.value) or "KeyboardInterrupt (SIGINT)"
