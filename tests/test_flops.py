"""FLOPs per token against a hand count, the known-GPU peaks, and MFU in training_metrics.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evidence import bundle
from harness.evidence.verify import placeholder_paths
from harness.evidence.writers import training_metrics
from harness.phases.train import build_request
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.registry import MilestoneRegistry
from trainers.flops import PEAK_BF16_TFLOPS, FlopsBasis, flops_per_token, mfu, peak_flops
from trainers.models import ARCHITECTURES
from trainers.protocol import StepRecord, TrainResult

ROOT = Path(__file__).resolve().parents[1]

# Gemma 2B by hand: vocab 256000, hidden 2048, 18 layers, 8 query heads and 1 key/value head of
# 256, MLP 16384 (gate, up, down), two RMSNorms a layer and one at the end; the output
# projection is the input embedding (tied), counted once.
GEMMA_2B_LAYER = 2048 * 8 * 256 * 2 + 2048 * 1 * 256 * 2 + 3 * 2048 * 16384 + 2 * 2048
GEMMA_2B_PARAMETERS = 256000 * 2048 + 18 * GEMMA_2B_LAYER + 2048


@pytest.mark.slow
def test_gemma_2b_parameters_by_hand_are_those_of_the_transformers_model() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    params = dict(ARCHITECTURES["gemma-2b"])
    config = transformers.AutoConfig.for_model(params.pop("model_type"), **params)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = transformers.AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == GEMMA_2B_PARAMETERS == 2_506_172_416


def test_gemma_2b_flops_per_token_are_6n_plus_the_attention_scores() -> None:
    class Gemma2B:  # the fields of the transformers config that the formula reads
        num_hidden_layers, num_attention_heads, head_dim, hidden_size = 18, 8, 256, 2048

    per_token = flops_per_token(GEMMA_2B_PARAMETERS, Gemma2B(), seq_len=512)
    assert per_token == 6 * 2_506_172_416 + 12 * 18 * 8 * 256 * 512
    assert per_token == pytest.approx(15.26e9, rel=1e-3)
    longer = flops_per_token(GEMMA_2B_PARAMETERS, Gemma2B(), seq_len=1024)
    assert longer - per_token == 12 * 18 * 8 * 256 * 512


@pytest.mark.parametrize(
    ("device_name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA H200 NVL", 835.5),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100 80GB PCIe", 312.0),
        ("NVIDIA A10G", 125.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.05),
        ("NVIDIA GeForce RTX 4090", 165.2),
        ("NVIDIA GeForce RTX 5090", 209.5),
    ],
)
def test_known_gpus_get_their_dense_bf16_peak(device_name: str, tflops: float) -> None:
    assert peak_flops(device_name) == tflops * 1e12


@pytest.mark.parametrize(
    "device_name",
    ["cpu", "NVIDIA H100", "Tesla T4", "NVIDIA RTX A1000", "NVIDIA GeForce RTX 4090 Laptop GPU"],
)
def test_devices_not_in_the_table_have_no_peak(device_name: str) -> None:
    assert peak_flops(device_name) is None


def test_every_fragment_resolves_to_its_own_entry_not_a_shorter_one() -> None:
    # "h200 nvl" contains "h200", "l40s" starts like "l40" and "l4": the most specific must win.
    for fragment, tflops in PEAK_BF16_TFLOPS.items():
        assert peak_flops(f"NVIDIA {fragment.upper()}") == tflops * 1e12, fragment


def test_mfu_is_achieved_over_peak_flops_and_absent_for_unknown_devices() -> None:
    assert mfu(50_000.0, 15e9, "NVIDIA A100-SXM4-80GB") == pytest.approx(50_000 * 15e9 / 312e12)
    assert mfu(50_000.0, 15e9, "cpu") is None


def _run_with_result(tmp_path: Path, device_name: str, devices: int) -> tuple[MilestoneRun, dict]:
    smoke = MilestoneRegistry(ROOT).load("smoke")
    run = MilestoneRun(smoke, ROOT, bundle.allocate_run_dir(tmp_path, "smoke"), RunOptions(progress=lambda _: None))
    run.record.steps += [
        StepRecord(step, 2.0, 1e-4, 1.0, samples=16, tokens=900, seconds=0.5, positions=1000)
        for step in range(1, 5)
    ]
    basis = FlopsBasis(2_506_172_416, 512.0, 15.26e9, device_name, devices)
    run.record.train_result = TrainResult(
        "torch", "cuda", 2_506_172_416, tuple(run.record.steps), 2.0, tmp_path, basis
    )
    run.record.training_request = build_request(run)
    return run, training_metrics(run)


def test_training_metrics_report_mfu_per_device_with_its_basis(tmp_path: Path) -> None:
    _, metrics = _run_with_result(tmp_path, "NVIDIA H100 80GB HBM3", devices=2)
    assert metrics["tokens_per_s"] == 1800.0  # 900 real tokens in 0.5 s, warm-up steps left out
    assert metrics["mfu"] == pytest.approx(1800.0 / 2 * 15.26e9 / 989.4e12)
    assert metrics["flops_basis"]["peak_bf16_flops_per_device"] == 989.4e12
    assert metrics["flops_basis"]["formula"].startswith("6 N + 12")
    assert metrics["padding_fraction"] == pytest.approx(0.1)
    assert placeholder_paths(metrics) == []


def test_training_metrics_omit_mfu_on_an_unknown_device_and_say_why(tmp_path: Path) -> None:
    _, metrics = _run_with_result(tmp_path, "cpu", devices=1)
    assert "mfu" not in metrics
    assert "'cpu'" in metrics["mfu_omitted"]
    assert "peak_bf16_flops_per_device" not in metrics["flops_basis"]
    assert placeholder_paths(metrics) == []  # evidence files hold no nulls
