"""Embeddings per file, cached on disk by the file's content and the embedder that made them.

Layout: ``ROOT/<embedder key>/<shard>/`` (``datasets`` shards, one row per file: ``content`` = the
sha256 of the file's bytes, and per output a flat float32 list with its shape). The embedder key
names the embedder, its preset, a hash of its configuration and the protocol (audio length), so
changing any of them never reuses stale numbers. A rerun embeds only files whose content it has
not seen under that key — a reference set is embedded once, whatever folder it is read from.
Shards are written atomically, so an interrupted run keeps every finished batch.

Integrity: every row carries the sha256 of its outputs (names, shapes and float32 bytes). A row whose
numbers no longer match it (edited in place), or a shard that cannot be read at all (truncated), is
named in one line on stderr and dropped: the shard is rewritten without the bad rows (the unreadable
or original one is kept aside as ``.rejected-<name>`` for inspection) and the dropped files are
embedded again by the caller, since they are no longer found.
"""
from __future__ import annotations

import hashlib
import json
import sys
import uuid
from pathlib import Path

import datasets
import numpy as np

from extractors.atomic import atomic_path
from extractors.cache_shards import quiet_datasets


CACHE_FORMAT = 2  # 2: rows carry a checksum (older caches are keyed apart, so they are recomputed, not trusted)


def embedder_key(name: str, preset: str, config: dict, protocol: dict) -> str:
    """``<name>-<preset>-<12 hex>``: the hash covers the configuration and the protocol."""
    blob = json.dumps({"config": config, "protocol": protocol, "format": CACHE_FORMAT}, sort_keys=True, default=str)
    return f"{name}-{preset}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


class EmbeddingCache:
    def __init__(self, root: str | Path, key: str):
        self.folder = Path(root) / key

    def _shards(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def load(self) -> dict[str, dict[str, np.ndarray]]:
        """Every cached file's outputs that pass their checksum: content hash -> {output name -> array}."""
        found: dict[str, dict[str, np.ndarray]] = {}
        for shard in self._shards():
            try:
                rows = datasets.load_from_disk(str(shard))
                names = [c[: -len(".shape")] for c in rows.column_names if c.endswith(".shape")]
                entries = {row["content"]: (row["checksum"], _outputs(row, names)) for row in rows}
            except Exception as error:  # a truncated or edited Arrow file: pyarrow/datasets raise many types
                self._set_aside(shard)
                _report(f"{shard}: unreadable ({type(error).__name__}: {' '.join(str(error).split())[:120]}); "
                        "set aside, its files will be embedded again")
                continue
            good = {content: outputs for content, (checksum, outputs) in entries.items()
                    if checksum == outputs_checksum(outputs)}
            if len(good) < len(entries):
                self._set_aside(shard)
                self.add(good)
                _report(f"{shard}: {len(entries) - len(good)} of {len(entries)} entries fail their checksum; "
                        "dropped, those files will be embedded again")
            found.update(good)
        return found

    def _set_aside(self, shard: Path) -> None:
        shard.rename(shard.with_name(f".rejected-{shard.name}"))

    def add(self, outputs: dict[str, dict[str, np.ndarray]]) -> None:
        """Store {content hash -> {output name -> array}} as one new shard."""
        if not outputs:
            return
        names = sorted(next(iter(outputs.values())))
        columns: dict[str, list] = {"content": list(outputs),
                                    "checksum": [outputs_checksum(o) for o in outputs.values()]}
        for name in names:
            columns[name] = [np.asarray(o[name], dtype=np.float32).ravel() for o in outputs.values()]
            columns[f"{name}.shape"] = [list(np.shape(o[name])) for o in outputs.values()]
        features = datasets.Features({
            "content": datasets.Value("string"),
            "checksum": datasets.Value("string"),
            **{name: datasets.Sequence(datasets.Value("float32")) for name in names},
            **{f"{name}.shape": datasets.Sequence(datasets.Value("int64")) for name in names},
        })
        self.folder.mkdir(parents=True, exist_ok=True)
        with quiet_datasets(), atomic_path(self.folder / f"shard-{uuid.uuid4().hex[:12]}") as tmp:
            datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(tmp))


def outputs_checksum(outputs: dict[str, np.ndarray]) -> str:
    """sha256 over each output's name, shape and float32 bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(outputs):
        array = np.ascontiguousarray(outputs[name], dtype=np.float32)
        digest.update(f"{name}:{list(array.shape)}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _outputs(row: dict, names: list[str]) -> dict[str, np.ndarray]:
    return {name: np.asarray(row[name], dtype=np.float32).reshape(row[f"{name}.shape"]) for name in names}


def _report(message: str) -> None:
    print(f"evaluation cache: {message}", file=sys.stderr, flush=True)
