"""sha256 of files, read in chunks: the one digest every part of the harness records."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


def sha256_of(handle: BinaryIO) -> str:
    """Hex sha256 of everything left to read in ``handle``."""
    digest = hashlib.sha256()
    while chunk := handle.read(CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with path.open("rb") as handle:
        return sha256_of(handle)
