"""Pre-flight finds every blocker before training: hardware, dependency, credential, bad data."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from harness.evidence import bundle
from harness.phases.preflight import preflight
from harness.record.failures import Cause, MissingCredential, PhaseBlocked, classify
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.data import DataError
from harness.spec.milestones import HardwareRequirement
from harness.spec.registry import MilestoneRegistry

ROOT = Path(__file__).resolve().parents[1]


def run_with(tmp_path: Path, **changes: Any) -> MilestoneRun:
    milestone = MilestoneRegistry(ROOT).load("smoke")
    spec = milestone.spec.model_copy(update=changes)
    run_dir = bundle.allocate_run_dir(tmp_path, "smoke")
    return MilestoneRun(dataclasses.replace(milestone, spec=spec), ROOT, run_dir, RunOptions(progress=lambda _: None))


def test_a_clean_cpu_preflight_writes_both_snapshots(tmp_path: Path) -> None:
    run = run_with(tmp_path)
    preflight(run)
    assert "torch.version.cuda" in (run.run_dir / "env_snapshot.txt").read_text()
    assert (run.run_dir / "gpu_snapshot.txt").read_text().strip()


def test_absent_hardware_is_a_documented_skip(tmp_path: Path) -> None:
    tpu = HardwareRequirement(accelerator="tpu", count=8, platform="any", label="TPU v3-8")
    run = run_with(tmp_path, hardware=tpu, backend="jax")
    with pytest.raises(PhaseBlocked) as caught:
        preflight(run)
    assert caught.value.cause is Cause.MISSING_HARDWARE
    assert "jax.devices('tpu')" in str(caught.value)
    assert (run.run_dir / "env_snapshot.txt").is_file(), "the snapshot is taken before blocking"


def test_a_gated_model_without_token_or_cache_is_a_missing_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    run = run_with(tmp_path, model="hf:google/gemma-2b")
    with pytest.raises(MissingCredential, match="hf:google/gemma-2b is not in the local Hugging Face cache and HF_TOKEN is not set") as caught:
        preflight(run)
    assert classify(caught.value) is Cause.MISSING_CREDENTIAL


def test_an_uncached_kaggle_handle_without_credentials_is_a_missing_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "empty-kagglehub"))
    run = run_with(tmp_path, model="kaggle:google/gemma/flax/2b/2", backend="jax")
    with pytest.raises(MissingCredential, match="no Kaggle credentials are set") as caught:
        preflight(run)
    assert classify(caught.value) is Cause.MISSING_CREDENTIAL


def test_a_token_lets_a_gated_model_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    # An empty cache: a cached config.json would let the memory guard judge Gemma 2B on this RAM.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    preflight(run_with(tmp_path, model="hf:google/gemma-2b"))


def test_a_missing_backend_module_is_a_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def without_transformers(name: str, *args: Any) -> Any:
        return None if name == "transformers" else real_find_spec(name, *args)

    # Uninstalling a package for one test is not possible; hide it from the lookup instead.
    monkeypatch.setattr(importlib.util, "find_spec", without_transformers)
    with pytest.raises(ModuleNotFoundError, match="the torch backend needs transformers") as caught:
        preflight(run_with(tmp_path))
    assert classify(caught.value) is Cause.MISSING_DEPENDENCY


def test_a_malformed_dataset_line_stops_preflight_naming_file_and_line(tmp_path: Path) -> None:
    milestone = MilestoneRegistry(ROOT).load("smoke")
    broken = tmp_path / "broken-dataset"
    broken.mkdir()
    lines = milestone.dataset_path.read_text().splitlines()
    lines[6] = lines[6][:-5]
    (broken / "traces.jsonl").write_text("\n".join(lines) + "\n")
    run = run_with(tmp_path)
    run.milestone = dataclasses.replace(run.milestone, dataset_path=broken / "traces.jsonl")
    with pytest.raises(DataError, match=r"traces.jsonl:7: invalid JSON"):
        preflight(run)
