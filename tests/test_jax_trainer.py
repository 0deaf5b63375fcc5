"""The jax backend on a tiny Tunix Gemma: falling loss, determinism, batched generation, guards,
LoRA, and step records that match the torch backend's batch for batch."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jax")
pytest.importorskip("tunix")
pytestmark = pytest.mark.slow

import safetensors.numpy  # noqa: E402
from flax import nnx  # noqa: E402

from harness.spec.data import load_traces  # noqa: E402
from harness.spec.prompting import format_completion, format_prompt  # noqa: E402
from harness.spec.yaml_files import load_yaml_model  # noqa: E402
from trainers.char_tokenizer import build_char_tokenizer  # noqa: E402
from trainers.config import TrainingConfig  # noqa: E402
from trainers.encoding import batches, encode_example  # noqa: E402
from trainers.guards import Divergence, NonFiniteLoss  # noqa: E402
from trainers.jax.model import MODEL_CARD, build_mesh, build_model, load_model  # noqa: E402
from trainers.jax.optim import learning_rate  # noqa: E402
from trainers.jax.trainer import JaxTrainer  # noqa: E402
from trainers.protocol import Example, StepRecord, TrainRequest, TrainResult  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 20


@pytest.fixture(scope="module")
def examples() -> tuple[Example, ...]:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:32]
    return tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)


def load_config(name: str, **changes: Any) -> TrainingConfig:
    config = load_yaml_model(ROOT / "configs" / "training" / name, TrainingConfig)
    return TrainingConfig(**{**config.model_dump(), **changes})


@pytest.fixture(scope="module")
def config() -> TrainingConfig:
    # A short warm-up so that 20 steps already move the loss well away from its start.
    schedule = {"warmup_steps": 5, "decay": "cosine", "min_lr_ratio": 0.1}
    return load_config("smoke_jax_tiny.yaml", schedule=schedule)


def request_for(
    examples: tuple[Example, ...], config: TrainingConfig, out: Path, steps: int
) -> TrainRequest:
    return TrainRequest("random:tiny-gemma", config, examples, steps, None, "cpu", out)


def run(request: TrainRequest) -> tuple[TrainResult, list[StepRecord]]:
    seen: list[StepRecord] = []
    result = JaxTrainer().train(request, seen.append)
    return result, seen


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, examples: tuple[Example, ...], config: TrainingConfig
) -> tuple[TrainResult, list[StepRecord]]:
    return run(request_for(examples, config, tmp_path_factory.mktemp("jax") / "ckpt", STEPS))


def test_loss_falls_and_is_finite(trained: tuple[TrainResult, list[StepRecord]]) -> None:
    result, seen = trained
    losses = [record.loss for record in seen]
    assert len(losses) == STEPS and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.8 * losses[0]
    assert result.backend == "jax" and result.device == "cpu"
    assert list(result.steps) == seen


def test_two_runs_with_one_seed_give_identical_losses(
    tmp_path: Path,
    examples: tuple[Example, ...],
    config: TrainingConfig,
    trained: tuple[TrainResult, list[StepRecord]],
) -> None:
    _, again = run(request_for(examples, config, tmp_path / "ckpt", STEPS))
    assert [r.loss for r in again] == [r.loss for r in trained[1]]


def test_step_records_count_samples_and_real_tokens_of_the_shared_batches(
    examples: tuple[Example, ...],
    config: TrainingConfig,
    trained: tuple[TrainResult, list[StepRecord]],
) -> None:
    tokenizer = build_char_tokenizer()
    lengths = [len(encode_example(tokenizer, ex, config.max_seq_len)[0]) for ex in examples]
    order = batches(len(examples), config.batch_size, config.seed)
    for record, indices in zip(trained[1], order, strict=False):
        assert isinstance(record, StepRecord)
        assert record.samples == len(indices)
        assert record.tokens == sum(lengths[i] for i in indices)
        assert record.tokens < config.batch_size * config.max_seq_len  # padding is not counted
        assert record.seconds > 0 and record.grad_norm > 0


def test_checkpoint_holds_orbax_state_safetensors_card_and_tokenizer(
    trained: tuple[TrainResult, list[StepRecord]],
) -> None:
    checkpoint = trained[0].checkpoint_dir
    for name in (
        MODEL_CARD,
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        f"state/{STEPS}",
    ):
        assert (checkpoint / name).exists(), name
    weights = safetensors.numpy.load_file(str(checkpoint / "model.safetensors"))
    assert sum(w.size for w in weights.values()) == trained[0].model_parameters


def test_every_mlp_weight_starts_random_and_trains(
    trained: tuple[TrainResult, list[StepRecord]], config: TrainingConfig
) -> None:
    """Tunix starts its MLP kernels at zero, where they would get no gradient."""
    import numpy as np

    start = build_model("tiny-gemma", config.seed, build_mesh(config.mesh, "cpu"), None)
    weights = safetensors.numpy.load_file(str(trained[0].checkpoint_dir / "model.safetensors"))
    for index, layer in enumerate(start.layers):
        for name in ("gate_proj", "up_proj", "down_proj"):
            initial = np.asarray(getattr(layer.mlp, name).kernel.get_value()).T
            assert 0.005 < initial.std() < 0.02, (index, name)
            final = weights[f"model.layers.{index}.mlp.{name}.weight"]
            assert np.abs(final - initial).max() > 0, (index, name)  # it trained
            assert np.corrcoef(final.ravel(), initial.ravel())[0, 1] > 0.5, (index, name)


def test_generate_batched_equals_one_at_a_time(
    examples: tuple[Example, ...], trained: tuple[TrainResult, list[StepRecord]]
) -> None:
    prompts = [ex.prompt for ex in examples[:5]]
    checkpoint = trained[0].checkpoint_dir
    options: dict[str, Any] = {"max_new_tokens": 24, "device": "cpu"}
    batched = JaxTrainer().generate(checkpoint, prompts, batch_size=3, **options)
    alone = JaxTrainer().generate(checkpoint, prompts, batch_size=1, **options)
    assert batched == alone
    assert len(batched) == 5 and all(0 < len(text) <= 24 for text in batched)


def test_a_huge_learning_rate_stops_with_a_saved_checkpoint(
    tmp_path: Path, examples: tuple[Example, ...]
) -> None:
    config = load_config(
        "smoke_jax_tiny.yaml",
        optimizer={
            "name": "adamw",
            "lr": 1.0e3,
            "weight_decay": 0.0,
            "betas": [0.9, 0.98],
            "eps": 1e-8,
        },
        schedule={"warmup_steps": 0, "decay": "constant", "min_lr_ratio": 1.0},
        divergence={"factor": 3.0, "patience": 1},  # step 2 jumps to 48,000x step 1
    )
    request = request_for(examples, config, tmp_path / "ckpt", 30)
    with pytest.raises((NonFiniteLoss, Divergence)) as stopped:
        run(request)
    assert stopped.value.step < 30
    assert (request.checkpoint_dir / "config.json").is_file()
    assert (request.checkpoint_dir / f"state/{stopped.value.step}").is_dir()


def test_lora_trains_only_the_adapters(
    tmp_path: Path, examples: tuple[Example, ...], config: TrainingConfig
) -> None:
    lora_config = TrainingConfig(**{**config.model_dump(), "lora": {"rank": 4, "alpha": 8.0}})
    result, seen = run(request_for(examples, lora_config, tmp_path / "ckpt", 4))
    assert all(math.isfinite(record.loss) for record in seen)
    weights = safetensors.numpy.load_file(str(result.checkpoint_dir / "model.safetensors"))
    base = build_model("tiny-gemma", config.seed, build_mesh(config.mesh, "cpu"), None)
    assert (
        weights["model.embed_tokens.weight"].tolist() == base.embedder.input_embedding[...].tolist()
    )
    restored = nnx.to_flat_state(nnx.state(load_model(result.checkpoint_dir, "cpu"), nnx.LoRAParam))
    adapters = [weight.get_value() for path, weight in restored if path[-1].endswith("_lora_b")]
    assert adapters and any(weight.any() for weight in adapters)
    completions = JaxTrainer().generate(
        result.checkpoint_dir, [examples[0].prompt], max_new_tokens=8, batch_size=1, device="cpu"
    )
    assert len(completions) == 1


@pytest.mark.parametrize("decay", ["cosine", "constant"])
def test_learning_rate_schedule_matches_torch(decay: str) -> None:
    torch = pytest.importorskip("torch")
    from trainers.torch.optim import build_schedule

    config = load_config(
        "smoke_jax_tiny.yaml", schedule={"warmup_steps": 10, "decay": decay, "min_lr_ratio": 0.1}
    )
    total = 50
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=config.optimizer.lr)
    scheduler = build_schedule(optimizer, config, total)
    schedule = learning_rate(config, total)
    for step in range(total):
        assert float(schedule(step)) == pytest.approx(
            scheduler.get_last_lr()[0], rel=1e-5, abs=1e-9
        )
        optimizer.step()
        scheduler.step()


def test_step_records_match_torch_batch_for_batch(
    tmp_path: Path, examples: tuple[Example, ...]
) -> None:
    pytest.importorskip("torch")
    from trainers.torch.trainer import TorchTrainer

    config = load_config("smoke_tiny.yaml")
    torch_seen: list[StepRecord] = []
    TorchTrainer().train(request_for(examples, config, tmp_path / "torch", 5), torch_seen.append)
    _, jax_seen = run(request_for(examples, config, tmp_path / "jax", 5))
    assert [dataclasses.asdict(r).keys() for r in jax_seen] == [
        dataclasses.asdict(r).keys() for r in torch_seen
    ]
    assert [(r.step, r.samples, r.tokens) for r in jax_seen] == [
        (r.step, r.samples, r.tokens) for r in torch_seen
    ]
    assert [r.lr for r in jax_seen] == pytest.approx([r.lr for r in torch_seen], rel=1e-5, abs=1e-9)


def test_an_hf_model_outside_the_local_cache_is_not_downloaded_without_a_token(
    tmp_path: Path, examples: tuple[Example, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    request = TrainRequest(
        "hf:google/gemma-2b", load_config("smoke_jax_tiny.yaml"), examples, 1, None, "cpu", tmp_path
    )
    with pytest.raises(FileNotFoundError, match="outgoing traffic has been disabled"):
        run(request)
