"""An honest rehearsal: the spec's own source kind and format, a tiny twin loaded through the same
code, so a rehearsal fails where the real run would."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.evidence import bundle
from harness.phases.rehearsal import PUBLISHED_DTYPE, family_by_name, flax_variation, twin_changes
from trainers.models import ModelSource

if TYPE_CHECKING:
    from tests.conftest import MiniProject

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("google/gemma-2b", "gemma"),
        ("google/gemma-7b-it", "gemma"),
        ("google/gemma-2-2b", "gemma2"),
        ("google/gemma2-9b", "gemma2"),
        ("google/gemma-3-1b-it", "gemma3_text"),
        ("/kaggle/input/gemma-3/transformers/gemma-3-1b-it/1", "gemma3_text"),
    ],
)
def test_a_source_not_on_this_machine_is_rehearsed_by_the_family_its_name_gives(
    name: str, family: str
) -> None:
    assert family_by_name(ModelSource("hf", name)) == family


def test_a_name_that_names_no_gemma_cannot_be_rehearsed() -> None:
    with pytest.raises(
        ValueError, match="meta-llama/Llama-3.2-1B: its config.json is not on this machine"
    ):
        family_by_name(ModelSource("hf", "meta-llama/Llama-3.2-1B"))


def test_an_uncached_hf_source_gets_a_twin_in_gemmas_published_dtype(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    model_type, changes, known = twin_changes(ModelSource("hf", "google/gemma-2-2b"))
    assert (model_type, changes) == ("gemma2", {"torch_dtype": PUBLISHED_DTYPE})
    assert known == "family from its name"


def test_a_folder_on_this_machine_gives_its_twin_its_family_and_checked_values(
    tmp_path: Path,
) -> None:
    config = {
        "model_type": "gemma2",
        "torch_dtype": "float32",
        "rope_theta": 10000.0,
        "hidden_size": 2304,
        "final_logit_softcapping": 30.0,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    model_type, changes, _ = twin_changes(ModelSource("local", str(tmp_path)))
    assert model_type == "gemma2"
    # Shapes stay tiny; what the loaders check or convert is copied.
    assert changes == {
        "torch_dtype": "float32",
        "rope_theta": 10000.0,
        "final_logit_softcapping": 30.0,
    }


@pytest.mark.slow
def test_a_jax_rehearsal_of_a_model_jax_cannot_load_fails_in_preflight(
    mini: MiniProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kaggle's Flax Gemma 3 is a layout the jax backend does not load: the real run would stop in
    pre-flight, and so does its rehearsal, although the real weights are not on this machine."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "empty-kagglehub"))
    source = "kaggle:google/gemma-3/flax/gemma3-1b/1"
    mini.milestone("mini-gemma3", model=source, backend="jax", accelerator="tpu")
    mini.commit("a jax milestone on Kaggle's Flax Gemma 3")
    result = mini.run("--milestone", "mini-gemma3", "--rehearse")
    result.assert_outcomes(passed=2, failed=1, skipped=4)
    run_dir = mini.bundle("mini-gemma3-rehearsal_v1")
    reason = json.loads((run_dir / "run_manifest.json").read_text())["phases"]["preflight"][
        "reason"
    ]
    assert reason == (
        f"ValueError: cannot rehearse {source}: no tiny twin of model_type 'gemma3_text' in "
        "Kaggle's Flax layout (known: gemma, gemma2)"
    )


@pytest.mark.slow
def test_a_jax_rehearsal_of_gemma_3_gets_past_preflight(
    mini: MiniProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemma 3 in Hugging Face layout loads on the jax backend: its rehearsal on a tiny twin passes
    pre-flight and trains."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    mini.milestone("mini-gemma3", model="hf:google/gemma-3-1b-it", backend="jax", accelerator="tpu")
    mini.commit("a jax milestone on Gemma 3")
    result = mini.run("--milestone", "mini-gemma3", "--rehearse")
    result.stdout.fnmatch_lines(
        ["*rehearsing hf:google/gemma-3-1b-it with a tiny gemma3_text twin*"]
    )
    manifest = json.loads(
        (mini.bundle("mini-gemma3-rehearsal_v1") / "run_manifest.json").read_text()
    )
    assert manifest["phases"]["preflight"]["status"] == "passed"
    assert manifest["phases"]["train"]["status"] == "passed"


@pytest.mark.parametrize(
    ("location", "variation"),
    [
        ("google/gemma/flax/2b/2", "2b"),
        ("/kaggle/input/gemma/flax/2b-it/3", "2b-it"),
        ("google/gemma-2/Flax/gemma2-2b/1", "gemma2-2b"),
        ("/kaggle/input/gemma/transformers/2b/2", None),
    ],
)
def test_a_kaggle_source_not_on_this_machine_is_flax_when_its_name_says_so(
    location: str, variation: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "empty-kagglehub"))
    assert flax_variation(ModelSource("kaggle", location)) == variation


def test_m38_is_rehearsed_on_a_twin_in_kaggles_flax_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M38 names Kaggle's Flax Gemma: its rehearsal builds and checks an orbax checkpoint named
    after the variation, in Gemma's bf16, with only tokenizer.model beside it."""
    jax = pytest.importorskip("jax")
    import orbax.checkpoint as ocp

    from harness.phases.preflight import check_model
    from harness.phases.rehearsal import model_place, rehearse
    from harness.record.run import MilestoneRun, RunOptions
    from harness.spec.registry import MilestoneRegistry
    from trainers.models import flax_checkpoint

    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "empty-kagglehub"))
    milestone = rehearse(MilestoneRegistry(ROOT).load("m38"))
    run_dir = bundle.allocate_run_dir(tmp_path, "m38-rehearsal")
    run = MilestoneRun(milestone, ROOT, run_dir, RunOptions(progress=lambda _: None))
    check_model(run)
    folder = Path(ModelSource.parse(model_place(run).source).location)
    assert folder == run_dir / "rehearsal_model" / "2"
    assert sorted(path.name for path in folder.iterdir()) == ["2b", "tokenizer.model"]
    checkpoint = flax_checkpoint(folder)
    assert checkpoint == folder / "2b"
    metadata = ocp.StandardCheckpointer().metadata(checkpoint.resolve())
    tree = getattr(metadata, "item_metadata", metadata)
    dtypes = {str(leaf.dtype) for leaf in jax.tree.leaves(tree)}
    assert dtypes == {"bfloat16"}
