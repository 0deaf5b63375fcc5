"""Tests for hardware detection against a spec's requirement, on this (CPU-only) machine."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from harness.probes.hardware import missing_devices, probe_platform, wrong_platform
from harness.spec.milestones import HardwareRequirement
from harness.spec.registry import MilestoneRegistry

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = MilestoneRegistry(ROOT)
JAX_INSTALLED = importlib.util.find_spec("jax") is not None


def test_smoke_requirement_is_met_on_any_cpu() -> None:
    spec = REGISTRY.load("smoke").spec
    assert missing_devices(spec.hardware, spec.backend) is None
    assert wrong_platform(spec.hardware) is None


@pytest.mark.skipif(JAX_INSTALLED, reason="this check is about a machine without jax")
def test_tpu_reason_names_the_probe_and_what_was_found() -> None:
    requirement = HardwareRequirement(accelerator="tpu", count=8, platform="any", label="TPU v3-8")
    reason = missing_devices(requirement, "jax")
    assert reason is not None
    assert "TPU v3-8" in reason
    assert "8 tpu device(s)" in reason
    assert "jax.devices('tpu')" in reason
    assert "jax is not installed" in reason
    assert "\n" not in reason


@pytest.mark.skipif(JAX_INSTALLED, reason="this check is about a machine without jax")
def test_m38_and_m43_requirements_are_missing_here() -> None:
    m38, m43 = REGISTRY.load("m38").spec, REGISTRY.load("m43").spec
    tpu_reason = missing_devices(m38.hardware, m38.backend)
    gpu_reason = missing_devices(m43.hardware, m43.backend)
    assert tpu_reason is not None and "jax.devices('tpu')" in tpu_reason
    assert gpu_reason is not None and "jax.devices('gpu')" in gpu_reason
    assert "jax is not installed" in gpu_reason


def test_cuda_with_torch_names_torch_cuda_device_count() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    requirement = HardwareRequirement(
        accelerator="cuda", count=1, platform="any", label="one CUDA GPU"
    )
    reason = missing_devices(requirement, "torch")
    assert reason is not None
    assert "one CUDA GPU" in reason
    assert "torch.cuda.device_count()" in reason
    assert "no CUDA device" in reason
    assert f"torch {torch.__version__}" in reason


def test_wrong_platform_names_both_platforms() -> None:
    here = probe_platform()
    other = "windows" if here != "windows" else "linux"
    requirement = HardwareRequirement(accelerator="cpu", count=1, platform=other, label="a CPU")
    reason = wrong_platform(requirement)
    assert reason is not None
    assert other in reason
    assert sys.platform in reason


def test_this_platform_and_any_are_accepted() -> None:
    for platform in ("any", probe_platform()):
        requirement = HardwareRequirement(accelerator="cpu", count=1, platform=platform, label="x")
        assert wrong_platform(requirement) is None



def test_jax_on_cuda_under_native_windows_is_the_documented_unsupported_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.probes.hardware import JAX_CUDA_ON_WINDOWS, wrong_platform
    from harness.spec.milestones import HardwareRequirement

    # The m43 outcome of the seeds: this machine is not Windows, so the platform is stood in for.
    monkeypatch.setattr(sys, "platform", "win32")
    gpu = HardwareRequirement(accelerator="cuda", count=1, platform="any", label="one CUDA GPU")
    assert wrong_platform(gpu, "jax") == JAX_CUDA_ON_WINDOWS
    assert wrong_platform(gpu, "torch") is None
