"""DDP and FSDP through torchrun on CPU (gloo, two processes) reproduce the single-process run."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.spec.data import load_traces
from harness.spec.prompting import format_completion, format_prompt
from harness.spec.yaml_files import load_yaml_model
from trainers.config import LORA_TARGETS, ParallelConfig, TrainingConfig
from trainers.guards import Divergence
from trainers.protocol import Example, StepRecord, TrainRequest, TrainResult

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6
# Two processes sum the same gradients in another order: measured 1e-6 on the losses and 1e-8 on
# the weights after 6 steps, which moved the weights by about 1e-3.
LOSS_ATOL, WEIGHT_ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def examples() -> tuple[Example, ...]:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:64]
    return tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)


def config_with(**changes: Any) -> TrainingConfig:
    config = load_yaml_model(ROOT / "configs" / "training" / "smoke_tiny.yaml", TrainingConfig)
    return TrainingConfig(**{**config.model_dump(), **changes})


def train(
    examples: tuple[Example, ...],
    config: TrainingConfig,
    out: Path,
    source: str = "random:tiny-gemma",
) -> tuple[TrainResult, list[StepRecord]]:
    from trainers.torch.trainer import TorchTrainer

    seen: list[StepRecord] = []
    request = TrainRequest(source, config, examples, STEPS, None, "cpu", out)
    return TorchTrainer().train(request, seen.append), seen


def weights(checkpoint: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(checkpoint / "model.safetensors")


def test_processes_must_match_the_strategy() -> None:
    with pytest.raises(ValidationError, match="strategy single runs 1 process, not 2"):
        ParallelConfig(strategy="single", processes=2)
    with pytest.raises(ValidationError, match="strategy ddp needs at least 2 processes, got 1"):
        ParallelConfig(strategy="ddp", processes=1)
    assert ParallelConfig(strategy="fsdp", processes=4).processes == 4


def test_the_batch_must_split_evenly_over_micro_batches_and_processes() -> None:
    with pytest.raises(ValidationError, match=r"batch_size 16 does not split into .* = 3 x 2"):
        config_with(grad_accum_steps=3, parallel={"strategy": "ddp", "processes": 2})
    split = config_with(grad_accum_steps=4, parallel={"strategy": "ddp", "processes": 2})
    assert split.batch_size == 16


# Without dropout: each process draws the masks of its own rows, a single process all of them.
LORA = {"rank": 8, "alpha": 16, "target_modules": list(LORA_TARGETS)}


def test_lora_is_refused_under_fsdp() -> None:
    with pytest.raises(ValidationError, match="lora under parallel.strategy fsdp is not supported"):
        config_with(lora=LORA, parallel={"strategy": "fsdp", "processes": 2})


@pytest.mark.slow
def test_lora_under_ddp_reproduces_the_single_process_run(
    examples: tuple[Example, ...], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    single, single_seen = train(examples, config_with(lora=LORA), tmp_path / "single")
    ddp = {"strategy": "ddp", "processes": 2}
    result, seen = train(examples, config_with(lora=LORA, parallel=ddp), tmp_path / "ddp")
    torch.testing.assert_close(
        [r.loss for r in seen], [r.loss for r in single_seen], rtol=0, atol=LOSS_ATOL
    )
    trained, expected = weights(result.checkpoint_dir), weights(single.checkpoint_dir)
    assert trained.keys() == expected.keys()  # the merged model, no adapter names
    for name, tensor in expected.items():
        torch.testing.assert_close(trained[name], tensor, rtol=0, atol=WEIGHT_ATOL, msg=name)
    assert (result.checkpoint_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.fixture(scope="module")
def one_process(
    examples: tuple[Example, ...], tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, list[StepRecord]]:
    pytest.importorskip("torch")
    return train(examples, config_with(), tmp_path_factory.mktemp("single"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes",
    [
        {"parallel": {"strategy": "ddp", "processes": 2}, "grad_accum_steps": 2},
        {"parallel": {"strategy": "fsdp", "processes": 2}},
    ],
    ids=["ddp-2x2-micro-batches", "fsdp"],
)
def test_two_processes_reproduce_the_single_process_run(
    examples: tuple[Example, ...],
    one_process: tuple[TrainResult, list[StepRecord]],
    changes: dict[str, Any],
    tmp_path: Path,
) -> None:
    torch = pytest.importorskip("torch")
    from trainers.models import build_model_and_tokenizer

    result, seen = train(examples, config_with(**changes), tmp_path)
    single, single_seen = one_process
    assert [r.step for r in seen] == list(range(1, STEPS + 1))  # forwarded in order, each once
    assert list(result.steps) == seen
    torch.testing.assert_close(
        [r.loss for r in seen], [r.loss for r in single_seen], rtol=0, atol=LOSS_ATOL
    )
    assert [(r.samples, r.tokens) for r in seen] == [(r.samples, r.tokens) for r in single_seen]
    assert result.flops is not None and result.flops.devices == 2

    trained, expected = weights(result.checkpoint_dir), weights(single.checkpoint_dir)
    assert trained.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(trained[name], tensor, rtol=0, atol=WEIGHT_ATOL, msg=name)
    initial = build_model_and_tokenizer("random:tiny-gemma", config_with().seed)[0].state_dict()
    moved = max((tensor - initial[name]).abs().max().item() for name, tensor in expected.items())
    assert moved > 100 * WEIGHT_ATOL  # the weights compared did move: training happened

    from trainers.torch.trainer import TorchTrainer

    prompt = examples[0].prompt
    completion = TorchTrainer().generate(
        result.checkpoint_dir, [prompt], max_new_tokens=8, batch_size=1, device="cpu"
    )
    assert len(completion) == 1 and isinstance(completion[0], str)


@pytest.mark.slow
def test_a_failing_worker_names_its_rank_exit_code_and_last_log_lines(
    examples: tuple[Example, ...], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from trainers.torch.parallel import WorkerFailed

    config = config_with(parallel={"strategy": "ddp", "processes": 2})
    with pytest.raises(WorkerFailed) as failure:
        train(examples, config, tmp_path / "out", source=f"local:{tmp_path / 'missing'}")
    message = str(failure.value)
    assert message.startswith("torchrun exited with code 1")
    assert "rank 0 exited with code 1: FileNotFoundError: model folder" in message
    assert "last lines of rank 0's stderr.log:" in message
    shutil.rmtree(kept_folder(message))


@pytest.mark.slow
def test_divergence_in_the_workers_stops_the_run_with_the_weights_before_it(
    examples: tuple[Example, ...], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    from trainers.torch.trainer import TorchTrainer

    optimizer = {"name": "adamw", "lr": 3.0, "weight_decay": 0.0, "betas": [0.9, 0.98], "eps": 1e-8}
    wild = {
        "optimizer": optimizer,
        "schedule": {"warmup_steps": 0, "decay": "constant", "min_lr_ratio": 1.0},
        "divergence": {"factor": 1.5, "patience": 1},
    }
    config = config_with(parallel={"strategy": "ddp", "processes": 2}, **wild)
    seen: list[StepRecord] = []
    request = TrainRequest(
        "random:tiny-gemma", config, examples, STEPS, None, "cpu", tmp_path / "ddp"
    )
    with pytest.raises(Divergence) as stopped:
        TorchTrainer().train(request, seen.append)
    assert stopped.value.step == 2
    assert stopped.value.loss > 1.5 * seen[0].loss
    assert [r.step for r in seen] == [1]

    one_step = TrainRequest(
        "random:tiny-gemma", config_with(**wild), examples, 1, None, "cpu", tmp_path / "one"
    )
    TorchTrainer().train(one_step, lambda _: None)
    # At lr 3 every weight moves by about 3 a step; near-zero gradients summed in another order
    # move a few by up to 2e-3 (Adam divides by their size): 1e-2 still tells the steps apart.
    kept, after_step_1 = weights(tmp_path / "ddp"), weights(tmp_path / "one")
    for name, tensor in after_step_1.items():
        torch.testing.assert_close(kept[name], tensor, rtol=0, atol=1e-2, msg=name)


def kept_folder(message: str) -> Path:
    """The torchrun folder a message names at the end of its first line."""
    return Path(message.splitlines()[0].rpartition(" are in ")[2])


@pytest.mark.slow
def test_a_rank_that_aborts_at_shutdown_after_reporting_done_leaves_a_finished_run(
    examples: tuple[Example, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from trainers.torch.parallel import ABORT_AT, AbortedAtShutdown

    monkeypatch.setenv(ABORT_AT, "1:after-done")
    config = config_with(parallel={"strategy": "ddp", "processes": 2})
    with pytest.warns(AbortedAtShutdown) as warned:
        result, seen = train(examples, config, tmp_path)
    message = str(warned[0].message)
    assert "rank 1 aborted at shutdown after finishing (exit code -6, SIGABRT)" in message
    assert "torchrun exited with code 1, but every rank had reported finishing" in message
    assert [r.step for r in seen] == list(range(1, STEPS + 1))
    assert list(result.steps) == seen
    assert (result.checkpoint_dir / "model.safetensors").exists()
    logs = kept_folder(message)
    assert logs.name == "logs" and list(logs.glob("*/attempt_*/1/stderr.log"))
    shutil.rmtree(logs.parent)


@pytest.mark.slow
def test_a_rank_that_aborts_before_reporting_done_fails_the_run_even_with_a_result(
    examples: tuple[Example, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from trainers.torch.parallel import ABORT_AT, WorkerFailed

    monkeypatch.setenv(ABORT_AT, "1:before-done")
    config = config_with(parallel={"strategy": "ddp", "processes": 2})
    with pytest.raises(WorkerFailed) as failure:
        train(examples, config, tmp_path)
    message = str(failure.value)
    assert message.startswith("torchrun exited with code 1")
    assert "ranks that did not report finishing: 1\n" in message
    folder = kept_folder(message)
    assert (folder / "result.pkl").exists()  # rank 0 finished: the done records decide
    shutil.rmtree(folder)


# One FSDP process: train a step, leave, and name the threads left running before and after.
LEAVE = """
import json, pickle, sys
from pathlib import Path
import torch.distributed as dist
from trainers.torch.parallel import FSDPReplica
from trainers.torch.fit import fit

def threads():
    return sorted(task.read_text().strip() for task in Path("/proc/self/task").glob("*/comm"))

dist.init_process_group("gloo")
replica = FSDPReplica()
with open(sys.argv[1], "rb") as request:
    fit(pickle.load(request), lambda record: None, replica)
before = threads()
replica.leave()
print(json.dumps({"before": before, "after": threads()}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are listed from /proc")
def test_an_fsdp_worker_that_leaves_stops_gloo_threads_before_the_interpreter_exits(
    examples: tuple[Example, ...], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    request = TrainRequest("random:tiny-gemma", config_with(), examples, 1, None, "cpu", tmp_path)
    (tmp_path / "request.pkl").write_bytes(pickle.dumps(request))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }
    script = [sys.executable, "-c", LEAVE, str(tmp_path / "request.pkl")]
    done = subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    threads = json.loads(done.stdout.splitlines()[-1])
    assert any("gloo" in name for name in threads["before"])
    assert not [name for name in threads["after"] if "gloo" in name]
