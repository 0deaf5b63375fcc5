"""The memory guard on the jax backend: one mesh device's share of a run against the HBM that
``jax.Device.memory_stats()`` reports, and CPU devices against the RAM they share."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

import pytest

jax = pytest.importorskip("jax")

from harness.evidence import bundle  # noqa: E402
from harness.phases.preflight import preflight  # noqa: E402
from harness.probes.hardware import DeviceMemory, probe_memory  # noqa: E402
from harness.probes.memory import ModelShape, estimate_jax, lora_parameters, model_config, refusal  # noqa: E402
from harness.record.failures import InsufficientMemory  # noqa: E402
from harness.record.run import MilestoneRun, RunOptions  # noqa: E402
from harness.spec.milestones import Milestone  # noqa: E402
from harness.spec.registry import MilestoneRegistry  # noqa: E402
from trainers.config import (  # noqa: E402
    LORA_TARGETS,
    AdafactorConfig,
    LoraConfig,
    MeshConfig,
)

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
V5E_HBM = 16 * GIB


def m38(**changes: Any) -> Milestone:
    milestone = MilestoneRegistry(ROOT).load("m38")
    assert isinstance(milestone, Milestone)
    return dataclasses.replace(milestone, spec=milestone.spec.model_copy(update=changes))


def gemma_2b() -> ModelShape:
    return ModelShape.from_config(model_config("random:gemma-2b"))


def a_tpu_chip(free: int) -> DeviceMemory:
    return DeviceMemory("tpu:0 (TPU v5 lite)", V5E_HBM, free, "injected by the test")


class FakeTpu:
    """A TPU device as jax shows one: what this CPU cannot produce."""

    platform = "tpu"
    device_kind = "TPU v5 lite"

    def __init__(self, index: int, in_use: int, limit: int | None = V5E_HBM) -> None:
        self.id, self.in_use, self.limit = index, in_use, limit

    def memory_stats(self) -> dict[str, int] | None:
        return (
            None if self.limit is None else {"bytes_limit": self.limit, "bytes_in_use": self.in_use}
        )


def fake_tpus(monkeypatch: pytest.MonkeyPatch, devices: list[FakeTpu]) -> None:
    """One host's TPU chips: all the devices, and this process's own (the memory probe's)."""
    real, real_local = jax.devices, jax.local_devices
    monkeypatch.setattr(jax, "devices", lambda kind=None: devices if kind == "tpu" else real(kind))
    monkeypatch.setattr(
        jax,
        "local_devices",
        lambda process_index=None, backend=None: (
            devices if backend == "tpu" else real_local(process_index, backend)
        ),
    )


def test_gemma_2b_fully_fine_tuned_on_m38s_mesh_fits_one_v5e_chip() -> None:
    shape, training = gemma_2b(), m38().training
    needed = estimate_jax(shape, training)
    local = -(-shape.parameters // 8)
    assert (needed.weights, needed.gradients, needed.optimizer) == (4 * local, 4 * local, 8 * local)
    assert needed.micro_batch == 1  # batch 8 over the 8 devices
    assert refusal(needed, a_tpu_chip(V5E_HBM)) is None
    assert needed.total < 12 * GIB


def test_gemma_2b_on_m38_v4s_mesh_fits_a_v4_chip_and_not_a_v5e_chip() -> None:
    milestone = MilestoneRegistry(ROOT).load("m38-v4")
    assert isinstance(milestone, Milestone)
    needed = estimate_jax(gemma_2b(), milestone.training)
    assert needed.micro_batch == 2  # batch 8 over the v4-8's 4 devices
    v4_chip = DeviceMemory("tpu:0 (TPU v4)", 32 * GIB, 32 * GIB, "injected by the test")
    assert refusal(needed, v4_chip) is None
    assert refusal(needed, a_tpu_chip(V5E_HBM)) is not None
    assert 19 * GIB < needed.total < 20 * GIB


def test_gemma_2b_on_one_chip_is_refused_with_the_numbers() -> None:
    training = m38().training.model_copy(update={"mesh": MeshConfig(data=8, fsdp=1)})
    needed = estimate_jax(gemma_2b(), training)
    assert needed.weights == 4 * gemma_2b().parameters  # every device holds all of it
    reason = refusal(needed, a_tpu_chip(V5E_HBM))
    assert reason is not None
    assert reason.startswith(f"the run needs {needed.total / GIB:.1f} GiB = weights 9.3")
    assert reason.endswith(
        "tpu:0 (TPU v5 lite) has 16.0 GiB free of 16.0 GiB (injected by the test)"
    )


def test_lora_trains_and_holds_state_for_the_adapters_only() -> None:
    full = estimate_jax(gemma_2b(), m38().training)
    lora = estimate_jax(
        gemma_2b(), m38().training.model_copy(update={"lora": LoraConfig(rank=8, alpha=16)})
    )
    assert lora.gradients < full.gradients / 20
    assert lora.optimizer == 2 * lora.gradients
    assert full.weights < lora.weights < full.weights * 1.1


def test_hbm_is_read_from_memory_stats_of_the_fullest_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_tpus(monkeypatch, [FakeTpu(0, GIB), FakeTpu(1, 3 * GIB), FakeTpu(2, 0)])
    memory = probe_memory("tpu", 8, "jax")
    assert memory == DeviceMemory(
        "tpu:1 (TPU v5 lite)", V5E_HBM, 13 * GIB, "jax.Device.memory_stats()"
    )


def test_a_device_without_memory_stats_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tpus(monkeypatch, [FakeTpu(0, 0), FakeTpu(1, 0, limit=None)])
    assert probe_memory("tpu", 2, "jax") is None
    assert probe_memory("tpu", 1, "jax") is not None


def test_preflight_refuses_m38_on_tpu_chips_too_small_and_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tpus(monkeypatch, [FakeTpu(index, in_use=12 * GIB) for index in range(8)])
    milestone = m38(model="random:gemma-2b")
    run_dir = bundle.allocate_run_dir(tmp_path, "m38")
    run = MilestoneRun(milestone, ROOT, run_dir, RunOptions(progress=lambda _: None))
    with pytest.raises(
        InsufficientMemory,
        match=r"has 4\.0 GiB free of 16\.0 GiB \(jax\.Device\.memory_stats\(\)\)",
    ):
        preflight(run)
    snapshot = (run_dir / "env_snapshot.txt").read_text()
    assert re.search(r"^devices +8 x TPU v5 lite \(jax\.devices\('tpu'\)\)$", snapshot, re.M)


def test_the_cpu_devices_of_a_jax_run_share_the_ram(tmp_path: Path) -> None:
    said: list[str] = []
    milestone = MilestoneRegistry(ROOT).load("smoke-jax")
    run = MilestoneRun(milestone, ROOT, bundle.allocate_run_dir(tmp_path, "smoke-jax"), RunOptions(progress=said.append))
    preflight(run)
    [line] = [line for line in said if "preflight: memory" in line]
    assert "fp32 state, 1 devices" in line
    assert line.endswith("(MemAvailable in /proc/meminfo)")


ALL_PROJECTIONS = LoraConfig(rank=4, alpha=8, target_modules=LORA_TARGETS)


def shapes_of(state: Any) -> list[tuple[int, ...]]:
    from flax import nnx

    return sorted(tuple(variable.get_value().shape) for _, variable in nnx.to_flat_state(state))


@pytest.mark.parametrize(
    "lora", [LoraConfig(rank=4, alpha=8), ALL_PROJECTIONS], ids=["default", "all"]
)
def test_the_weights_and_adapters_counted_are_those_tunix_and_qwix_build(lora: LoraConfig) -> None:
    from flax import nnx

    from trainers.jax import model as jax_model

    mesh = jax_model.build_mesh(MeshConfig(), "cpu")
    model = jax_model.build_model("tiny-gemma", 0, mesh, lora)
    shape = ModelShape.from_config(model_config("random:tiny-gemma"))
    assert shapes_of(nnx.state(model, nnx.LoRAParam)) == sorted(shape.jax_adapter_shapes(lora))
    weights = nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam))
    assert shapes_of(nnx.state(model, weights)) == sorted(shape.jax_weight_shapes())
    adapters = sum(math.prod(s) for s in shapes_of(nnx.state(model, nnx.LoRAParam)))
    assert adapters == lora_parameters(shape, lora) > 0


@pytest.mark.parametrize("lora", [None, ALL_PROJECTIONS], ids=["full", "lora"])
def test_the_adafactor_state_counted_is_the_one_optax_keeps(lora: LoraConfig | None) -> None:
    import optax
    from flax import nnx

    from trainers.jax import model as jax_model
    from trainers.jax.optim import build_optimizer

    adafactor = AdafactorConfig(name="adafactor", lr=1e-3)
    config = m38().training.model_copy(
        update={"optimizer": adafactor, "lora": lora, "mesh": MeshConfig()}
    )
    model = jax_model.build_model("tiny-gemma", 0, jax_model.build_mesh(MeshConfig(), "cpu"), lora)
    transform = build_optimizer(config, optax.constant_schedule(1e-3))
    optimizer = nnx.Optimizer(model, transform, wrt=nnx.LoRAParam if lora else nnx.Param)
    # optax keeps a one-value placeholder for each statistic a weight does not need, and a count.
    state = shapes_of(nnx.state(optimizer, nnx.optimizer.OptState))
    kept = [size for size in map(math.prod, state) if size > 1]
    needed = estimate_jax(ModelShape.from_config(model_config("random:tiny-gemma")), config)
    assert needed.optimizer == 4 * sum(kept)
    assert needed.optimizer < needed.gradients  # AdamW keeps two values per trained weight
