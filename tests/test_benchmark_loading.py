"""Benchmark (e) end to end at a tiny size, so its code cannot rot between measurements."""

from __future__ import annotations

import math

import pytest


@pytest.mark.slow
def test_loading_benchmark_measures_both_backends_on_a_sharded_checkpoint() -> None:
    for module in ("torch", "jax", "tunix", "sentencepiece"):
        pytest.importorskip(module)
    from benchmarks import loading

    measured = loading.measure(size_gb=0.002, repeats=1, max_shard_size="1MB")

    assert measured.checkpoint_bytes > 0 and measured.shards > 1
    assert {backend: len(runs) for backend, runs in measured.runs.items()} == {
        "torch": 1,
        "jax": 1,
    }
    metrics = [ratio.metric.split()[0] for ratio in measured.ratios]
    assert sorted(metrics) == ["jax", "jax", "torch", "torch"]
    for ratio in measured.ratios:
        assert math.isfinite(ratio.ratio) and ratio.ratio > 0, ratio
    assert [check.name for check in measured.checks] == ["torch parameters", "jax parameters"]
    assert all(check.ok for check in measured.checks), [check.detail for check in measured.checks]
