"""Hugging Face Gemma 3 text folders on the jax backend: Tunix's Gemma3 gives transformers' fp32
logits and greedy generations; a full and a LoRA fine-tune, restored shape-only from the model card,
export a folder transformers' Gemma3ForCausalLM reloads to the same logits; bad folders are
one-line errors."""

from __future__ import annotations

import json
import shutil
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
from trainers.config import MeshConfig, TrainingConfig  # noqa: E402
from trainers.encoding import encode_prompt  # noqa: E402
from trainers.jax import model as jax_model  # noqa: E402
from trainers.jax import pretrained as jax_pretrained  # noqa: E402
from trainers.jax import sampling as jax_sampling  # noqa: E402
from trainers.jax.trainer import JaxTrainer  # noqa: E402
from trainers.protocol import Example, TrainRequest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL_TYPE = "gemma3_text"
# Three times the tiny model's sliding window of 8, so its local layers mask something.
LOGIT_TOKENS = 24
MAX_NEW_TOKENS = 12
STEPS = 2
# Checkpoint name -> config changes: Gemma 3 1B's shape, and 4B's linear RoPE scaling.
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "linear-rope": {"rope_scaling": {"rope_type": "linear", "factor": 8.0}},
}


def prompts() -> list[str]:
    # Three prompts of different lengths: left padding, and a last batch the sampler fills up.
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")
    return [format_prompt(t.prompt) for t in traces][400:403]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("gemma3")
    return {
        name: build_checkpoint(base / name, MODEL_TYPE, **changes)
        for name, changes in VARIANTS.items()
    }


def token_ids(folder: Path) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return [encode_prompt(tokenizer, line)[:LOGIT_TOKENS] for line in corpus_lines(2)]


def transformers_model(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


def torch_logits(folder: Path, ids: list[list[int]]) -> np.ndarray:
    with torch.no_grad():
        return transformers_model(folder)(torch.tensor(ids)).logits.numpy()


def jax_logits(model: nnx.Module, ids: list[list[int]]) -> np.ndarray:
    from tunix.sft import utils

    tokens = jnp.asarray(ids, dtype=jnp.int32)
    mask = jnp.ones(tokens.shape, dtype=bool)
    positions, attention = utils.build_positions_from_mask(mask), utils.make_causal_attn_mask(mask)
    with jax.default_matmul_precision("highest"):
        logits, _ = model(tokens, positions, None, attention)
    return np.asarray(logits)


def load(folder: Path) -> tuple[nnx.Module, Any]:
    mesh = jax_model.build_mesh(MeshConfig(data=1, fsdp=1), "cpu")
    model, tokenizer, _ = jax_model.load_pretrained(folder, 0, mesh, None)
    return model, tokenizer


def transformers_completions(folder: Path) -> list[str]:
    from transformers import AutoTokenizer

    model, tokenizer = transformers_model(folder), AutoTokenizer.from_pretrained(folder)
    completions = []
    with torch.no_grad():
        for prompt in prompts():
            ids = torch.tensor([encode_prompt(tokenizer, prompt)])
            out = model.generate(ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
            completions.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return completions


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_equal_transformers(folders: dict[str, Path], variant: str) -> None:
    folder = folders[variant]
    model, _ = load(folder)
    assert isinstance(model.config, jax_pretrained.gemma3.ModelConfig)
    ids = token_ids(folder)
    assert len(ids[0]) == LOGIT_TOKENS > model.config.sliding_window_size
    reference = torch_logits(folder, ids)
    logits = jax_logits(model, ids)
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() < 1e-4


def test_greedy_generations_equal_transformers(folders: dict[str, Path]) -> None:
    model, tokenizer = load(folders["plain"])
    expected = transformers_completions(folders["plain"])
    assert len(set(expected)) == len(expected)  # distinct, so a mix-up would show
    with jax_model.quiet_tunix(), jax.default_matmul_precision("highest"):
        completions = jax_sampling.greedy_completions(
            model, tokenizer, prompts(), max_new_tokens=MAX_NEW_TOKENS, batch_size=2
        )
    assert completions == expected


@pytest.fixture(scope="module")
def trained(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A full and a LoRA fine-tune of the tiny Gemma 3, each its exported checkpoint folder."""
    base = tmp_path_factory.mktemp("gemma3-trained")
    traces = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[:8]
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    config = load_yaml_model(ROOT / "configs" / "training" / "smoke_jax_tiny.yaml", TrainingConfig)
    schedule = {"warmup_steps": 0, "decay": "constant", "min_lr_ratio": 1.0}
    optimizer = {**config.optimizer.model_dump(), "lr": 1.0e-3}
    done = {}
    for name, lora in (("full", None), ("lora", {"rank": 4, "alpha": 8.0})):
        run_config = TrainingConfig(
            **{
                **config.model_dump(),
                "batch_size": 4,
                "max_seq_len": 64,
                "schedule": schedule,
                "optimizer": optimizer,
                "lora": lora,
            }
        )
        source = f"local:{folders['plain']}"
        request = TrainRequest(source, run_config, examples, STEPS, None, "cpu", base / name)
        records: list[Any] = []
        JaxTrainer().train(request, records.append)
        assert len(records) == STEPS and all(np.isfinite([r.loss for r in records]))
        done[name] = base / name
    return done


@pytest.mark.parametrize("run", ["full", "lora"])
def test_the_export_reloads_in_transformers_to_the_trained_logits(
    trained: dict[str, Path], folders: dict[str, Path], run: str
) -> None:
    checkpoint = trained[run]
    config = json.loads((checkpoint / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == (MODEL_TYPE, ["Gemma3ForCausalLM"])
    ids = token_ids(checkpoint)
    restored = jax_model.load_model(checkpoint, "cpu")  # rebuilt shape-only from the model card
    logits = jax_logits(restored, ids)
    assert np.abs(logits - torch_logits(checkpoint, ids)).max() < 1e-4
    # Training moved the weights, so equal logits are not the pretrained folder's.
    assert np.abs(logits - torch_logits(folders["plain"], ids)).max() > 1e-3


def test_the_trained_model_generates_as_its_export_does(trained: dict[str, Path]) -> None:
    completions = JaxTrainer().generate(
        trained["full"], prompts(), max_new_tokens=MAX_NEW_TOKENS, batch_size=2, device="cpu"
    )
    assert completions == transformers_completions(trained["full"])


def load_error(folder: Path) -> str:
    mesh = jax_model.build_mesh(MeshConfig(), "cpu")
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        jax_model.load_pretrained(folder, 0, mesh, None)
    message = str(error.value)
    assert "\n" not in message
    return message


def copy_of(folder: Path, tmp_path: Path, **changes: Any) -> Path:
    """A copy of ``folder`` with ``changes`` written into its config.json."""
    copy = Path(shutil.copytree(folder, tmp_path / folder.name))
    path = copy / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return copy


def test_a_wrong_shaped_query_norm_names_the_file_and_tensor(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    folder = copy_of(folders["plain"], tmp_path)
    file = folder / "model.safetensors"
    tensors = safetensors.numpy.load_file(file)
    name = "model.layers.3.self_attn.q_norm.weight"
    tensors[name] = tensors[name][:8]
    safetensors.numpy.save_file(tensors, file, metadata={"format": "pt"})
    assert load_error(folder) == f"{file}: {name} has shape (8,), config.json makes it (16,)"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "layer_types",
            ["full_attention"] * 6,
            "layer_types[0] is 'full_attention'; Tunix's Gemma3 computes 'sliding_attention' "
            "there (5 sliding layers, then 1 full, repeated)",
        ),
        (
            "rope_scaling",
            {"rope_type": "dynamic", "factor": 2.0},
            "rope_scaling is {'rope_type': 'dynamic', 'factor': 2.0}; Tunix's Gemma3 computes "
            "only {'rope_type': 'linear', 'factor': ...}",
        ),
        (
            "query_pre_attn_scalar",
            32,
            "query_pre_attn_scalar is 32; Tunix's Gemma3 computes head_dim (16) or hidden_size / "
            "num_attention_heads",
        ),
        (
            "final_logit_softcapping",
            30.0,
            "final_logit_softcapping is 30.0; Tunix's Gemma3 computes None",
        ),
        ("rms_norm_eps", 1e-5, "rms_norm_eps is 1e-05; Tunix's Gemma3 computes 1e-06"),
    ],
)
def test_a_config_tunix_cannot_compute_is_refused(
    folders: dict[str, Path], tmp_path: Path, key: str, value: Any, message: str
) -> None:
    folder = copy_of(folders["plain"], tmp_path, **{key: value})
    assert load_error(folder) == f"{folder / 'config.json'}: {message}"


def test_random_gemma_3_1b_has_tunix_s_gemma3_1b_shape() -> None:
    """``random:gemma-3-1b`` (the torch backend's transformers shape) is Tunix's own preset."""
    ours = jax_model.tunix_config("gemma-3-1b")
    preset = jax_pretrained.gemma3.ModelConfig.gemma3_1b_pt()
    fields = ("num_layers", "num_embed", "embed_dim", "hidden_dim", "num_heads", "head_dim")
    fields += ("num_kv_heads", "local_base_frequency", "global_base_frequency")
    assert {f: getattr(ours, f) for f in fields} == {f: getattr(preset, f) for f in fields}
    assert ours.param_dtype == jnp.float32
