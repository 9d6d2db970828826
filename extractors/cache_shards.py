"""One shard of the feature cache on disk: its columns, how it is written (fast, atomically) and read
(memory-mapped, or named in one line when it cannot be).

A shard is a Hugging Face ``datasets`` folder (Arrow, memory-mapped) of some clips' rows, written to a
temporary folder and renamed into place, so a killed job (even ``kill -9``) leaves only complete
shards. ``extractors.cache`` decides which shards make the cache; this module knows one at a time.
"""
from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.table import MemoryMappedTable, concat_tables

from extractors.atomic import atomic_path

CORRUPT_DIR = "corrupt"  # CACHE/corrupt/<shard>: where the next extraction moves an unreadable shard


class CorruptShardError(ValueError):
    """A shard of the cache cannot be read."""


def shard_features(shapes: dict, dtype: str) -> datasets.Features:
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


# ---------------------------------------------------------------------- writing
def save_shard(shard_dir: Path, shard: datasets.Dataset, prefix: str) -> Path:
    """Save ``shard`` as ``shard_dir/<prefix>-<random>``, atomically (temp folder + rename)."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    final = shard_dir / f"{prefix}-{uuid.uuid4().hex[:12]}"
    with quiet_datasets(), atomic_path(final) as tmp:
        shard.save_to_disk(str(tmp))
    return final


def shard_dataset(rows: list[dict], features: datasets.Features) -> datasets.Dataset:
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


# ---------------------------------------------------------------------- reading
def open_shard(path: Path) -> datasets.Dataset:
    """One shard as a `datasets.Dataset`, memory-mapped; CorruptShardError (one line, naming it) if it cannot
    be read. (Reading many shards: `shard_table`.)"""
    try:
        shard = datasets.load_from_disk(str(path))
        shard.data.column("id")  # a folder of some other dataset is no shard of ours either
    except Exception as error:  # truncated Arrow, missing state.json, bad JSON...: all mean unreadable
        raise _unreadable(path, error) from error
    return shard


def shard_table(path: Path) -> MemoryMappedTable:
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


def shard_ids(path: Path) -> list[str]:
    return shard_table(path).column("id").to_pylist()


def _unreadable(path: Path, error: Exception) -> CorruptShardError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CorruptShardError(f"{path}: unreadable cache shard ({type(error).__name__}: {reason}); rerun "
                             f"recipes.extract_features on this cache: it moves the shard to "
                             f"{CORRUPT_DIR}/ and extracts its clips again")
