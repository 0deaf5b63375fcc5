"""The benchmarks run end to end at a tiny size, so their code cannot rot between measurements."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import Check, Ratio, Target, load_milestone, report
from harness.spec.milestones import Milestone, RunShape
from trainers.config import EvalConfig

ROOT = Path(__file__).resolve().parents[1]


def tiny_smoke(max_steps: int, eval_batch: int, max_new_tokens: int) -> Milestone:
    """The smoke milestone shrunk to a few steps and a few generated tokens."""
    smoke = load_milestone("smoke")
    settings = EvalConfig(batch_size=eval_batch, max_new_tokens=max_new_tokens)
    training = smoke.training.model_copy(update={"eval": settings})
    spec = smoke.spec.model_copy(update={"run": RunShape(max_steps=max_steps)})
    return dataclasses.replace(smoke, spec=spec, training=training)


def test_the_ratio_is_the_median_of_run_pairs_and_a_miss_fails_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Load doubled during the third pair: the median of pair ratios ignores it.
    wall = Ratio("wall time [s]", [11.0, 12.0, 40.0], [10.0, 10.0, 20.0], Target(1.1, at_most=True))
    assert wall.ratio == pytest.approx(1.2)
    assert (wall.ours, wall.theirs) == (12.0, 10.0)
    assert report("title", ("harness", "bare"), [wall]) == 1
    assert "<= 1.1  MISS" in capsys.readouterr().out
    faster = Ratio("items/s", [50.0], [5.0], Target(5.0))
    assert report("title", ("batch 50", "batch 1"), [faster], [Check("outputs", "same", True)]) == 0
    assert (
        report("title", ("batch 50", "batch 1"), [faster], [Check("outputs", "1 differs", False)])
        == 1
    )


@pytest.mark.slow
def test_generation_batched_and_one_at_a_time_agree() -> None:
    pytest.importorskip("torch")
    from benchmarks import generation

    ratio, same = generation.measure(tiny_smoke(1, 3, max_new_tokens=6), items=3, repeats=1)
    assert same.ok, same.detail
    assert ratio.ours > 0 and ratio.theirs > 0


@pytest.mark.slow
@pytest.mark.parametrize("milestone", ["smoke", "smoke-lora", "smoke-adafactor"])
def test_our_trainer_and_transformers_trainer_train_alike(milestone: str) -> None:
    """Full fine-tuning, LoRA against peft under Trainer (dropout's masks included), Adafactor
    against Trainer's own: the same losses."""
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    from benchmarks import vs_hf_trainer

    # Past the warm-up: B starts at zero, and dropout's masks show only once the adapters moved.
    ratio, checks = vs_hf_trainer.measure(load_milestone(milestone), steps=8, repeats=1)
    assert all(check.ok for check in checks), [check.detail for check in checks]
    assert ratio.ours > 0 and ratio.theirs > 0


@pytest.mark.slow
def test_bare_script_trains_and_evaluates(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from benchmarks import bare_smoke

    accuracy = bare_smoke.train_and_evaluate(tiny_smoke(2, 50, max_new_tokens=4), tmp_path)
    assert 0.0 <= accuracy <= 1.0
    assert (tmp_path / "config.json").is_file()


@pytest.mark.slow
def test_cuda_benchmark_skips_cleanly_without_a_gpu() -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "benchmarks.cuda_gemma"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("(d) cuda_gemma skipped: no CUDA GPU available")


@pytest.mark.slow
def test_the_trainer_pair_agrees_in_bf16_with_gradient_accumulation(tmp_path: Path) -> None:
    """The path benchmark (d) takes on a GPU, on a tiny model on this CPU."""
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    from benchmarks.cuda_gemma import synthetic_examples, training_config
    from benchmarks.trainer_pair import train_ours, train_theirs
    from trainers.protocol import TrainRequest

    config = training_config(seq_len=64, batch_tokens=256, grad_accum=2)
    examples = synthetic_examples(config.batch_size * 3, 64, config.seed)
    request = TrainRequest("random:tiny-gemma", config, examples, 3, None, "cpu", tmp_path / "ours")
    ours, theirs = train_ours(request), train_theirs(request, tmp_path / "theirs")
    assert ours.tokens == theirs.tokens == [256, 256, 256]
    assert theirs.losses == pytest.approx(ours.losses, rel=1e-5)


@pytest.mark.slow
def test_checkpoint_cost_is_measured_side_by_side_with_its_write_throughput() -> None:
    pytest.importorskip("torch")
    from benchmarks import checkpoints

    ratios, writes = checkpoints.measure(load_milestone("smoke"), steps=6, every=2, repeats=1)
    in_run, two_runs = ratios
    # The same run's steps, with the three checkpoints' seconds added: more, never less.
    assert in_run.ours > in_run.theirs > 0 and two_runs.ours > 0 and two_runs.theirs > 0
    assert writes.ok and "3 writes of" in writes.detail and "MB/s" in writes.detail


@pytest.mark.slow
def test_the_sampler_benchmark_trains_with_the_sampler_and_without() -> None:
    pytest.importorskip("torch")
    from benchmarks import sampler

    smoke = load_milestone("smoke")
    # Samples every 20 ms: some fall inside the sampled run's steps, none in the other's.
    sampled, bare = sampler.measure(smoke, steps=4, repeats=1, interval_s=0.02)
    assert sampled.samples > 2 and bare.samples == 0  # more than the phase's first and last
    assert sampled.step_s > 0 and bare.step_s > 0 and sampled.cpu_s > 0 and bare.cpu_s > 0
    assert 0 < sampler.sample_cost(smoke, 2.0, count=2) < 1
