"""DDP and FSDP: ``torchrun`` workers train one request; the parent forwards rank 0's steps.

The parent and its workers share a folder: the pickled request, rank 0's steps as JSON lines, and
at the end either rank 0's result, a ``TrainingStopped`` it met, or a traceback from each rank
that failed; each rank that got to the end adds its done record. The run is judged by those
records: torchrun's exit code alone would fail a finished run whose rank crashed on the way out.
``python -m trainers.torch.parallel <folder>`` is the worker.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.elastic.multiprocessing.errors import record
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from trainers import guards
from trainers.protocol import StepHook, StepRecord, TrainRequest, TrainResult
from trainers.torch.fit import Replica, fit

REQUEST, STEPS, RESULT, STOPPED = "request.pkl", "steps.jsonl", "result.pkl", "stopped.json"
POLL_S = 0.2
LOG_TAIL_LINES = 15
ABORT_AT = "TUNIX_RT_TEST_WORKER_ABORT"
"""``<rank>:before-done`` or ``<rank>:after-done`` makes that worker abort there, a fault the tests
inject: a crash on the way out, such as gloo's threads racing the interpreter's exit, cannot be
caused on demand."""
# torchrun's failure table, one entry per rank that did not exit 0:
#   rank      : 1 (local_rank: 1)
#   exitcode  : -6 (pid: 4242)  (SIGABRT)
RANK_EXIT = re.compile(r"rank\s*: (\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*: (-?\d+)")


class WorkerFailed(RuntimeError):
    """A ``torchrun`` worker exited with an error; the message names its rank and last log lines."""


class AbortedAtShutdown(UserWarning):
    """Every rank reported finishing, then one crashed on its way out: the run still counts."""


def launch(request: TrainRequest, on_step: StepHook) -> TrainResult:
    """Train ``request`` over ``parallel.processes`` workers; ``on_step`` gets rank 0's steps."""
    folder = Path(tempfile.mkdtemp(prefix="torchrun-"))
    (folder / REQUEST).write_bytes(pickle.dumps(request))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={request.config.parallel.processes}",
        f"--log-dir={folder / 'logs'}", "--redirects=3",  # each rank's output to files of its own
        "-m", "trainers.torch.parallel", str(folder),
    ]  # fmt: skip
    root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    steps = StepFollower(folder / STEPS)
    with (folder / "torchrun.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while process.poll() is None:
                steps.forward(on_step)
                time.sleep(POLL_S)
            steps.forward(on_step)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait()
    code = process.returncode
    if code:
        unfinished = unfinished_ranks(folder, request.config.parallel.processes)
        if unfinished:
            raise WorkerFailed(describe_failure(folder, code, unfinished))
        warnings.warn(describe_shutdown(folder, code), AbortedAtShutdown, stacklevel=2)
    try:
        return _outcome(folder)
    finally:
        if not code:  # a crash keeps torchrun's folder, with each rank's logs, for a look
            shutil.rmtree(folder)


def _outcome(folder: Path) -> TrainResult:
    """Rank 0's result, or the ``TrainingStopped`` the workers met raised again here."""
    if (folder / STOPPED).exists():
        stop = json.loads((folder / STOPPED).read_text())
        raise getattr(guards, stop["kind"])(stop["message"], stop["step"], stop["loss"])
    result: TrainResult = pickle.loads((folder / RESULT).read_bytes())
    return result


def unfinished_ranks(folder: Path, processes: int) -> list[int]:
    """The ranks without a done record: they did not get to the end of their part."""
    return [rank for rank in range(processes) if not (folder / f"done-rank{rank}.json").exists()]


class StepFollower:
    """Reads the complete lines rank 0 has appended to its steps file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def forward(self, on_step: StepHook) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as steps:
            steps.seek(self.offset)
            ready = steps.read().rpartition(b"\n")[0]
        if ready:
            self.offset += len(ready) + 1
            for line in ready.decode().splitlines():
                on_step(StepRecord(**json.loads(line)))


def describe_failure(folder: Path, code: int, unfinished: list[int]) -> str:
    """Which ranks failed with what, and the last lines of their logs; the folder keeps the rest."""
    failed = sorted(folder.glob("failed-rank*.txt"))
    lines = [
        f"torchrun exited with code {code}; its files are in {folder}",
        "ranks that did not report finishing: " + ", ".join(map(str, unfinished)),
    ]
    for report in failed:
        rank = report.stem.removeprefix("failed-rank")
        lines.append(
            f"rank {rank} exited with code 1: {report.read_text().rstrip().splitlines()[-1]}"
        )
        for log in sorted(folder.glob(f"logs/*/attempt_*/{rank}/std*.log")):
            if log.stat().st_size:
                lines += [f"last lines of rank {rank}'s {log.name}:", *_tail(log)]
    if not failed:
        lines += ["no rank reported an exception (killed or crashed); torchrun's last lines:"]
        lines += _tail(folder / "torchrun.log")
    return "\n".join(lines)


def describe_shutdown(folder: Path, code: int) -> str:
    """One line: which ranks ended badly after every rank reported finishing, and how."""
    log = (folder / "torchrun.log").read_text()
    exits = {int(rank): int(status) for rank, status in RANK_EXIT.findall(log)}
    ranks = [
        f"rank {rank} {'aborted' if status < 0 else 'failed'} at shutdown after finishing "
        f"({_exit_status(status)})"
        for rank, status in sorted(exits.items())
    ] or ["a rank failed at shutdown after finishing"]
    return (
        f"{'; '.join(ranks)}: torchrun exited with code {code}, but every rank had reported "
        f"finishing, so the run counts as finished; each rank's logs are in {folder / 'logs'}"
    )


def _exit_status(code: int) -> str:
    """``exit code -6, SIGABRT``: a negative exit code is the signal that ended the process."""
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"exit code {code}, {signal.Signals(-code).name}"
    except ValueError:
        return f"exit code {code}, signal {-code}"


def _tail(path: Path) -> list[str]:
    return ["    " + line for line in path.read_text().rstrip().splitlines()[-LOG_TAIL_LINES:]]


def main(folder: Path) -> None:
    """One ``torchrun`` worker: join the process group, train this rank's part, report, leave."""
    request: TrainRequest = pickle.loads((folder / REQUEST).read_bytes())
    dist.init_process_group("nccl" if request.device == "cuda" else "gloo")
    rank = dist.get_rank()
    try:
        replica = FSDPReplica() if request.config.parallel.strategy == "fsdp" else DDPReplica()
        train_and_report(folder, request, replica)
    except Exception:
        (folder / f"failed-rank{rank}.txt").write_text(traceback.format_exc())
        dist.destroy_process_group()  # no barrier: the other ranks may never reach one
        raise
    _injected_abort(rank, "before-done")
    _write_done(folder, rank)
    replica.leave()
    _injected_abort(rank, "after-done")


def train_and_report(folder: Path, request: TrainRequest, replica: DDPReplica) -> None:
    """Train; rank 0 leaves the parent the result, or the ``TrainingStopped`` every rank met."""
    report = StepWriter(folder / STEPS) if replica.rank == 0 else _ignore
    try:
        result = fit(request, report, replica)
    except guards.TrainingStopped as stop:
        if replica.rank == 0:
            stopped = {
                "kind": type(stop).__name__,
                "message": str(stop),
                "step": stop.step,
                "loss": stop.loss,
            }
            (folder / STOPPED).write_text(json.dumps(stopped))
        return
    if replica.rank == 0:
        (folder / RESULT).write_bytes(pickle.dumps(result))


def _write_done(folder: Path, rank: int) -> None:
    """This rank's record that its part is done and reported: whole or absent, never partial."""
    partial = folder / f"done-rank{rank}.json.partial"
    partial.write_text(json.dumps({"rank": rank}))
    os.replace(partial, folder / f"done-rank{rank}.json")


def _injected_abort(rank: int, point: str) -> None:
    if os.environ.get(ABORT_AT) == f"{rank}:{point}":
        os.abort()


def _ignore(record: StepRecord) -> None:
    """Steps of ranks other than 0: the same numbers, reported once."""


class StepWriter:
    """Rank 0's step hook: one flushed JSON line per step for the parent to follow."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, record: StepRecord) -> None:
        with self.path.open("a") as steps:
            steps.write(json.dumps(asdict(record)) + "\n")


class DDPReplica(Replica):
    """A worker under DDP: a whole model each, gradients all-reduced on the last micro-batch."""

    def __init__(self) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ["LOCAL_RANK"])

    def device(self, requested: str) -> torch.device:
        if requested == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device(requested)

    def wrap(self, model: Any) -> Any:
        on_gpu = next(model.parameters()).is_cuda
        return DistributedDataParallel(model, device_ids=[self.local_rank] if on_gpu else None)

    def syncing(self, model: Any, sync: bool) -> AbstractContextManager[Any]:
        return contextlib.nullcontext() if sync else model.no_sync()

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(value)
        return value

    def save(self, model: Any, wrapped: Any, tokenizer: Any, request: TrainRequest) -> None:
        if self.rank == 0:
            super().save(model, wrapped, tokenizer, request)
        dist.barrier()

    def leave(self) -> None:
        """Shut the process groups down together: no rank closes its connections while another
        still waits on them, and none exits with the backend's threads still running."""
        dist.barrier()
        dist.destroy_process_group()


class FSDPReplica(DDPReplica):
    """A worker under FSDP (``fully_shard``): each decoder layer's weights, gradients and optimizer
    state sharded over the processes; the checkpoint is gathered whole on rank 0."""

    def wrap(self, model: Any) -> Any:
        self.mesh = init_device_mesh(next(model.parameters()).device.type, (self.world,))
        for module in model.modules():
            if type(module).__name__ in model._no_split_modules:  # the decoder layers
                fully_shard(module, mesh=self.mesh)
        return fully_shard(model, mesh=self.mesh)

    def leave(self) -> None:
        """Also let go of the groups the mesh holds. DTensor's sharding caches keep the mesh for
        the life of the process, and with it gloo's threads, which then race the interpreter's
        exit and now and then abort it (``terminate called without an active exception``)."""
        super().leave()
        self.mesh._pg_registry.clear()
        gc.collect()  # FSDP's module state is cyclic and holds the groups too

    def syncing(self, model: Any, sync: bool) -> AbstractContextManager[Any]:
        model.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()

    def clip(self, model: Any, max_norm: float) -> float:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        return float(cast(DTensor, norm).full_tensor().item())  # sharded parameters, sharded norm

    def save(self, model: Any, wrapped: Any, tokenizer: Any, request: TrainRequest) -> None:
        full = get_model_state_dict(
            wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        if self.rank == 0:
            folder = request.checkpoint_dir
            model.save_pretrained(folder, state_dict=_without_aliases(model, full))
            tokenizer.save_pretrained(folder)
        dist.barrier()


def _without_aliases(model: Any, state: dict[str, Any]) -> dict[str, Any]:
    """``state`` less the second name of each tied weight: gathered copies share no memory."""
    seen: set[int] = set()
    aliases = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            aliases.add(name)
        seen.add(id(param))
    return {name: tensor for name, tensor in state.items() if name not in aliases}


if __name__ == "__main__":
    record(main)(Path(sys.argv[1]))
