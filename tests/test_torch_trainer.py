"""The torch backend on a tiny model: completion-only loss, determinism, falling loss, batched
generation, and the efficiency settings that must leave the loss curve as it is."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from harness.spec.data import load_traces  # noqa: E402
from harness.spec.prompting import format_completion, format_prompt  # noqa: E402
from harness.spec.yaml_files import load_yaml_model  # noqa: E402
from trainers.char_tokenizer import build_char_tokenizer  # noqa: E402
from trainers.config import TrainingConfig  # noqa: E402
from trainers.encoding import (  # noqa: E402
    IGNORE_INDEX,
    batches,
    encode_example,
    length_grouped_batches,
    pack,
)
from trainers.models import build_model_and_tokenizer  # noqa: E402
from trainers.protocol import Example, StepRecord, TrainRequest  # noqa: E402
from trainers.torch.batching import BatchPlan, collate, collate_packed  # noqa: E402
from trainers.torch.fit import to_bf16_weights  # noqa: E402
from trainers.torch.trainer import TorchTrainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Settings that only change how a step is computed agree with the plain run to float rounding
# (measured: 1e-6); a row attending to its neighbour in a pack moves the loss by 2e-4.
SAME_LOSS = {"rtol": 0.0, "atol": 1e-5}


@pytest.fixture(scope="module")
def examples() -> tuple[Example, ...]:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:64]
    return tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)


@pytest.fixture(scope="module")
def config() -> TrainingConfig:
    return load_yaml_model(ROOT / "configs" / "training" / "smoke_tiny.yaml", TrainingConfig)


def changed(config: TrainingConfig, **changes: Any) -> TrainingConfig:
    return TrainingConfig(**{**config.model_dump(), **changes})


def request_for(
    examples: tuple[Example, ...], config: TrainingConfig, out: Path, steps: int
) -> TrainRequest:
    return TrainRequest("random:tiny-gemma", config, examples, steps, None, "cpu", out)


def train_records(request: TrainRequest) -> list[StepRecord]:
    seen: list[StepRecord] = []
    TorchTrainer().train(request, seen.append)
    return seen


def train_losses(request: TrainRequest) -> list[float]:
    return [record.loss for record in train_records(request)]


def encoded_rows(
    examples: tuple[Example, ...], max_len: int = 512
) -> list[tuple[list[int], list[int]]]:
    tokenizer = build_char_tokenizer()
    return [encode_example(tokenizer, ex, max_len) for ex in examples]


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
    rows = encoded_rows(examples[:4])
    batch = collate(rows, tokenizer.pad_token_id)
    assert batch["attention_mask"].sum().item() == sum(len(ids) for ids, _ in rows)
    padding = batch["attention_mask"] == 0
    assert (batch["labels"][padding] == IGNORE_INDEX).all()


def test_packing_keeps_every_row_once_within_capacity_and_pads_less_than_padding() -> None:
    lengths = [97, 147, 120, 133, 101, 125, 140, 99, 118, 130, 145, 104]
    groups = pack(lengths, capacity=512)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    widths = [sum(lengths[i] for i in group) for group in groups]
    assert max(widths) <= 512
    assert len(groups) * max(widths) < len(lengths) * max(lengths)
    assert pack(lengths, capacity=147) == [
        [i] for i in sorted(range(12), key=lambda i: -lengths[i])
    ]
    with pytest.raises(ValueError, match="does not fit"):
        pack(lengths, capacity=146)


def test_length_grouped_epochs_cover_every_row_once_in_as_many_batches_as_shuffled_ones(
    examples: tuple[Example, ...],
) -> None:
    lengths = [len(ids) for ids, _ in encoded_rows(examples)]
    n_batches = -(-len(lengths) // 10)
    grouped = length_grouped_batches(lengths, 10, seed=3)
    for _ in range(2):
        epoch = [next(grouped) for _ in range(n_batches)]
        assert sorted(i for batch in epoch for i in batch) == list(range(len(lengths)))

    def padded_positions(order: Any) -> int:
        return sum(
            len(b) * max(lengths[i] for i in b) for b in (next(order) for _ in range(n_batches))
        )

    assert padded_positions(length_grouped_batches(lengths, 10, 3)) < padded_positions(
        batches(len(lengths), 10, 3)
    )


def test_packed_and_grouped_batches_compute_fewer_positions_for_the_same_tokens(
    examples: tuple[Example, ...], config: TrainingConfig
) -> None:
    rows = encoded_rows(examples)
    pad_id = build_char_tokenizer().pad_token_id
    epoch = -(-len(rows) // config.batch_size)

    def positions_and_tokens(batching: str) -> tuple[int, int]:
        plan = BatchPlan(rows, changed(config, batching=batching, max_seq_len=512), pad_id)
        steps = plan.steps()
        shards = [shard for _ in range(epoch) for shard in plan.shards(next(steps))]
        for shard in shards[:2]:  # the counts describe the tensors the model gets
            assert plan.tensors(shard)["input_ids"].numel() == shard.positions
        return sum(s.positions for s in shards), sum(s.tokens for s in shards)

    padded, tokens = positions_and_tokens("padded")
    grouped, grouped_tokens = positions_and_tokens("length_grouped")
    packed, packed_tokens = positions_and_tokens("packed")
    assert tokens == grouped_tokens == packed_tokens
    assert 1 - tokens / padded > 0.08  # measured: 0.11 of the positions are padding
    assert 1 - tokens / grouped < 0.06  # measured 0.048
    assert 1 - tokens / packed < 0.02  # measured 0.014


@pytest.mark.slow
def test_a_packed_batch_has_the_loss_of_the_same_rows_padded(examples: tuple[Example, ...]) -> None:
    model, tokenizer = build_model_and_tokenizer("random:tiny-gemma", seed=1)
    rows = encoded_rows(examples[:8])
    padded = collate(rows, tokenizer.pad_token_id)
    packed = collate_packed(rows, tokenizer.pad_token_id, capacity=512)
    assert packed["input_ids"].shape[0] < len(rows)
    leaky = {
        **packed,
        "position_ids": torch.arange(packed["input_ids"].shape[1]).expand_as(packed["input_ids"]),
    }
    with torch.no_grad():
        padded_loss, packed_loss, leaky_loss = (
            model(**batch, use_cache=False).loss for batch in (padded, packed, leaky)
        )
    torch.testing.assert_close(packed_loss, padded_loss, **SAME_LOSS)
    # The tolerance is tight enough to see rows attending across their boundary in a pack.
    assert abs(leaky_loss.item() - padded_loss.item()) > SAME_LOSS["atol"]


@pytest.mark.slow
def test_same_seed_gives_identical_losses_and_the_loss_falls(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    first = train_losses(request_for(examples, config, tmp_path / "a", steps=25))
    second = train_losses(request_for(examples, config, tmp_path / "b", steps=25))
    assert first == second
    assert len(first) == 25
    assert first[-1] < 0.7 * first[0]


@pytest.fixture(scope="module")
def plain_records(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path_factory: pytest.TempPathFactory
) -> list[StepRecord]:
    return train_records(request_for(examples, config, tmp_path_factory.mktemp("plain"), steps=4))


@pytest.mark.slow
@pytest.mark.parametrize(
    "changes",
    [
        {"grad_accum_steps": 4},
        {"batching": "packed", "max_seq_len": 512},
        {"batching": "packed", "max_seq_len": 512, "grad_accum_steps": 2},
        {"gradient_checkpointing": True},
        pytest.param(
            {"compile": True},  # inductor's C++ kernels: about 40 s of compilation on 2 cores
            marks=pytest.mark.skipif(
                not (shutil.which("g++") or shutil.which("clang++")),
                reason="torch.compile on a CPU needs a C++ compiler (g++ or clang++)",
            ),
            id="compile",
        ),
    ],
    ids=["grad-accum-4x4", "packed", "packed-grad-accum-2x8", "gradient-checkpointing", None],
)
def test_efficiency_settings_keep_the_loss_curve(
    examples: tuple[Example, ...],
    config: TrainingConfig,
    plain_records: list[StepRecord],
    changes: dict[str, Any],
    tmp_path: Path,
) -> None:
    records = train_records(request_for(examples, changed(config, **changes), tmp_path, steps=4))
    torch.testing.assert_close(
        [r.loss for r in records], [r.loss for r in plain_records], **SAME_LOSS
    )
    torch.testing.assert_close(
        [r.grad_norm for r in records], [r.grad_norm for r in plain_records], rtol=1e-4, atol=0.0
    )
    assert [(r.samples, r.tokens) for r in records] == [
        (r.samples, r.tokens) for r in plain_records
    ]
    if changes.get("batching") == "packed":
        assert sum(r.positions or 0 for r in records) < sum(r.positions or 0 for r in plain_records)


def test_bf16_pure_keeps_the_rotary_frequencies_in_float32() -> None:
    model, _ = build_model_and_tokenizer("random:tiny-gemma", seed=0)
    to_bf16_weights(model)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {b.dtype for b in model.buffers()} == {torch.float32}


@pytest.mark.slow
def test_bf16_pure_trains_in_bf16_and_saves_the_weights_it_trained(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from transformers import AutoModelForCausalLM

    # The same 4 rows every step at a constant learning rate: the loss has to fall.
    pure = changed(
        config,
        precision="bf16-pure",
        batch_size=4,
        schedule={"warmup_steps": 0, "decay": "constant", "min_lr_ratio": 1.0},
    )
    dtypes: list[set[Any]] = []
    trained: list[Any] = []

    def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        moments = [v for p in params for k, v in optimizer.state[p].items() if k != "step"]
        dtypes.append({t.dtype for t in [*params, *(p.grad for p in params), *moments]})
        trained[:] = [p.detach().clone() for p in params]

    hook = register_optimizer_step_post_hook(after_step)
    try:
        trainer = TorchTrainer()
        result = trainer.train(request_for(examples[:4], pure, tmp_path, steps=4), lambda _: None)
    finally:
        hook.remove()
    losses = [record.loss for record in result.steps]
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.9 * losses[0]  # measured: 4.95 -> 3.49
    assert dtypes == [{torch.bfloat16}] * 4  # weights, gradients and both AdamW moments
    loaded = AutoModelForCausalLM.from_pretrained(result.checkpoint_dir, dtype="auto")
    assert all(torch.equal(a, b) for a, b in zip(trained, loaded.parameters(), strict=True))
    [completion] = trainer.generate(
        result.checkpoint_dir, [examples[0].prompt], max_new_tokens=8, batch_size=1, device="cpu"
    )
    assert isinstance(completion, str)


@pytest.mark.slow
def test_length_grouped_training_learns_and_reports_its_padding(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    records = train_records(
        request_for(examples, changed(config, batching="length_grouped"), tmp_path, 8)
    )
    assert all(math.isfinite(r.loss) for r in records)
    assert records[-1].loss < records[0].loss
    assert all(r.tokens <= (r.positions or 0) for r in records)


@pytest.mark.slow
def test_the_result_carries_the_flops_basis_of_its_rows(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    result = TorchTrainer().train(request_for(examples, config, tmp_path, steps=1), lambda _: None)
    assert result.flops is not None
    lengths = [len(ids) for ids, _ in encoded_rows(examples, config.max_seq_len)]
    assert result.flops.seq_len == pytest.approx(sum(n * n for n in lengths) / sum(lengths))
    assert min(lengths) < result.flops.seq_len < max(lengths)
    assert result.flops.parameters == result.model_parameters
    assert result.flops.device_name == "cpu"
    assert result.flops.devices == 1


@pytest.mark.slow
def test_epochs_run_shape_covers_the_dataset(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    request = TrainRequest("random:tiny-gemma", config, examples[:40], None, 2, "cpu", tmp_path)
    seen: list[StepRecord] = []
    TorchTrainer().train(request, seen.append)
    assert [r.samples for r in seen] == [16, 16, 8, 16, 16, 8]


@pytest.mark.slow
def test_batched_generation_matches_one_prompt_at_a_time(
    examples: tuple[Example, ...], config: TrainingConfig, tmp_path: Path
) -> None:
    trainer = TorchTrainer()
    result = trainer.train(request_for(examples, config, tmp_path, steps=30), lambda _: None)
    prompts = [ex.prompt for ex in examples[:6]]
    batched = trainer.generate(
        result.checkpoint_dir, prompts, max_new_tokens=40, batch_size=6, device="cpu"
    )
    single = [
        trainer.generate(result.checkpoint_dir, [p], max_new_tokens=40, batch_size=1, device="cpu")[
            0
        ]
        for p in prompts
    ]
    assert batched == single
    assert all(isinstance(text, str) and "<pad>" not in text for text in batched)
