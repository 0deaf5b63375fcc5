"""The model's lineage in run_manifest.json: folder, revision, every file's sha256, parameters."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import safetensors.numpy

from harness.probes.lineage import NOT_HERE, model_lineage


def a_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    safetensors.numpy.save_file({"a": np.zeros((3, 4), np.float32)}, str(folder / "model-1.safetensors"))
    safetensors.numpy.save_file({"b": np.zeros((5,), np.float16)}, str(folder / "model-2.safetensors"))
    (folder / "tokenizer.model").write_bytes(b"pieces")
    return folder


def test_a_local_folder_records_every_file_its_parameters_and_dtypes(tmp_path: Path) -> None:
    folder = a_folder(tmp_path / "gemma")
    lineage = model_lineage(f"local:{folder}")
    assert lineage["folder"] == str(folder.resolve())
    assert lineage["revision"] == "not known: a folder outside the Hugging Face cache"
    assert lineage["files"]["tokenizer.model"] == hashlib.sha256(b"pieces").hexdigest()
    assert sorted(lineage["files"]) == ["model-1.safetensors", "model-2.safetensors", "tokenizer.model"]
    assert lineage["parameters"] == 17
    assert lineage["dtypes"] == ["F16", "F32"]


def test_a_cached_hf_snapshot_records_its_commit(tmp_path: Path) -> None:
    repo = tmp_path / "models--google--gemma-2b"
    a_folder(repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    lineage = model_lineage("hf:google/gemma-2b", hub_cache=tmp_path)
    assert lineage["revision"] == "abc123"


def test_a_model_not_on_this_machine_says_so(tmp_path: Path) -> None:
    assert model_lineage(f"local:{tmp_path / 'absent'}")["folder"] == NOT_HERE
    assert model_lineage("random:tiny-gemma")["weights"].startswith("random init")
