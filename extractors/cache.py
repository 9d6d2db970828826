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
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets.table import MemoryMappedTable, concat_tables

from extractors.atomic import atomic_path, atomic_write_text
from extractors.presets import AUDIO_TARGET

# 2: num_valid_frames column, nullable audiomae, per-rank shards and failure logs
# 3: one column per named visual stream; stream spans in cache.json instead of a timechat_spans column
CACHE_FORMAT = 3
DTYPES = ("float16", "float32")
LOCK_FILE = "extraction.lock"
LOCK_GRACE_S = 10.0  # how long a dead holder's exiting workers may keep the lock
CORRUPT_DIR = "corrupt"
REPLACED_DIR = "replaced"
REPAIR_COMMAND = "python -m recipes.extract_features --out {root} --repair"

log = logging.getLogger(__name__)


class CacheMismatchError(ValueError):
    """The folder on disk is not a cache of the requested preset/config/format (or not a cache at all)."""


class CacheBusyError(RuntimeError):
    """Another extraction or repair holds the cache's lock."""


class CorruptShardError(ValueError):
    """A shard of the cache cannot be read."""


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
def quiet_datasets():
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
    @contextlib.contextmanager
    def lock(self, job: str = "extraction"):
        """Hold the cache for one writing `job` (an extraction with all its ranks, or a repair) until
        the block ends; raise CacheBusyError, naming the holder, if another job holds it.

        An flock, not a pid file: the kernel releases it when the holder dies (even `kill -9`), so a
        crashed job never leaves the cache locked. The file stays; it only says who holds it.
        """
        self._refuse_file()
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_flock(fd):
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "job (pid unknown)"
                # A holder that has died on this host may leave forked workers (decoders) that still
                # share the locked file for a moment while the kernel kills them: wait for them.
                if not (_died_here(holder) and _try_flock(fd, wait_s=LOCK_GRACE_S)):
                    raise CacheBusyError(f"{self.root}: another {holder} holds this cache ({LOCK_FILE}); wait for "
                                         f"it to end, or use another --out")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{job} (pid {os.getpid()} on {socket.gethostname()})\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)  # still locked here: nobody reads a stale holder
        finally:
            os.close(fd)  # releases the lock

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
        ids_of = {path.name: _shard_ids(path) for path in self.shard_paths()}
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
        """Move every unreadable shard to CACHE/corrupt/ (its clips are then not done, so an extraction
        extracts them again); returns where they went. Only the lock holder may call this."""
        moved = []
        for path in self.shard_paths():
            try:
                _shard_table(path)
            except CorruptShardError as error:
                moved.append(self._move_aside(path, CORRUPT_DIR))
                log.warning("%s; moved to %s", error, moved[-1])
        return moved

    def repair(self) -> list[str]:
        """Make the cache loadable again, holding its lock; returns one line per thing done (none: nothing to do).

        An unreadable shard goes to CACHE/corrupt/ (an extraction then extracts its clips again). A shard
        repeating clip ids of an earlier shard (`shard_paths` order) or of itself is written again
        without those rows, so each clip keeps its first row; the original goes to CACHE/replaced/
        (nothing is deleted: remove replaced/ once the cache loads). The new shard is complete before
        the old one moves, so an interrupted repair leaves repeated rows, never missing ones; run it again.
        """
        self.meta()  # a cache, not a missing or orphaned folder (before the lock, which creates the folder)
        with self.lock("repair"):
            self.clean_temporaries()
            done = [f"moved unreadable shard {p.name} to {p.parent}/ (the next extraction extracts its clips again)"
                    for p in self.quarantine_corrupt()]
            seen: set[str] = set()
            for path in self.shard_paths():
                shard = _open_shard(path)
                keep = [i for i, clip_id in enumerate(shard.data.column("id").to_pylist())
                        if not (clip_id in seen or seen.add(clip_id))]
                if len(keep) == len(shard):
                    continue
                rank_prefix = path.name.split("-")[0]
                new = f" into {self._save_shard(shard.select(keep), rank_prefix).name}" if keep else ""
                aside = self._move_aside(path, REPLACED_DIR)
                done.append(f"dropped {len(shard) - len(keep)} repeated rows of shard {path.name}{new} "
                            f"(original in {aside.parent}/)")
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
        shard = _shard_dataset(rows, _features(meta["shapes"], meta["dtype"]))  # float32 arrays cast to dtype here
        return self._save_shard(shard, f"rank{rank:03d}")

    def _save_shard(self, shard: datasets.Dataset, prefix: str) -> Path:
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        final = self.shard_dir / f"{prefix}-{uuid.uuid4().hex[:12]}"
        with quiet_datasets(), atomic_path(final) as tmp:
            shard.save_to_disk(str(tmp))
        return final

    def _move_aside(self, shard: Path, folder: str) -> Path:
        """Rename `shard` into CACHE/<folder>/ (a rename: atomic, nothing copied or deleted)."""
        (self.root / folder).mkdir(exist_ok=True)
        target = self.root / folder / shard.name
        while target.exists():  # the same shard name moved aside before: keep both
            target = target.with_name(f"{shard.name}.{uuid.uuid4().hex[:6]}")
        os.replace(shard, target)
        return target

    def clean_temporaries(self) -> None:
        """Remove half-written shards left by a killed job. Only the lock holder may call this, before any of
        its processes writes: a temporary of a job still running would be deleted under it."""
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
        meta = self.check(preset) if preset is not None else self._meta_of_this_format()
        paths = self.shard_paths()
        if not paths:
            raise FileNotFoundError(f"{self.root}: the cache holds no extracted clips yet")
        features = _features(meta["shapes"], meta["dtype"])
        tables = [_shard_table(p) for p in paths]
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
            holders = [p.name for p in paths for i in _shard_ids(p) if i == repeated[0]]
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
            raise CacheMismatchError(f"{self.root}: cache format {meta.get('format')}, this toolkit reads format "
                                     f"{CACHE_FORMAT}; extract again into another --out")
        return meta


def _try_flock(fd: int, wait_s: float = 0.0) -> bool:
    """Take the exclusive lock on `fd`, polling for up to `wait_s` seconds; False if still held."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _died_here(holder: str) -> bool:
    """Whether the lock file's `holder` line names a process on this host that no longer runs."""
    match = re.search(r"\(pid (\d+) on (.+)\)$", holder)
    if match is None or match.group(2) != socket.gethostname():
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _open_shard(path: Path) -> datasets.Dataset:
    """One shard as a `datasets.Dataset`, memory-mapped; CorruptShardError (one line, naming it) if it cannot
    be read. (Reading many shards: `_shard_table`.)"""
    try:
        shard = datasets.load_from_disk(str(path))
        shard.data.column("id")  # a folder of some other dataset is no shard of ours either
    except Exception as error:  # truncated Arrow, missing state.json, bad JSON...: all mean unreadable
        raise _unreadable(path, error) from error
    return shard


def _shard_table(path: Path) -> MemoryMappedTable:
    """One shard's rows as a memory-mapped Arrow table (no copy), read from the files `datasets.load_from_disk`
    reads (state.json, dataset_info.json, the Arrow files state.json lists) but without building a `Dataset`:
    that costs 10-30 ms a shard (a thread pool, deep copies, feature decoding), i.e. 10-40 s to open or resume
    the ~1,200 shards of a 77k-clip cache (benchmarks/scale.py). CorruptShardError if it cannot be read."""
    try:
        state = json.loads((path / "state.json").read_text())
        json.loads((path / "dataset_info.json").read_text())
        tables = [MemoryMappedTable.from_file(str(path / entry["filename"])) for entry in state["_data_files"]]
        if not tables:
            raise ValueError("state.json lists no data files")
        table = tables[0] if len(tables) == 1 else concat_tables(tables)
        table.column("id")  # a folder of some other dataset is no shard of ours either
    except Exception as error:  # truncated Arrow, missing state.json, bad JSON...: all mean unreadable
        raise _unreadable(path, error) from error
    return table


def _unreadable(path: Path, error: Exception) -> CorruptShardError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CorruptShardError(f"{path}: unreadable cache shard ({type(error).__name__}: {reason}); rerun "
                             f"recipes.extract_features on this cache: it moves the shard to "
                             f"{CORRUPT_DIR}/ and extracts its clips again")


def _shard_ids(path: Path) -> list[str]:
    return _shard_table(path).column("id").to_pylist()


def _shard_dataset(rows: list[dict], features: datasets.Features) -> datasets.Dataset:
    """`rows` as one in-memory shard of `features`: the table `Dataset.from_dict` builds, without what made it
    the writer's bottleneck (benchmarks/scale.py): each feature column is converted as one stacked array, not
    one array per row, and the shard's fingerprint is random instead of a hash of a pickle of all its bytes (a
    shard is saved, never transformed, so nothing reads that hash)."""
    arrays = []
    for name, feature in features.items():
        values = [row[name] for row in rows]
        if isinstance(feature, datasets.Array2D):
            arrays.append(_array2d_column(values, feature))
        else:
            arrays.append(pa.array(features.encode_column(values, name), type=feature.pa_type))
    table = pa.Table.from_arrays(arrays, schema=features.arrow_schema)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features), fingerprint=uuid.uuid4().hex)


def _to_float16(values: np.ndarray) -> np.ndarray:
    """float32 -> float16, bit-identical to numpy's and Arrow's cast (round to nearest even, inf beyond range)
    and ~15x faster: torch's vectorised (F16C) cast, in slices below torch's parallel grain, so that it runs on
    this thread alone (a thread pool on a busy machine made it slower than numpy)."""
    source = torch.from_numpy(np.ascontiguousarray(values).reshape(-1))
    out = torch.empty(source.shape, dtype=torch.float16)
    for start in range(0, len(source), _CAST_SLICE):
        out[start:start + _CAST_SLICE].copy_(source[start:start + _CAST_SLICE])
    return out.numpy().reshape(values.shape)


_CAST_SLICE = 16384  # elements; torch splits work over threads above 32768 (at::internal::GRAIN_SIZE)


def _array2d_column(values: list, feature: datasets.Array2D) -> pa.ExtensionArray:
    """Per-row (rows, cols) arrays, None for a null row, as one Array2D column, cast to the feature's dtype
    (round to nearest even, as Arrow's cast) and stored as datasets stores it (list<list<dtype>>)."""
    rows_n, cols_n = feature.shape
    present = np.array([value is not None for value in values], dtype=bool)
    kept = [np.asarray(value) for value in values if value is not None]
    stacked = np.stack(kept) if kept else np.empty((0, rows_n, cols_n), dtype=np.float32)
    if stacked.dtype == np.float32 and feature.dtype == "float16":
        stacked = _to_float16(stacked)
    else:
        with np.errstate(over="ignore"):  # beyond float16's range -> inf, silently, as Arrow's cast does
            stacked = stacked.astype(feature.dtype, copy=False)
    flat = pa.array(stacked.reshape(-1))
    inner_offsets = np.arange(len(kept) * rows_n + 1, dtype=np.int64) * cols_n
    inner = pa.ListArray.from_arrays(pa.array(inner_offsets, type=pa.int32()), flat)
    outer_offsets = np.concatenate([[0], np.cumsum(present * rows_n)])
    mask = None if present.all() else pa.array(~present)
    outer = pa.ListArray.from_arrays(pa.array(outer_offsets, type=pa.int32()), inner, mask=mask)
    return pa.ExtensionArray.from_storage(feature(), outer)


def _check_shapes(row: dict, shapes: dict, root: Path) -> None:
    for name, shape in shapes.items():
        value = row[name]
        if value is None and name == AUDIO_TARGET:
            continue
        if list(np.shape(value)) != shape:
            raise ValueError(f"{root}: clip {row['id']!r} has {name} of shape {list(np.shape(value))}, "
                             f"the cache stores {shape}")


def _mode(require_audio: bool) -> str:
    return "a training (audio required)" if require_audio else "an inference (audio optional)"
