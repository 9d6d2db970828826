"""Checkpoint files written atomically: a `kill -9` during a save leaves the previous checkpoint
intact instead of a truncated file that `--resume` would then fail on."""
from __future__ import annotations

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from extractors.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
