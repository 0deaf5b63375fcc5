"""Tiny Gemma checkpoints in Hugging Face layout, built offline: random weights (every norm
randomised) and a SentencePiece tokenizer trained on the spot. Tests and rehearsals load them
through the same code as a real checkpoint."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Byte fallback needs 256 byte pieces and the 4 specials, so 512 is the smallest round vocabulary.
VOCAB_SIZE = 512
# Gemma's special ids: the model configs and the tokenizer must agree on them.
SPECIAL_IDS = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
# Shapes small enough for CPU and divisible by 8, so every weight splits over a 1x8 fsdp mesh.
# Initialiser ranges above transformers' 0.02 keep a random model's logits far enough apart for
# greedy choices not to hang on float rounding, and its generations varied rather than one token.
SHAPES: dict[str, dict[str, Any]] = {
    "gemma": {
        "model_type": "gemma",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "hidden_act": "gelu_pytorch_tanh",
        "max_position_embeddings": 256,
        "initializer_range": 0.3,
    },
    "gemma2": {
        "model_type": "gemma2",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "sliding_window": 8,
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        "max_position_embeddings": 256,
        "initializer_range": 0.05,
    },
}



def train_tokenizer(folder: Path, lines: Sequence[str]) -> Path:
    """A SentencePiece BPE tokenizer trained on ``lines`` with Gemma's special ids, as
    ``tokenizer.model`` and, through ``GemmaTokenizerFast``, ``tokenizer.json``; returns
    ``folder``. Deterministic: the same lines give the same bytes."""
    import sentencepiece
    from transformers import GemmaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        byte_fallback=True,
        character_coverage=1.0,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        num_threads=1,
        minloglevel=2,
    )
    vocab_file = folder / "tokenizer.model"
    vocab_file.write_bytes(model.getvalue())
    GemmaTokenizerFast(vocab_file=str(vocab_file)).save_pretrained(folder)
    return folder


def build_checkpoint(
    folder: Path, model_type: str, lines: Sequence[str], seed: int = 0, **changes: Any
) -> Path:
    """A random ``model_type`` Gemma in Hugging Face layout (config.json, model.safetensors and a
    tokenizer trained on ``lines``) in ``folder``; ``changes`` override config fields."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    params = {**SHAPES[model_type], **SPECIAL_IDS, **changes}
    config = AutoConfig.for_model(params.pop("model_type"), **params)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():
        for name, weight in model.named_parameters():
            # Norms start at zero: random ones make a norm loaded into the wrong slot show.
            if "norm" in name:
                weight.uniform_(-0.5, 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    train_tokenizer(folder, lines)
    return folder
