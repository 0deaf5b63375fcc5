"""LoRA and QLoRA on the torch backend through peft: only the adapters train, the checkpoint's
merged model computes what the adapted model computes, and QLoRA runs only where CUDA and
bitsandbytes are, skipping with the reason elsewhere."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import safetensors.torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from harness.evidence import bundle  # noqa: E402
from harness.phases.preflight import preflight  # noqa: E402
from harness.probes.memory import ModelShape, lora_parameters, model_config  # noqa: E402
from harness.record.failures import Cause, PhaseBlocked  # noqa: E402
from harness.record.run import MilestoneRun, RunOptions  # noqa: E402
from harness.spec.data import load_traces  # noqa: E402
from harness.spec.milestones import Milestone  # noqa: E402
from harness.spec.prompting import format_completion, format_prompt  # noqa: E402
from harness.spec.registry import MilestoneRegistry  # noqa: E402
from trainers.config import TrainingConfig  # noqa: E402
from trainers.models import build_model_and_tokenizer  # noqa: E402
from trainers.protocol import Example, TrainRequest, TrainResult  # noqa: E402
from trainers.torch.lora import ADAPTER_DIR, qlora_unavailable  # noqa: E402
from trainers.torch.trainer import TorchTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "random:tiny-gemma"
STEPS = 6


@pytest.fixture(scope="module")
def examples() -> tuple[Example, ...]:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:48]
    return tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)


@pytest.fixture(scope="module")
def milestone() -> Milestone:
    loaded = MilestoneRegistry(ROOT).load("smoke-lora")
    assert isinstance(loaded, Milestone)
    return loaded


def changed(config: TrainingConfig, **changes: Any) -> TrainingConfig:
    return TrainingConfig(**{**config.model_dump(), **changes})


def train(
    examples: tuple[Example, ...], config: TrainingConfig, out: Path, device: str = "cpu"
) -> TrainResult:
    request = TrainRequest(SOURCE, config, examples, STEPS, None, device, out / "checkpoint")
    return TorchTrainer().train(request, lambda _: None)


@pytest.fixture(scope="module")
def trained(
    examples: tuple[Example, ...], milestone: Milestone, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    return train(examples, milestone.training, tmp_path_factory.mktemp("lora"))


def base_weights(seed: int) -> dict[str, Any]:
    model, _ = build_model_and_tokenizer(SOURCE, seed)
    return {name: tensor for name, tensor in model.state_dict().items()}


@pytest.mark.slow
def test_lora_trains_only_the_adapters(trained: TrainResult, milestone: Milestone) -> None:
    lora = milestone.training.lora
    assert lora is not None
    folder = trained.checkpoint_dir
    adapters = safetensors.torch.load_file(folder / ADAPTER_DIR / "adapter_model.safetensors")
    assert all(".lora_A." in name or ".lora_B." in name for name in adapters)
    shape = ModelShape.from_config(model_config(SOURCE))
    assert sum(t.numel() for t in adapters.values()) == lora_parameters(shape, lora, "torch")
    # Every merged weight is the untouched base weight, plus alpha / rank x B A where adapted.
    merged = safetensors.torch.load_file(folder / "model.safetensors")
    base = base_weights(milestone.training.seed)
    adapted = 0
    for name, weight in merged.items():
        prefix = name.removesuffix(".weight")
        a_name = f"base_model.model.{prefix}.lora_A.weight"
        if a_name not in adapters:
            assert torch.equal(weight, base[name]), name
            continue
        b = adapters[a_name.replace("lora_A", "lora_B")]
        assert b.abs().max() > 0, f"{name}: B starts at zero and was never trained"
        delta = (lora.alpha / lora.rank) * b @ adapters[a_name]
        torch.testing.assert_close(weight - base[name], delta, rtol=0, atol=1e-6)
        adapted += 1
    assert adapted == shape.layers * len(lora.target_modules)


@pytest.mark.slow
def test_the_merged_checkpoint_computes_the_adapted_models_logits(
    trained: TrainResult, milestone: Milestone, examples: tuple[Example, ...]
) -> None:
    folder = trained.checkpoint_dir
    base, tokenizer = build_model_and_tokenizer(SOURCE, milestone.training.seed)
    ids = torch.tensor([tokenizer(examples[0].prompt + examples[0].completion)["input_ids"]])
    with torch.no_grad():
        untuned = base(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(base, folder / ADAPTER_DIR).eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(folder).eval()(input_ids=ids).logits
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-5)
    # The adapters moved the logits far beyond that tolerance: an unmerged checkpoint would show.
    assert (adapted - untuned).abs().max() > 1e-2


@pytest.mark.slow
def test_bf16_pure_lora_trains_float32_adapters_over_frozen_bf16_weights(
    examples: tuple[Example, ...], milestone: Milestone, tmp_path: Path
) -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook

    lora = milestone.training.lora
    assert lora is not None
    stepped: list[tuple[int, set[Any]]] = []

    def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        stepped.append((sum(p.numel() for p in params), {p.dtype for p in params}))

    hook = register_optimizer_step_post_hook(after_step)
    try:
        result = train(examples, changed(milestone.training, precision="bf16-pure"), tmp_path)
    finally:
        hook.remove()
    shape = ModelShape.from_config(model_config(SOURCE))
    assert stepped == [(lora_parameters(shape, lora, "torch"), {torch.float32})] * STEPS
    assert all(math.isfinite(record.loss) for record in result.steps)
    merged = AutoModelForCausalLM.from_pretrained(result.checkpoint_dir, dtype="auto")
    assert {p.dtype for p in merged.parameters()} == {torch.bfloat16}
    [completion] = TorchTrainer().generate(
        result.checkpoint_dir, [examples[0].prompt], max_new_tokens=8, batch_size=1, device="cpu"
    )
    assert isinstance(completion, str)


def qlora_config(milestone: Milestone) -> TrainingConfig:
    lora = milestone.training.lora
    assert lora is not None
    quantized = lora.model_copy(update={"quantize": "nf4"})
    return changed(milestone.training, precision="bf16", lora=quantized.model_dump())


def test_qlora_on_a_cpu_is_refused_with_the_reason(
    examples: tuple[Example, ...], milestone: Milestone, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match=r"QLoRA \(lora\.quantize nf4\) runs on a CUDA GPU"):
        train(examples, qlora_config(milestone), tmp_path)


def qlora_missing() -> str | None:
    return qlora_unavailable("cuda")


@pytest.mark.slow
@pytest.mark.skipif(qlora_missing() is not None, reason=str(qlora_missing()))
def test_qlora_trains_adapters_over_4_bit_weights_and_saves_a_plain_merged_model(
    examples: tuple[Example, ...], milestone: Milestone, tmp_path: Path
) -> None:
    result = train(examples, qlora_config(milestone), tmp_path, device="cuda")
    assert all(math.isfinite(record.loss) for record in result.steps)
    folder = result.checkpoint_dir
    assert (folder / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(folder)  # no quantization config: plain weights
    assert "quantization_config" not in merged.config.to_dict()
    [completion] = TorchTrainer().generate(
        folder, [examples[0].prompt], max_new_tokens=8, batch_size=1, device="cuda"
    )
    assert isinstance(completion, str)


def run_of(milestone: Milestone, tmp_path: Path, **hardware: Any) -> MilestoneRun:
    spec = milestone.spec.model_copy(
        update={"hardware": milestone.spec.hardware.model_copy(update=hardware)}
    )
    quantized = dataclasses.replace(milestone, spec=spec, training=qlora_config(milestone))
    run_dir = bundle.allocate_run_dir(tmp_path, milestone.id)
    return MilestoneRun(quantized, ROOT, run_dir, RunOptions(progress=lambda _: None))


def test_preflight_skips_a_qlora_milestone_on_a_cpu_with_the_reason(
    milestone: Milestone, tmp_path: Path
) -> None:
    with pytest.raises(PhaseBlocked) as caught:
        preflight(run_of(milestone, tmp_path))
    assert caught.value.cause is Cause.MISSING_HARDWARE
    assert "QLoRA (lora.quantize nf4) runs on a CUDA GPU through bitsandbytes" in caught.value.msg
    assert "milestone smoke-lora trains on any CPU" in caught.value.msg


@pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed here"
)
def test_preflight_skips_a_qlora_milestone_without_bitsandbytes(
    milestone: Milestone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CUDA device, which this machine may not have: the check after it is the one under test.
    monkeypatch.setattr(
        "harness.phases.preflight.missing_devices", lambda requirement, backend: None
    )
    with pytest.raises(PhaseBlocked) as caught:
        preflight(run_of(milestone, tmp_path, accelerator="cuda", label="a CUDA GPU"))
    assert caught.value.cause is Cause.MISSING_DEPENDENCY
    assert (
        "bitsandbytes is not installed here (pip install -e '.[torch,qlora]')" in caught.value.msg
    )
