"""The feature cache as a LightningDataModule: splits, the global-batch plan, the resumable epoch order.

Its ``__init__`` signature is the ``data:`` schema of ``recipes/configs/*.yaml`` (LightningCLI). The
defaults of ``cache`` and ``toy_world.root`` are the toy recipe's folders (``toy_world.folders``), which
``toy.yaml`` does not repeat.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from extractors.cache import FeatureCache
from extractors.manifest import SPLITS
from extractors.presets import AUDIO_TARGET, PRESETS, get_preset
from mapper.arguments import check_choice, check_int
from mapper.training.batch_plan import BatchPlan, plan_batches
from mapper.training.feature_arrays import FeatureArrays, column_values, identity_collate
from mapper.training.order import EpochShuffleSampler, ResumableLoader
from toy_world.folders import CACHE_DIR, WORLD_DIR
from toy_world.world import CLASS_SETS


class DataError(ValueError):
    """The cache cannot be trained on as it is (one line naming the folder and the reason)."""


@dataclass
class ToyWorldSettings:
    """Where to build the procedural toy-foley world when the cache does not exist yet."""

    root: str = WORLD_DIR
    num_clips: int = 120
    seed: int = 0
    class_set: str = "default"  # toy_world.world.CLASS_SETS: "other" makes a world of four other classes


class MapperDataModule(L.LightningDataModule):
    def __init__(
        self,
        cache: str = CACHE_DIR,
        preset: str = "tiny",
        batch_size: int = 16,
        max_device_batch: int | None = None,
        num_workers: int = 0,
        toy_world: ToyWorldSettings | None = None,
    ):
        """`batch_size`: the GLOBAL batch, kept when devices change (per-device batch and gradient
        accumulation are derived, see `plan_batches`); `max_device_batch`: memory limit per device;
        `toy_world`: build this world and extract it into `cache` if `cache` is absent."""
        self.check_arguments(cache, preset, batch_size, max_device_batch, num_workers, toy_world)
        super().__init__()
        self.cache, self.preset, self.batch_size = FeatureCache(cache), preset, batch_size
        self.max_device_batch, self.num_workers, self.toy_world = max_device_batch, num_workers, toy_world
        self.device_batch = batch_size
        self.seed = torch.initial_seed() % 2**31  # LightningCLI's seed_everything has run by now
        self.splits: dict = {}
        self._train_loader = None

    @staticmethod
    def check_arguments(cache, preset, batch_size, max_device_batch=None, num_workers=0, toy_world=None) -> None:
        """`__init__`'s arguments, checked without building anything (the CLI calls it first)."""
        check_choice("data.preset", preset, sorted(PRESETS))
        check_int("data.batch_size", batch_size, 1)
        if max_device_batch is not None:
            check_int("data.max_device_batch", max_device_batch, 1)
        check_int("data.num_workers", num_workers, 0)
        if os.path.exists(cache) and not os.path.isdir(cache):
            raise ValueError(f"data.cache={cache!r} is a file; expected a cache folder")
        if toy_world is not None:
            toy_world = ToyWorldSettings(**toy_world) if isinstance(toy_world, dict) else toy_world
            # every split needs clips (the world assigns them in proportion)
            check_int("data.toy_world.num_clips", toy_world.num_clips, len(SPLITS) * 2)
            check_int("data.toy_world.seed", toy_world.seed, 0)
            check_choice("data.toy_world.class_set", toy_world.class_set, tuple(CLASS_SETS))

    def apply_batch_plan(self, trainer: L.Trainer) -> BatchPlan:
        """Set the per-device batch and the trainer's accumulation for its world size."""
        plan = plan_batches(self.batch_size, trainer.world_size, self.max_device_batch)
        self.device_batch = plan.device_batch
        trainer.accumulate_grad_batches = plan.accumulation
        return plan

    def prepare_data(self) -> None:
        if self.cache.exists() or self.toy_world is None:
            return
        if self.cache.root.is_dir() and any(self.cache.root.iterdir()):
            # Something is there but not a cache this toolkit made (or its cache.json is lost):
            # never extract the toy world into it.
            raise DataError(f"{self.cache.root}: not empty but has no cache.json; the toy world is only "
                            "built into a missing or empty folder (pick another data.cache)")
        from extractors.manifest import list_clips
        from extractors.extraction import extract_to_cache
        from toy_world import make_toy_world

        metadata = make_toy_world(self.toy_world.root, self.toy_world.num_clips, self.toy_world.seed,
                                  class_set=self.toy_world.class_set)
        # Given the preset, extraction builds the models only once it holds the cache's lock.
        report = extract_to_cache(list_clips(metadata), self.cache, get_preset(self.preset))
        print(report.summary())

    def setup(self, stage: str | None = None) -> None:
        preset = get_preset(self.preset)
        rows = self.cache.load(preset, require_audio=True)  # training needs targets
        split_of_row = column_values(rows, "split")
        columns = list(preset.dims.shapes())  # every visual stream, then the target
        for split in SPLITS:
            self.splits[split] = FeatureArrays(rows, columns, np.flatnonzero(split_of_row == split))
        # Checked before training starts, so a run never ends without a split it needs.
        for split in ("train", "val"):
            if len(self.splits[split]) == 0:
                raise DataError(f"{self.cache.root}: no clips in the '{split}' split (training needs train and val)")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_size=self.device_batch,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=identity_collate,
        )

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = EpochShuffleSampler(
            self.splits["train"], num_replicas=trainer.world_size, rank=trainer.global_rank, seed=self.seed
        )
        self._train_loader = ResumableLoader(
            self.splits["train"],
            batch_size=self.device_batch,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=identity_collate,
        )
        return self._train_loader

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer.training and self._train_loader is not None:
            self._train_loader.count(len(batch[AUDIO_TARGET]))
        return batch

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
