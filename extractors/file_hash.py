"""The sha256 of a file, read in 1 MiB blocks: the one helper behind every checksum the project records
(shipped weights' provenance, the evaluation's embedding-cache keys)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
