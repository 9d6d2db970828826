"""Embeddings per file, cached on disk by the file's content and the embedder that made them.

Layout: ``ROOT/<embedder key>/<shard>/`` (``datasets`` shards, one row per file: ``content`` = the
sha256 of the file's bytes, and per output a flat float32 list with its shape). The embedder key
names the embedder, its preset, a hash of its configuration and the protocol (audio length), so
changing any of them never reuses stale numbers. A rerun embeds only files whose content it has
not seen under that key — a reference set is embedded once, whatever folder it is read from.
Shards are written atomically, so an interrupted run keeps every finished batch.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import datasets
import numpy as np

from extractors.atomic import atomic_path
from extractors.cache import quiet_datasets


def embedder_key(name: str, preset: str, config: dict, protocol: dict) -> str:
    """``<name>-<preset>-<12 hex>``: the hash covers the configuration and the protocol."""
    blob = json.dumps({"config": config, "protocol": protocol}, sort_keys=True, default=str)
    return f"{name}-{preset}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


class EmbeddingCache:
    def __init__(self, root: str | Path, key: str):
        self.folder = Path(root) / key

    def _shards(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def load(self) -> dict[str, dict[str, np.ndarray]]:
        """Every cached file's outputs: content hash -> {output name -> array}."""
        found: dict[str, dict[str, np.ndarray]] = {}
        for shard in self._shards():
            rows = datasets.load_from_disk(str(shard))
            names = [c[: -len(".shape")] for c in rows.column_names if c.endswith(".shape")]
            for row in rows:
                found[row["content"]] = {
                    name: np.asarray(row[name], dtype=np.float32).reshape(row[f"{name}.shape"]) for name in names
                }
        return found

    def add(self, outputs: dict[str, dict[str, np.ndarray]]) -> None:
        """Store {content hash -> {output name -> array}} as one new shard."""
        if not outputs:
            return
        names = sorted(next(iter(outputs.values())))
        columns: dict[str, list] = {"content": list(outputs)}
        for name in names:
            columns[name] = [np.asarray(o[name], dtype=np.float32).ravel() for o in outputs.values()]
            columns[f"{name}.shape"] = [list(np.shape(o[name])) for o in outputs.values()]
        features = datasets.Features({
            "content": datasets.Value("string"),
            **{name: datasets.Sequence(datasets.Value("float32")) for name in names},
            **{f"{name}.shape": datasets.Sequence(datasets.Value("int64")) for name in names},
        })
        self.folder.mkdir(parents=True, exist_ok=True)
        with quiet_datasets(), atomic_path(self.folder / f"shard-{uuid.uuid4().hex[:12]}") as tmp:
            datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(tmp))
