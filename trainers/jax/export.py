"""The jax backend's trained Gemma in Hugging Face layout: transformers' ``config.json`` and a
``model.safetensors`` with its tensor names, written one tensor at a time from the sharded weights.

Each tensor is the inverse of what ``jax_pretrained.load_weights`` does to it (Tunix's key map and
its q/k/v stacking), and LoRA adapters are merged into the weights they adapt.
"""

from __future__ import annotations

import dataclasses
import json
import os
import string
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trainers import pretrained_tokenizer
from trainers.config import LoraConfig
from trainers.jax import distributed as jax_distributed
from trainers.jax import pretrained as jax_pretrained
from trainers.jax.pretrained import TunixConfig
from trainers.models import ARCHITECTURES

WEIGHTS = "model.safetensors"
CONFIG = jax_pretrained.CONFIG
SAFETENSORS_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
# Hugging Face norm -> Tunix norm, per layer. Gemma 1's post_attention_layernorm is the norm before
# the feed-forward block (the entry jax_pretrained.key_mapping corrects in Tunix's map).
GEMMA1_NORMS = {"input_layernorm": "pre_attention_norm", "post_attention_layernorm": "pre_ffw_norm"}
GEMMA2_NORMS = {
    "input_layernorm": "pre_attention_norm",
    "post_attention_layernorm": "post_attn_norm",
    "pre_feedforward_layernorm": "pre_ffw_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}
# Gemma 3 names its post-attention norm otherwise and adds norms of its queries and keys.
GEMMA3_NORMS = GEMMA2_NORMS | {
    "post_attention_layernorm": "post_attention_norm",
    "self_attn.q_norm": "attn._query_norm",
    "self_attn.k_norm": "attn._key_norm",
}

Transform = Callable[[jax.Array], jax.Array]


def _same(weight: jax.Array) -> jax.Array:
    return weight


def _heads(weight: jax.Array) -> jax.Array:
    """(heads, embed, head_dim) -> (heads * head_dim, embed), as q/k/v_proj hold it."""
    heads, embed, head_dim = weight.shape
    return weight.transpose(0, 2, 1).reshape(heads * head_dim, embed)


def _stacked_heads(index: int) -> Transform:
    return lambda weight: _heads(weight[index])


def _output(weight: jax.Array) -> jax.Array:
    """(heads, head_dim, embed) -> (embed, heads * head_dim), as o_proj holds it."""
    heads, head_dim, embed = weight.shape
    return weight.reshape(heads * head_dim, embed).T


def layer_norms(config: TunixConfig) -> dict[str, str]:
    """Hugging Face norm -> Tunix norm, per layer of ``config``'s family."""
    if jax_pretrained.is_gemma3(config):
        return GEMMA3_NORMS
    return GEMMA2_NORMS if config.use_post_attn_norm else GEMMA1_NORMS


def layer_tensors(config: TunixConfig) -> dict[str, tuple[str, Transform]]:
    """Per layer: Hugging Face tensor name -> the Tunix weight it comes from and how."""
    if config.num_heads == config.num_kv_heads:  # Tunix fuses q, k and v when the heads match
        qkv = {name: ("attn.qkv_einsum.w", _stacked_heads(i)) for i, name in enumerate("qkv")}
    else:
        qkv = {
            "q": ("attn.q_einsum.w", _heads),
            "k": ("attn.kv_einsum.w", _stacked_heads(0)),
            "v": ("attn.kv_einsum.w", _stacked_heads(1)),
        }
    tensors = {f"self_attn.{name}_proj.weight": source for name, source in qkv.items()}
    tensors["self_attn.o_proj.weight"] = ("attn.attn_vec_einsum.w", _output)
    for projection in ("gate_proj", "up_proj", "down_proj"):
        tensors[f"mlp.{projection}.weight"] = (f"mlp.{projection}.kernel", jnp.transpose)
    norms = layer_norms(config)
    tensors |= {f"{hf}.weight": (f"{tunix}.scale", _same) for hf, tunix in norms.items()}
    return tensors


def hf_tensors(config: TunixConfig) -> dict[str, tuple[str, Transform]]:
    """Every Hugging Face tensor of ``config``'s Gemma -> its Tunix weight and transform."""
    tensors = {"model.embed_tokens.weight": ("embedder.input_embedding", _same)}
    for layer in range(config.num_layers):
        tensors |= {
            f"model.layers.{layer}.{name}": (f"layers.{layer}.{path}", transform)
            for name, (path, transform) in layer_tensors(config).items()
        }
    tensors["model.norm.weight"] = ("final_norm.scale", _same)
    return tensors


def _lora_delta(module: nnx.Module, lora_a: jax.Array, lora_b: jax.Array) -> jax.Array:
    """qwix's low-rank update in the layout of the weight it adapts. For an einsum qwix keeps in A
    the weight's axes the input shares and in B the others; for a Linear kernel, A @ B."""
    highest = jax.lax.Precision.HIGHEST
    equation = getattr(module, "einsum_str", None)
    if equation is None:
        return jnp.matmul(lora_a, lora_b, precision=highest)
    lhs, rhs = equation.split("->")[0].split(",")
    shared = "".join(axis for axis in rhs if axis in lhs)
    rest = "".join(axis for axis in rhs if axis not in lhs)
    rank = next(axis for axis in string.ascii_letters if axis not in equation)
    return jnp.einsum(f"{shared}{rank},{rank}{rest}->{rhs}", lora_a, lora_b, precision=highest)


def merged_weight(model: nnx.Module, path: str, lora: LoraConfig | None) -> jax.Array:
    """The weight at ``path`` (dotted, as in ``hf_tensors``), plus its scaled LoRA update."""
    *modules, name = path.split(".")
    module = model
    for part in modules:
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    weight: jax.Array = getattr(module, name).get_value()
    adapter = getattr(module, f"{name}_lora_a", None)
    if adapter is None:
        return weight
    if lora is None:
        raise ValueError(f"{path} has LoRA adapters but the model card has no lora config")
    delta = _lora_delta(module, adapter.get_value(), getattr(module, f"{name}_lora_b").get_value())
    return weight + delta.reshape(weight.shape) * (lora.alpha / lora.rank)


def _header(shapes: dict[str, tuple[int, ...]], dtype: np.dtype) -> bytes:
    """A safetensors header for ``shapes`` stored in this order, padded to 8 bytes."""
    entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * dtype.itemsize
        entries[name] = {
            "dtype": SAFETENSORS_DTYPES[dtype.name],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def weights_dtype(model: nnx.Module) -> np.dtype:
    return np.dtype(model.embedder.input_embedding.get_value().dtype)


def host_tensors(model: nnx.Module, lora: LoraConfig | None, path: Path) -> Iterator[np.ndarray]:
    """Each Hugging Face tensor of ``model`` on this host, in ``expected_shapes`` order, checked
    against the shape ``path`` declares; a weight spread over processes is gathered from all."""
    config: TunixConfig = model.config
    sources = hf_tensors(config)
    dtype = weights_dtype(model)
    for name, shape in jax_pretrained.expected_shapes(config).items():
        weight_path, transform = sources[name]
        tensor = jax_distributed.host_array(transform(merged_weight(model, weight_path, lora)))
        if tensor.shape != shape or tensor.dtype != dtype:
            raise ValueError(
                f"{name} from {weight_path} is {tensor.dtype}{tensor.shape}, "
                f"{path} declares {dtype}{shape}"
            )
        yield tensor


def write_weights(path: Path, model: nnx.Module, lora: LoraConfig | None) -> None:
    """``model``'s weights as a Hugging Face ``model.safetensors``: each tensor is laid out on its
    devices, copied to the host and written before the next, so the host never holds the model.
    Written beside ``path`` and moved over it, so a crash leaves no truncated file. In a run of
    several processes every one gathers each tensor with the others, and process 0 writes."""
    if not jax_distributed.is_primary():
        for _ in host_tensors(model, lora, path):
            pass
        return
    shapes = jax_pretrained.expected_shapes(model.config)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(scratch, 0o644)  # mkstemp creates 0600; a model folder is meant to be shared
        with os.fdopen(handle, "wb") as out:
            out.write(_header(shapes, weights_dtype(model)))
            for tensor in host_tensors(model, lora, path):
                out.write(np.ascontiguousarray(tensor).view(np.uint8).data)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def transformers_config(
    card: dict[str, Any], config: TunixConfig, tokenizer: Any
) -> dict[str, Any]:
    """The transformers config of the card's model: its pretrained folder's, or its random
    architecture's with the tokenizer's special ids and the vocabulary of the Tunix config (Tunix's
    Gemma 2B presets pad it to 256128). Refused if it would not compute what ``config`` does."""
    from transformers import AutoConfig

    if card["pretrained_config"] is not None:
        hf = dict(card["pretrained_config"])
    else:
        params = {**ARCHITECTURES[card["architecture"]], "vocab_size": config.num_embed}
        params |= {key: getattr(tokenizer, name) for key, name in pretrained_tokenizer.SPECIAL_IDS}
        hf = AutoConfig.for_model(params.pop("model_type"), **params).to_dict()
    exported = jax_pretrained.tunix_config(hf, f"the exported {CONFIG}")
    for field in dataclasses.fields(exported):
        given, trained = getattr(exported, field.name), getattr(config, field.name)
        if field.name != "shd_config" and given != trained:
            raise ValueError(
                f"the exported {CONFIG} gives {field.name}={given!r}, the trained model has "
                f"{trained!r}"
            )
    return hf


def write_config(folder: Path, hf: dict[str, Any], dtype: str) -> None:
    """``hf`` as the folder's ``config.json`` (the causal LM class named, weights as ``dtype``) and
    the ``generation_config.json`` transformers derives from it."""
    from transformers import AutoConfig, GenerationConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    params = dict(hf)
    model_type = params.pop("model_type")
    config = AutoConfig.for_model(model_type, **params)
    config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type]]
    config.dtype = dtype
    config.save_pretrained(folder)
    GenerationConfig.from_model_config(config).save_pretrained(folder)


def export(folder: Path, model: nnx.Module, hf: dict[str, Any], lora: LoraConfig | None) -> None:
    """``model`` (LoRA merged) in Hugging Face layout in ``folder``: weights and configs, written
    by process 0 of a run of several."""
    write_weights(folder / WEIGHTS, model, lora)
    if jax_distributed.is_primary():
        write_config(folder, hf, weights_dtype(model).name)
