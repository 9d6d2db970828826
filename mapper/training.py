"""Lightning wrappers: the mapper as a LightningModule, the feature cache as a LightningDataModule.

Their `__init__` signatures are the schema of `recipes/configs/*.yaml` (LightningCLI reads them).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from extractors.cache import FeatureCache
from extractors.clips import SPLITS
from mapper.config import MapperConfig
from mapper.feature_arrays import FeatureArrays, identity_collate
from mapper.loading import build_mapper
from mapper.training_order import EpochShuffleSampler, ResumableLoader

FEATURES = ["cavp", "timechat", "audiomae"]
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class ToyWorld:
    """Where to build the procedural toy-foley world when the cache does not exist yet."""

    root: str = "data/toy/world"
    num_clips: int = 120
    seed: int = 0


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is split: global = devices x per-device batch x accumulation steps."""

    global_batch: int
    world_size: int
    device_batch: int
    accumulation: int

    def describe(self) -> str:
        return (
            f"global batch {self.global_batch} = {self.world_size} device(s) x {self.device_batch} "
            f"per device x {self.accumulation} accumulation step(s)"
        )


def plan_batches(global_batch: int, world_size: int, max_device_batch: int | None = None) -> BatchPlan:
    """Keep the global batch whatever the device count (the paper's 48 on 3 GPUs or on 1)."""
    if global_batch % world_size:
        raise ValueError(f"global batch {global_batch} is not divisible by {world_size} devices")
    per_device = global_batch // world_size
    accumulation = 1
    if max_device_batch:
        accumulation = -(-per_device // max_device_batch)
        while per_device % accumulation:
            accumulation += 1
    return BatchPlan(global_batch, world_size, per_device // accumulation, accumulation)


class MapperDataModule(L.LightningDataModule):
    def __init__(
        self,
        cache: str = "data/toy/cache",
        preset: str = "tiny",
        batch_size: int = 16,
        max_device_batch: int | None = None,
        num_workers: int = 0,
        toy_world: ToyWorld | None = None,
    ):
        """`batch_size`: the GLOBAL batch, kept when devices change (per-device batch and gradient
        accumulation are derived, see `plan_batches`); `max_device_batch`: memory limit per device;
        `toy_world`: build this world and extract it into `cache` if `cache` is absent."""
        super().__init__()
        self.cache, self.preset, self.batch_size = FeatureCache(cache), preset, batch_size
        self.max_device_batch, self.num_workers, self.toy_world = max_device_batch, num_workers, toy_world
        self.device_batch = batch_size
        self.seed = torch.initial_seed() % 2**31  # LightningCLI's seed_everything has run by now
        self.splits: dict = {}
        self._train_loader = None

    def apply_batch_plan(self, trainer: L.Trainer) -> BatchPlan:
        """Set the per-device batch and the trainer's accumulation for its world size."""
        plan = plan_batches(self.batch_size, trainer.world_size, self.max_device_batch)
        self.device_batch = plan.device_batch
        trainer.accumulate_grad_batches = plan.accumulation
        return plan

    def prepare_data(self) -> None:
        if self.cache.exists() or self.toy_world is None:
            return
        from extractors.clips import list_clips
        from extractors.extraction import extract_to_cache
        from extractors.frozen import FrozenExtractors
        from recipes.make_toy_data import make_toy_world

        metadata = make_toy_world(self.toy_world.root, self.toy_world.num_clips, self.toy_world.seed)
        report = extract_to_cache(list_clips(metadata), self.cache, FrozenExtractors.from_preset(self.preset))
        print(report.summary())

    def setup(self, stage: str | None = None) -> None:
        from extractors.presets import get_preset

        rows = self.cache.load(get_preset(self.preset), require_audio=True)  # training needs targets
        split_of_row = np.asarray(rows["split"])
        for split in SPLITS:
            self.splits[split] = FeatureArrays(rows, FEATURES, np.flatnonzero(split_of_row == split))
        if len(self.splits["train"]) == 0:
            raise ValueError(f"{self.cache.root}: no clips in the 'train' split")

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
            self._train_loader.count(len(batch["cavp"]))
        return batch

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class MapperModule(L.LightningModule):
    def __init__(
        self,
        preset: str = "tiny",
        mapper_type: str = "autoregressive",
        encoders: str = "both",
        fusion: str = "concat_proj",
        loss: str = "mse",
        n_layer: int = 12,
        n_head: int = 12,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        lr_schedule: str = "constant",
        warmup_steps: int = 0,
        init_language_model: str | None = None,
    ):
        """`lr_schedule`: "constant" (the paper states only AdamW at 1e-3) or "cosine" (decay to 0
        over the run); `warmup_steps`: linear warm-up; `init_language_model`: AudioLDM-2's GPT-2 to
        start from (a local `language_model` folder, or the hub id `cvssp/audioldm2` — the only
        case that goes online)."""
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        super().__init__()
        self.save_hyperparameters()
        config = MapperConfig.from_preset(
            preset,
            mapper_type=mapper_type,
            encoders=encoders,
            fusion=fusion,
            loss=loss,
            n_layer=n_layer,
            n_head=n_head,
            dropout=dropout,
        )
        self.mapper = build_mapper(config)
        if init_language_model:
            self.mapper.load_language_model(load_language_model(init_language_model))

    def _step(self, batch: dict) -> torch.Tensor:
        return self.mapper.training_loss(batch["cavp"].float(), batch["timechat"].float(), batch["audiomae"].float())

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch)
        if not torch.isfinite(loss):
            # Stop before the optimizer applies it: checkpoints written so far stay good.
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "stopped, the last checkpoint is from before this step — lower the lr or check the cache"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["cavp"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        size = batch["cavp"].shape[0]
        self.log("val/loss", self._step(batch), prog_bar=True, batch_size=size)
        # What inference does: the mapper's own tokens, not teacher forcing (exposure bias shows here).
        generated = self.mapper.generate(batch["cavp"].float(), batch["timechat"].float())
        self.log("val/mse_generated", F.mse_loss(generated.float(), batch["audiomae"].float()), prog_bar=True, batch_size=size)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = self.trainer.estimated_stepping_batches
        warmup = self.hparams.warmup_steps

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if self.hparams.lr_schedule == "cosine":
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
            return 1.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def load_language_model(name_or_path: str):
    """AudioLDM-2's GPT-2 from a local folder (the `language_model` subfolder or the pipeline
    folder containing it) or, when named, the hub id of an AudioLDM-2 repository."""
    from transformers import GPT2Model

    path = Path(name_or_path)
    if path.is_dir():
        folder = path / "language_model" if (path / "language_model").is_dir() else path
        return GPT2Model.from_pretrained(folder, local_files_only=True)
    if path.suffix or name_or_path.startswith((".", "/")):
        raise FileNotFoundError(f"{name_or_path}: no such folder (expected AudioLDM-2's language_model)")
    return GPT2Model.from_pretrained(name_or_path, subfolder="language_model")
