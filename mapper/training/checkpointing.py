"""The one way the toolkit reads and writes training checkpoints.

Reads: nothing from a checkpoint but tensors and plain data. Every read passes
``weights_only=True`` explicitly, which torch honours in every version we allow (2.4+) and which
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot override; a pickled object that would run code is
refused. Remote checkpoints (``http://``, ``s3://``, ...) are refused unless the caller opts in
(``allow_remote=True``; ``--allow_remote_checkpoint true`` on the command line) — Lightning would
otherwise download them and unpickle them with ``weights_only=False``.

Writes: atomically, so a ``kill -9`` during a save leaves the previous checkpoint intact instead
of a truncated file that ``--resume`` would then fail on.
"""
from __future__ import annotations

import os
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _load as lightning_load

from extractors.atomic import atomic_path


class UnsafeCheckpointError(ValueError):
    """A checkpoint that is remote without opt-in, or holds more than tensors and plain data."""


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
    try:
        # Explicit weights_only=True: torch's environment overrides apply only when it is not passed.
        return lightning_load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            reason = "it holds pickled objects beyond tensors and plain data, which are never unpickled"
            raise UnsafeCheckpointError(f"checkpoint {path} refused: {reason}") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"checkpoint {path} cannot be read: {first}") from error


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
