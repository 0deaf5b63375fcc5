"""The failure taxonomy in one place: every cause class, how it is detected, and where to look."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import pytest

from trainers.guards import Divergence, NonFiniteLoss, OverBudget


class Cause(StrEnum):
    """Cause classes a phase outcome is filed under."""

    COMPLETED = "completed"
    OUT_OF_MEMORY = "out of memory"
    INSUFFICIENT_MEMORY = "insufficient memory"
    NONFINITE_LOSS = "non-finite loss"
    DIVERGENCE = "divergence"
    DEVICE_ERROR = "device or driver error"
    MISSING_DEPENDENCY = "missing dependency"
    MISSING_CREDENTIAL = "missing credential"
    UNSUPPORTED_PLATFORM = "unsupported platform"
    MISSING_HARDWARE = "missing hardware"
    INTERRUPTED = "interrupted"
    OVER_BUDGET = "over budget"
    CRITERIA_NOT_MET = "acceptance criterion not met"
    CHECK_FAILED = "acceptance check failed"
    BLOCKED = "blocked by an earlier phase"
    NOT_SELECTED = "not selected"
    SKIPPED = "skipped by the session"
    ERROR = "error"


class MissingCredential(Exception):
    """A credential the run needs (e.g. HF_TOKEN for a gated model) is not set."""


class InsufficientMemory(Exception):
    """Pre-flight's estimate of the run's peak memory exceeds what the device has free."""


class PhaseBlocked(pytest.skip.Exception):
    """Skip a phase for a documented cause (missing hardware, an earlier phase did not pass)."""

    def __init__(self, cause: Cause, reason: str) -> None:
        # Reported at the phase's own location, not at the hook that raised it.
        super().__init__(msg=reason, _use_item_location=True)
        self.cause = cause


class CriterionFailed(pytest.fail.Exception):
    """A phase completed but its measurements miss the spec's criteria: one line, no traceback.

    Unlike a crash, the phases after it still run: an unacceptable run is still evidence.
    """

    def __init__(self, message: str) -> None:
        super().__init__(msg=message, pytrace=False)


# Substrings of error messages that identify a cause when the exception type does not.
OOM_MARKERS = ("RESOURCE_EXHAUSTED", "CUDA out of memory", "out of memory")
DEVICE_MARKERS = ("CUDA error", "CUDA driver", "cuDNN error", "CUBLAS_STATUS", "NCCL error",
                  "device-side assert", "XlaRuntimeError: INTERNAL", "TPU")

WHAT_TO_LOOK_AT = {
    Cause.COMPLETED: "nothing: the phase passed",
    Cause.OUT_OF_MEMORY: "training_log.txt for the last step reached; batch size, sequence length and "
    "precision in run_manifest.json against the device memory in gpu_snapshot.txt",
    Cause.INSUFFICIENT_MEMORY: "the estimate in the reason (weights, gradients, optimizer, "
    "activations) against the device's free memory; docs/memory.md names the settings that lower it",
    Cause.NONFINITE_LOSS: "training_log.txt and training_metrics.json: learning rate and grad norm "
    "in the steps before the last good one",
    Cause.DIVERGENCE: "the loss curve in training_metrics.json: learning rate, warm-up and grad clip",
    Cause.DEVICE_ERROR: "gpu_snapshot.txt (driver, CUDA version) and the phase's full traceback in "
    "tracebacks/",
    Cause.MISSING_DEPENDENCY: "env_snapshot.txt lists the installed framework versions",
    Cause.MISSING_CREDENTIAL: "the environment variable named in the reason (its value is never written)",
    Cause.UNSUPPORTED_PLATFORM: "env_snapshot.txt shows the platform; the spec names the one it needs",
    Cause.MISSING_HARDWARE: "env_snapshot.txt and gpu_snapshot.txt show what this machine has; "
    "run the milestone on the hardware its spec names",
    Cause.INTERRUPTED: "training_log.txt for the last step reached; the run was stopped from outside",
    Cause.OVER_BUDGET: "the estimate and the budget in run_manifest.json and training_log.txt; "
    "the run stopped with a checkpoint in checkpoints/: go on with --resume <this bundle>",
    Cause.CRITERIA_NOT_MET: "the criteria table in the summary: measured value, threshold, verdict",
    Cause.CHECK_FAILED: "the reason above and the metrics it names",
    Cause.BLOCKED: "the outcome of the phase it needs, above",
    Cause.NOT_SELECTED: "the pytest command line (-k, -m, -x) that left the phase out",
    Cause.SKIPPED: "the skip reason above",
    Cause.ERROR: "the phase's full traceback in tracebacks/ (a file named after the phase) and "
    "training_log.txt",
}


def classify(error: BaseException) -> Cause:
    """File an exception raised by a phase under its cause class."""
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, PhaseBlocked):
        return error.cause
    if isinstance(error, KeyboardInterrupt):
        return Cause.INTERRUPTED
    if isinstance(error, OverBudget):
        return Cause.OVER_BUDGET
    if isinstance(error, NonFiniteLoss):
        return Cause.NONFINITE_LOSS
    if isinstance(error, Divergence):
        return Cause.DIVERGENCE
    if isinstance(error, CriterionFailed):
        return Cause.CRITERIA_NOT_MET
    if isinstance(error, MissingCredential):
        return Cause.MISSING_CREDENTIAL
    if isinstance(error, InsufficientMemory):
        return Cause.INSUFFICIENT_MEMORY
    if isinstance(error, AssertionError):
        return Cause.CHECK_FAILED
    if isinstance(error, ImportError):
        return Cause.MISSING_DEPENDENCY
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return Cause.OUT_OF_MEMORY
    if any(marker in message for marker in OOM_MARKERS):
        return Cause.OUT_OF_MEMORY
    if any(marker in message for marker in DEVICE_MARKERS):
        return Cause.DEVICE_ERROR
    return Cause.ERROR


def has_traceback(excinfo: pytest.ExceptionInfo[BaseException] | None) -> bool:
    """Whether a failure comes with a traceback worth keeping: all but the one-line failures."""
    if excinfo is None:
        return False
    return not (isinstance(excinfo.value, pytest.fail.Exception) and not excinfo.value.pytrace)


def show_in_one_line(
    report: pytest.TestReport, reason: str, traceback_at: Path | None, config: pytest.Config
) -> None:
    """What the terminal, junit and the HTML report show for a phase that did not pass: its skip
    reason, or the failure's one line and where its full traceback is kept. A ``--tb`` style other
    than the default, or ``--full-trace``, keeps pytest's own traceback on the terminal."""
    if report.skipped and isinstance(report.longrepr, tuple):
        path, line, _ = report.longrepr
        report.longrepr = (path, line, f"Skipped: {reason}")
    elif traceback_at and config.option.tbstyle == "auto" and not config.option.fulltrace:
        report.longrepr = f"{reason} (traceback: {traceback_at.as_posix()})"
