"""Metrics derived from the step records: throughput without the warm-up steps, the share of
padding, and model FLOPs utilisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainers.flops import FlopsBasis, mfu, peak_flops
from trainers.protocol import StepRecord

# Leave the first steps out of throughput: they carry one-off allocation and warm-up costs.
THROUGHPUT_WARMUP_STEPS = 2


def mean_rate(steps: Sequence[StepRecord], attr: str) -> float:
    """``attr`` (samples or tokens) per second over the steps after the warm-up."""
    timed = steps[THROUGHPUT_WARMUP_STEPS:] or steps
    seconds = sum(s.seconds for s in timed)
    return sum(getattr(s, attr) for s in timed) / seconds if seconds else 0.0


def step_rate(step: StepRecord) -> float:
    """Tokens per second of one step."""
    return step.tokens / step.seconds if step.seconds else 0.0


def padding_fraction(steps: Sequence[StepRecord]) -> float | None:
    """The share of computed token positions that were padding; None where none were counted."""
    counted = [s for s in steps if s.positions]
    if not counted:
        return None
    return 1 - sum(s.tokens for s in counted) / sum(s.positions or 0 for s in counted)


@dataclass(frozen=True)
class Utilisation:
    """MFU with its basis, or why it is omitted (a device without a known peak)."""

    peak_per_device: float | None
    mfu: float | None
    omitted: str | None


def utilisation(basis: FlopsBasis, tokens_per_s: float) -> Utilisation:
    """MFU of a run that trained at ``tokens_per_s`` over ``basis.devices`` devices."""
    peak = peak_flops(basis.device_name)
    if peak is None:
        return Utilisation(None, None, f"no dense bf16 peak is known for {basis.device_name!r}")
    per_device = tokens_per_s / basis.devices
    return Utilisation(peak, mfu(per_device, basis.per_token, basis.device_name), None)
