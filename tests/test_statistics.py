"""The evaluation statistics against values worked out by hand (and, where stated, with a
published table)."""

from __future__ import annotations

import math

import pytest

from harness.record.statistics import mcnemar_exact, paired, wilson


def test_wilson_interval_of_5_in_10_by_hand() -> None:
    # z = 1.96: z^2 / n = 0.38416, centre (0.5 + 0.19208) / 1.38416 = 0.5, half-width
    # 1.96 / 1.38416 * sqrt(0.025 + 0.009604) = 0.26341: [0.2366, 0.7634] (Newcombe 1998, table I).
    interval = wilson(5, 10)
    assert interval.low == pytest.approx(0.23659, abs=1e-4)
    assert interval.high == pytest.approx(0.76341, abs=1e-4)


def test_wilson_interval_of_an_accuracy_of_12_in_100() -> None:
    # centre (0.12 + 0.019208) / 1.038416 = 0.134058; half 1.887460 * sqrt(0.001056 + 0.000096)
    # = 0.064063: [0.0700, 0.1981].
    interval = wilson(12, 100)
    assert (interval.low, interval.high) == pytest.approx((0.06999, 0.19812), abs=1e-4)


def test_wilson_stays_inside_zero_and_one_at_the_extremes() -> None:
    none, every = wilson(0, 20), wilson(20, 20)
    assert none.low == 0.0 and 0.15 < none.high < 0.17  # 3.8416 / 23.8416 = 0.1611
    assert every.high == 1.0 and every.low == pytest.approx(1 - none.high)
    assert (wilson(0, 0).low, wilson(0, 0).high) == (0.0, 1.0)
    with pytest.raises(ValueError, match="3 successes out of 2 trials"):
        wilson(3, 2)


def test_the_interval_of_a_category_of_20_is_about_twice_as_wide_as_of_100_items() -> None:
    overall, category = wilson(50, 100), wilson(10, 20)
    assert (category.high - category.low) / (overall.high - overall.low) == pytest.approx(
        math.sqrt(5), rel=0.15
    )


def test_exact_mcnemar_by_hand() -> None:
    # 1 item lost, 5 gained: 2 * (C(6,0) + C(6,1)) / 2^6 = 2 * 7 / 64.
    assert mcnemar_exact(1, 5) == 14 / 64
    assert mcnemar_exact(5, 1) == 14 / 64
    # 0 lost, 6 gained: 2 / 64; equal flips are no evidence at all; no flip is p = 1.
    assert mcnemar_exact(0, 6) == 2 / 64
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_paired_comparison_names_the_items_that_flipped() -> None:
    before = {"a": True, "b": False, "c": False, "d": True, "only-before": True}
    after = {"a": True, "b": True, "c": True, "d": False, "only-after": False}
    compared = paired(before, after, "base model")
    assert compared.items == 4
    assert compared.wrong_to_right == ("b", "c") and compared.right_to_wrong == ("d",)
    assert (compared.accuracy_before, compared.accuracy_after) == (0.5, 0.75)
    assert compared.accuracy_delta == 0.25
    assert compared.p_value == 1.0  # 1 lost, 2 gained: 2 * (1 + 3) / 8 clipped to 1
    with pytest.raises(ValueError, match="no item was scored both here and in smoke_v1"):
        paired({"x": True}, {"y": True}, "smoke_v1")
