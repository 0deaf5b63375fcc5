"""The frozen submission: a deterministic ZIP with a MANIFEST.json inside, validated, and its lock record."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.evidence.redact import secret_values
from harness.hashing import file_sha256
from harness.spec.freeze_paths import unsafe_name

SUBMISSION_ZIP = "submission.zip"
ZIP_MANIFEST = "MANIFEST.json"
# Fixed entry metadata, so the same inputs always give a byte-identical archive.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644 << 16


@dataclass(frozen=True)
class ZipInput:
    """One file that goes into the submission, under ``name`` inside the archive."""

    name: str
    source: Path


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.external_attr = FILE_MODE
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # always "Unix", whichever OS builds it
    return info


def zip_manifest(inputs: list[ZipInput]) -> dict[str, Any]:
    """``MANIFEST.json``: path, size and sha256 of every entry, sorted by path."""
    return {
        "files": [
            {"path": item.name, "size": item.source.stat().st_size, "sha256": file_sha256(item.source)}
            for item in sorted(inputs, key=lambda i: i.name)
        ]
    }


def build_zip(inputs: list[ZipInput], destination: Path) -> Path:
    """Write the archive: sorted entries, fixed timestamps and modes, MANIFEST.json last."""
    manifest = json.dumps(zip_manifest(inputs), indent=2, sort_keys=True) + "\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compresslevel=9) as archive:
        for item in sorted(inputs, key=lambda i: i.name):
            archive.writestr(_entry(item.name), item.source.read_bytes())
        archive.writestr(_entry(ZIP_MANIFEST), manifest)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.tmp")
    temporary.write_bytes(buffer.getvalue())
    temporary.replace(destination)
    return destination


def validate_zip(path: Path, size_budget_mb: float) -> list[str]:
    """Every problem with the archive: unreadable, manifest mismatch, unsafe paths, secrets, size."""
    if not path.is_file():
        return [f"{path.name}: missing"]
    found = []
    if path.stat().st_size > size_budget_mb * 2**20:
        found.append(f"{path.name}: {path.stat().st_size / 2**20:.1f} MiB is over the {size_budget_mb:g} MiB budget")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        return found + [f"{path.name}: not a ZIP archive ({error})"]
    with archive:
        names = archive.namelist()
        found += [
            f"{path.name}: {name}: absolute or escaping path" for name in names if unsafe_name(name)
        ]
        if ZIP_MANIFEST not in names:
            return found + [f"{path.name}: no {ZIP_MANIFEST} inside"]
        listed = {entry["path"]: entry for entry in json.loads(archive.read(ZIP_MANIFEST))["files"]}
        found += _entry_problems(path.name, archive, listed, names)
    return found


def _entry_problems(zip_name: str, archive: zipfile.ZipFile, listed: dict[str, Any], names: list[str]) -> list[str]:
    found = []
    secrets = [value.encode() for value in secret_values()]
    for name in names:
        if name == ZIP_MANIFEST:
            continue
        try:
            data = archive.read(name)
        except (zipfile.BadZipFile, zlib.error) as error:
            found.append(f"{zip_name}: {name}: cannot be read ({error})")
            continue
        entry = listed.get(name)
        if entry is None:
            found.append(f"{zip_name}: {name}: not listed in {ZIP_MANIFEST}")
        elif entry["size"] != len(data) or entry["sha256"] != hashlib.sha256(data).hexdigest():
            found.append(f"{zip_name}: {name}: does not match its {ZIP_MANIFEST} entry")
        if any(secret in data for secret in secrets):
            found.append(f"{zip_name}: {name}: holds the value of a secret environment variable")
    found += [f"{zip_name}: {name}: listed in {ZIP_MANIFEST} but missing" for name in listed if name not in names]
    return found


def lock_record(path: Path) -> dict[str, Any]:
    """What the lock snapshot holds: the archive's and every entry's sha256 and size, no bytes."""
    with zipfile.ZipFile(path) as archive:
        listed = json.loads(archive.read(ZIP_MANIFEST))["files"]
    return {
        SUBMISSION_ZIP: {"sha256": file_sha256(path), "size": path.stat().st_size},
        "entries": {entry["path"]: {"sha256": entry["sha256"], "size": entry["size"]} for entry in listed},
    }


def frozen_zip(runs_root: Path, freeze_id: str) -> Path:
    """Where freeze ``freeze_id`` keeps its ZIP: ``<runs_dir>/<id>/submission.zip``."""
    return runs_root / freeze_id / SUBMISSION_ZIP
