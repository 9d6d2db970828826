"""Batches of cached features read straight from the cache's memory-mapped Arrow buffers.

`datasets`' torch formatter converts every row's arrays separately in Python and upcasts float16
to float32; for this workload it delivered ~1-5% of memcpy speed (benchmarks/train_throughput.py).
Here each Array2D column is viewed, without a copy, as one (rows, *shape) numpy array per Arrow
chunk (one chunk per cache shard), and a batch is one row copy per clip and column into a float16
tensor, upcast on the device. (Not one `np.take` per chunk: a shuffled batch of 48 from the ~1,200
shards of a 77k-clip cache touches ~47 chunks, and the per-chunk work made a clip 1.3x dearer at
10k clips than at 1k; benchmarks/scale.py.)

Uses two attributes of `datasets.Dataset` that are not documented API: `.data` (its Arrow table)
and `._indices` (the row mapping `select`/`sort` create). tests/test_feature_arrays.py pins both.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


def _column_views(dataset, name: str) -> list[np.ndarray]:
    shape = dataset.features[name].shape
    column = dataset.data.column(name)
    if column.null_count:
        raise ValueError(f"cache column {name!r} has {column.null_count} empty rows (an inference-only cache?)")
    views = []
    for chunk in column.chunks:
        storage = chunk.storage if hasattr(chunk, "storage") else chunk  # Array2D extension type
        values = storage.flatten().flatten().to_numpy(zero_copy_only=True)  # contiguous float16
        views.append(values.reshape(len(chunk), *shape))
    return views


class FeatureArrays(Dataset):
    """Rows `rows` (logical indices of `dataset`) of the feature `columns`, fetched a batch at a time.

    Use with a DataLoader whose `collate_fn` is `identity_collate`: `__getitems__` returns the
    stacked batch itself, in the sampler's order.
    """

    def __init__(self, dataset, columns: list[str], rows: np.ndarray | None = None):
        rows = np.arange(len(dataset)) if rows is None else np.asarray(rows, dtype=np.int64)
        if dataset._indices is not None:  # logical -> physical row of the Arrow table
            rows = dataset._indices.column(0).to_numpy()[rows]
        self.columns, self.rows = list(columns), rows.astype(np.int64)
        self.views = {name: _column_views(dataset, name) for name in self.columns}
        self.offsets = np.cumsum([0] + [len(v) for v in self.views[self.columns[0]]])  # chunk starts
        # Where each of our rows lives: its chunk and its row inside that chunk (16 bytes a row).
        self.chunk_of = np.searchsorted(self.offsets, self.rows, side="right") - 1
        self.row_in_chunk = self.rows - self.offsets[self.chunk_of]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, positions) -> dict[str, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        where = list(zip(self.chunk_of[positions].tolist(), self.row_in_chunk[positions].tolist()))
        batch = {}
        for name in self.columns:
            views = self.views[name]
            out = np.empty((len(where), *views[0].shape[1:]), dtype=views[0].dtype)  # (B, *shape)
            for i, (chunk, row) in enumerate(where):
                out[i] = views[chunk][row]
            batch[name] = torch.from_numpy(out)
        return batch

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {name: value[0] for name, value in self.__getitems__([position]).items()}


def column_values(dataset, name: str) -> np.ndarray:
    """A plain column (e.g. the split) of every row, in the dataset's logical order, read as one Arrow column:
    `dataset[name]` converts it row by row through the index mapping (1 s per 10k clips; benchmarks/scale.py)."""
    values = dataset.data.column(name).to_numpy(zero_copy_only=False)  # physical order
    if dataset._indices is not None:
        values = values[dataset._indices.column(0).to_numpy()]
    return values


def identity_collate(batch):
    return batch
