"""Tunix Gemma models for the jax backend: architectures, device mesh, sharded init, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jax
import qwix
from flax import nnx
from tunix.models.gemma import model as gemma
from tunix.rl import reshard
from tunix.sft.checkpoint_manager import CheckpointManager

from trainers import pretrained_tokenizer
from trainers.config import JAX_LORA_MODULES, LoraConfig, MeshConfig
from trainers.jax import distributed as jax_distributed
from trainers.jax import export as jax_export
from trainers.jax import pretrained as jax_pretrained
from trainers.jax import tunix_shape
from trainers.jax.pretrained import TunixConfig, TunixModel
from trainers.models import ARCHITECTURES, ModelSource

PLATFORMS = {"cpu": "cpu", "cuda": "gpu", "tpu": "tpu"}
MESH_AXES = ("data", "fsdp")
# Every batch is split over all devices: "data" replicates the weights, "fsdp" shards them.
BATCH_AXES = (MESH_AXES,)
MLP_KERNELS = ("gate_proj", "up_proj", "down_proj")
QKV = ("q_proj", "k_proj", "v_proj")
# The Hugging Face layout's config.json is transformers' config; the card has a name of its own.
MODEL_CARD = "model_card.json"
STATE_DIR = "state"


def _tiny_gemma() -> gemma.ModelConfig:
    """The torch backend's ``tiny-gemma`` shape, read from its table so the two cannot drift."""
    shape = ARCHITECTURES["tiny-gemma"]
    layers = shape["num_hidden_layers"]
    return gemma.ModelConfig(
        num_layers=layers,
        num_embed=shape["vocab_size"],
        embed_dim=shape["hidden_size"],
        hidden_dim=shape["intermediate_size"],
        num_heads=shape["num_attention_heads"],
        head_dim=shape["head_dim"],
        num_kv_heads=shape["num_key_value_heads"],
        final_logit_softcap=None,
        use_post_attn_norm=False,
        use_post_ffw_norm=False,
        attention_types=(gemma.AttentionType.GLOBAL,) * layers,
    )


def _gemma3_1b() -> TunixConfig:
    """The torch backend's ``gemma-3-1b``: its transformers config as Tunix's Gemma3."""
    from transformers import AutoConfig

    shape = dict(ARCHITECTURES["gemma-3-1b"])
    hf = AutoConfig.for_model(shape.pop("model_type"), **shape).to_dict()
    return jax_pretrained.tunix_config(hf, "trainers/models.py")


TUNIX_CONFIGS: dict[str, Callable[[], TunixConfig]] = {
    "tiny-gemma": _tiny_gemma,
    "gemma-2b": gemma.ModelConfig.gemma_2b,
    "gemma-2-2b": gemma.ModelConfig.gemma2_2b,
    "gemma-3-1b": _gemma3_1b,
}


def architecture(source: str) -> str:
    """The architecture of a ``random:<arch>`` source."""
    parsed = ModelSource.parse(source)
    if parsed.location not in TUNIX_CONFIGS:
        known = ", ".join(sorted(TUNIX_CONFIGS))
        raise ValueError(
            f"the jax backend has no Tunix config for {parsed.location!r}; it has {known}"
        )
    return parsed.location


def loadable(source: str) -> ModelSource:
    """``source`` parsed, if the jax backend can build it: a ``random:<arch>`` it has a Tunix
    config for, or a ``local:``/``hf:`` folder in Hugging Face layout."""
    parsed = ModelSource.parse(source)
    if parsed.kind == "random":
        architecture(source)
    return parsed


def build_mesh(config: MeshConfig, device: str) -> jax.sharding.Mesh:
    """A (data, fsdp) mesh over the first ``data * fsdp`` devices of the ``device`` platform."""
    devices = jax.devices(PLATFORMS[device])
    wanted = config.data * config.fsdp
    if len(devices) < wanted:
        raise ValueError(
            f"mesh data={config.data} x fsdp={config.fsdp} needs {wanted} {device} devices, "
            f"jax sees {len(devices)}"
        )
    chosen = devices[:wanted]
    # Every process runs every step: one with no device in the mesh would have nothing to run.
    idle = sorted({d.process_index for d in devices} - {d.process_index for d in chosen})
    if idle:
        raise ValueError(
            f"mesh data={config.data} x fsdp={config.fsdp} takes {wanted} of the {len(devices)} "
            f"{device} devices of {jax.process_count()} processes and none of process "
            f"{', '.join(map(str, idle))}: give the mesh every process's devices"
        )
    # Tunix's Gemma places its sharding constraints by name, which needs auto (not explicit) axes.
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return jax.make_mesh((config.data, config.fsdp), MESH_AXES, auto, devices=chosen)


@contextmanager
def quiet_tunix() -> Iterator[None]:
    """Silence the deprecation warnings of jax, flax and optax APIs that Tunix 0.1.7 and qwix still
    call: nothing in this project can act on them."""
    legacy = r".*(with mesh:|thread_resources|'sharding' is deprecated|optax\.global_norm)"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(tunix|qwix)\.")
        warnings.filterwarnings("ignore", legacy, DeprecationWarning)
        yield


def mesh_sharding(kind: type[Any] = gemma.ShardingConfig) -> Any:
    """Tunix's partitioning (its ShardingConfig class ``kind``) on this mesh: weights over "fsdp" as
    Tunix has them, no tensor parallelism, the batch dimension of activations over both axes like
    the input batches, and none for a vision tower (Gemma3's, which a text model lacks)."""
    default = kind.get_default_sharding()

    def on_mesh(field: str, axes: Any) -> tuple[Any, ...] | None:
        if not isinstance(axes, tuple):
            return None
        sharded = BATCH_AXES[0] if field.startswith("act_") else "fsdp"
        return tuple(sharded if axis == "fsdp" else None for axis in axes)

    return kind(
        **{f.name: on_mesh(f.name, getattr(default, f.name)) for f in dataclasses.fields(default)}
    )


def tunix_config(arch: str) -> TunixConfig:
    return on_mesh(TUNIX_CONFIGS[arch]())


def on_mesh(config: TunixConfig) -> Any:
    return dataclasses.replace(config, shd_config=mesh_sharding(type(config.shd_config)))


@quiet_tunix()
def build_model(
    arch: str, seed: int, mesh: jax.sharding.Mesh, lora: LoraConfig | None
) -> TunixModel:
    """The Gemma of ``arch``, randomly initialised from ``seed``, sharded over ``mesh``, with LoRA
    adapters when ``lora`` is set."""
    return with_lora(random_model(tunix_config(arch), seed, mesh), seed, mesh, lora)


def random_model(config: TunixConfig, seed: int, mesh: jax.sharding.Mesh) -> TunixModel:
    """The Gemma of ``config`` randomly initialised from ``seed``, each weight on its shard.

    Tunix's FeedForward starts its gate, up and down kernels at zero, where they get no gradient
    and a random model's MLP never trains: they start as its Einsum weights do, normal(0.01).
    """

    build = jax_pretrained.model_class(config)

    @nnx.jit
    def create() -> TunixModel:
        rngs = nnx.Rngs(params=seed)
        model = build(config, rngs=rngs)
        for layer in model.layers:
            for name in MLP_KERNELS:
                kernel = getattr(layer.mlp, name).kernel
                value = kernel.get_value()
                kernel.set_value(nnx.initializers.normal()(rngs.params(), value.shape, value.dtype))
        state = nnx.state(model)
        nnx.update(model, jax.lax.with_sharding_constraint(state, nnx.get_partition_spec(state)))
        return model

    with mesh:  # the legacy context, which is where Tunix 0.1.7 looks for the mesh
        return create()


def with_lora(
    model: TunixModel, seed: int, mesh: jax.sharding.Mesh, lora: LoraConfig | None
) -> TunixModel:
    if lora is None:
        return model
    return reshard.reshard_model_to_mesh(lora_adapted(model, seed, lora), mesh)


def lora_module_path(lora: LoraConfig, fused_qkv: bool) -> str:
    """qwix's module-path pattern for the projections ``lora.target_modules`` names, as Tunix holds
    them (``JAX_LORA_MODULES``). Where the heads match Tunix holds q, k and v in one weight
    (``fused_qkv``), which can only be adapted whole."""
    targets = set(lora.target_modules)
    modules = {JAX_LORA_MODULES[name] for name in targets}
    if fused_qkv:
        named = targets & set(QKV)
        if named and named != set(QKV):
            raise ValueError(
                "lora.target_modules: this model holds q, k and v in one weight (qkv_einsum), so "
                f"q_proj, k_proj and v_proj are adapted together or not at all, not only "
                f"{', '.join(sorted(named))}"
            )
        modules = (modules - {"q_einsum", "kv_einsum"}) | ({"qkv_einsum"} if named else set())
    # Paths are "layers/0/attn/kv_einsum": anchored at a "/", kv_einsum leaves qkv_einsum alone.
    return "|".join(f".*/{module}" for module in sorted(modules))


def lora_adapted(model: TunixModel, seed: int, lora: LoraConfig) -> TunixModel:
    """``model`` with qwix LoRA adapters (seeded by ``seed``) on the projections it names."""
    fused = model.config.num_heads == model.config.num_kv_heads
    provider = qwix.LoraProvider(
        module_path=lora_module_path(lora, fused), rank=lora.rank, alpha=lora.alpha
    )
    adapted: TunixModel = qwix.apply_lora_to_model(
        model, provider, rngs=nnx.Rngs(seed), **model.get_model_input()
    )
    return adapted


def abstract_model(
    config: TunixConfig, mesh: jax.sharding.Mesh, lora: LoraConfig | None
) -> TunixModel:
    """The Gemma of ``config`` (with LoRA adapters when ``lora`` is set) as the shape, dtype and
    shard on ``mesh`` of each weight: nothing is initialised, so orbax restores straight into it."""
    build = jax_pretrained.model_class(config)

    def create() -> TunixModel:
        model = build(config, rngs=nnx.Rngs(params=0))
        return model if lora is None else lora_adapted(model, 0, lora)

    with mesh:
        shapes = nnx.eval_shape(create)
    graph, state = nnx.split(shapes)
    state = jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        state,
        nnx.get_named_sharding(state, mesh),
    )
    model: TunixModel = nnx.merge(graph, state)
    return model


@quiet_tunix()
def load_pretrained(
    folder: Path, seed: int, mesh: jax.sharding.Mesh, lora: LoraConfig | None
) -> tuple[TunixModel, Any, dict[str, Any]]:
    """The Gemma of a Hugging Face folder sharded over ``mesh`` (LoRA adapters seeded by ``seed``
    when ``lora`` is set), its checked tokenizer, and its transformers config."""
    hf = jax_pretrained.read_config(folder)
    config = on_mesh(jax_pretrained.tunix_config(hf, str(folder / jax_pretrained.CONFIG)))
    tokenizer = pretrained_tokenizer.load_tokenizer(folder)
    pretrained_tokenizer.check_tokenizer(tokenizer, hf, folder)
    model = jax_pretrained.load_weights(folder, config, mesh)
    return with_lora(model, seed, mesh, lora), tokenizer, hf


def parameter_count(model: nnx.Module) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


def model_card(
    source: str,
    config: TunixConfig,
    seed: int,
    lora: LoraConfig | None,
    mesh: MeshConfig,
    pretrained: dict[str, Any] | None,
) -> dict[str, Any]:
    """What ``load_model`` needs to rebuild the model, and its Tunix shape for a reader.

    A ``random:<arch>`` model is rebuilt from its architecture, a pretrained one from the
    transformers config of its folder (``pretrained``), so the folder may move after training.
    """
    parsed = ModelSource.parse(source)
    return {
        "backend": "jax",
        "model_source": source,
        "architecture": parsed.location if parsed.kind == "random" else None,
        "pretrained_config": pretrained,
        "seed": seed,
        "lora": lora.model_dump() if lora else None,
        "mesh": mesh.model_dump(),
        "tunix_gemma": {name: getattr(config, name) for name in tunix_shape.SHAPE_FIELDS},
    }


def card_config(card: dict[str, Any], where: Path) -> TunixConfig:
    """The sharded Tunix config a model card describes."""
    if card["architecture"] is not None:
        return tunix_config(card["architecture"])
    return on_mesh(jax_pretrained.tunix_config(card["pretrained_config"], str(where)))


def save_checkpoint(
    checkpoint_dir: Path,
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    step: int,
    card: dict[str, Any],
    tokenizer: Any,
) -> None:
    """Orbax state (weights and optimizer) through Tunix's checkpoint manager, the model in Hugging
    Face layout (LoRA merged; ``tokenizer`` gives a random model's special ids) and the card. In a
    run of several processes each writes its shards of the state, and process 0 the rest."""
    state_dir = (checkpoint_dir / STATE_DIR).resolve()
    if jax_distributed.is_primary():
        # One folder holds one run's final state; orbax refuses to overwrite a step.
        shutil.rmtree(state_dir, ignore_errors=True)
    jax_distributed.barrier("old checkpoint state removed")
    manager = CheckpointManager(str(state_dir))
    manager.save(step, model, optimizer, force=True)  # each process its shards, in one folder
    manager.close()
    hf = jax_export.transformers_config(card, model.config, tokenizer)
    jax_export.export(checkpoint_dir, model, hf, _lora(card))
    if jax_distributed.is_primary():
        card_text = json.dumps(card, indent=2) + "\n"
        (checkpoint_dir / MODEL_CARD).write_text(card_text, encoding="utf-8")
    jax_distributed.barrier("checkpoint written")  # no process reads it before it is whole


def _lora(card: dict[str, Any]) -> LoraConfig | None:
    return LoraConfig(**card["lora"]) if card["lora"] else None


def load_model(checkpoint_dir: Path, device: str) -> TunixModel:
    """Rebuild the model of ``checkpoint_dir`` shape-only from its card, each weight placed on its
    shard of the card's mesh, and restore its trained weights into it."""
    path = checkpoint_dir / MODEL_CARD
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint_dir} has no model card {MODEL_CARD}")
    card = json.loads(path.read_text(encoding="utf-8"))
    mesh = build_mesh(MeshConfig(**card["mesh"]), device)
    with quiet_tunix():
        model = abstract_model(card_config(card, path), mesh, _lora(card))
    manager = CheckpointManager(str((checkpoint_dir / STATE_DIR).resolve()))
    step, _ = manager.maybe_restore(model)
    manager.close()
    if step == 0:
        raise FileNotFoundError(f"no orbax state under {checkpoint_dir / STATE_DIR}")
    return model
