"""Kaggle's Flax Gemma layout on the jax backend: a Gemma and a Gemma 2 give transformers' logits
and greedy generations for the same weights in Hugging Face layout; handles resolve from a
populated kagglehub cache offline; the torch backend and bad shapes are one line each."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jax")
pytest.importorskip("tunix")
pytest.importorskip("kagglehub")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
from flax import nnx  # noqa: E402
from pretrained_checkpoints import corpus_lines  # noqa: E402
from tunix.models.gemma import model as gemma  # noqa: E402
from tunix.sft import utils  # noqa: E402

from harness.phases.preflight import check_model_source  # noqa: E402
from harness.spec.data import load_traces  # noqa: E402
from harness.spec.prompting import format_completion, format_prompt  # noqa: E402
from harness.spec.yaml_files import load_yaml_model  # noqa: E402
from trainers.config import MeshConfig, TrainingConfig  # noqa: E402
from trainers.encoding import encode_prompt  # noqa: E402
from trainers.jax import kaggle as jax_kaggle  # noqa: E402
from trainers.jax import model as jax_model  # noqa: E402
from trainers.jax import pretrained as jax_pretrained  # noqa: E402
from trainers.jax import sampling as jax_sampling  # noqa: E402
from trainers.jax.trainer import JaxTrainer  # noqa: E402
from trainers.models import (  # noqa: E402
    ModelSource,
    build_model_and_tokenizer,
    flax_checkpoint,
    pretrained_folder,
)
from trainers.protocol import Example, TrainRequest  # noqa: E402
from trainers.tiny_checkpoints import KAGGLE_FOLDERS, build_kaggle_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("gemma", "gemma2")
HANDLE = "google/gemma/flax/2b/2"
MAX_NEW_TOKENS = 16
# Longer than Gemma 2's sliding window of 8, so its local layers mask something.
LOGIT_TOKENS = 24


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Per model: the Kaggle-layout folder and the Hugging Face folder of the same weights."""
    base = tmp_path_factory.mktemp("kaggle")
    lines = corpus_lines()
    return {
        name: (
            build_kaggle_checkpoint(base / f"{name}-flax", name, lines, hf_folder=base / name),
            base / name,
        )
        for name in MODELS
    }


def prompts() -> list[str]:
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")
    return [format_prompt(t.prompt) for t in traces][400:403]


@pytest.fixture(scope="module")
def runs(folders: dict[str, tuple[Path, Path]]) -> dict[str, dict[str, Any]]:
    """Per model and side (jax from the Kaggle layout, transformers from the Hugging Face one):
    fp32 logits of the same token ids and greedy completions of ``prompts()``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    results: dict[str, dict[str, Any]] = {}
    mesh = jax_model.build_mesh(MeshConfig(), "cpu")
    for name, (flax_folder, hf_folder) in folders.items():
        tokenizer = AutoTokenizer.from_pretrained(hf_folder)
        ids = [encode_prompt(tokenizer, line)[:LOGIT_TOKENS] for line in corpus_lines(2)]
        reference = AutoModelForCausalLM.from_pretrained(hf_folder, attn_implementation="eager")
        with torch.no_grad():
            logits = reference(torch.tensor(ids)).logits.numpy()
            completions = []
            for prompt in prompts():
                prompt_ids = torch.tensor([encode_prompt(tokenizer, prompt)])
                out = reference.generate(prompt_ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
                completions.append(
                    tokenizer.decode(out[0, prompt_ids.shape[1] :], skip_special_tokens=True)
                )
        model, kaggle_tokenizer, _ = jax_kaggle.load_kaggle(flax_folder, 0, mesh, None)
        tokens = jnp.asarray(ids, dtype=jnp.int32)
        mask = jnp.ones(tokens.shape, dtype=bool)
        with jax.default_matmul_precision("highest"), jax_model.quiet_tunix():
            jax_logits, _ = model(
                tokens,
                utils.build_positions_from_mask(mask),
                None,
                utils.make_causal_attn_mask(mask),
            )
            jax_completions = jax_sampling.greedy_completions(
                model, kaggle_tokenizer, prompts(), max_new_tokens=MAX_NEW_TOKENS, batch_size=2
            )
        results[name] = {
            "transformers": (logits, completions),
            "jax": (np.asarray(jax_logits), jax_completions),
        }
    return results


@pytest.mark.parametrize("name", MODELS)
def test_folder_is_kaggles_flax_layout(folders: dict[str, tuple[Path, Path]], name: str) -> None:
    flax_folder, hf_folder = folders[name]
    assert sorted(path.name for path in flax_folder.iterdir()) == sorted(
        [KAGGLE_FOLDERS[name], "tokenizer.model"]
    )
    assert flax_checkpoint(flax_folder) == flax_folder / KAGGLE_FOLDERS[name]
    assert flax_checkpoint(hf_folder) is None


@pytest.mark.parametrize("name", MODELS)
def test_logits_equal_transformers(runs: dict[str, dict[str, Any]], name: str) -> None:
    logits, reference = runs[name]["jax"][0], runs[name]["transformers"][0]
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_greedy_generations_equal_transformers(runs: dict[str, dict[str, Any]], name: str) -> None:
    completions = runs[name]["transformers"][1]
    assert len(set(completions)) == len(completions)  # distinct, so a mix-up would show
    assert runs[name]["jax"][1] == completions


@pytest.mark.parametrize("name", MODELS)
def test_shapes_give_the_config_json_of_the_same_weights(
    folders: dict[str, tuple[Path, Path]], name: str
) -> None:
    flax_folder, hf_folder = folders[name]
    derived = jax_pretrained.tunix_config(jax_kaggle.read_config(flax_folder), "kaggle")
    published = jax_pretrained.tunix_config(jax_pretrained.read_config(hf_folder), "config.json")
    assert derived == published


@pytest.mark.parametrize(
    "preset",
    [
        gemma.ModelConfig.gemma_2b,
        gemma.ModelConfig.gemma_7b,  # as many kv heads as heads: one qkv_einsum
        gemma.ModelConfig.gemma2_2b,
        gemma.ModelConfig.gemma2_9b,
    ],
)
def test_published_shapes_give_tunix_presets(preset: Callable[[], gemma.ModelConfig]) -> None:
    expected = preset()
    with jax_model.quiet_tunix():
        abstract = nnx.eval_shape(lambda: gemma.Gemma(expected, rngs=nnx.Rngs(params=0)))
    weights = nnx.to_flat_state(nnx.state(abstract))
    shapes = {path: tuple(var.get_value().shape) for path, var in weights}
    assert jax_pretrained.tunix_config(jax_kaggle.hf_config(shapes, "preset"), "") == expected


def restore_tree(folder: Path) -> dict[str, dict[str, Any]]:
    checkpoint = flax_checkpoint(folder)
    assert checkpoint is not None
    tree: dict[str, dict[str, Any]] = ocp.StandardCheckpointer().restore(checkpoint.resolve())
    return tree


def rewritten(
    source: Path, target: Path, change: Callable[[dict[str, dict[str, Any]]], None]
) -> Path:
    """A copy of a Kaggle-layout folder whose orbax tree ``change`` edited."""
    tree = restore_tree(source)
    change(tree)
    target.mkdir()
    shutil.copyfile(source / "tokenizer.model", target / "tokenizer.model")
    checkpoint = flax_checkpoint(source)
    assert checkpoint is not None
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save((target / checkpoint.name).resolve(), tree)
    checkpointer.wait_until_finished()
    return target


def refusals(folder: Path) -> tuple[str, str]:
    """The one-line refusals of pre-flight and of the jax loader."""
    with pytest.raises(ValueError) as checked:
        check_model_source(f"kaggle:{folder}", "jax")
    with pytest.raises(ValueError) as loaded:
        jax_kaggle.load_kaggle(folder, 0, jax_model.build_mesh(MeshConfig(), "cpu"), None)
    assert "\n" not in str(checked.value)
    return str(checked.value), str(loaded.value)


def test_a_wrong_shape_names_the_checkpoint_and_key(
    folders: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    key = "transformer/layer_1/mlp/linear"

    def corrupt(tree: dict[str, dict[str, Any]]) -> None:
        tree[key]["w"] = np.asarray(tree[key]["w"])[:96]

    folder = rewritten(folders["gemma"][0], tmp_path / "corrupt", corrupt)
    expected = (
        f"{folder / 'tiny'}: {key}/w has shape (96, 64), the checkpoint's other weights make it "
        "(128, 64)"
    )
    assert refusals(folder) == (expected, expected)


def test_a_missing_weight_is_named(folders: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    folder = rewritten(
        folders["gemma"][0],
        tmp_path / "missing",
        lambda tree: tree.pop("transformer/layer_1/pre_ffw_norm"),
    )
    expected = (
        f"{folder / 'tiny'}: no weight for Tunix's layers.1.pre_ffw_norm.scale (1 weights missing)"
    )
    assert refusals(folder) == (expected, expected)


def test_a_gemma2_of_no_tunix_preset_is_refused(
    folders: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    def drop_last_layers(tree: dict[str, dict[str, Any]]) -> None:
        for key in [
            k for k in tree if k.startswith(("transformer/layer_2/", "transformer/layer_3/"))
        ]:
            del tree[key]

    folder = rewritten(folders["gemma2"][0], tmp_path / "short", drop_last_layers)
    expected = (
        f"{folder / 'gemma2-tiny'}: a Gemma 2 of num_layers=2, num_embed=512, embed_dim=64, "
        "hidden_dim=128, num_heads=4, head_dim=16, num_kv_heads=2 matches none of Tunix's Gemma 2 "
        "presets (gemma2-2b, gemma2-9b, tiny gemma2), which give its softcaps and sliding window"
    )
    assert refusals(folder) == (expected, expected)


def populate(cache: Path, folder: Path) -> Path:
    """``folder`` as kagglehub leaves ``HANDLE`` in its cache: the files and a completion mark."""
    cached = cache / "models" / HANDLE
    shutil.copytree(folder, cached)
    (cached.parent / f"{cached.name}.complete").touch()
    return cached


def test_a_versioned_handle_resolves_offline_from_the_cache(
    folders: dict[str, tuple[Path, Path]], offline: Path
) -> None:
    import kagglehub

    cached = populate(offline, folders["gemma"][0])
    assert pretrained_folder(ModelSource.parse(f"kaggle:{HANDLE}")) == cached
    assert Path(kagglehub.model_download(HANDLE)) == cached  # kagglehub itself: no network
    check_model_source(f"kaggle:{HANDLE}", "jax")


def test_the_lineage_of_a_cached_handle_reads_the_orbax_metadata(
    folders: dict[str, tuple[Path, Path]], offline: Path
) -> None:
    from harness.probes.lineage import model_lineage, weight_facts

    flax_folder, hf_folder = folders["gemma"]
    cached = populate(offline, flax_folder)
    lineage = model_lineage(f"kaggle:{HANDLE}")
    assert lineage["folder"] == str(cached.resolve())
    assert lineage["revision"] == "Kaggle version 2"
    assert "tokenizer.model" in lineage["files"]
    # The same weights in both layouts: the orbax metadata counts what the safetensors declare.
    assert lineage["parameters"] == weight_facts(hf_folder)[0] > 0
    assert lineage["dtypes"] == ["float32"]


def test_torch_refuses_the_flax_layout_in_one_line(
    folders: dict[str, tuple[Path, Path]],
) -> None:
    folder = folders["gemma"][0]
    source = f"kaggle:{folder}"
    expected = (
        f"{source}: {folder} is Kaggle's Flax layout, which only the jax backend loads (the torch "
        "backend needs a Hugging Face folder, e.g. Kaggle's transformers variant)"
    )
    with pytest.raises(ValueError) as built:
        build_model_and_tokenizer(source, 0)
    assert str(built.value) == expected
    with pytest.raises(ValueError) as checked:
        check_model_source(source, "torch")
    assert str(checked.value) == expected


def test_the_transformers_variant_loads_like_a_local_folder(
    folders: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_folder = folders["gemma"][1]
    monkeypatch.chdir(hf_folder.parent)  # a relative folder, as for local:
    source = f"kaggle:{hf_folder.name}"
    for backend in ("jax", "torch"):
        check_model_source(source, backend)
    model, tokenizer = build_model_and_tokenizer(source, 0)
    local_model, local_tokenizer = build_model_and_tokenizer(f"local:{hf_folder}", 0)
    local_weights = local_model.state_dict()
    assert all(torch.equal(w, local_weights[name]) for name, w in model.state_dict().items())
    line = corpus_lines(1)[0]
    assert tokenizer.encode(line) == local_tokenizer.encode(line)


def test_a_kaggle_handle_fine_tunes_and_its_checkpoint_rebuilds(
    folders: dict[str, tuple[Path, Path]], offline: Path, tmp_path: Path
) -> None:
    populate(offline, folders["gemma"][0])
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:8]
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    config = load_yaml_model(ROOT / "configs" / "training" / "smoke_jax_tiny.yaml", TrainingConfig)
    config = TrainingConfig(**{**config.model_dump(), "batch_size": 4})
    request = TrainRequest(f"kaggle:{HANDLE}", config, examples, 2, None, "cpu", tmp_path / "ckpt")
    seen: list[float] = []
    result = JaxTrainer().train(request, lambda record: seen.append(record.loss))
    assert len(seen) == 2 and all(np.isfinite(seen))
    card = json.loads((result.checkpoint_dir / jax_model.MODEL_CARD).read_text())
    assert card["model_source"] == f"kaggle:{HANDLE}"
    derived = jax_kaggle.read_config(folders["gemma"][0])
    assert card["pretrained_config"] == json.loads(json.dumps(derived))
    rebuilt = jax_model.load_model(result.checkpoint_dir, "cpu")
    assert rebuilt.config == jax_model.on_mesh(jax_pretrained.tunix_config(derived, "kaggle"))
    assert jax_model.parameter_count(rebuilt) == result.model_parameters


def test_a_tokenizer_larger_than_the_checkpoints_vocabulary_names_the_derived_config(
    folders: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainers import tiny_checkpoints

    folder = tmp_path / "flax"
    shutil.copytree(folders["gemma"][0], folder)
    (folder / "tokenizer.model").unlink()
    monkeypatch.setattr(tiny_checkpoints, "VOCAB_SIZE", 640)  # the checkpoint has 512 entries
    tiny_checkpoints.train_tokenizer(tmp_path / "bigger", corpus_lines())
    shutil.copyfile(tmp_path / "bigger" / "tokenizer.model", folder / "tokenizer.model")
    with pytest.raises(ValueError) as loaded:
        jax_kaggle.load_kaggle(folder, 0, jax_model.build_mesh(MeshConfig(), "cpu"), None)
    assert str(loaded.value) == (
        f"the config derived from {folder / KAGGLE_FOLDERS['gemma']}: vocab_size is 512 but the "
        "tokenizer has 640 tokens"
    )
