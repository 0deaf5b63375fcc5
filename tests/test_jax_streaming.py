"""The jax backend streams a Hugging Face checkpoint onto its shards: the weights are bit for bit
Tunix's own loader's, on the same shards, so a change in Tunix's key map or preprocessing shows; a
tensor with no place and a weight left without a tensor are one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jax")
pytest.importorskip("tunix")
pytest.importorskip("sentencepiece")
pytest.importorskip("torch")
pytestmark = pytest.mark.slow

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import safetensors.numpy  # noqa: E402
from flax import nnx  # noqa: E402
from pretrained_checkpoints import corpus_lines  # noqa: E402
from tunix.models import safetensors_loader  # noqa: E402
from tunix.models.gemma import model as gemma  # noqa: E402
from tunix.models.gemma import params_safetensors  # noqa: E402

from trainers import tiny_checkpoints  # noqa: E402
from trainers.config import MeshConfig  # noqa: E402
from trainers.jax import model as jax_model  # noqa: E402
from trainers.jax import pretrained as jax_pretrained  # noqa: E402

# Small shards, so the tensors of one model come from several files.
SHARD_SIZE = "100KB"
# Name: model type and config changes; published checkpoints are mostly bfloat16.
CHECKPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gemma": ("gemma", {}),
    "gemma2": ("gemma2", {}),
    "gemma2-bf16": ("gemma2", {"torch_dtype": "bfloat16"}),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base, lines = tmp_path_factory.mktemp("streaming"), corpus_lines()
    return {
        name: tiny_checkpoints.build_checkpoint(
            base / name, model_type, lines, 0, max_shard_size=SHARD_SIZE, **changes
        )
        for name, (model_type, changes) in CHECKPOINTS.items()
    }


def config_of(folder: Path) -> gemma.ModelConfig:
    hf = jax_pretrained.read_config(folder)
    return jax_model.on_mesh(jax_pretrained.tunix_config(hf, "config.json"))


def weights(model: gemma.Gemma) -> dict[tuple[Any, ...], jax.Array]:
    return {path: v.get_value() for path, v in nnx.to_flat_state(nnx.state(model))}


def tunix_weights(folder: Path, config: gemma.ModelConfig, mesh: jax.sharding.Mesh) -> Any:
    """What Tunix's loader gives with the key map and preprocessing the backend uses."""
    return safetensors_loader.load_and_create_model(
        str(folder),
        gemma.Gemma,
        config,
        jax_pretrained.key_mapping,
        mesh=mesh,
        preprocess_fn=params_safetensors._make_preprocess_fn(config),
        dtype=jnp.float32,
        mode="optimized",
    )


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_streamed_weights_are_tunix_loader_weights(folders: dict[str, Path], name: str) -> None:
    folder = folders[name]
    assert len(list(folder.glob("*.safetensors"))) > 1
    config, mesh = config_of(folder), jax_model.build_mesh(MeshConfig(), "cpu")
    with jax_model.quiet_tunix():
        ours = weights(jax_pretrained.load_weights(folder, config, mesh))
        theirs = weights(tunix_weights(folder, config, mesh))
    assert ours.keys() == theirs.keys()
    for path, expected in theirs.items():
        streamed = ours[path]
        assert streamed.dtype == expected.dtype == jnp.float32, path
        assert streamed.sharding == expected.sharding, path
        assert np.array_equal(np.asarray(streamed), np.asarray(expected)), path


def load_error(folder: Path) -> str:
    mesh = jax_model.build_mesh(MeshConfig(), "cpu")
    with jax_model.quiet_tunix(), pytest.raises(ValueError) as error:
        jax_pretrained.load_weights(folder, config_of(folder), mesh)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_tensor_with_no_place_is_named(folders: dict[str, Path], tmp_path: Path) -> None:
    folder = Path(shutil.copytree(folders["gemma"], tmp_path / "gemma"))
    extra = folder / "extra.safetensors"
    name = "model.layers.0.self_attn.extra.weight"
    safetensors.numpy.save_file({name: np.zeros((4, 4), dtype=np.float32)}, str(extra))
    assert load_error(folder) == f"{extra}: {name} has no place in Tunix's Gemma"


def test_a_weight_without_a_tensor_is_named(
    folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tunix_map = jax_pretrained.key_mapping

    def dropping_the_final_norm(config: gemma.ModelConfig) -> dict[str, Any]:
        return {**tunix_map(config), r"model\.norm\.weight": ("unused.norm", None)}

    monkeypatch.setattr(jax_pretrained, "key_mapping", dropping_the_final_norm)
    folder = folders["gemma"]
    assert load_error(folder) == (
        f"{folder}: no tensor for Tunix's final_norm.scale (1 weights unassigned)"
    )
