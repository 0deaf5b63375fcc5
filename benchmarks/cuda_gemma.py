"""Benchmark (d): a full bf16 fine-tune of Gemma 2B (random init) on CUDA, tokens/s and MFU.

Ours and transformers.Trainer, at sequence lengths 1024 and 2048. Without CUDA it skips.

Run: .venv/bin/python -m benchmarks.cuda_gemma
"""

from __future__ import annotations

import argparse
import gc
import random
import string
import tempfile
from pathlib import Path

import torch

from benchmarks.common import Check, Ratio, load_milestone, report
from benchmarks.trainer_pair import train_ours, train_theirs
from trainers.config import TrainingConfig
from trainers.flops import flops_per_token, mfu
from trainers.models import ARCHITECTURES
from trainers.protocol import Example, TrainRequest

MODEL = "random:gemma-2b"
MFU_TARGET = 0.45  # on an H100
# The optimizer, schedule and seed of the Gemma 2B milestone; run shape and sequence set here.
CONFIG_MILESTONE = "m44"


def synthetic_examples(count: int, seq_len: int, seed: int) -> tuple[Example, ...]:
    """Random letters encoding to exactly ``seq_len`` tokens: one a character, <bos>, <eos>."""
    letters = random.Random(seed)
    prompt_len = seq_len // 4
    completion_len = seq_len - 2 - prompt_len

    def text(length: int) -> str:
        return "".join(letters.choices(string.ascii_letters, k=length))

    return tuple(Example(text(prompt_len), text(completion_len)) for _ in range(count))


def training_config(seq_len: int, batch_tokens: int, grad_accum: int) -> TrainingConfig:
    """The Gemma 2B milestone's config at ``seq_len``, ``batch_tokens`` a step, padded batches.

    The rows fill the sequence, so padding costs nothing; packing would add a block mask that
    keeps attention off its fused causal kernels.
    """
    base = load_milestone(CONFIG_MILESTONE).training
    overrides = {
        "max_seq_len": seq_len,
        "batch_size": batch_tokens // seq_len,
        "grad_accum_steps": grad_accum,
        "precision": "bf16",
        "batching": "padded",
    }
    return TrainingConfig.model_validate({**base.model_dump(), **overrides})


def model_flops_per_token(seq_len: int) -> float:
    """PaLM FLOPs per token of the architecture, its parameters counted on the meta device."""
    from transformers import AutoConfig, AutoModelForCausalLM

    params = dict(ARCHITECTURES[MODEL.partition(":")[2]])
    config = AutoConfig.for_model(params.pop("model_type"), **params)
    with torch.device("meta"):
        parameters = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    return flops_per_token(parameters, config, seq_len)


def free_memory() -> None:
    """Return the last run's weights and optimizer state to the GPU before the next run."""
    gc.collect()
    torch.cuda.empty_cache()


def measure(
    seq_len: int, batch_tokens: int, grad_accum: int, steps: int, warmup: int
) -> tuple[Ratio, Check]:
    """Tokens/s of both trainers at ``seq_len`` and our MFU against the target."""
    config = training_config(seq_len, batch_tokens, grad_accum)
    examples = synthetic_examples(config.batch_size * (warmup + steps), seq_len, config.seed)
    with tempfile.TemporaryDirectory() as folder:
        request = TrainRequest(
            MODEL, config, examples, warmup + steps, None, "cuda", Path(folder) / "checkpoint"
        )
        ours = train_ours(request).tokens_per_s(warmup)
        free_memory()
        theirs = train_theirs(request, Path(folder) / "hf").tokens_per_s(warmup)
        free_memory()
    per_token = model_flops_per_token(seq_len)
    device = torch.cuda.get_device_name()
    ours_mfu, theirs_mfu = mfu(ours, per_token, device), mfu(theirs, per_token, device)
    if ours_mfu is None or theirs_mfu is None:
        check = Check(f"MFU at {seq_len}", f"no known bf16 peak for {device}", False)
    else:
        detail = (
            f"torch trainer {ours_mfu:.1%}, transformers.Trainer {theirs_mfu:.1%}, "
            f"target >= {MFU_TARGET:.0%}"
        )
        check = Check(f"MFU at {seq_len}", detail, ours_mfu >= MFU_TARGET)
    return Ratio(f"tokens/s at {seq_len}", [ours], [theirs], None), check


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seq-lens",
        type=int,
        nargs="+",
        default=[1024, 2048],
        help="Sequence lengths (default 1024 2048).",
    )
    parser.add_argument(
        "--batch-tokens", type=int, default=8192, help="Tokens per optimizer step (default 8192)."
    )
    parser.add_argument(
        "--grad-accum", type=int, default=4, help="Micro-batches per step (default 4)."
    )
    parser.add_argument(
        "--steps", type=int, default=10, help="Measured steps after the warm-up (default 10)."
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="Warm-up steps left out of tokens/s (default 3)."
    )
    return parser


def main() -> int:
    args = arguments().parse_args()
    if not torch.cuda.is_available():
        print("(d) cuda_gemma skipped: no CUDA GPU available (torch.cuda.is_available() is False)")
        return 0
    results = [
        measure(n, args.batch_tokens, args.grad_accum, args.steps, args.warmup)
        for n in args.seq_lens
    ]
    title = (
        f"(d) {MODEL}, full fine-tune, bf16 autocast, {args.batch_tokens} tokens a step in "
        f"{args.grad_accum} micro-batches, {args.steps} steps after {args.warmup} warm-up, "
        f"on {torch.cuda.get_device_name()}"
    )
    return report(
        title,
        ("torch trainer", "transformers.Trainer"),
        [r for r, _ in results],
        [c for _, c in results],
    )


if __name__ == "__main__":
    raise SystemExit(main())
