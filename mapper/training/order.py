"""Training order that is the same on any device count and survives a mid-epoch restart.

`EpochShuffleSampler` draws one permutation per epoch from `seed + epoch` and gives rank r the
slice `perm[r::world]` (padded like `DistributedSampler`), so the clips of a global batch are the
same on 1 device or N. `ResumableLoader` exposes Lightning's `state_dict`/`load_state_dict`
protocol: a checkpoint records how many samples of the epoch were consumed, and a resumed run
skips exactly those, so `kill -9` + resume reaches the weights an uninterrupted run reaches.
"""
from __future__ import annotations

from torch.utils.data import DataLoader, DistributedSampler


class EpochShuffleSampler(DistributedSampler):
    """A `DistributedSampler` (Lightning leaves it in place and calls `set_epoch`) that can
    start an epoch part-way through."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.consumed = 0  # samples of this rank's share handed to training in the current epoch
        self._skip = {}  # epoch -> samples to skip (set when resuming)

    def resume(self, epoch: int, consumed: int) -> None:
        self._skip = {epoch: consumed}

    def __iter__(self):
        skip = self._skip.pop(self.epoch, 0)
        self.consumed = skip
        yield from list(super().__iter__())[skip:]

    def __len__(self) -> int:
        return self.num_samples - self._skip.get(self.epoch, 0)


class ResumableLoader(DataLoader):
    """DataLoader whose position inside an epoch is saved in Lightning checkpoints."""

    def count(self, batch_size: int) -> None:
        """Called as each batch reaches the training step (after any prefetching)."""
        self.sampler.consumed += batch_size

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "consumed": self.sampler.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.resume(state["epoch"], state["consumed"])
