"""The evidence phase: the bundle holds every file its outcomes call for, filled with real values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness import bundle
from harness.phases import EVALUATE, TRAIN
from harness.run import MilestoneRun
from harness.writers import write_documents

EVIDENCE_JSON = (bundle.RUN_MANIFEST, bundle.TRAINING_METRICS, bundle.EVALUATION_RESULTS)
PLACEHOLDER = re.compile(r"^\s*(TODO|TBD|null|none|n/a|<[^>]*>)?\s*$", re.IGNORECASE)


def required_files(run: MilestoneRun) -> list[str]:
    """The files this run's outcomes call for."""
    files = [bundle.ENV_SNAPSHOT, bundle.GPU_SNAPSHOT, bundle.RUN_MANIFEST]
    if run.steps or run.outcome_of(TRAIN).ok:
        files += [bundle.TRAINING_LOG, bundle.TRAINING_METRICS]
    if run.outcome_of(TRAIN).ok:
        files += [f"{bundle.CHECKPOINT_DIR}/config.json", f"{bundle.CHECKPOINT_DIR}/model.safetensors"]
    if run.outcome_of(EVALUATE).ok:
        files += [bundle.PREDICTIONS, bundle.EVALUATION_RESULTS, bundle.EVALUATION_SUMMARY]
    if any(not o.ok for o in run.outcomes.values()):
        files.append(bundle.FAILURE_ANALYSIS)
    return files


def placeholder_paths(value: Any, path: str = "$") -> list[str]:
    """JSON paths whose value is null, empty or a placeholder ("TODO", "TBD", "<...>")."""
    if value is None:
        return [path]
    if isinstance(value, str):
        return [path] if PLACEHOLDER.match(value) else []
    if isinstance(value, dict):
        if not value:
            return [path]
        return [p for key, item in value.items() for p in placeholder_paths(item, f"{path}.{key}")]
    if isinstance(value, list):
        if not value:
            return [path]
        return [p for i, item in enumerate(value) for p in placeholder_paths(item, f"{path}[{i}]")]
    return []


def problems(run_dir: Path, files: list[str]) -> list[str]:
    """What is missing, empty or a placeholder among ``files`` of ``run_dir``."""
    found = []
    for name in files:
        path = run_dir / name
        if not path.is_file():
            found.append(f"{name}: missing")
        elif path.stat().st_size == 0:
            found.append(f"{name}: empty")
        elif name in EVIDENCE_JSON:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                found.append(f"{name}: not valid JSON ({error})")
                continue
            found += [f"{name}: {where} is empty or a placeholder" for where in placeholder_paths(data)]
    return found


def consolidate(run: MilestoneRun) -> list[str]:
    """Render the documents from what was recorded, then list the bundle's problems."""
    write_documents(run)
    return problems(run.run_dir, required_files(run))
