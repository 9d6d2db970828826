"""The feature cache: the contract between extraction (expensive, once) and training (cheap, often).

On disk a cache is a folder:

    CACHE/cache.json                 how it was extracted: preset name, fingerprint and full config,
                                     toolkit version, feature dtype, feature shapes, require_audio
    CACHE/shards/rank<R>-<uuid>/     Hugging Face `datasets` shards (Arrow, memory-mapped), one row
                                     per clip; each extraction process (rank R) writes its own
    CACHE/failures-rank<R>.jsonl     clips rank R could not extract, with the reason (one file per
                                     rank, so concurrent ranks never interleave lines)

Every shard is written to a temporary folder and renamed into place, so a killed job (even
`kill -9`) leaves only complete shards; a rerun skips every clip already in one. `load()` merges the
shards of all ranks into one `datasets.Dataset`, sorted by id (no copy: Arrow tables are
memory-mapped, the order is an index), so the same clips give the same dataset whatever the number
of processes or interruptions that produced it.

Row columns: id, label, split, start, duration, num_valid_frames, one column per visual stream of the
preset (e.g. cavp (T, Dc), timechat (W*Q, Dt)), audiomae (N, Da), preset, preset_fingerprint.
cache.json records each stream's shape and frame spans (``streams``).

Training and inference caches (`require_audio` in cache.json): a training extraction requires the
audio track, so every row has its `audiomae` target; an inference extraction keeps clips without
audio and stores `audiomae` as null for them (`None` in Python, NaN under the numpy/torch formats).
One cache is one or the other; resuming it in the other mode is an error, and
`load(require_audio=True)` refuses an inference cache that has rows without a target.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path

import datasets
import numpy as np

from extractors.atomic import atomic_path, atomic_write_text
from extractors.presets import AUDIO_TARGET

# 2: num_valid_frames column, nullable audiomae, per-rank shards and failure logs
# 3: one column per named visual stream; stream spans in cache.json instead of a timechat_spans column
CACHE_FORMAT = 3
DTYPES = ("float16", "float32")


class CacheMismatchError(ValueError):
    """The cache on disk was extracted with a different preset/config/format than requested."""


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mfm-mapper")
    except PackageNotFoundError:
        return "unknown"


def feature_shapes(preset) -> dict[str, list[int]]:
    """Per-clip array shapes of a preset's features (every stream, then the target), as in cache.json."""
    return preset.dims.shapes()


def _features(shapes: dict, dtype: str) -> datasets.Features:
    """Columns of a shard: the row's metadata, then one Array2D per feature (``shapes`` order)."""
    arrays = {name: datasets.Array2D(shape=tuple(shape), dtype=dtype) for name, shape in shapes.items()}
    return datasets.Features(
        id=datasets.Value("string"),
        label=datasets.Value("string"),
        split=datasets.Value("string"),
        start=datasets.Value("float32"),
        duration=datasets.Value("float32"),
        num_valid_frames=datasets.Value("int32"),
        **arrays,  # the target is null where an inference extraction found no audio
        preset=datasets.Value("string"),
        preset_fingerprint=datasets.Value("string"),
    )


@contextlib.contextmanager
def _quiet_datasets():
    """No "Saving the dataset" bar per shard: the extraction has its own progress bar."""
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


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

    # ------------------------------------------------------------------ creation and checks
    def initialise(self, preset, dtype: str | None = None, require_audio: bool = True) -> None:
        """Create the cache for `preset`, or check that an existing one matches the request.

        `dtype`: stored feature dtype of a new cache (default float16); None on an existing cache
        keeps its dtype, an explicit different one is an error. `require_audio`: training (True)
        or inference (False) extraction, see the module docstring.
        """
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"cache dtype must be float16 or float32, not {dtype!r}")
        if self.exists():
            meta = self.check(preset)
            if dtype is not None and dtype != meta["dtype"]:
                raise CacheMismatchError(f"{self.root}: the cache stores {meta['dtype']}, not {dtype}; "
                                         f"resume it without a dtype or use another --out")
            if require_audio != meta["require_audio"]:
                raise CacheMismatchError(f"{self.root}: a {_mode(meta['require_audio'])} cache cannot be resumed "
                                         f"by a {_mode(require_audio)} extraction; use another --out")
            return
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": CACHE_FORMAT,
            "preset": preset.name,
            "preset_fingerprint": preset.fingerprint(),
            "preset_config": preset.to_dict(),
            "toolkit_version": toolkit_version(),
            "dtype": dtype or "float16",
            "shapes": feature_shapes(preset),
            "streams": {name: spec.to_dict() for name, spec in preset.dims.streams.items()},
            "require_audio": bool(require_audio),
        }
        atomic_write_text(self.meta_path, json.dumps(meta, indent=2))

    def check(self, preset) -> dict:
        """The cache's metadata, after checking it was extracted with `preset` by this cache format."""
        meta = self._meta_of_this_format()
        if meta["preset_fingerprint"] != preset.fingerprint():
            raise CacheMismatchError(
                f"{self.root}: extracted with preset {meta['preset']!r} "
                f"(fingerprint {meta['preset_fingerprint']}), not {preset.name!r} "
                f"(fingerprint {preset.fingerprint()}); use another --out or the matching preset"
            )
        return meta

    # ------------------------------------------------------------------ shards
    def shard_paths(self) -> list[Path]:
        if not self.shard_dir.is_dir():
            return []
        return sorted(p for p in self.shard_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def completed_ids(self) -> set[str]:
        done: set[str] = set()
        for path in self.shard_paths():
            done.update(_shard_ids(path))
        return done

    def write_shard(self, rows: list[dict], rank: int = 0) -> Path:
        """Write `rows` as one new shard of process `rank`, atomically (temp folder + rename)."""
        if not rows:
            raise ValueError("write_shard needs at least one row")
        meta = self.meta()
        preset_columns = {"preset": meta["preset"], "preset_fingerprint": meta["preset_fingerprint"]}
        rows = [{**row, **preset_columns} for row in rows]
        for row in rows:
            _check_shapes(row, meta["shapes"], self.root)
        features = _features(meta["shapes"], meta["dtype"])
        columns = {name: [row[name] for row in rows] for name in features}
        with _quiet_datasets():
            shard = datasets.Dataset.from_dict(columns, features=features)  # float32 arrays cast to dtype here
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            final = self.shard_dir / f"rank{rank:03d}-{uuid.uuid4().hex[:12]}"
            with atomic_path(final) as tmp:
                shard.save_to_disk(str(tmp))
        return final

    def clean_temporaries(self) -> None:
        """Remove half-written shards left by a killed job (call before any process writes)."""
        for tmp in self.shard_dir.glob(".*.tmp") if self.shard_dir.is_dir() else []:
            shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ failures
    def record_failure(self, clip_id: str, path: str, reason: str, rank: int = 0) -> None:
        """Append one line to this rank's failure log (one write of one line: a kill cannot split it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"id": clip_id, "path": str(path), "reason": reason}) + "\n"
        with open(self.root / f"failures-rank{rank:03d}.jsonl", "a") as f:
            f.write(line)

    def failures(self) -> list[dict]:
        """Clips that failed and are still not in the cache, latest reason per id, sorted by id."""
        latest: dict[str, dict] = {}
        for path in sorted(self.root.glob("failures-rank*.jsonl")):
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    latest[record["id"]] = record
        done = self.completed_ids()
        return [latest[i] for i in sorted(latest) if i not in done]

    # ------------------------------------------------------------------ reading
    def load(self, preset=None, require_audio: bool = False) -> datasets.Dataset:
        """All rows of all ranks as one memory-mapped dataset, sorted by id.

        With `preset`, refuse a cache of another config; with `require_audio` (training), refuse a
        cache that has rows without the AudioMAE target.
        """
        if preset is not None:
            self.check(preset)
        else:
            self._meta_of_this_format()
        paths = self.shard_paths()
        if not paths:
            raise FileNotFoundError(f"{self.root}: the cache holds no extracted clips yet")
        rows = datasets.concatenate_datasets([datasets.load_from_disk(str(p)) for p in paths])
        ids = np.asarray(rows.data.column("id").to_pylist(), dtype=object)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        repeated = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
        if len(repeated):
            holders = [p.name for p in paths if repeated[0] in set(_shard_ids(p))]
            raise ValueError(f"{self.root}: clip id {repeated[0]!r} is in more than one row (shards "
                             f"{', '.join(holders)}); a cache holds one row per clip, delete one of them")
        if require_audio and rows.data.column(AUDIO_TARGET).null_count:
            raise CacheMismatchError(f"{self.root}: {rows.data.column(AUDIO_TARGET).null_count} clips have no "
                                     f"AudioMAE target (an inference extraction); training needs a training cache")
        if not np.array_equal(order, np.arange(len(order))):
            rows = rows.select(order)
        return rows

    def _meta_of_this_format(self) -> dict:
        meta = self.meta()
        if meta.get("format") != CACHE_FORMAT:
            raise CacheMismatchError(f"{self.root}: cache format {meta.get('format')}, this toolkit reads format "
                                     f"{CACHE_FORMAT}; extract again into another --out")
        return meta


def _shard_ids(path: Path) -> list[str]:
    return datasets.load_from_disk(str(path)).data.column("id").to_pylist()


def _check_shapes(row: dict, shapes: dict, root: Path) -> None:
    for name, shape in shapes.items():
        value = row[name]
        if value is None and name == AUDIO_TARGET:
            continue
        if list(np.shape(value)) != shape:
            raise ValueError(f"{root}: clip {row['id']!r} has {name} of shape {list(np.shape(value))}, "
                             f"the cache stores {shape}")


def _mode(require_audio: bool) -> str:
    return "training (audio required)" if require_audio else "inference (audio optional)"
