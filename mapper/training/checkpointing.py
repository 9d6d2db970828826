"""The one way the toolkit reads and writes training checkpoints.

Reads: nothing from a checkpoint but tensors and plain data, through the toolkit's one reader
(``extractors.checkpoint.read_checkpoint``: ``weights_only=True`` passed explicitly, a pickled
object that would run code refused in one line). Remote checkpoints (``http://``, ``s3://``, ...)
are refused unless the caller opts in (``allow_remote=True``; ``--allow_remote_checkpoint true`` on
the command line) — Lightning would otherwise download them and unpickle them with
``weights_only=False``; an allowed one is opened with fsspec, as Lightning opens it, and read by the
same reader.

Writes: atomically, so a ``kill -9`` during a save leaves the previous checkpoint intact instead
of a truncated file that ``--resume`` would then fail on.
"""
from __future__ import annotations

import os
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem

from extractors.atomic import atomic_path
from extractors.checkpoint import UnsafeCheckpointError, read_checkpoint

__all__ = ["SafeCheckpointIO", "UnsafeCheckpointError", "check_checkpoint_path", "is_remote", "load_checkpoint_file"]


def is_remote(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def check_checkpoint_path(path: str | os.PathLike, allow_remote: bool = False, name: str = "checkpoint") -> None:
    """A local file, or a remote one the caller opted into; one line naming ``name`` otherwise."""
    if is_remote(path) and not allow_remote:
        raise UnsafeCheckpointError(f"{name} {path} is remote; download it yourself, or allow it with "
                                    "--allow_remote_checkpoint true (it is still read weights-only)")
    if not is_remote(path) and not os.path.isfile(path):
        raise FileNotFoundError(f"{name} {path}: no such file")


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu", allow_remote: bool = False) -> dict:
    """A checkpoint's contents, read weights-only; one-line errors naming the file."""
    check_checkpoint_path(path, allow_remote)
    name = f"checkpoint {path}"
    if not is_remote(path):
        return read_checkpoint(path, name=name, map_location=map_location)
    with get_filesystem(path).open(str(path), "rb") as stream:
        return read_checkpoint(stream, name=name, map_location=map_location)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with weights-only reads and atomic writes (see the module docstring)."""

    def __init__(self, allow_remote: bool = False):
        super().__init__()
        self.allow_remote = allow_remote

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        # `weights_only` from Lightning is ignored on purpose: reads are always weights-only.
        return load_checkpoint_file(path, map_location=map_location or "cpu", allow_remote=self.allow_remote)

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
