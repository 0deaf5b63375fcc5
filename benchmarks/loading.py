"""Benchmark (e): peak memory and time of loading a pretrained checkpoint, torch and jax backends.

A synthetic fp32 Gemma in Hugging Face layout, sharded as published checkpoints are, is loaded
once per backend and repeat, each time in a fresh process.

Run: .venv/bin/python -m benchmarks.loading
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Check, Ratio, Target, report

TARGET = Target(1.5, at_most=True)
BACKENDS = ("torch", "jax")
MB, GB = 10**6, 10**9
FP32_BYTES = 4
SEED = 0
SHARD_SIZE = "500MB"
# Every layer is the same; the hidden size grows with the size asked for. Multiples of 64 keep
# the head dimension a multiple of 16 and every weight divisible over an fsdp mesh of 8.
LAYERS = 8
HEADS, KV_HEADS = 4, 1
VOCAB = 512  # trainers.tiny_checkpoints.VOCAB_SIZE: the smallest byte-fallback tokenizer
HIDDEN_STEP, HIDDEN_MAX = 64, 8192
TOKENIZER_TEXT = ROOT / "datasets" / "dev-reasoning-v2"


def shape(hidden: int) -> dict[str, int]:
    """The config fields of the benchmark's Gemma at ``hidden`` wide."""
    return {
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": hidden // HEADS,
        "vocab_size": VOCAB,
    }


def parameter_count(hidden: int) -> int:
    """The weights of ``shape(hidden)``: tied embedding, final norm, attention, MLP, two norms."""
    head_dim = hidden // HEADS
    attention = 2 * hidden * HEADS * head_dim + 2 * hidden * KV_HEADS * head_dim
    mlp = 3 * hidden * 4 * hidden
    return VOCAB * hidden + hidden + LAYERS * (attention + mlp + 2 * hidden)


def closest_shape(size_gb: float) -> dict[str, int]:
    """The shape whose fp32 weights come nearest ``size_gb``."""
    wanted = size_gb * GB / FP32_BYTES
    hidden = min(
        range(HIDDEN_STEP, HIDDEN_MAX + 1, HIDDEN_STEP),
        key=lambda h: abs(parameter_count(h) - wanted),
    )
    return shape(hidden)


def tokenizer_lines() -> list[str]:
    """Text for the checkpoint's tokenizer: prompts and completions of the dev traces."""
    from harness.spec.data import load_traces
    from harness.spec.prompting import format_completion, format_prompt

    traces = load_traces(TOKENIZER_TEXT)[:300]
    return [format_prompt(t.prompt) + format_completion(t) for t in traces]


def build(folder: Path, size_gb: float, max_shard_size: str) -> Path:
    """A random fp32 Gemma of about ``size_gb`` in ``folder``, split at ``max_shard_size``."""
    from trainers.tiny_checkpoints import build_checkpoint

    changes = closest_shape(size_gb)
    return build_checkpoint(
        folder, "gemma", tokenizer_lines(), SEED, max_shard_size=max_shard_size, **changes
    )


def header_parameters(file: Path) -> int:
    """The number of weights a safetensors file's header declares."""
    with file.open("rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        header = json.loads(stream.read(length))
    header.pop("__metadata__", None)
    return sum(math.prod(entry["shape"]) for entry in header.values())


def _status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def load_torch(folder: Path) -> list[Any]:
    """Load ``folder`` as the torch backend does; its weights as numpy views."""
    from trainers.models import build_model_and_tokenizer

    model, _ = build_model_and_tokenizer(f"local:{folder}", SEED)
    return [p.detach().numpy() for p in model.parameters()]


def load_jax(folder: Path, mesh: Any) -> list[Any]:
    """Load ``folder`` as the jax backend does onto ``mesh``; its weights as numpy views."""
    import jax
    import numpy as np
    from flax import nnx

    from trainers.jax import model as jax_model

    model, _, _ = jax_model.load_pretrained(folder, SEED, mesh, None)
    return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.Param))]


def prepare(backend: str, folder: Path) -> Callable[[], list[Any]]:
    """Import what ``backend`` loads with (and start jax's CPU client); the load still to run."""
    import numpy  # noqa: F401
    from transformers import AutoConfig, AutoTokenizer, GemmaTokenizerFast  # noqa: F401

    import trainers.models  # noqa: F401

    if backend == "torch":
        from transformers import GemmaForCausalLM  # noqa: F401

        return lambda: load_torch(folder)
    from trainers.config import MeshConfig
    from trainers.jax import model as jax_model

    mesh = jax_model.build_mesh(MeshConfig(), "cpu")
    return lambda: load_jax(folder, mesh)


def child(backend: str, folder: Path) -> dict[str, float]:
    """Load ``folder`` on ``backend`` after its imports, then read every weight once (torch maps
    the files and reads a page only when touched): RSS before, peak RSS, seconds, weights."""
    load = prepare(backend, folder)
    baseline = _status_kib("VmRSS")
    started = time.perf_counter()
    weights = load()
    loaded = time.perf_counter()
    for weight in weights:
        weight.sum()
    read = time.perf_counter()
    return {
        "baseline_kib": baseline,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "hwm_kib": _status_kib("VmHWM"),
        "load_seconds": loaded - started,
        "read_seconds": read - loaded,
        "parameters": sum(weight.size for weight in weights),
    }


def run_module(*args: str) -> str:
    """What this module prints when run with ``args`` in a fresh Python process."""
    command = [sys.executable, "-m", "benchmarks.loading", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    return done.stdout


def run_child(backend: str, folder: Path) -> dict[str, float]:
    """One load of ``folder`` by ``backend`` in a fresh Python process."""
    result: dict[str, float] = json.loads(
        run_module("--child", backend, str(folder)).splitlines()[-1]
    )
    return result


def growth_bytes(run: dict[str, float]) -> float:
    """Peak RSS (VmHWM) over the RSS before loading, in bytes. VmHWM, not ru_maxrss: Linux
    carries the launching process's peak over exec into ru_maxrss, never into VmHWM."""
    return (run["hwm_kib"] - run["baseline_kib"]) * 1024


@dataclass(frozen=True)
class Loading:
    """What the benchmark measured: the checkpoint, every run of each backend, ratios, checks."""

    checkpoint_bytes: int
    shards: int
    parameters: int
    runs: dict[str, list[dict[str, float]]]
    ratios: list[Ratio]
    checks: list[Check]


def judge(
    backend: str, runs: list[dict[str, float]], size: int, parameters: int
) -> tuple[Ratio, Ratio, Check]:
    """Peak RSS growth over checkpoint bytes (the target), seconds per GB, weights all loaded."""
    memory = Ratio(
        f"{backend} peak RSS - baseline [MB] / checkpoint [MB]",
        [growth_bytes(run) / MB for run in runs],
        [size / MB] * len(runs),
        TARGET,
    )
    speed = Ratio(
        f"{backend} load + first read [s] / checkpoint [GB]",
        [run["load_seconds"] + run["read_seconds"] for run in runs],
        [size / GB] * len(runs),
        None,
    )
    loaded = {int(run["parameters"]) for run in runs}
    detail = f"{', '.join(f'{n:,}' for n in sorted(loaded))} loaded, {parameters:,} in the headers"
    return memory, speed, Check(f"{backend} parameters", detail, loaded == {parameters})


def measure(size_gb: float, repeats: int, max_shard_size: str = SHARD_SIZE) -> Loading:
    """Build the checkpoint, load it ``repeats`` times on each backend in turn, judge the runs."""
    runs: dict[str, list[dict[str, float]]] = {backend: [] for backend in BACKENDS}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "gemma"
        # Built in its own process, so this one stays small for the loads it launches.
        run_module(
            "--build", str(folder), "--size-gb", str(size_gb), "--shard-size", max_shard_size
        )
        files = sorted(folder.glob("*.safetensors"))
        size = sum(file.stat().st_size for file in files)
        parameters = sum(header_parameters(file) for file in files)
        for _ in range(repeats):
            for backend in BACKENDS:
                runs[backend].append(run_child(backend, folder))
    judged = [judge(backend, runs[backend], size, parameters) for backend in BACKENDS]
    ratios = [ratio for memory, speed, _ in judged for ratio in (memory, speed)]
    return Loading(size, len(files), parameters, runs, ratios, [check for *_, check in judged])


def print_runs(runs: dict[str, list[dict[str, float]]]) -> None:
    """Each run's RSS before loading, both peak readings (MB) and the split of its seconds."""
    for backend, measured in runs.items():
        for number, run in enumerate(measured, 1):
            baseline, maxrss, hwm = (
                run[k] * 1024 / MB for k in ("baseline_kib", "maxrss_kib", "hwm_kib")
            )
            print(
                f"  {backend} run {number}: RSS before loading {baseline:.0f} MB, peak "
                f"{hwm:.0f} MB (VmHWM; ru_maxrss {maxrss:.0f} MB), load "
                f"{run['load_seconds']:.2f} s, first read {run['read_seconds']:.2f} s"
            )


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size-gb",
        type=float,
        default=1.0,
        help="Checkpoint size in GB of fp32 weights, to the nearest shape (default 1.0).",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="Load on each backend this many times, alternately; compare medians (3).",
    )
    parser.add_argument(
        "--shard-size",
        default=SHARD_SIZE,
        help=f"Split the weights into safetensors files of at most this size ({SHARD_SIZE}).",
    )
    parser.add_argument("--build", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "FOLDER"), help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = arguments().parse_args()
    if args.child:
        backend, folder = args.child
        print(json.dumps(child(backend, Path(folder))))
        return 0
    if args.build:
        build(Path(args.build), args.size_gb, args.shard_size)
        return 0
    loading = measure(args.size_gb, args.repeats, args.shard_size)
    title = (
        f"(e) loading a pretrained checkpoint: fp32 Gemma, {loading.checkpoint_bytes / MB:.0f} MB "
        f"in {loading.shards} safetensors shards, {loading.parameters:,} weights; a fresh "
        f"process per load, median of {args.repeats}"
    )
    status = report(title, ("measured", "checkpoint"), loading.ratios, loading.checks)
    print_runs(loading.runs)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
