"""The feature cache: the contract between extraction (expensive, once) and training (cheap, often).

On disk a cache is a folder:

    CACHE/cache.json          which preset/config/toolkit version extracted it, feature dtype
    CACHE/shards/<name>/      Hugging Face `datasets` shards (Arrow, memory-mapped), one row per clip
    CACHE/failures.jsonl      clips that could not be extracted, with the reason

Extraction appends shards; each shard is written to a temporary folder and renamed into place, so
a killed job leaves only complete shards and a rerun skips every clip already in one. `load()`
concatenates the shards into one `datasets.Dataset` (no copy: Arrow tables are memory-mapped).

Row columns: id, label, split, start, duration, cavp (T, Dc), timechat (W*Q, Dt),
timechat_spans (W, 2), audiomae (N, Da), preset, preset_fingerprint.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import datasets
import numpy as np

from extractors.atomic import atomic_path, atomic_write_text

FEATURE_COLUMNS = ("cavp", "timechat", "audiomae")
CACHE_FORMAT = 1


class CacheMismatchError(ValueError):
    """The cache on disk was extracted with a different preset/config than requested."""


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mfm-mapper")
    except PackageNotFoundError:
        return "unknown"


def _features(row: dict, dtype: str) -> datasets.Features:
    def array(name: str, value_dtype: str) -> datasets.Array2D:
        return datasets.Array2D(shape=tuple(np.asarray(row[name]).shape), dtype=value_dtype)

    return datasets.Features(
        id=datasets.Value("string"),
        label=datasets.Value("string"),
        split=datasets.Value("string"),
        start=datasets.Value("float32"),
        duration=datasets.Value("float32"),
        cavp=array("cavp", dtype),
        timechat=array("timechat", dtype),
        timechat_spans=array("timechat_spans", "int32"),
        audiomae=array("audiomae", dtype),
        preset=datasets.Value("string"),
        preset_fingerprint=datasets.Value("string"),
    )


class FeatureCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def meta_path(self) -> Path:
        return self.root / "cache.json"

    @property
    def shard_dir(self) -> Path:
        return self.root / "shards"

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def meta(self) -> dict:
        if not self.exists():
            raise FileNotFoundError(f"{self.root}: not a feature cache (no cache.json); run recipes.extract_features")
        return json.loads(self.meta_path.read_text())

    def initialise(self, preset, dtype: str = "float16") -> None:
        """Create the cache for `preset`, or check an existing one was made with the same config."""
        if dtype not in ("float16", "float32"):
            raise ValueError(f"cache dtype must be float16 or float32, not {dtype!r}")
        if self.exists():
            self.check(preset)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": CACHE_FORMAT,
            "preset": preset.name,
            "preset_fingerprint": preset.fingerprint(),
            "preset_config": preset.to_dict(),
            "toolkit_version": toolkit_version(),
            "dtype": dtype,
        }
        atomic_write_text(self.meta_path, json.dumps(meta, indent=2))

    def check(self, preset) -> None:
        meta = self.meta()
        if meta["preset_fingerprint"] != preset.fingerprint():
            raise CacheMismatchError(
                f"{self.root}: extracted with preset {meta['preset']!r} "
                f"(fingerprint {meta['preset_fingerprint']}), not {preset.name!r} "
                f"(fingerprint {preset.fingerprint()}); use another --out or the matching preset"
            )

    def shard_paths(self) -> list[Path]:
        if not self.shard_dir.is_dir():
            return []
        return sorted(p for p in self.shard_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def completed_ids(self) -> set[str]:
        done: set[str] = set()
        for path in self.shard_paths():
            done.update(datasets.load_from_disk(str(path))["id"])
        return done

    def write_shard(self, rows: list[dict], rank: int = 0) -> Path:
        """Write `rows` as one new shard, atomically (temp folder + rename)."""
        if not rows:
            raise ValueError("write_shard needs at least one row")
        meta = self.meta()
        preset_columns = {"preset": meta["preset"], "preset_fingerprint": meta["preset_fingerprint"]}
        rows = [{**row, **preset_columns} for row in rows]
        features = _features(rows[0], meta["dtype"])
        columns = {name: [row[name] for row in rows] for name in features}
        shard = datasets.Dataset.from_dict(columns, features=features)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        final = self.shard_dir / f"rank{rank:03d}-{uuid.uuid4().hex[:12]}"
        with atomic_path(final) as tmp:
            shard.save_to_disk(str(tmp))
        return final

    def record_failure(self, clip_id: str, path: str, reason: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "failures.jsonl", "a") as f:
            f.write(json.dumps({"id": clip_id, "path": str(path), "reason": reason}) + "\n")

    def failures(self) -> list[dict]:
        path = self.root / "failures.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def load(self, preset=None) -> datasets.Dataset:
        """All rows as one memory-mapped dataset; with `preset`, refuse a cache of another config."""
        if preset is not None:
            self.check(preset)
        shards = [datasets.load_from_disk(str(p)) for p in self.shard_paths()]
        if not shards:
            raise FileNotFoundError(f"{self.root}: the cache holds no extracted clips yet")
        return datasets.concatenate_datasets(shards)

    def clean_temporaries(self) -> None:
        """Remove half-written shards left by a killed job."""
        for tmp in self.shard_dir.glob(".*.tmp") if self.shard_dir.is_dir() else []:
            shutil.rmtree(tmp, ignore_errors=True)
