"""Verify a bundle, now or later on another machine: required files, schemas, real values,
checksums and the summary's closing statement. Used by the evidence phase, baselines and
``python -m harness verify``."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from harness import bundle
from harness.phases import EVALUATE, TRAIN

CHECKSUMS = "SHA256SUMS"
SCHEMAS_DIR = Path(__file__).parent / "schemas"
FREEZE_MANIFEST = "freeze_manifest.json"
SCHEMA_FILES = (bundle.RUN_MANIFEST, bundle.TRAINING_METRICS, bundle.EVALUATION_RESULTS)
PLACEHOLDER = re.compile(r"^\s*(TODO|TBD|null|none|n/a|<[^>]*>)?\s*$", re.IGNORECASE)


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema for an evidence file (``run_manifest.json`` -> ``run_manifest.schema.json``)."""
    return json.loads((SCHEMAS_DIR / name.replace(".json", ".schema.json")).read_text(encoding="utf-8"))


def required_files(manifest: dict[str, Any]) -> list[str]:
    """The files a bundle must hold, given the phase outcomes its manifest records."""
    phases = manifest.get("phases", {})

    def passed(phase: str) -> bool:
        return phases.get(phase, {}).get("status") == "passed"

    files = [bundle.ENV_SNAPSHOT, bundle.GPU_SNAPSHOT, bundle.RUN_MANIFEST]
    files.append(bundle.summary_name(str(manifest.get("milestone", "?"))))
    if manifest.get("steps_completed") or passed(TRAIN):
        files += [bundle.TRAINING_LOG, bundle.TRAINING_METRICS]
    if passed(TRAIN):
        files += [f"{bundle.CHECKPOINT_DIR}/config.json", f"{bundle.CHECKPOINT_DIR}/model.safetensors"]
    if passed(EVALUATE):
        files += [bundle.PREDICTIONS, bundle.EVALUATION_RESULTS, bundle.EVALUATION_SUMMARY]
    if any(p.get("status") != "passed" for p in phases.values()):
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
    """What is missing, empty, invalid or a placeholder among ``files`` of ``run_dir``."""
    found = []
    for name in files:
        path = run_dir / name
        if not path.is_file():
            found.append(f"{name}: missing")
        elif path.stat().st_size == 0:
            found.append(f"{name}: empty")
        elif name in SCHEMA_FILES:
            found += _json_problems(name, path)
    return found


def _json_problems(name: str, path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return [f"{name}: not valid JSON ({error})"]
    return [f"{name}: {where} is empty or a placeholder" for where in placeholder_paths(data)]


def schema_problems(run_dir: Path) -> list[str]:
    """Where the bundle's JSON evidence files break their JSON Schemas (in ``harness/schemas``)."""
    found = []
    for name in SCHEMA_FILES:
        try:
            data = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # reported as missing or invalid by problems()
        kind = data.get("kind") if isinstance(data, dict) else None
        validator = jsonschema.Draft202012Validator(schema(FREEZE_MANIFEST if kind == "freeze" else name))
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            found.append(f"{name}: {where}: {error.message}")
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_files(run_dir: Path) -> list[str]:
    """Every file of the bundle by relative POSIX path, checksum list and temp files left out."""
    return sorted(
        path.relative_to(run_dir).as_posix()
        for path in run_dir.rglob("*")
        if path.is_file() and path.name != CHECKSUMS and not path.name.startswith(".")
    )


def write_checksums(run_dir: Path) -> Path:
    """``SHA256SUMS`` in ``sha256sum`` format, so ``sha256sum -c SHA256SUMS`` checks it too."""
    lines = [f"{file_sha256(run_dir / name)}  {name}\n" for name in bundle_files(run_dir)]
    return bundle.write_text(run_dir / CHECKSUMS, "".join(lines))


def checksum_problems(run_dir: Path) -> list[str]:
    listing = run_dir / CHECKSUMS
    if not listing.is_file():
        return [f"{CHECKSUMS}: missing"]
    listed: dict[str, str] = {}
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest):
            return [f"{CHECKSUMS}:{number}: not a '<sha256>  <path>' line"]
        listed[name] = digest
    found = []
    for name, digest in sorted(listed.items()):
        path = run_dir / name
        if not path.is_file():
            found.append(f"{name}: listed in {CHECKSUMS} but missing")
        elif file_sha256(path) != digest:
            found.append(f"{name}: content differs from its {CHECKSUMS} entry")
    found += [f"{name}: not listed in {CHECKSUMS}" for name in bundle_files(run_dir) if name not in listed]
    return found


def verify_bundle(run_dir: Path, *, checksums: bool = True) -> list[str]:
    """Every problem with the bundle in ``run_dir``; an empty list means it verifies."""
    manifest_path = run_dir / bundle.RUN_MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        return [f"{bundle.RUN_MANIFEST}: unreadable ({error})"]
    found = problems(run_dir, required_files(manifest)) + schema_problems(run_dir)
    summary = run_dir / bundle.summary_name(str(manifest.get("milestone", "?")))
    statement = str(manifest.get("closing_statement", ""))
    if summary.is_file() and statement and statement not in summary.read_text(encoding="utf-8"):
        found.append(f"{summary.name}: does not carry the closing statement")
    if checksums:
        found += checksum_problems(run_dir)
    return found
