"""The jax backend's (data, fsdp) mesh on 8 forced CPU devices, in a subprocess of its own (jax
reads XLA_FLAGS once per process): 2x4, 8x1 and the TPU v3-8's 1x8 train, shard and agree, with
AdamW and with Adafactor; a too-large mesh is a one-line error."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

pytest.importorskip("jax")
pytest.importorskip("tunix")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STEPS = 6

# Trains the tiny model on each mesh and reports, per mesh, the losses and what the live arrays
# show about placement after each step; the bad meshes report their error message.
HELPER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import jax

    from harness.spec.data import load_traces
    from harness.spec.prompting import format_completion, format_prompt
    from harness.spec.yaml_files import load_yaml_model
    from trainers.protocol import Example, TrainRequest
    from trainers.config import TrainingConfig
    from trainers.jax.trainer import JaxTrainer

    out, steps = Path(sys.argv[1]), int(sys.argv[2])
    traces = load_traces(Path("datasets/dev-reasoning-v2"))[:64]
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    base = load_yaml_model(Path("configs/training/smoke_jax_tiny.yaml"), TrainingConfig)
    schedule = {"warmup_steps": 2, "decay": "cosine", "min_lr_ratio": 0.1}

    def placement(record):
        arrays = jax.live_arrays()
        return {
            "loss": record.loss,
            "devices": max(len(a.sharding.device_set) for a in arrays),
            "sharded": any(a.sharding.shard_shape(a.shape) != a.shape for a in arrays),
        }

    report = {"jax_devices": len(jax.devices())}
    adafactor = {"name": "adafactor", "lr": 5.0e-3}
    cases = (("2x4", 2, 4, 16, None), ("8x1", 8, 1, 16, None), ("1x8", 1, 8, 16, None),
             ("4x4", 4, 4, 16, None), ("batch12", 2, 4, 12, None),
             ("adafactor-8x1", 8, 1, 16, adafactor), ("adafactor-1x8", 1, 8, 16, adafactor))
    for name, data, fsdp, batch_size, optimizer in cases:
        mesh = {"data": data, "fsdp": fsdp}
        changes = {"batch_size": batch_size, "schedule": schedule, "mesh": mesh}
        if optimizer is not None:
            changes["optimizer"] = optimizer
        config = TrainingConfig(**{**base.model_dump(), **changes})
        source = "random:tiny-gemma"
        request = TrainRequest(source, config, examples, steps, None, "cpu", out / name)
        seen = []
        try:
            JaxTrainer().train(request, lambda record: seen.append(placement(record)))
        except ValueError as error:
            report[name] = {"error": str(error)}
        else:
            report[name] = {"steps": seen}
    print(json.dumps(report))
    """
)


def run_helper(out: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", HELPER, str(out), str(STEPS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def report(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Any]:
    if not hasattr(request.config, "workerinput"):
        return run_helper(tmp_path_factory.mktemp("mesh"))
    # Under xdist the workers share one run: the first to take the lock trains, the others read.
    shared = tmp_path_factory.getbasetemp().parent
    path = shared / "jax_mesh_report.json"
    with FileLock(f"{path}.lock"):
        if not path.is_file():
            path.write_text(json.dumps(run_helper(shared / "jax_mesh")))
    shared_report: dict[str, Any] = json.loads(path.read_text())
    return shared_report


def losses(report: dict[str, Any], mesh: str) -> list[float]:
    return [step["loss"] for step in report[mesh]["steps"]]


def test_eight_cpu_devices_are_forced(report: dict[str, Any]) -> None:
    assert report["jax_devices"] == 8


@pytest.mark.parametrize("mesh", ["2x4", "8x1", "1x8", "adafactor-8x1", "adafactor-1x8"])
def test_training_on_the_mesh_uses_all_devices_and_the_loss_falls(
    report: dict[str, Any], mesh: str
) -> None:
    steps = report[mesh]["steps"]
    assert len(steps) == STEPS
    assert all(step["devices"] == 8 for step in steps)
    assert all(math.isfinite(loss) for loss in losses(report, mesh))
    assert losses(report, mesh)[-1] < 0.9 * losses(report, mesh)[0]


@pytest.mark.parametrize("mesh", ["2x4", "1x8", "adafactor-1x8"])
def test_fsdp_shards_the_weights(report: dict[str, Any], mesh: str) -> None:
    assert all(step["sharded"] for step in report[mesh]["steps"])


@pytest.mark.parametrize("mesh", ["8x1", "1x8"])
def test_every_mesh_shape_computes_the_same_losses(report: dict[str, Any], mesh: str) -> None:
    assert losses(report, mesh) == pytest.approx(losses(report, "2x4"), rel=1e-4)


def test_adafactor_computes_the_same_losses_with_its_state_sharded_or_replicated(
    report: dict[str, Any],
) -> None:
    # Its factored statistics cannot take their weights' sharding and are replicated on every mesh.
    sharded, replicated = losses(report, "adafactor-1x8"), losses(report, "adafactor-8x1")
    assert sharded == pytest.approx(replicated, rel=1e-4)


def test_a_mesh_larger_than_the_devices_is_a_one_line_error(report: dict[str, Any]) -> None:
    assert report["4x4"] == {"error": "mesh data=4 x fsdp=4 needs 16 cpu devices, jax sees 8"}


def test_a_batch_that_does_not_split_over_the_mesh_is_refused(report: dict[str, Any]) -> None:
    assert report["batch12"] == {
        "error": "batch_size 12 does not split over the 8 mesh devices (data=2 x fsdp=4)"
    }
