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
    "gemma3_text": {
        "model_type": "gemma3_text",
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 64,
        "intermediate_size": 128,
        # Tunix's Gemma3 builds 5 sliding-window layers, then 1 global, as Gemma 3 publishes.
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "sliding_window": 8,
        "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
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
    folder: Path,
    model_type: str,
    lines: Sequence[str],
    seed: int = 0,
    *,
    max_shard_size: str = "5GB",
    **changes: Any,
) -> Path:
    """A random ``model_type`` Gemma in Hugging Face layout (config.json, *.safetensors split at
    ``max_shard_size`` and a tokenizer trained on ``lines``) in ``folder``; ``changes`` override
    config fields, and a ``torch_dtype`` among them is the dtype the weights are saved in."""
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
    if dtype := changes.get("torch_dtype"):
        model.to(getattr(torch, str(dtype).removeprefix("torch.")))
    model.save_pretrained(folder, safe_serialization=True, max_shard_size=max_shard_size)
    train_tokenizer(folder, lines)
    return folder


# Kaggle names a Flax variant's checkpoint folder after the variation ("2b", "gemma2-2b").
KAGGLE_FOLDERS = {"gemma": "tiny", "gemma2": "gemma2-tiny"}
# Hugging Face norm -> Kaggle norm, per layer. Gemma 1's post_attention_layernorm is the norm
# before the feed-forward block.
KAGGLE_NORMS = {
    "gemma": {"input_layernorm": "pre_attention_norm", "post_attention_layernorm": "pre_ffw_norm"},
    "gemma2": {
        "input_layernorm": "pre_attention_norm",
        "post_attention_layernorm": "post_attention_norm",
        "pre_feedforward_layernorm": "pre_ffw_norm",
        "post_feedforward_layernorm": "post_ffw_norm",
    },
}


def kaggle_layout(tensors: dict[str, Any], config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Hugging Face Gemma weights as Kaggle's Flax checkpoints key and shape them. Gemma 2's MLP
    gating is stored (2, hidden, embed) as in Kaggle's Gemma 2 9B, Gemma's (2, embed, hidden)."""
    import numpy as np

    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim, embed = config["head_dim"], config["hidden_size"]
    model_type = config["model_type"]

    def per_head(name: str, count: int) -> Any:  # (count * head_dim, embed) -> (count, embed, head)
        return tensors[name].reshape(count, head_dim, embed).transpose(0, 2, 1)

    flat = {
        "transformer/embedder": {"input_embedding": tensors["model.embed_tokens.weight"]},
        "transformer/final_norm": {"scale": tensors["model.norm.weight"]},
    }
    for layer in range(config["num_hidden_layers"]):
        hf, kaggle = f"model.layers.{layer}.", f"transformer/layer_{layer}/"
        q = per_head(f"{hf}self_attn.q_proj.weight", heads)
        k = per_head(f"{hf}self_attn.k_proj.weight", kv_heads)
        v = per_head(f"{hf}self_attn.v_proj.weight", kv_heads)
        if heads == kv_heads:
            flat[f"{kaggle}attn/qkv_einsum"] = {"w": np.stack([q, k, v])}
        else:
            flat[f"{kaggle}attn/q_einsum"] = {"w": q}
            flat[f"{kaggle}attn/kv_einsum"] = {"w": np.stack([k, v])}
        out = tensors[f"{hf}self_attn.o_proj.weight"]
        flat[f"{kaggle}attn/attn_vec_einsum"] = {"w": out.T.reshape(heads, head_dim, embed)}
        gate, up = tensors[f"{hf}mlp.gate_proj.weight"], tensors[f"{hf}mlp.up_proj.weight"]
        gating = np.stack([gate, up] if model_type == "gemma2" else [gate.T, up.T])
        flat[f"{kaggle}mlp/gating_einsum"] = {"w": gating}
        flat[f"{kaggle}mlp/linear"] = {"w": tensors[f"{hf}mlp.down_proj.weight"].T}
        for hf_norm, kaggle_norm in KAGGLE_NORMS[model_type].items():
            flat[f"{kaggle}{kaggle_norm}"] = {"scale": tensors[f"{hf}{hf_norm}.weight"]}
    return flat


def build_kaggle_checkpoint(
    folder: Path,
    model_type: str,
    lines: Sequence[str],
    seed: int = 0,
    *,
    hf_folder: Path | None = None,
    checkpoint_name: str | None = None,
    **changes: Any,
) -> Path:
    """The random Gemma of ``build_checkpoint`` in Kaggle's Flax layout in ``folder``: an orbax
    checkpoint of its weights (in their dtype: ``torch_dtype`` among ``changes``) named
    ``checkpoint_name`` as Kaggle names it after the variation (default ``KAGGLE_FOLDERS``), and
    ``tokenizer.model`` beside it. The Hugging Face layout of the same weights is kept in
    ``hf_folder`` when given."""
    import json
    import shutil
    import tempfile

    import numpy as np
    import orbax.checkpoint as ocp
    import safetensors.flax

    with tempfile.TemporaryDirectory() as scratch:
        source = hf_folder or Path(scratch) / "hf"
        build_checkpoint(source, model_type, lines, seed, **changes)
        config = json.loads((source / "config.json").read_text(encoding="utf-8"))
        tensors: dict[str, Any] = {}
        for file in sorted(source.glob("*.safetensors")):
            # Read through jax: numpy alone has no bfloat16.
            loaded = safetensors.flax.load_file(file)
            tensors |= {name: np.asarray(tensor) for name, tensor in loaded.items()}
        folder.mkdir(parents=True, exist_ok=True)
        checkpointer = ocp.StandardCheckpointer()
        name = checkpoint_name or KAGGLE_FOLDERS[model_type]
        checkpointer.save((folder / name).resolve(), kaggle_layout(tensors, config))
        checkpointer.wait_until_finished()
        shutil.copyfile(source / "tokenizer.model", folder / "tokenizer.model")
    return folder
