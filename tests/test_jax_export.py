"""The jax backend's checkpoint in Hugging Face layout: a Tunix fine-tune of a pretrained Gemma and
Gemma 2, of random:tiny-gemma and a LoRA one (merged) reload in transformers and the torch backend
to the trained model's fp32 logits and greedy generations; evaluation restores the trained weights
into a model rebuilt shape-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jax")
pytest.importorskip("tunix")
pytest.importorskip("sentencepiece")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import safetensors.numpy  # noqa: E402
from flax import nnx  # noqa: E402
from pretrained_checkpoints import build_checkpoint, corpus_lines  # noqa: E402

from harness.spec.data import load_traces  # noqa: E402
from harness.spec.prompting import format_completion, format_prompt  # noqa: E402
from harness.spec.yaml_files import load_yaml_model  # noqa: E402
from trainers.char_tokenizer import build_char_tokenizer  # noqa: E402
from trainers.config import LORA_TARGETS, MeshConfig, TrainingConfig  # noqa: E402
from trainers.encoding import encode_prompt  # noqa: E402
from trainers.jax import export as jax_export  # noqa: E402
from trainers.jax import model as jax_model  # noqa: E402
from trainers.jax import pretrained as jax_pretrained  # noqa: E402
from trainers.jax.trainer import JaxTrainer  # noqa: E402
from trainers.models import build_model_and_tokenizer  # noqa: E402
from trainers.protocol import Example, TrainRequest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3
MAX_NEW_TOKENS = 8
# Longer than Gemma 2's sliding window of 8, so its local layers mask something.
LOGIT_TOKENS = 24
# Run name -> (pretrained model type, or None for random:tiny-gemma; LoRA). The LoRA run is a Gemma
# with as many kv heads as heads, so Tunix fuses q, k and v into one adapted einsum.
RUNS: dict[str, tuple[str | None, bool]] = {
    "gemma": ("gemma", False),
    "gemma2": ("gemma2", False),
    "random": (None, False),
    "lora": ("gemma", True),
}
FULL = [name for name, (_, lora) in RUNS.items() if not lora]
# The LoRA run adapts every projection: q, k and v (one fused einsum), o and the MLP.
ADAPTED = tuple(f"{name}.weight" for name in LORA_TARGETS)


def prompts() -> list[str]:
    return [format_prompt(t.prompt) for t in load_traces(ROOT / "datasets" / "dev-reasoning-v2")][
        400:402
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path | None]]:
    """Per run: the trained checkpoint folder and the pretrained folder it started from."""
    base = tmp_path_factory.mktemp("export")
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:8]
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    config = load_yaml_model(ROOT / "configs" / "training" / "smoke_jax_tiny.yaml", TrainingConfig)
    # No warm-up, so the first step already moves every weight, at a rate that leaves the tiny
    # models' greedy generations varied.
    schedule = {"warmup_steps": 0, "decay": "constant", "min_lr_ratio": 1.0}
    optimizer = {**config.optimizer.model_dump(), "lr": 1.0e-4}
    done: dict[str, tuple[Path, Path | None]] = {}
    for name, (model_type, lora) in RUNS.items():
        changes = {"num_key_value_heads": 4} if lora else {}
        folder = (
            build_checkpoint(base / f"{name}-source", model_type, **changes) if model_type else None
        )
        source = f"local:{folder}" if folder else "random:tiny-gemma"
        run_config = TrainingConfig(
            **{
                **config.model_dump(),
                "batch_size": 4,
                "max_seq_len": 96,
                "schedule": schedule,
                "optimizer": optimizer,
                "lora": {"rank": 4, "alpha": 8.0, "target_modules": LORA_TARGETS} if lora else None,
            }
        )
        request = TrainRequest(source, run_config, examples, STEPS, None, "cpu", base / name)
        JaxTrainer().train(request, lambda record: None)
        done[name] = (base / name, folder)
    return done


def token_ids(checkpoint: Path) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    return [encode_prompt(tokenizer, line)[:LOGIT_TOKENS] for line in corpus_lines(2)]


def jax_logits(model: nnx.Module, ids: list[list[int]]) -> np.ndarray:
    from tunix.sft import utils

    tokens = jnp.asarray(ids, dtype=jnp.int32)
    mask = jnp.ones(tokens.shape, dtype=bool)
    positions, attention = utils.build_positions_from_mask(mask), utils.make_causal_attn_mask(mask)
    with jax.default_matmul_precision("highest"):
        logits, _ = model(tokens, positions, None, attention)
    return np.asarray(logits)


def torch_logits(model: Any, ids: list[list[int]]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


@pytest.fixture(scope="module")
def restored(runs: dict[str, tuple[Path, Path | None]]) -> dict[str, nnx.Module]:
    """Per run: the model evaluation rebuilds from the checkpoint."""
    return {name: jax_model.load_model(checkpoint, "cpu") for name, (checkpoint, _) in runs.items()}


def tensors(folder: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for file in sorted(folder.glob("*.safetensors")):
        found |= safetensors.numpy.load_file(str(file))
    return found


@pytest.mark.parametrize("name", list(RUNS))
def test_the_checkpoint_holds_a_hugging_face_folder_beside_the_orbax_state(
    runs: dict[str, tuple[Path, Path | None]], name: str
) -> None:
    checkpoint = runs[name][0]
    for file in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (checkpoint / file).is_file(), file
    card = json.loads((checkpoint / jax_model.MODEL_CARD).read_text())
    assert card["backend"] == "jax" and (card["lora"] is not None) == RUNS[name][1]
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == (RUNS[name][0] or "gemma")
    assert config["architectures"] == [
        "Gemma2ForCausalLM" if config["model_type"] == "gemma2" else "GemmaForCausalLM"
    ]
    hf = jax_pretrained.read_config(checkpoint)
    jax_pretrained.check_weights(checkpoint, jax_pretrained.tunix_config(hf, "config.json"))
    assert all(t.dtype == np.float32 for t in tensors(checkpoint).values())


@pytest.mark.parametrize("name", list(RUNS))
def test_transformers_reloads_the_trained_logits(
    runs: dict[str, tuple[Path, Path | None]], restored: dict[str, nnx.Module], name: str
) -> None:
    from transformers import AutoModelForCausalLM

    checkpoint = runs[name][0]
    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager")
    ids = token_ids(checkpoint)
    assert np.abs(jax_logits(restored[name], ids) - torch_logits(model, ids)).max() < 1e-4


@pytest.mark.parametrize("name", ["gemma", "gemma2"])
def test_transformers_generates_what_evaluation_generates(
    runs: dict[str, tuple[Path, Path | None]], name: str
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = runs[name][0]
    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    expected = []
    for prompt in prompts():
        ids = torch.tensor([encode_prompt(tokenizer, prompt)])
        out = model.generate(ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        expected.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    assert len(set(expected)) == len(expected)  # distinct, so a mix-up would show
    completions = JaxTrainer().generate(
        checkpoint, prompts(), max_new_tokens=MAX_NEW_TOKENS, batch_size=2, device="cpu"
    )
    assert completions == expected


@pytest.mark.parametrize("name", list(RUNS))
def test_the_torch_backend_loads_the_checkpoint(
    runs: dict[str, tuple[Path, Path | None]], restored: dict[str, nnx.Module], name: str
) -> None:
    checkpoint = runs[name][0]
    model, tokenizer = build_model_and_tokenizer(f"local:{checkpoint}", 0)
    ids = [encode_prompt(tokenizer, line)[:LOGIT_TOKENS] for line in corpus_lines(2)]
    assert ids == token_ids(checkpoint)
    assert np.abs(torch_logits(model.eval(), ids) - jax_logits(restored[name], ids)).max() < 1e-4


@pytest.mark.parametrize("name", FULL)
def test_evaluation_restores_the_trained_weights(
    runs: dict[str, tuple[Path, Path | None]], restored: dict[str, nnx.Module], name: str
) -> None:
    """The exported weights (written from the model in memory when training ended), read back by
    the jax backend's own loader, are bit for bit the weights evaluation restores from orbax."""
    checkpoint, source = runs[name]
    mesh = jax_model.build_mesh(MeshConfig(), "cpu")
    config = jax_model.on_mesh(
        jax_pretrained.tunix_config(jax_pretrained.read_config(checkpoint), "config.json")
    )
    exported = dict(
        nnx.to_flat_state(nnx.state(jax_pretrained.load_weights(checkpoint, config, mesh)))
    )
    evaluated = dict(nnx.to_flat_state(nnx.state(restored[name])))
    assert exported.keys() == evaluated.keys()
    for path, weight in evaluated.items():
        assert np.array_equal(weight.get_value(), exported[path].get_value()), path
    if source is None:
        seed = json.loads((checkpoint / jax_model.MODEL_CARD).read_text())["seed"]
        start = jax_model.build_model("tiny-gemma", seed, mesh, None)
        untrained = {
            path: weight.get_value() for path, weight in nnx.to_flat_state(nnx.state(start))
        }
    else:
        untrained = {
            path: weight.get_value()
            for path, weight in nnx.to_flat_state(
                nnx.state(jax_pretrained.load_weights(source, config, mesh))
            )
        }
    unchanged = [
        path for path, w in evaluated.items() if np.array_equal(w.get_value(), untrained[path])
    ]
    # Tunix starts a random Gemma's MLP (and the norm before it) at zero: no gradient moves it.
    assert all(not untrained[path].any() for path in unchanged), unchanged
    assert len(unchanged) < len(evaluated) / 2


def test_a_lora_checkpoint_exports_the_merged_weights(
    runs: dict[str, tuple[Path, Path | None]], restored: dict[str, nnx.Module]
) -> None:
    checkpoint, source = runs["lora"]
    assert source is not None
    trained, base = tensors(checkpoint), tensors(source)
    assert trained.keys() == base.keys()
    for name, weight in trained.items():
        if name.endswith(ADAPTED):
            assert not np.allclose(weight, base[name], atol=1e-6), name
        else:
            assert np.array_equal(weight, base[name]), name
    lora = nnx.state(restored["lora"], nnx.LoRAParam)
    assert any(np.abs(leaf).max() > 0 for leaf in jax.tree.leaves(lora))
    # The adapters move the logits far beyond the 1e-4 the export is held to: unmerged would show.
    from transformers import AutoModelForCausalLM

    ids = token_ids(checkpoint)
    untuned = AutoModelForCausalLM.from_pretrained(source, attn_implementation="eager")
    assert np.abs(jax_logits(restored["lora"], ids) - torch_logits(untuned, ids)).max() > 1e-2


@pytest.mark.parametrize("arch", sorted(jax_model.TUNIX_CONFIGS))
def test_every_random_architecture_exports_a_config_of_its_tunix_shape(arch: str) -> None:
    config = jax_model.tunix_config(arch)
    card = jax_model.model_card(f"random:{arch}", config, 0, None, MeshConfig(), None)
    hf = jax_export.transformers_config(card, config, build_char_tokenizer())
    assert hf["vocab_size"] == config.num_embed
    assert (hf["pad_token_id"], hf["eos_token_id"], hf["bos_token_id"]) == (0, 1, 2)


def test_a_config_that_would_compute_another_model_is_refused() -> None:
    config = jax_model.tunix_config("tiny-gemma")
    card = jax_model.model_card("random:tiny-gemma", config, 0, None, MeshConfig(), None)
    hf = jax_export.transformers_config(card, config, build_char_tokenizer())
    wider = {**card, "architecture": None, "pretrained_config": {**hf, "intermediate_size": 512}}
    with pytest.raises(ValueError) as refused:
        jax_export.transformers_config(wider, config, build_char_tokenizer())
    assert str(refused.value) == (
        "the exported config.json gives hidden_dim=512, the trained model has 256"
    )


def test_lora_adapters_without_a_lora_config_are_refused(
    restored: dict[str, nnx.Module], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"^layers\.0\.attn\.qkv_einsum\.w has LoRA adapters"):
        jax_export.write_weights(tmp_path / "model.safetensors", restored["lora"], None)
    assert not list(tmp_path.iterdir())  # no half-written file is left behind


def test_a_folder_without_a_model_card_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as refused:
        jax_model.load_model(tmp_path, "cpu")
    assert str(refused.value) == f"{tmp_path} has no model card model_card.json"
