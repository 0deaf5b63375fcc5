"""The torch backend on a tiny model: completion-only loss, determinism, falling loss, batched generation."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

from harness.data import load_traces  # noqa: E402
from harness.prompting import format_completion, format_prompt  # noqa: E402
from harness.specs import load_yaml_model  # noqa: E402
from trainers.base import Example, StepRecord, TrainRequest  # noqa: E402
from trainers.char_tokenizer import build_char_tokenizer  # noqa: E402
from trainers.config import TrainingConfig  # noqa: E402
from trainers.encoding import IGNORE_INDEX, encode_example  # noqa: E402
from trainers.torch_trainer import TorchTrainer, collate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def examples() -> tuple[Example, ...]:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:64]
    return tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)


@pytest.fixture(scope="module")
def config() -> TrainingConfig:
    return load_yaml_model(ROOT / "configs" / "training" / "smoke_tiny.yaml", TrainingConfig)


def request_for(examples: tuple[Example, ...], config: TrainingConfig, out: Path, steps: int) -> TrainRequest:
    return TrainRequest("random:tiny-gemma", config, examples, steps, None, "cpu", out)


def train_losses(request: TrainRequest) -> list[float]:
    seen: list[StepRecord] = []
    TorchTrainer().train(request, seen.append)
    return [record.loss for record in seen]


def test_loss_is_taken_on_the_completion_only(examples: tuple[Example, ...]) -> None:
    tokenizer = build_char_tokenizer()
    ids, labels = encode_example(tokenizer, examples[0], max_len=512)
    prompt_len = 1 + len(examples[0].prompt)  # <bos> + one token per character
    assert labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert labels[prompt_len:] == ids[prompt_len:]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[prompt_len:-1]) == examples[0].completion


def test_padding_is_masked_from_attention_and_loss(examples: tuple[Example, ...]) -> None:
    tokenizer = build_char_tokenizer()
    rows = [encode_example(tokenizer, ex, max_len=512) for ex in examples[:4]]
    batch = collate(rows, tokenizer.pad_token_id)
    assert batch["attention_mask"].sum().item() == sum(len(ids) for ids, _ in rows)
    padding = batch["attention_mask"] == 0
    assert (batch["labels"][padding] == IGNORE_INDEX).all()


def test_same_seed_gives_identical_losses_and_the_loss_falls(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    first = train_losses(request_for(examples, config, tmp_path / "a", steps=25))
    second = train_losses(request_for(examples, config, tmp_path / "b", steps=25))
    assert first == second
    assert len(first) == 25
    assert first[-1] < 0.7 * first[0]


def test_epochs_run_shape_covers_the_dataset(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    request = TrainRequest("random:tiny-gemma", config, examples[:40], None, 2, "cpu", tmp_path)
    seen: list[StepRecord] = []
    TorchTrainer().train(request, seen.append)
    assert [r.samples for r in seen] == [16, 16, 8, 16, 16, 8]


def test_batched_generation_matches_one_prompt_at_a_time(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    trainer = TorchTrainer()
    result = trainer.train(request_for(examples, config, tmp_path, steps=30), lambda _: None)
    prompts = [ex.prompt for ex in examples[:6]]
    batched = trainer.generate(result.checkpoint_dir, prompts, max_new_tokens=40, batch_size=6, device="cpu")
    single = [
        trainer.generate(result.checkpoint_dir, [p], max_new_tokens=40, batch_size=1, device="cpu")[0]
        for p in prompts
    ]
    assert batched == single
    assert all(isinstance(text, str) and "<pad>" not in text for text in batched)
