"""The memory guard with LoRA and Adafactor: the estimate against real training's measured peak on
CPU, only the trained state counted, every m44 config on a 32 and a 16 GiB card, and a refusal
that names a shipped config which fits."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from harness.phases.preflight import preflight  # noqa: E402
from harness.probes.memory import GIB, estimate, fitting_config, lora_parameters  # noqa: E402
from harness.record.failures import InsufficientMemory  # noqa: E402
from harness.record.outcomes import describe  # noqa: E402
from harness.spec.milestones import Milestone  # noqa: E402
from harness.spec.registry import MilestoneRegistry  # noqa: E402
from tests.test_memory import (  # noqa: E402
    MOST_OVER,
    a_gpu,
    local_models,  # noqa: F401 (a fixture)
    peak_tensor_bytes,
    run_of,
    shape_of,
    training,
)
from trainers.config import LORA_TARGETS, LoraConfig  # noqa: E402
from trainers.models import ARCHITECTURES, build_model_and_tokenizer  # noqa: E402
from trainers.protocol import Example, TrainRequest  # noqa: E402
from trainers.torch.lora import with_adapters  # noqa: E402
from trainers.torch.trainer import TorchTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADAFACTOR = {"optimizer": {"name": "adafactor", "lr": 1e-3}}
LORA = {"rank": 8, "alpha": 16}
ALL_WITH_DROPOUT = {**LORA, "dropout": 0.1, "target_modules": LORA_TARGETS}
M44_CONFIGS = {
    "m44": "submission_local_gpu.yaml",
    "m44-adafactor": "submission_local_gpu_adafactor.yaml",
    "m44-kaggle": "submission_kaggle_gpu.yaml",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "batch_size", "max_seq_len", "precision", "changes"),
    [
        ("tiny-gemma", 8, 192, "fp32", ADAFACTOR),
        ("tiny-gemma", 8, 192, "bf16", ADAFACTOR),
        ("tiny-gemma", 8, 192, "bf16-pure", ADAFACTOR),
        ("wide-vocab", 4, 64, "bf16-pure", ADAFACTOR),
        ("tiny-gemma", 8, 192, "fp32", {"lora": LORA}),
        ("tiny-gemma", 8, 192, "fp32", {"lora": ALL_WITH_DROPOUT}),
        ("tiny-gemma", 8, 192, "bf16", {"lora": ALL_WITH_DROPOUT}),
        ("tiny-gemma", 8, 192, "bf16-pure", {"lora": {**LORA, "target_modules": LORA_TARGETS}}),
        ("tiny-gemma", 8, 192, "bf16-pure", {"lora": ALL_WITH_DROPOUT}),
        ("wide-vocab", 4, 64, "fp32", {"lora": {**LORA, "target_modules": LORA_TARGETS}}),
        ("tiny-gemma2", 4, 64, "bf16", {"lora": {**LORA, "dropout": 0.1}, **ADAFACTOR}),
    ],
)
def test_the_estimate_bounds_the_measured_peak_of_lora_and_adafactor_training(
    model: str,
    batch_size: int,
    max_seq_len: int,
    precision: str,
    changes: dict[str, Any],
    local_models: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    source = local_models.get(model, f"random:{model}")
    config = training(
        "smoke", batch_size=batch_size, max_seq_len=max_seq_len, precision=precision, **changes
    )
    examples = tuple(Example("q" * max_seq_len, "a" * 8) for _ in range(2 * batch_size))
    request = TrainRequest(source, config, examples, 2, None, "cpu", tmp_path / "checkpoint")
    measured = peak_tensor_bytes(lambda: TorchTrainer().train(request, lambda _: None))
    estimated = estimate(shape_of(source), config).total
    assert measured <= estimated <= MOST_OVER * measured, f"{estimated=} {measured=}"


def test_lora_counts_only_the_adapters_peft_trains() -> None:
    lora = LoraConfig(rank=8, alpha=16, target_modules=LORA_TARGETS)
    model, _ = build_model_and_tokenizer("random:tiny-gemma", 0)
    adapted = with_adapters(model, lora)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    shape = shape_of("random:tiny-gemma")
    assert trainable == lora_parameters(shape, lora, "torch")
    needed = estimate(shape, training("smoke", lora=lora.model_dump()))
    full = estimate(shape, training("smoke"))
    assert (needed.gradients, needed.optimizer) == (4 * trainable, 8 * trainable)
    assert needed.weights == full.weights + 4 * trainable  # the frozen weights, plus the adapters


def test_adafactor_keeps_rows_and_columns_of_each_gemma_2b_matrix() -> None:
    shape = shape_of("random:gemma-2b")
    needed = estimate(shape, training("m44", precision="bf16", **ADAFACTOR))
    matrices = shape.layers * sum(i + o for i, o in shape.projections().values())
    vectors = (
        shape.parameters - shape.layers * shape.layer_matmul_parameters - shape.vocab * shape.hidden
    )
    assert needed.optimizer == 4 * (shape.vocab + shape.hidden + matrices + vectors)
    assert needed.optimizer < GIB / 100  # AdamW's two moments take 18.7 GiB in float32
    # The step works on the largest weight, the embedding, in float32: its square and estimate.
    assert needed.workspace == 2 * 4 * shape.vocab * shape.hidden


@pytest.mark.parametrize(
    ("milestone", "fits_32", "fits_16"),
    [("m44", True, False), ("m44-adafactor", True, False), ("m44-kaggle", True, True)],
)
def test_each_m44_config_on_a_32_and_a_16_gib_card(
    milestone: str, fits_32: bool, fits_16: bool
) -> None:
    loaded = MilestoneRegistry(ROOT).load(milestone)
    assert isinstance(loaded, Milestone)
    assert loaded.training_path.name == M44_CONFIGS[milestone]
    needed = estimate(shape_of("random:gemma-2b"), loaded.training)
    assert (needed.total <= 31.0 * GIB) is fits_32
    assert (needed.total <= 15.6 * GIB) is fits_16


def test_qlora_holds_the_projections_in_about_half_a_byte() -> None:
    shape = shape_of("random:gemma-2b")
    lora = {"rank": 16, "alpha": 32, "target_modules": LORA_TARGETS}
    plain = estimate(shape, training("m44-kaggle", precision="bf16", lora=lora))
    quantized = estimate(
        shape, training("m44-kaggle", precision="bf16", lora={**lora, "quantize": "nf4"})
    )
    projections = shape.layers * shape.layer_matmul_parameters
    # The 4-bit projections and their scales, against 4 bytes each and autocast's 2-byte copies.
    assert plain.weights - quantized.weights > 5 * projections
    assert quantized.total < estimate(shape, training("m44-kaggle")).total


def gemma_2b_in_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gemma 2B's config.json in a Hugging Face cache of its own: read, never downloaded."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--google--gemma-2b" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(ARCHITECTURES["gemma-2b"]))
    shutil.copy(ROOT / "tests" / "data" / "char_tokenizer.json", snapshot / "tokenizer.json")
    (cache / "models--google--gemma-2b" / "refs").mkdir()
    (cache / "models--google--gemma-2b" / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(
        "harness.phases.preflight.missing_devices", lambda requirement, backend: None
    )


@pytest.mark.parametrize(
    ("gib", "named"),
    [
        (16, r"; configs/training/submission_kaggle_gpu\.yaml fits \((\d+\.\d) GiB\)$"),
        (8, r"; no shipped training config fits it$"),
    ],
)
def test_a_refusal_names_a_shipped_config_that_fits_the_same_model_on_that_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gib: int, named: str
) -> None:
    gemma_2b_in_the_hub_cache(tmp_path, monkeypatch)
    gpu = a_gpu(gib, gib - 0.4)
    monkeypatch.setattr("harness.phases.preflight.probe_memory", lambda *args: gpu)
    with pytest.raises(InsufficientMemory) as caught:
        preflight(run_of("m44", tmp_path, []))
    line = describe(caught.value)
    assert "\n" not in line
    found = re.search(named, line)
    assert found, line
    if found.groups():
        kaggle = estimate(shape_of("random:gemma-2b"), training("m44-kaggle"))
        assert found.group(1) == f"{kaggle.total / GIB:.1f}"


def test_the_config_named_is_the_one_that_fills_the_device_most() -> None:
    shape = shape_of("random:gemma-2b")
    found = fitting_config(ROOT, "torch", shape, a_gpu(32, 31.0), devices=1, sharing=1)
    assert found is not None
    path, needed = found
    assert path.name == "submission_local_gpu_adafactor.yaml"  # 27.3 GiB, before m44's 23.3
    assert needed.total == estimate(shape, training("m44-adafactor")).total
