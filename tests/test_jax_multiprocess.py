"""One milestone over two jax processes, as on a TPU slice of two hosts: the same pytest command in
each (``--jax-distributed``), joined through JAX's CPU collectives on this machine. Process 0 writes
the bundle, process 1 only its shards of the checkpoint; the losses are one process's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.evidence.verify import verify_bundle
from harness.phases.goldens import ATOL, RTOL
from harness.spec.phase_order import EVALUATE_BASE, PHASES

if TYPE_CHECKING:
    from tests.conftest import MiniProject

pytest.importorskip("jax")
pytest.importorskip("tunix")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3
# Start-up on a loaded machine (imports, the coordinator, compiling) can take minutes; a hang
# fails the test instead of the suite.
TIMEOUT_S = 600
# How long the others may take to end on their own once one process failed.
GRACE_S = 30

# The same pytest command on every host, as docs/tpu.md has it.
SESSION = [
    sys.executable, "-m", "pytest", "acceptance", "--milestone", "mini-jax", "--jax-distributed",
    "-p", "no:cacheprovider",
]  # fmt: skip

# The same training in one process over two forced CPU devices: the curve the two must match.
ONE_PROCESS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from harness.spec.data import load_traces
    from harness.spec.prompting import format_completion, format_prompt
    from harness.spec.yaml_files import load_yaml_model
    from trainers.config import TrainingConfig
    from trainers.jax.trainer import JaxTrainer
    from trainers.protocol import Example, TrainRequest

    project, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    traces = load_traces(project / "datasets" / "mini")
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    config = load_yaml_model(project / "configs" / "training" / "mesh.yaml", TrainingConfig)
    request = TrainRequest("random:tiny-gemma", config, examples, steps, None, "cpu", out)
    losses = []
    JaxTrainer().train(request, lambda record: losses.append(record.loss))
    print(json.dumps(losses))
    """
)

# Each of two processes places a batch whose rows are their own numbers on the 1 x 2 mesh.
PLACEMENT = textwrap.dedent(
    """
    import json
    import jax
    import numpy as np
    from trainers.config import MeshConfig
    from trainers.jax import distributed, model

    index, count = distributed.initialize()
    mesh = jax.make_mesh((1, 2), ("data", "fsdp"))
    rows = np.arange(4 * 3, dtype=np.int32).reshape(4, 3) // 3
    placed = distributed.global_batch({"rows": rows}, mesh)["rows"]
    mine = [np.asarray(shard.data)[:, 0].tolist() for shard in placed.addressable_shards]
    try:
        model.build_mesh(MeshConfig(data=1, fsdp=1), "cpu")
    except ValueError as error:
        refused = str(error)
    print(json.dumps({"index": index, "shape": list(placed.shape), "mine": mine, "refused": refused}))
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Child:
    """A process started by the test, its output going to a file (a pipe nobody reads could fill
    up and stall it)."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def last_line(self) -> str:
        return self.output.strip().splitlines()[-1]


def start(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> Child:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    return Child(process, log)


def finish(children: list[Child]) -> None:
    """Wait for every child to end. All are killed once they outlast ``TIMEOUT_S``, ``GRACE_S``
    after one failed (the others may wait for it in a collective until jax's heartbeat gives up),
    or if this fails."""
    processes = [child.process for child in children]
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            if any(p.returncode for p in processes):
                deadline = min(deadline, time.monotonic() + GRACE_S)
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()  # a process stuck in a collective ignores SIGTERM
            process.wait()


def two_processes(
    command: list[str], cwds: tuple[Path, Path], extra: dict[str, str], logs: Path
) -> list[Child]:
    """``command`` as processes 0 and 1 of one jax run, each in its folder of ``cwds``, joined on a
    free port of this machine."""
    joined = {
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",  # whatever this shell forces
        "JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}",
        "TUNIX_RT_NUM_PROCESSES": "2",
        **extra,
    }
    return [
        start(command, cwd, {**joined, "TUNIX_RT_PROCESS_ID": str(i)}, logs / f"process{i}.log")
        for i, cwd in enumerate(cwds)
    ]


def test_two_processes_place_each_row_once_and_refuse_a_mesh_without_one(tmp_path: Path) -> None:
    children = two_processes(
        [sys.executable, "-c", PLACEMENT], (ROOT, ROOT), {"PYTHONPATH": str(ROOT)}, tmp_path
    )
    finish(children)
    for child in children:
        assert child.process.returncode == 0, child.output[-3000:]
    placed = sorted((json.loads(child.last_line) for child in children), key=str)
    # A mesh of one device would leave process 1 out of every step: refused in both.
    refused = (
        "mesh data=1 x fsdp=1 takes 1 of the 2 cpu devices of 2 processes and none of process 1: "
        "give the mesh every process's devices"
    )
    assert placed[0] == {"index": 0, "shape": [4, 3], "mine": [[0, 1]], "refused": refused}
    assert placed[1] == {"index": 1, "shape": [4, 3], "mine": [[2, 3]], "refused": refused}


def test_a_milestone_over_two_processes_trains_as_one_and_process_0_writes_it(
    mini: MiniProject, tmp_path: Path
) -> None:
    mini.training("mesh")  # the mini training config, with a mesh over both processes' devices
    with (mini.path / "configs" / "training" / "mesh.yaml").open("a") as config:
        config.write("mesh: {data: 1, fsdp: 2}\n")  # one CPU device in each process
    mini.milestone("mini-jax", backend="jax", training="mesh", max_steps=STEPS)
    with (mini.path / "configs" / "milestones" / "mini-jax.yaml").open("a") as spec:
        spec.write("evaluate_base: true\n")  # as the shipped specs: the untuned model scored too
    mini.commit("a milestone over two processes")
    processes = two_processes(SESSION, (mini.path, mini.path), {}, tmp_path)
    reference = start(
        [sys.executable, "-c", ONE_PROCESS, str(mini.path), str(tmp_path / "one"), str(STEPS)],
        ROOT,
        {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        tmp_path / "reference.log",
    )
    started = time.monotonic()
    finish([*processes, reference])
    for child in (*processes, reference):
        assert child.process.returncode == 0, f"{child.log.name}:\n{child.output[-6000:]}"
    print(f"two sessions and the reference in {time.monotonic() - started:.0f} s")

    # Process 0 wrote one bundle, complete and verified; process 1 said so and left nothing.
    runs = mini.path / "submission_runs"
    assert sorted(p.name for p in runs.iterdir()) == [".mini-jax.lock", "mini-jax_v1"]
    assert verify_bundle(runs / "mini-jax_v1") == []
    manifest = mini.manifest("mini-jax_v1")
    phases = (EVALUATE_BASE, *PHASES)
    assert {phase: manifest["phases"][phase]["status"] for phase in phases} == dict.fromkeys(
        phases, "passed"
    )
    assert "tunix-rt: jax process 0 of 2, writes the bundles" in processes[0].output
    assert "mini-jax_v1: process 1 of 2 wrote no evidence; process 0 writes" in processes[1].output

    # The two processes computed what one process computes on the same two devices.
    metrics = json.loads((runs / "mini-jax_v1" / "training_metrics.json").read_text())
    losses = [step["loss"] for step in metrics["per_step"]]
    assert len(losses) == STEPS
    assert losses == pytest.approx(json.loads(reference.last_line), rel=RTOL, abs=ATOL)


def test_processes_that_share_no_disk_are_refused_before_anything_runs(
    mini: MiniProject, tmp_path: Path
) -> None:
    """Process 1 in a copy of the project, as on a host with a disk of its own, would write its
    shards of the checkpoint where process 0 never reads them: both refuse the run at once."""
    mini.milestone("mini-jax", backend="jax")
    mini.commit("a milestone over two hosts")
    elsewhere = tmp_path / "elsewhere"
    subprocess.run(["git", "clone", "-q", str(mini.path), str(elsewhere)], check=True)
    children = two_processes(SESSION, (mini.path, elsewhere), {}, tmp_path)
    finish(children)
    refusal = (
        "--jax-distributed: process 1 of 2 does not see process 0's run folder "
        "(submission_runs/mini-jax_v1): run the project from a disk every host shares"
    )
    for child in children:
        assert child.process.returncode == pytest.ExitCode.USAGE_ERROR, child.output[-3000:]
        assert refusal in child.output
    assert list((mini.path / "submission_runs").iterdir()) == [
        mini.path / "submission_runs" / ".mini-jax.lock"
    ]
    assert not (elsewhere / "submission_runs").exists()
