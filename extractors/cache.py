"""The feature cache: the contract between extraction (expensive, once) and training (cheap, often).

On disk a cache is a folder:

    CACHE/cache.json                 how it was extracted: preset name, fingerprint and full config,
                                     toolkit version, feature dtype, feature shapes, require_audio
    CACHE/shards/rank<R>-<uuid>/     Hugging Face `datasets` shards (Arrow, memory-mapped), one row
                                     per clip; each extraction process (rank R) writes its own
    CACHE/failures-rank<R>.jsonl     clips rank R could not extract, with the reason (one file per
                                     rank, so concurrent ranks never interleave lines)
    CACHE/extraction.lock            held (flock) by the one job writing the cache: an extraction (all
                                     its ranks) or a repair; a second one is refused, naming the holder
    CACHE/corrupt/<shard>            unreadable shards, moved aside by the next extraction, which
                                     extracts their clips again (nothing is deleted)
    CACHE/replaced/<shard>           shards that `repair()` rewrote without their repeated rows

Every shard is written to a temporary folder and renamed into place, so a killed job (even
`kill -9`) leaves only complete shards; a rerun skips every clip already in one. `load()` merges the
shards of all ranks into one `datasets.Dataset`, sorted by id (no copy: Arrow tables are
memory-mapped, the order is an index), so the same clips give the same dataset whatever the number
of processes or interruptions that produced it.

A folder is recognised before anything is written to it: shards without a cache.json (how they
were extracted is unknown) are never resumed or loaded (`orphaned_shards()`); a clip id in two
rows (two writers without the lock) is refused on load and on resume until `repair()`; a shard
that cannot be read is named in one line.

Row columns: id, label, split, start, duration, num_valid_frames, one column per visual stream of the
preset (e.g. cavp (T, Dc), timechat (W*Q, Dt)), motion (clip.envelope_frames, 16: the video's motion energy,
``extractors.motion``), audiomae (N, Da), envelope (clip.envelope_frames, 1: the audio's loudness envelope,
``extractors.envelope``), preset, preset_fingerprint.
cache.json records each stream's shape and frame spans (``streams``).

Training and inference caches (`require_audio` in cache.json): a training extraction requires the
audio track, so every row has its `audiomae` target; an inference extraction keeps clips without
audio and stores `audiomae` and `envelope` as null for them (`None` in Python, NaN under the numpy/torch formats).
One cache is one or the other; resuming it in the other mode is an error, and
`load(require_audio=True)` refuses an inference cache that has rows without a target.

This module is the cache as a whole; its lock (`extractors.cache_lock`), one shard's columns, writing
and reading (`extractors.cache_shards`) and the mending of what a killed job left
(`extractors.cache_repair`) have their own modules.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets.table import concat_tables

from extractors import cache_repair
from extractors.atomic import atomic_write_text
from extractors.cache_lock import CacheBusyError, hold_lock
from extractors.cache_repair import REPAIR_COMMAND
from extractors.cache_shards import (CorruptShardError, quiet_datasets, save_shard, shard_dataset, shard_features,
                                     shard_ids, shard_table)
from extractors.presets import AUDIO_TARGET, TARGETS

# The cache's public names, wherever they are defined (its lock, shards and repair have their own modules).
__all__ = ["CACHE_FORMAT", "DTYPES", "CacheBusyError", "CacheMismatchError", "CorruptShardError",
           "DuplicateRowsError", "FeatureCache", "feature_shapes", "quiet_datasets", "toolkit_version"]

# 2: num_valid_frames column, nullable audiomae, per-rank shards and failure logs
# 3: one column per named visual stream; stream spans in cache.json instead of a timechat_spans column
# 4: the clip's loudness envelope (``envelope``, extractors.envelope), the target of timing control
# 5: the clip's motion-energy stream (``motion``, extractors.motion), which timing control's predictor reads
CACHE_FORMAT = 5
# what each older format lacks, for its one-line refusal
_MISSING_IN = {4: "no motion stream, which timing control's envelope predictor reads"}
DTYPES = ("float16", "float32")


class CacheMismatchError(ValueError):
    """The folder on disk is not a cache of the requested preset/config/format (or not a cache at all)."""


class DuplicateRowsError(ValueError):
    """A clip id is in more than one row of the cache."""


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mfm-mapper")
    except PackageNotFoundError:
        return "unknown"


def feature_shapes(preset) -> dict[str, list[int]]:
    """Per-clip array shapes of a preset's features (every stream, then the target), as in cache.json."""
    return preset.dims.shapes()


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

    def orphaned_shards(self) -> list[Path]:
        """The shards of a folder that has no cache.json: [] for a cache (cache.json present) or a folder
        without shards. Such shards were extracted in an unknown way, so nothing may load or resume them:
        `meta`, `load` and `initialise` raise CacheMismatchError for them."""
        return [] if self.exists() else self.shard_paths()

    def meta(self) -> dict:
        if not self.exists():
            self._refuse_orphaned()
            self._refuse_file()
            raise FileNotFoundError(f"{self.root}: not a feature cache (no cache.json); run recipes.extract_features")
        return json.loads(self.meta_path.read_text())

    def _refuse_orphaned(self) -> None:
        orphans = self.orphaned_shards()
        if orphans:
            raise CacheMismatchError(f"{self.root}: holds {len(orphans)} feature shards but no cache.json, so how they "
                                     f"were extracted is unknown; extract into another --out (or move {self.shard_dir} "
                                     f"aside)")

    def _refuse_file(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise CacheMismatchError(f"{self.root}: is a file, not a cache folder; use another --out")

    # ------------------------------------------------------------------ one writer at a time
    def lock(self, job: str = "extraction") -> contextlib.AbstractContextManager:
        """Hold the cache for one writing `job` (an extraction with all its ranks, or a repair) until
        the block ends; raise CacheBusyError, naming the holder, if another job holds it
        (``extractors.cache_lock``: an flock, released by the kernel when the holder dies)."""
        self._refuse_file()
        self.root.mkdir(parents=True, exist_ok=True)
        return hold_lock(self.root, job)

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
                                         f"resume it without --dtype or use another --out")
            if require_audio != meta["require_audio"]:
                raise CacheMismatchError(f"{self.root}: {_mode(meta['require_audio'])} cache cannot be resumed "
                                         f"by {_mode(require_audio)} extraction; resume it "
                                         f"{'without' if meta['require_audio'] else 'with'} --inference, "
                                         f"or use another --out")
            return
        self._refuse_file()
        self._refuse_orphaned()  # never write a cache.json over shards it may not describe
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
                f"(fingerprint {preset.fingerprint()}); use another --out or the matching --preset"
            )
        return meta

    # ------------------------------------------------------------------ shards
    def shard_paths(self) -> list[Path]:
        if not self.shard_dir.is_dir():
            return []
        return sorted(p for p in self.shard_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def completed_ids(self) -> set[str]:
        """Ids of every clip in the cache; CorruptShardError for an unreadable shard, DuplicateRowsError
        if a clip is in two rows (resuming such a cache would report success over a cache that cannot load)."""
        ids_of = {path.name: shard_ids(path) for path in self.shard_paths()}
        done: set[str] = set()
        for ids in ids_of.values():
            done.update(ids)
        if len(done) < sum(len(ids) for ids in ids_of.values()):  # a repeated id: name the first one's shards
            holders: dict[str, list[str]] = {}
            for name, ids in ids_of.items():
                for clip_id in ids:
                    holders.setdefault(clip_id, []).append(name)
            repeated = next(i for i, names in holders.items() if len(names) > 1)
            raise self._duplicate_error(repeated, holders[repeated])
        return done

    def quarantine_corrupt(self) -> list[Path]:
        """Move every unreadable shard to CACHE/corrupt/; only the lock holder may (``extractors.cache_repair``)."""
        return cache_repair.quarantine_corrupt(self)

    def repair(self) -> list[str]:
        """Make the cache loadable again, holding its lock; one line per thing done (``extractors.cache_repair``)."""
        return cache_repair.repair(self)

    def clean_temporaries(self) -> None:
        """Remove half-written shards of a killed job; only the lock holder may (``extractors.cache_repair``)."""
        cache_repair.clean_temporaries(self)

    def write_shard(self, rows: list[dict], rank: int = 0) -> Path:
        """Write `rows` as one new shard of process `rank`, atomically (temp folder + rename)."""
        if not rows:
            raise ValueError("write_shard needs at least one row")
        meta = self.meta()
        preset_columns = {"preset": meta["preset"], "preset_fingerprint": meta["preset_fingerprint"]}
        rows = [{**row, **preset_columns} for row in rows]
        for row in rows:
            _check_shapes(row, meta["shapes"], self.root)
        shard = shard_dataset(rows, shard_features(meta["shapes"], meta["dtype"]))  # float32 arrays cast to dtype here
        return save_shard(self.shard_dir, shard, f"rank{rank:03d}")

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
        meta = self.check(preset) if preset is not None else self._meta_of_this_format()
        paths = self.shard_paths()
        if not paths:
            raise FileNotFoundError(f"{self.root}: the cache holds no extracted clips yet")
        features = shard_features(meta["shapes"], meta["dtype"])
        tables = [shard_table(p) for p in paths]
        for path, table in zip(paths, tables):
            if not table.schema.equals(features.arrow_schema):
                raise CacheMismatchError(f"{path}: its columns are not those of this cache ({', '.join(table.column_names)}); "
                                         f"move it aside or extract again into another --out")
        # One Dataset over all the memory-mapped shard tables (what concatenate_datasets of load_from_disk
        # gives, without building ~1,200 Datasets first); its fingerprint names the shards it holds.
        fingerprint = hashlib.sha256("\n".join(p.name for p in paths).encode()).hexdigest()[:16]
        rows = datasets.Dataset(concat_tables(tables), info=datasets.DatasetInfo(features=features),
                                fingerprint=fingerprint)
        # Arrow's stable sort, by code point as Python sorts str (numpy's sort of a str object array cost 2.5x
        # more per clip at 77k clips than at 1k).
        ids = rows.data.column("id")
        order = pc.sort_indices(ids).to_numpy()
        sorted_ids = ids.take(order).combine_chunks()
        following = sorted_ids.slice(1)
        repeated = following.filter(pc.equal(following, sorted_ids.slice(0, len(following)))).to_pylist()
        if len(repeated):
            holders = [p.name for p in paths for i in shard_ids(p) if i == repeated[0]]
            raise self._duplicate_error(repeated[0], holders, len(set(repeated)))
        if require_audio and rows.data.column(AUDIO_TARGET).null_count:
            raise CacheMismatchError(f"{self.root}: {rows.data.column(AUDIO_TARGET).null_count} clips have no "
                                     f"AudioMAE target (an inference extraction); training needs a training cache")
        if not np.array_equal(order, np.arange(len(order))):
            rows = rows.select(order)
        return rows

    def _duplicate_error(self, clip_id: str, holders: list[str], count: int = 1) -> DuplicateRowsError:
        more = f" (and {count - 1} more ids)" if count > 1 else ""
        return DuplicateRowsError(f"{self.root}: clip id {clip_id!r} is in more than one row (shards {', '.join(holders)})"
                                  f"{more}; a cache holds one row per clip: repair it (keeps each clip's first row) "
                                  f"with {REPAIR_COMMAND.format(root=self.root)}")

    def _meta_of_this_format(self) -> dict:
        meta = self.meta()
        if meta.get("format") != CACHE_FORMAT:
            lacks = f" ({_MISSING_IN[meta['format']]})" if meta.get("format") in _MISSING_IN else ""
            raise CacheMismatchError(f"{self.root}: cache format {meta.get('format')}{lacks}, this toolkit reads format "
                                     f"{CACHE_FORMAT}; extract again into another --out")
        return meta


def _check_shapes(row: dict, shapes: dict, root: Path) -> None:
    for name, shape in shapes.items():
        value = row[name]
        if value is None and name in TARGETS:
            continue
        if list(np.shape(value)) != shape:
            raise ValueError(f"{root}: clip {row['id']!r} has {name} of shape {list(np.shape(value))}, "
                             f"the cache stores {shape}")


def _mode(require_audio: bool) -> str:
    return "a training (audio required)" if require_audio else "an inference (audio optional)"
