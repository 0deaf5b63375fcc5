"""The statistics a reviewer needs to trust an evaluation of 100 items: a 95% interval on every
rate, and an exact paired test of two runs scored on the same items."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# The two-sided 95% quantile of the standard normal.
Z95 = 1.959963984540054
INTERVAL_METHOD = "Wilson score interval, 95%"
PAIRED_TEST = "exact McNemar test (two-sided binomial on the discordant items)"


@dataclass(frozen=True)
class Interval:
    """A 95% interval on a rate."""

    low: float
    high: float


def wilson(successes: int, trials: int, z: float = Z95) -> Interval:
    """The Wilson score interval of ``successes`` out of ``trials``: unlike the normal
    approximation it stays inside [0, 1] and is not empty at 0 or n successes. With no trial,
    nothing is known: [0, 1]."""
    if not 0 <= successes <= trials:
        raise ValueError(f"{successes} successes out of {trials} trials")
    if trials == 0:
        return Interval(0.0, 1.0)
    rate, z2 = successes / trials, z * z
    denominator = 1 + z2 / trials
    centre = (rate + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials * trials))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(right_to_wrong: int, wrong_to_right: int) -> float:
    """The two-sided p-value that two runs are equally accurate on the same items, from the items
    only one of them got right: under the null each such item flips either way with chance 1/2."""
    discordant = right_to_wrong + wrong_to_right
    if discordant == 0:
        return 1.0
    fewer = min(right_to_wrong, wrong_to_right)
    tail = sum(math.comb(discordant, k) for k in range(fewer + 1)) / 2**discordant
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedComparison:
    """This run against another scored on the same items: what flipped, and whether by chance."""

    against: str
    """What this run is compared with: the base model, or the baseline's run id."""
    items: int
    correct_before: int
    correct_after: int
    right_to_wrong: tuple[str, ...]
    wrong_to_right: tuple[str, ...]
    p_value: float

    @property
    def accuracy_before(self) -> float:
        return self.correct_before / self.items

    @property
    def accuracy_after(self) -> float:
        return self.correct_after / self.items

    @property
    def accuracy_delta(self) -> float:
        return self.accuracy_after - self.accuracy_before

    @property
    def interval_before(self) -> Interval:
        return wilson(self.correct_before, self.items)

    @property
    def interval_after(self) -> Interval:
        return wilson(self.correct_after, self.items)


def paired(before: Mapping[str, bool], after: Mapping[str, bool], against: str) -> PairedComparison:
    """Compare per-item correctness on the items both runs scored (ids sorted)."""
    shared = sorted(before.keys() & after.keys())
    if not shared:
        raise ValueError(f"no item was scored both here and in {against}")
    lost = tuple(i for i in shared if before[i] and not after[i])
    gained = tuple(i for i in shared if after[i] and not before[i])
    return PairedComparison(
        against=against,
        items=len(shared),
        correct_before=sum(before[i] for i in shared),
        correct_after=sum(after[i] for i in shared),
        right_to_wrong=lost,
        wrong_to_right=gained,
        p_value=mcnemar_exact(len(lost), len(gained)),
    )
