"""Kaggle's Flax Gemma checkpoints on the jax backend: the Tunix config read from the orbax shapes,
each weight restored by orbax straight onto its shard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from tunix.models.gemma import model as gemma
from tunix.models.gemma import params as gemma_params

from trainers import pretrained_tokenizer, tiny_checkpoints
from trainers.config import LoraConfig
from trainers.jax import model as jax_model
from trainers.jax import pretrained as jax_pretrained
from trainers.jax.tunix_shape import SHAPE_FIELDS
from trainers.models import flax_checkpoint

TunixPath = tuple[str | int, ...]
# Orbax key and leaf ("transformer/layer_0/attn/q_einsum", "w") of each Tunix weight.
OrbaxName = tuple[str, str]
Found = dict[TunixPath, tuple[OrbaxName, tuple[int, ...]]]
# Kaggle's gating_einsum holds gate and up projections at once; Tunix's map sends it to gate_proj.
GATE, UP = ("mlp", "gate_proj", "kernel"), ("mlp", "up_proj", "kernel")
POST_ATTENTION_NORM = ("layers", 0, "post_attn_norm", "scale")
LAYER_NAMES = {kind: name for name, kind in jax_pretrained.LAYER_TYPES.items()}


def _tiny_gemma2() -> gemma.ModelConfig:
    """The tiny Gemma 2 of ``trainers/tiny_checkpoints.py``, which tests and rehearsals build."""
    from transformers import AutoConfig

    shape = dict(tiny_checkpoints.SHAPES["gemma2"])
    hf = AutoConfig.for_model(shape.pop("model_type"), **shape).to_dict()
    return jax_pretrained.tunix_config(hf, "trainers/tiny_checkpoints.py")


# What no Gemma 2 weight shows (softcaps, sliding window, layer pattern) comes from the preset of
# the same shape; another shape (the 27B scales its queries otherwise) is refused.
GEMMA2_PRESETS: dict[str, Callable[[], gemma.ModelConfig]] = {
    "gemma2-2b": gemma.ModelConfig.gemma2_2b,
    "gemma2-9b": gemma.ModelConfig.gemma2_9b,
    "tiny gemma2": _tiny_gemma2,
}


def tunix_names(checkpoint: Path) -> Found:
    """Each weight of an orbax checkpoint by its path in Tunix's Gemma, with its orbax name and
    shape, from the metadata alone. The paths come from Tunix's own linen-to-nnx key map, run over
    the orbax names in place of the arrays."""
    tree = ocp.StandardCheckpointer().metadata(checkpoint.resolve()).item_metadata.tree
    names = {key: {leaf: (key, leaf) for leaf in leaves} for key, leaves in tree.items()}
    nested = gemma_params._unflatten_params(gemma_params._param_remapper(names))
    if "transformer" not in nested:
        raise ValueError(f"{checkpoint}: no transformer/ weights, as Kaggle's Gemma has")
    found: Found = {}
    for linen_path, (key, leaf) in flax.traverse_util.flatten_dict(nested["transformer"]).items():
        found[gemma._map_linen_var_names(linen_path)] = ((key, leaf), tuple(tree[key][leaf].shape))
    return found


def _shape(
    shapes: dict[TunixPath, tuple[int, ...]], path: TunixPath, where: str
) -> tuple[int, ...]:
    if path not in shapes:
        dotted = ".".join(map(str, path))
        raise ValueError(
            f"{where}: no weight for Tunix's {dotted}, which the model's shape is read from"
        )
    return shapes[path]


def hf_config(shapes: dict[TunixPath, tuple[int, ...]], where: str) -> dict[str, Any]:
    """The transformers config (as ``jax_pretrained.read_config`` gives it) of the Gemma whose
    Tunix weights have ``shapes``; ``where`` names the checkpoint."""
    from transformers import AutoConfig

    vocab, embed = _shape(shapes, ("embedder", "input_embedding"), where)
    hidden, _ = _shape(shapes, ("layers", 0, "mlp", "down_proj", "kernel"), where)
    heads, head_dim, _ = _shape(shapes, ("layers", 0, "attn", "attn_vec_einsum", "w"), where)
    kv = ("layers", 0, "attn", "kv_einsum", "w")
    kv_heads = shapes[kv][1] if kv in shapes else heads  # a qkv_einsum has no fewer kv heads
    layers = len({path[1] for path in shapes if path[0] == "layers"})
    fields: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": embed,
        "intermediate_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        **tiny_checkpoints.SPECIAL_IDS,  # Gemma's, as in Kaggle's tokenizer.model
    }
    if POST_ATTENTION_NORM not in shapes:
        config: dict[str, Any] = AutoConfig.for_model("gemma", **fields).to_dict()
        return config
    shape = (layers, vocab, embed, hidden, heads, head_dim, kv_heads)
    presets = [make() for make in GEMMA2_PRESETS.values()]
    preset = next((p for p in presets if tuple(getattr(p, f) for f in SHAPE_FIELDS) == shape), None)
    if preset is None:
        described = ", ".join(f"{f}={n}" for f, n in zip(SHAPE_FIELDS, shape, strict=True))
        raise ValueError(
            f"{where}: a Gemma 2 of {described} matches none of Tunix's Gemma 2 presets "
            f"({', '.join(GEMMA2_PRESETS)}), which give its softcaps and sliding window"
        )
    config = AutoConfig.for_model(
        "gemma2",
        **fields,
        query_pre_attn_scalar=head_dim,  # Tunix scales queries by head_dim ** -0.5
        sliding_window=preset.sliding_window_size,
        attn_logit_softcapping=preset.attn_logits_soft_cap,
        final_logit_softcapping=preset.final_logit_softcap,
        layer_types=[LAYER_NAMES[kind] for kind in preset.attention_types],
    ).to_dict()
    return config


@jax_model.quiet_tunix()
def read_config(folder: Path) -> dict[str, Any]:
    """The transformers config of a folder in Kaggle's Flax layout, checked to be one Tunix's
    Gemma computes and to fit every weight's shape."""
    checkpoint, found, config = _read(folder)
    abstract = _abstract(jax_model.on_mesh(jax_pretrained.tunix_config(config, str(checkpoint))))
    check_shapes(checkpoint, found, dict(nnx.to_flat_state(nnx.state(abstract))))
    return config


def _read(folder: Path) -> tuple[Path, Found, dict[str, Any]]:
    checkpoint = flax_checkpoint(folder)
    if checkpoint is None:
        raise FileNotFoundError(f"model folder {folder} holds no orbax checkpoint")
    found = tunix_names(checkpoint)
    config = hf_config({path: shape for path, (_, shape) in found.items()}, str(checkpoint))
    jax_pretrained.tunix_config(config, str(checkpoint))
    return checkpoint, found, config


def _abstract(config: gemma.ModelConfig) -> gemma.Gemma:
    abstract: gemma.Gemma = nnx.eval_shape(lambda: gemma.Gemma(config, rngs=nnx.Rngs(params=0)))
    return abstract


def check_shapes(
    checkpoint: Path, found: Found, variables: dict[TunixPath, Any]
) -> dict[TunixPath, bool]:
    """Refuse, in one line naming the checkpoint and key, a weight that does not fit the model
    (``variables``, its flat abstract state) or one it lacks. Returns, for each gating weight,
    whether it is stored transposed: Kaggle's Gemma 1 and Gemma 2 2B store (2, embed, hidden),
    its Gemma 2 9B (2, hidden, embed)."""
    transposed: dict[TunixPath, bool] = {}
    for path, ((key, leaf), shape) in found.items():
        if path not in variables:
            raise ValueError(f"{checkpoint}: {key}/{leaf} has no place in Tunix's Gemma")
        wanted = tuple(variables[path].get_value().shape)
        if path[2:] == GATE:
            stacked, reversed_ = (2, *wanted), (2, *wanted[::-1])
            transposed[path] = shape == reversed_ != stacked
            wanted = reversed_ if transposed[path] else stacked
        if shape != wanted:
            raise ValueError(
                f"{checkpoint}: {key}/{leaf} has shape {shape}, the checkpoint's other weights "
                f"make it {wanted}"
            )
    covered = set(found) | {path[:2] + UP for path in transposed}
    missing = [path for path in variables if path not in covered]
    if missing:
        dotted = ".".join(map(str, missing[0]))
        raise ValueError(
            f"{checkpoint}: no weight for Tunix's {dotted} ({len(missing)} weights missing)"
        )
    return transposed


def restore_weights(
    checkpoint: Path, found: Found, config: gemma.ModelConfig, mesh: jax.sharding.Mesh
) -> gemma.Gemma:
    """The Gemma of ``config`` with the checkpoint's weights (``found`` by ``tunix_names``) in
    float32, each restored by orbax onto its shard of ``mesh`` as the model's own partitioning
    places it."""
    graph, state = nnx.split(_abstract(config))
    variables = dict(nnx.to_flat_state(state))
    transposed = check_shapes(checkpoint, found, variables)
    specs = {
        path: spec.get_value() for path, spec in nnx.to_flat_state(nnx.get_partition_spec(state))
    }
    target: dict[str, dict[str, jax.ShapeDtypeStruct]] = {}
    for path, ((key, leaf), shape) in found.items():
        spec = specs[path]
        if path in transposed:
            spec = PartitionSpec(None, *(tuple(spec)[::-1] if transposed[path] else spec))
        sharding = NamedSharding(mesh, spec)
        target.setdefault(key, {})[leaf] = jax.ShapeDtypeStruct(
            shape, jnp.float32, sharding=sharding
        )
    restored = ocp.StandardCheckpointer().restore(checkpoint.resolve(), target)
    for path, ((key, leaf), _) in found.items():
        value = restored[key].pop(leaf)  # a gating weight is freed once split
        if path in transposed:
            kernel = NamedSharding(mesh, specs[path])
            gate, up = _split_gating(value, transposed[path], kernel)
            variables[path].set_value(gate)
            variables[path[:2] + UP].set_value(up)
        else:
            variables[path].set_value(value)
    model: gemma.Gemma = nnx.merge(graph, nnx.from_flat_state(variables))
    return model


def _stacked(gating: jax.Array) -> tuple[jax.Array, jax.Array]:
    return gating[0], gating[1]


def _stacked_transposed(gating: jax.Array) -> tuple[jax.Array, jax.Array]:
    return gating[0].T, gating[1].T


def _split_gating(
    gating: jax.Array, transposed: bool, kernel: NamedSharding
) -> tuple[jax.Array, jax.Array]:
    """Kaggle's stacked gating weights as Tunix's gate and up kernels, shard by shard."""
    split = _stacked_transposed if transposed else _stacked
    gate, up = jax.jit(split, out_shardings=(kernel, kernel))(gating)
    return gate, up


@jax_model.quiet_tunix()
def load_kaggle(
    folder: Path, seed: int, mesh: jax.sharding.Mesh, lora: LoraConfig | None
) -> tuple[gemma.Gemma, Any, dict[str, Any]]:
    """``jax_model.load_pretrained`` for a folder in Kaggle's Flax layout: the Gemma sharded over
    ``mesh`` (LoRA adapters seeded by ``seed`` when ``lora`` is set), its checked tokenizer, and
    the transformers config of its shape, which the model card keeps."""
    checkpoint, found, hf = _read(folder)
    config = jax_model.on_mesh(jax_pretrained.tunix_config(hf, str(checkpoint)))
    tokenizer = pretrained_tokenizer.load_tokenizer(folder)
    pretrained_tokenizer.check_tokenizer(
        tokenizer, hf, folder, f"the config derived from {checkpoint}"
    )
    model = restore_weights(checkpoint, found, config, mesh)
    return jax_model.with_lora(model, seed, mesh, lora), tokenizer, hf
