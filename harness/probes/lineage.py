"""The model's lineage for ``run_manifest.json``: which weights and tokenizer, byte for byte."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.spec.data import file_sha256
from trainers.models import ModelSource, flax_checkpoint, pretrained_folder

NOT_HERE = "not recorded: the model folder was not on this machine before training"


def revision(parsed: ModelSource, folder: Path) -> str:
    """The Hugging Face commit of a cached snapshot (its folder name), the version of a Kaggle
    handle, else why it is not known."""
    if folder.parent.name == "snapshots":
        return folder.name
    if parsed.kind == "kaggle" and not Path(parsed.location).is_dir():
        return f"Kaggle version {parsed.location.split('/')[4]}"
    return "not known: a folder outside the Hugging Face cache"


def weight_facts(folder: Path) -> tuple[int, list[str]]:
    """Parameter count and dtypes from the safetensors headers, without loading a tensor."""
    import safetensors

    parameters, dtypes = 0, set()
    for file in sorted(folder.rglob("*.safetensors")):
        with safetensors.safe_open(str(file), framework="numpy") as weights:
            for name in weights.keys():  # noqa: SIM118 (a safetensors handle is no dict)
                tensor = weights.get_slice(name)
                parameters += math.prod(tensor.get_shape())
                dtypes.add(tensor.get_dtype())
    return parameters, sorted(dtypes)


def orbax_facts(checkpoint: Path) -> tuple[int, list[str]]:
    """Parameter count and dtypes of an orbax checkpoint (Kaggle's Flax layout), from its
    metadata alone."""
    import orbax.checkpoint as ocp

    tree = ocp.StandardCheckpointer().metadata(checkpoint.resolve()).item_metadata.tree
    leaves = [leaf for group in tree.values() for leaf in group.values()]
    return sum(math.prod(leaf.shape) for leaf in leaves), sorted(
        {str(leaf.dtype) for leaf in leaves}
    )


def model_lineage(source: str, hub_cache: Path | None = None) -> dict[str, Any]:
    """Where the model came from: for a pretrained folder, the resolved folder, its revision, the
    sha256 of every file in it, and the parameter count and dtypes its weights declare (in the
    safetensors headers, or Kaggle's Flax layout's orbax metadata)."""
    parsed = ModelSource.parse(source)
    if parsed.kind == "random":
        return {"source": source, "weights": "random init from the architecture and the seed"}
    try:
        folder = pretrained_folder(parsed, fetch=False, hub_cache=hub_cache)
    except FileNotFoundError:
        return {"source": source, "folder": NOT_HERE}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    checkpoint = flax_checkpoint(folder) if parsed.kind == "kaggle" else None
    parameters, dtypes = weight_facts(folder) if checkpoint is None else orbax_facts(checkpoint)
    return {
        "source": source,
        "folder": str(folder.resolve()),
        "revision": revision(parsed, folder),
        "files": {p.relative_to(folder).as_posix(): file_sha256(p) for p in files},
        "parameters": parameters or "not read: no safetensors or orbax weights",
        "dtypes": dtypes or "not read: no safetensors or orbax weights",
    }
