"""Hugging Face Gemma, Gemma 2 and Gemma 3 folders on the jax backend: Tunix config from
config.json, checked weights streamed onto their shards."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import jax
import numpy as np
import safetensors
from flax import nnx
from tunix.models import safetensors_loader
from tunix.models.gemma import model as gemma
from tunix.models.gemma import params_safetensors
from tunix.models.gemma3 import model as gemma3
from tunix.models.gemma3 import params_safetensors as gemma3_safetensors

from trainers.jax import gemma3 as jax_gemma3
from trainers.jax import tunix_shape

CONFIG = "config.json"
MODEL_TYPES = ("gemma", "gemma2", jax_gemma3.MODEL_TYPE)
# Tunix's config and model of each family: Gemma and Gemma 2 share one class, Gemma 3 has its own.
TunixConfig = gemma.ModelConfig | gemma3.ModelConfig
TunixModel = gemma.Gemma | gemma3.Gemma3
LAYER_TYPES = {
    "full_attention": gemma.AttentionType.GLOBAL,
    "sliding_attention": gemma.AttentionType.LOCAL_SLIDING,
}
# Values Tunix's Gemma hard-codes (its RMSNorm epsilon, RoPE base, tanh GELU, tied unembedding):
# a checkpoint that needs another would load and silently compute something else.
FIXED = {
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "attention_bias": False,
    "tie_word_embeddings": True,
}
ACTIVATION = "gelu_pytorch_tanh"
# The key of Tunix 0.1.7's safetensors map that sends Gemma 1's post_attention_layernorm, the
# norm before the feed-forward block, to post_attn_norm: a Gemma 1 has no such norm.
POST_ATTENTION_NORM = r"model\.layers\.([0-9]+)\.post_attention_layernorm\.weight"
GEMMA1_POST_ATTENTION_NORM = (r"layers.\1.pre_ffw_norm.scale", None)
# A safetensors file opens with the length of its JSON header, a little-endian unsigned 64 bits.
HEADER_BYTES = 8
# Where Tunix's key map sends what its Gemma has no weight for (lm_head, rotary buffers, biases).
UNUSED = "unused."


def read_config(folder: Path) -> dict[str, Any]:
    """``folder``'s config.json with transformers' defaults for the keys it leaves out."""
    from transformers import AutoConfig

    path = folder / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"model folder {folder} has no {CONFIG}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    model_type = raw.pop("model_type", None)
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{path}: model_type {model_type!r}; the jax backend loads {', '.join(MODEL_TYPES)}"
        )
    config: dict[str, Any] = AutoConfig.for_model(model_type, **raw).to_dict()
    return config


def tunix_config(hf: dict[str, Any], where: str) -> TunixConfig:
    """The Tunix Gemma of a transformers config dict (``read_config``); ``where`` names its file."""
    if hf["model_type"] == jax_gemma3.MODEL_TYPE:
        return jax_gemma3.tunix_config(hf, where)
    for key, wanted in FIXED.items():
        tunix_shape.require(hf, key, wanted, where, "Gemma")
    # Gemma 1 configs keep a legacy hidden_act that hidden_activation overrides when set.
    activation = "hidden_activation" if hf.get("hidden_activation") else "hidden_act"
    tunix_shape.require(hf, activation, ACTIVATION, where, "Gemma")
    layers = hf["num_hidden_layers"]
    if hf["model_type"] == "gemma":
        variant: dict[str, Any] = {
            "final_logit_softcap": None,
            "use_post_attn_norm": False,
            "use_post_ffw_norm": False,
            "attention_types": (gemma.AttentionType.GLOBAL,) * layers,
        }
    else:
        # Tunix scales queries by head_dim ** -0.5, which is Gemma 2's scalar at 2B and 9B.
        tunix_shape.require(hf, "query_pre_attn_scalar", hf["head_dim"], where, "Gemma")
        unknown = sorted(set(hf["layer_types"]) - set(LAYER_TYPES))
        if unknown:
            raise ValueError(f"{where}: layer_types has {unknown[0]!r}, Tunix's Gemma has none")
        variant = {
            "final_logit_softcap": hf["final_logit_softcapping"],
            "attn_logits_soft_cap": hf["attn_logit_softcapping"],
            "sliding_window_size": hf["sliding_window"],
            "use_post_attn_norm": True,
            "use_post_ffw_norm": True,
            "attention_types": tuple(LAYER_TYPES[kind] for kind in hf["layer_types"]),
        }
    return gemma.ModelConfig(**tunix_shape.shape_of(hf), **variant)


def is_gemma3(config: TunixConfig) -> bool:
    return isinstance(config, gemma3.ModelConfig)


def model_class(config: TunixConfig) -> type[TunixModel]:
    return gemma3.Gemma3 if is_gemma3(config) else gemma.Gemma


def layer_norms(config: TunixConfig) -> dict[str, int]:
    """Each norm of a Hugging Face layer of ``config`` with its width: Gemma 2 adds the norms
    around the feed-forward block, Gemma 3 those of its queries and keys."""
    norms = dict.fromkeys(("input_layernorm", "post_attention_layernorm"), config.embed_dim)
    if is_gemma3(config) or config.use_post_ffw_norm:
        names = ("pre_feedforward_layernorm", "post_feedforward_layernorm")
        norms |= dict.fromkeys(names, config.embed_dim)
    if is_gemma3(config):
        norms |= dict.fromkeys(("self_attn.q_norm", "self_attn.k_norm"), config.head_dim)
    return norms


def expected_shapes(config: TunixConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a Hugging Face checkpoint of ``config`` holds, with its shape."""
    embed, ffw = config.embed_dim, config.hidden_dim
    queries, keys = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
    norms = layer_norms(config)
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (config.num_embed, embed),
        "model.norm.weight": (embed,),
    }
    for layer in range(config.num_layers):
        prefix = f"model.layers.{layer}."
        shapes |= {
            f"{prefix}self_attn.q_proj.weight": (queries, embed),
            f"{prefix}self_attn.k_proj.weight": (keys, embed),
            f"{prefix}self_attn.v_proj.weight": (keys, embed),
            f"{prefix}self_attn.o_proj.weight": (embed, queries),
            f"{prefix}mlp.gate_proj.weight": (ffw, embed),
            f"{prefix}mlp.up_proj.weight": (ffw, embed),
            f"{prefix}mlp.down_proj.weight": (embed, ffw),
        }
        shapes |= {f"{prefix}{norm}.weight": (width,) for norm, width in norms.items()}
    return shapes


def check_weights(folder: Path, config: TunixConfig) -> None:
    """Refuse, in one line naming the file and tensor, weights that do not fit ``config``."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"model folder {folder} has no *.safetensors weights")
    expected = expected_shapes(config)
    seen: set[str] = set()
    for file in files:
        with safetensors.safe_open(str(file), framework="numpy") as weights:
            for name in weights.keys():  # noqa: SIM118 (a safetensors handle is no dict)
                shape = tuple(weights.get_slice(name).get_shape())
                if name in expected and shape != expected[name]:
                    raise ValueError(
                        f"{file}: {name} has shape {shape}, {CONFIG} makes it {expected[name]}"
                    )
                seen.add(name)
    missing = [name for name in expected if name not in seen]
    if missing:
        raise ValueError(
            f"{folder}: no {missing[0]} in its *.safetensors files, which {CONFIG} needs "
            f"({len(missing)} tensors missing)"
        )


def key_mapping(config: TunixConfig) -> dict[str, Any]:
    """Tunix's safetensors key map, with Gemma 1's feed-forward norm sent where it belongs."""
    if is_gemma3(config):
        gemma3_mapping: dict[str, Any] = gemma3_safetensors._get_key_and_transform_mapping(config)
        return gemma3_mapping
    mapping: dict[str, Any] = params_safetensors._get_key_and_transform_mapping(config)
    if not config.use_post_attn_norm:
        mapping[POST_ATTENTION_NORM] = GEMMA1_POST_ATTENTION_NORM
    return mapping


def preprocess_fn(config: TunixConfig) -> Any:
    """Tunix's safetensors preprocessing of ``config``'s family (it stacks q, k and v)."""
    if is_gemma3(config):
        return gemma3_safetensors._make_preprocess_fn(config)
    return params_safetensors._make_preprocess_fn(config)


def abstract_weights(
    config: TunixConfig, mesh: jax.sharding.Mesh
) -> tuple[nnx.GraphDef[TunixModel], nnx.State, dict[str, nnx.Variable[Any]]]:
    """The Gemma of ``config`` as shapes only, built under ``mesh`` and split into its graph and
    state, and the state's variables (the same objects) under Tunix's dotted keys."""
    build = model_class(config)
    with jax.set_mesh(mesh):
        abstract = nnx.eval_shape(lambda: build(config, rngs=nnx.Rngs(params=0)))
    graph, state = nnx.split(abstract)
    variables = {
        safetensors_loader.path_to_key(path): variable
        for path, variable in nnx.to_flat_state(state)
    }
    return graph, state, variables


def read_tensors(file: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Each tensor of a safetensors ``file`` in its stored dtype, one at a time, read with plain
    file reads: nothing maps the file, so none of its pages stays in the process's memory."""
    with file.open("rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(HEADER_BYTES))
        header: dict[str, Any] = json.loads(stream.read(length))
        header.pop("__metadata__", None)
        for name, entry in header.items():
            yield name, read_tensor(file, stream, HEADER_BYTES + length, name, entry)


def read_tensor(
    file: Path, stream: BinaryIO, data_start: int, name: str, entry: dict[str, Any]
) -> np.ndarray:
    """The tensor ``name`` of ``file`` (open as ``stream``), where its header ``entry`` puts it."""
    dtype = safetensors_loader.to_np_dtype(entry["dtype"])
    if dtype is None:
        raise ValueError(f"{file}: {name} has dtype {entry['dtype']}, which Tunix does not read")
    begin, end = entry["data_offsets"]
    data = np.empty(end - begin, dtype=np.uint8)
    stream.seek(data_start + begin)
    if stream.readinto(data) != data.size:
        raise ValueError(f"{file}: {name} runs past the end of the file")
    return data.view(dtype).reshape(entry["shape"])


def mapped_tensor(
    file: Path, name: str, tensor: np.ndarray, key_map: dict[str, Any]
) -> dict[str, np.ndarray]:
    """``tensor`` under its Tunix key, permuted and reshaped as Tunix's key map says; nothing for
    a tensor the map sends to its unused keys, which Tunix's loaders drop too."""
    try:
        key, transform = safetensors_loader.torch_key_to_jax_key(key_map, name)
    except ValueError:
        raise ValueError(f"{file}: {name} has no place in Tunix's Gemma") from None
    if key.startswith(UNUSED):
        return {}
    if transform is not None:
        permute, reshape = transform
        if permute:
            tensor = tensor.transpose(permute)
        if reshape:
            tensor = tensor.reshape(reshape)
    return {key: tensor}


def assign(
    file: Path,
    name: str,
    variable: nnx.Variable[Any] | None,
    value: np.ndarray | jax.Array,
    mesh: jax.sharding.Mesh,
) -> None:
    """``value`` (made from the tensor ``name`` of ``file``) as ``variable``'s weight, in float32
    on the shards of ``mesh`` the model's partitioning gives it."""
    if variable is None:
        raise ValueError(f"{file}: {name} maps to a weight Tunix's Gemma does not have")
    wanted = variable.get_value().shape
    if value.shape != wanted:
        raise ValueError(f"{file}: {name} gives shape {value.shape}, Tunix's Gemma needs {wanted}")
    sharding = nnx.get_named_sharding(variable, mesh).get_value()
    variable.set_value(jax.device_put(np.asarray(value, dtype=np.float32), sharding))


def check_assigned(folder: Path, variables: dict[str, nnx.Variable[Any]]) -> None:
    """Refuse, naming the first, weights that no tensor of ``folder`` was assigned to."""
    unassigned = [
        key
        for key, variable in variables.items()
        if isinstance(variable.get_value(), jax.ShapeDtypeStruct)
    ]
    if unassigned:
        raise ValueError(
            f"{folder}: no tensor for Tunix's {unassigned[0]} "
            f"({len(unassigned)} weights unassigned)"
        )


def load_weights(folder: Path, config: TunixConfig, mesh: jax.sharding.Mesh) -> TunixModel:
    """The Gemma of ``config`` with ``folder``'s weights in float32, each put on its shard of
    ``mesh`` as the model's own partitioning places it. The files are read one after another, a
    tensor at a time, through Tunix's key map and preprocessing (which holds a layer's queries,
    keys and values until it can stack them), so the host holds only a few tensors at once
    besides the model's weights."""
    check_weights(folder, config)
    graph, state, variables = abstract_weights(config, mesh)
    key_map = key_mapping(config)
    preprocess = preprocess_fn(config)
    for file in sorted(folder.glob("*.safetensors")):
        for name, tensor in read_tensors(file):
            for key, value in preprocess(mapped_tensor(file, name, tensor, key_map)).items():
                assign(file, name, variables.get(key), value, mesh)
    check_assigned(folder, variables)
    model: TunixModel = nnx.merge(graph, state)
    return model
