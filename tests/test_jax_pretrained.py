"""Hugging Face Gemma and Gemma 2 folders on the jax backend: logits and greedy generations equal
transformers' on one device and on 2x4 and 1x8 meshes of 8 forced CPU devices (in a subprocess, as
jax reads XLA_FLAGS once per process); bad folders are one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jax")
pytest.importorskip("tunix")
pytest.importorskip("sentencepiece")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

import numpy as np  # noqa: E402
from pretrained_checkpoints import build_checkpoint, corpus_lines  # noqa: E402

from harness.spec.data import load_traces  # noqa: E402
from harness.spec.prompting import format_completion, format_prompt  # noqa: E402
from harness.spec.yaml_files import load_yaml_model  # noqa: E402
from trainers.config import MeshConfig, TrainingConfig  # noqa: E402
from trainers.encoding import encode_prompt  # noqa: E402
from trainers.jax import model as jax_model  # noqa: E402
from trainers.jax import pretrained as jax_pretrained  # noqa: E402
from trainers.jax.trainer import JaxTrainer  # noqa: E402
from trainers.protocol import Example, TrainRequest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("gemma", "gemma2")
MESHES = ("1x1", "2x4", "1x8")
MAX_NEW_TOKENS = 16
# Longer than Gemma 2's sliding window of 8, so its local layers mask something.
LOGIT_TOKENS = 24

# Loads each folder on each mesh and reports its logits (as .npy files), greedy completions and
# what the live weights show about their placement.
HELPER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from tunix.sft import utils

    from trainers.jax import model as jax_model, sampling as jax_sampling
    from trainers.config import MeshConfig

    jax.config.update("jax_default_matmul_precision", "highest")
    out = Path(sys.argv[1])
    spec = json.loads(Path(sys.argv[2]).read_text())
    ids = jnp.asarray(spec["ids"], dtype=jnp.int32)
    mask = jnp.ones(ids.shape, dtype=bool)
    positions, attention = utils.build_positions_from_mask(mask), utils.make_causal_attn_mask(mask)
    report = {"jax_devices": len(jax.devices())}
    for name, folder in spec["models"].items():
        for mesh_name in spec["meshes"]:
            data, fsdp = map(int, mesh_name.split("x"))
            mesh = jax_model.build_mesh(MeshConfig(data=data, fsdp=fsdp), "cpu")
            model, tokenizer, _ = jax_model.load_pretrained(Path(folder), 0, mesh, None)
            logits, _ = model(ids, positions, None, attention)
            np.save(out / f"{name}_{mesh_name}.npy", np.asarray(logits))
            weights = jax.tree.leaves(nnx.state(model, nnx.Param))
            with jax_model.quiet_tunix():
                completions = jax_sampling.greedy_completions(
                    model, tokenizer, spec["prompts"],
                    max_new_tokens=spec["max_new_tokens"], batch_size=2,
                )
            report[f"{name}_{mesh_name}"] = {
                "devices": max(len(w.sharding.device_set) for w in weights),
                "sharded": any(w.sharding.shard_shape(w.shape) != w.shape for w in weights),
                "completions": completions,
            }
    print(json.dumps(report))
    """
)


def prompts() -> list[str]:
    # Three prompts of different lengths: left padding, and a last batch filled up by the sampler.
    return [format_prompt(t.prompt) for t in load_traces(ROOT / "datasets" / "dev-reasoning-v2")][
        400:403
    ]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pretrained")
    return {name: build_checkpoint(base / name, name) for name in MODELS}


@pytest.fixture(scope="module")
def token_ids(folders: dict[str, Path]) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folders["gemma"])
    return [encode_prompt(tokenizer, line)[:LOGIT_TOKENS] for line in corpus_lines(2)]


@pytest.fixture(scope="module")
def transformers_run(
    folders: dict[str, Path], token_ids: list[list[int]]
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per model: transformers' fp32 logits of ``token_ids`` and its greedy completions."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    results = {}
    for name, folder in folders.items():
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        with torch.no_grad():
            logits = model(torch.tensor(token_ids)).logits.numpy()
            completions = []
            for prompt in prompts():
                ids = torch.tensor([encode_prompt(tokenizer, prompt)])
                out = model.generate(ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
                completions.append(
                    tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
                )
        results[name] = (logits, completions)
    return results


@pytest.fixture(scope="module")
def jax_run(
    tmp_path_factory: pytest.TempPathFactory,
    folders: dict[str, Path],
    token_ids: list[list[int]],
) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("jax_pretrained")
    spec = {
        "models": {name: str(folder) for name, folder in folders.items()},
        "meshes": MESHES,
        "ids": token_ids,
        "prompts": prompts(),
        "max_new_tokens": MAX_NEW_TOKENS,
    }
    (out / "spec.json").write_text(json.dumps(spec))
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", HELPER, str(out), str(out / "spec.json")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report, out


def test_eight_cpu_devices_are_forced(jax_run: tuple[dict[str, Any], Path]) -> None:
    assert jax_run[0]["jax_devices"] == 8


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("name", MODELS)
def test_logits_equal_transformers(
    jax_run: tuple[dict[str, Any], Path],
    transformers_run: dict[str, tuple[np.ndarray, list[str]]],
    name: str,
    mesh: str,
) -> None:
    logits = np.load(jax_run[1] / f"{name}_{mesh}.npy")
    reference = transformers_run[name][0]
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() < 1e-4


@pytest.mark.parametrize("mesh", MESHES)
@pytest.mark.parametrize("name", MODELS)
def test_greedy_generations_equal_transformers(
    jax_run: tuple[dict[str, Any], Path],
    transformers_run: dict[str, tuple[np.ndarray, list[str]]],
    name: str,
    mesh: str,
) -> None:
    completions = transformers_run[name][1]
    assert len(set(completions)) == len(completions)  # distinct, so a mix-up would show
    assert jax_run[0][f"{name}_{mesh}"]["completions"] == completions


@pytest.mark.parametrize("mesh", ["2x4", "1x8"])
@pytest.mark.parametrize("name", MODELS)
def test_loaded_weights_sit_on_their_fsdp_shards(
    jax_run: tuple[dict[str, Any], Path], name: str, mesh: str
) -> None:
    placement = jax_run[0][f"{name}_{mesh}"]
    assert placement["devices"] == 8 and placement["sharded"]


def test_tunix_still_maps_gemma1_feed_forward_norm_to_post_attn_norm(
    folders: dict[str, Path],
) -> None:
    """When this fails, Tunix fixed its Gemma 1 key map: drop jax_pretrained's override."""
    from tunix.models.gemma import params_safetensors

    hf = jax_pretrained.read_config(folders["gemma"])
    config = jax_pretrained.tunix_config(hf, "config.json")
    upstream = params_safetensors._get_key_and_transform_mapping(config)
    assert upstream[jax_pretrained.POST_ATTENTION_NORM] == (r"layers.\1.post_attn_norm.scale", None)
    ours = jax_pretrained.key_mapping(config)
    assert ours[jax_pretrained.POST_ATTENTION_NORM] == (r"layers.\1.pre_ffw_norm.scale", None)


def rewrite_config(folder: Path, **changes: Any) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def load_error(folder: Path) -> str:
    mesh = jax_model.build_mesh(MeshConfig(), "cpu")
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        jax_model.load_pretrained(folder, 0, mesh, None)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_shape_mismatch_names_the_file_and_tensor(tmp_path: Path) -> None:
    folder = build_checkpoint(tmp_path / "gemma", "gemma")
    rewrite_config(folder, intermediate_size=96)
    assert load_error(folder) == (
        f"{folder / 'model.safetensors'}: model.layers.0.mlp.down_proj.weight has shape "
        "(64, 128), config.json makes it (64, 96)"
    )


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    folder = build_checkpoint(tmp_path / "gemma", "gemma")
    rewrite_config(folder, num_hidden_layers=3)
    assert load_error(folder) == (
        f"{folder}: no model.layers.2.self_attn.q_proj.weight in its *.safetensors files, "
        "which config.json needs (9 tensors missing)"
    )


def test_a_tokenizer_with_other_special_ids_is_refused(tmp_path: Path) -> None:
    folder = build_checkpoint(tmp_path / "gemma", "gemma")
    rewrite_config(folder, bos_token_id=5)
    assert load_error(folder) == (
        f"{folder / 'config.json'}: bos_token_id is 5 but the tokenizer's is 2"
    )


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path: Path) -> None:
    folder = build_checkpoint(tmp_path / "gemma", "gemma", vocab_size=384)
    assert load_error(folder) == (
        f"{folder / 'config.json'}: vocab_size is 384 but the tokenizer has 512 tokens"
    )


@pytest.mark.parametrize(
    ("model_type", "key", "value"),
    [
        ("gemma2", "query_pre_attn_scalar", 32),
        ("gemma", "rope_theta", 1.0e6),
        ("gemma", "rms_norm_eps", 1.0e-5),
        ("gemma", "tie_word_embeddings", False),
    ],
)
def test_a_config_tunix_cannot_compute_is_refused(
    tmp_path: Path, model_type: str, key: str, value: Any
) -> None:
    folder = build_checkpoint(tmp_path / model_type, model_type)
    rewrite_config(folder, **{key: value})
    assert load_error(folder).startswith(f"{folder / 'config.json'}: {key} is {value!r}; ")


def test_an_unsupported_model_type_is_refused(tmp_path: Path) -> None:
    folder = build_checkpoint(tmp_path / "gemma", "gemma")
    rewrite_config(folder, model_type="llama")
    assert load_error(folder) == (
        f"{folder / 'config.json'}: model_type 'llama'; the jax backend loads gemma, gemma2, "
        "gemma3_text"
    )


def test_a_sentencepiece_model_alone_is_enough(folders: dict[str, Path], tmp_path: Path) -> None:
    import sentencepiece

    from trainers.pretrained_tokenizer import load_tokenizer

    (tmp_path / "tokenizer.model").write_bytes((folders["gemma"] / "tokenizer.model").read_bytes())
    tokenizer = load_tokenizer(tmp_path)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "tokenizer.model"))
    for line in corpus_lines(50):
        assert tokenizer.encode(line, add_special_tokens=False) == processor.encode(line)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)


def test_a_pretrained_folder_fine_tunes_and_generates(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:16]
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    config = load_yaml_model(ROOT / "configs" / "training" / "smoke_jax_tiny.yaml", TrainingConfig)
    config = TrainingConfig(**{**config.model_dump(), "batch_size": 4})
    source = f"local:{folders['gemma2']}"
    request = TrainRequest(source, config, examples, 3, None, "cpu", tmp_path / "ckpt")
    seen: list[float] = []
    result = JaxTrainer().train(request, lambda record: seen.append(record.loss))
    assert len(seen) == 3 and all(np.isfinite(seen))
    reference = AutoModelForCausalLM.from_pretrained(folders["gemma2"])
    assert result.model_parameters == reference.num_parameters()
    card = json.loads((result.checkpoint_dir / jax_model.MODEL_CARD).read_text())
    assert card["architecture"] is None and card["pretrained_config"]["model_type"] == "gemma2"
    completions = JaxTrainer().generate(
        result.checkpoint_dir, prompts(), max_new_tokens=8, batch_size=2, device="cpu"
    )
    assert len(completions) == 3
