"""Tiny pretrained-layout Gemma checkpoints for the tests, tokenizers trained on the dev set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.spec.data import load_traces
from harness.spec.prompting import format_completion, format_prompt
from trainers import tiny_checkpoints

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "datasets" / "dev-reasoning-v2"


def corpus_lines(limit: int = 300) -> list[str]:
    """Deterministic training text for the tokenizer: prompts and completions of the dev traces."""
    traces = load_traces(CORPUS)[:limit]
    return [format_prompt(t.prompt) + format_completion(t) for t in traces]


def build_checkpoint(folder: Path, model_type: str, seed: int = 0, **changes: Any) -> Path:
    """``tiny_checkpoints.build_checkpoint`` with the tokenizer trained on the dev traces."""
    return tiny_checkpoints.build_checkpoint(folder, model_type, corpus_lines(), seed, **changes)
