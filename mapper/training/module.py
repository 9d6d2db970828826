"""The mapper as a LightningModule: loss, NaN stop, the autoregressive validation metric, AdamW + schedule.

Its ``__init__`` signature is the ``model:`` schema of ``recipes/configs/*.yaml`` (LightningCLI).
"""
from __future__ import annotations

import dataclasses
import math

import lightning as L
import torch
import torch.nn.functional as F

from extractors.presets import AUDIO_TARGET
from mapper.arguments import check_choice, check_int, check_number
from mapper.config import MapperConfig, MapperOptions
from mapper.decoders.audioldm2.loading import check_audioldm2_name
from mapper.loading import build_mapper
from mapper.training.language_model import language_model_folder, load_language_model

LR_SCHEDULES = ("constant", "cosine")


class MapperModule(L.LightningModule):
    def __init__(
        self,
        preset: str = "tiny",
        mapper: MapperOptions = MapperOptions(),
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        lr_schedule: str = "constant",
        warmup_steps: int = 0,
        init_language_model: str | None = None,
        audioldm2: str | None = None,
    ):
        """`preset`: the extractor preset of the features (linked to `data.preset`); `mapper`: the
        architecture and ablation switches (`MapperOptions`); `lr_schedule`: "constant" (the paper
        states only AdamW at 1e-3) or "cosine" (decay to 0 over the run); `warmup_steps`: linear
        warm-up; `init_language_model`: AudioLDM-2's GPT-2 to start from (a local `language_model`
        folder, or the hub id `cvssp/audioldm2` — the only case that goes online); `audioldm2`: the
        AudioLDM-2 the exported mapper renders with ("tiny", "toy", a folder or a hub id; default: the
        preset's)."""
        config = self.check_arguments(preset, mapper, lr, weight_decay, lr_schedule, warmup_steps, init_language_model,
                                      audioldm2)
        super().__init__()
        # Plain data in the checkpoint's hyperparameters, so it loads with weights_only=True.
        self.save_hyperparameters(ignore=["mapper"])
        self.hparams["mapper"] = dataclasses.asdict(mapper)
        self.mapper = build_mapper(config)

    @staticmethod
    def check_arguments(preset, mapper, lr, weight_decay, lr_schedule, warmup_steps, init_language_model,
                        audioldm2=None) -> MapperConfig:
        """`__init__`'s arguments, checked without building anything (the CLI calls it first); the
        mapper's config."""
        check_choice("model.lr_schedule", lr_schedule, LR_SCHEDULES)
        check_number("model.lr", lr, above=0.0)
        check_number("model.weight_decay", weight_decay, low=0.0)
        check_int("model.warmup_steps", warmup_steps, 0)
        if init_language_model:
            language_model_folder(init_language_model)  # a missing folder fails now, not once training starts
        if audioldm2 is not None:
            check_audioldm2_name("model.audioldm2", audioldm2)
        mapper = MapperOptions(**mapper) if isinstance(mapper, dict) else mapper
        return MapperConfig.from_preset(preset, mapper, audioldm2=audioldm2)

    def setup(self, stage: str) -> None:
        # Loaded here, not in __init__: every argument (the trainer's too) is checked before any
        # weights are read or downloaded. A resumed run then restores its checkpoint over it.
        if stage == "fit" and self.hparams.init_language_model:
            self.mapper.load_language_model(load_language_model(self.hparams.init_language_model))

    def _split(self, batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A cache batch -> ({stream name: (B, tokens, dim)} the mapper reads, target (B, N, D)), float32."""
        features = {name: batch[name].float() for name in self.mapper.input_streams}
        return features, batch[AUDIO_TARGET].float()

    def _step(self, batch: dict) -> torch.Tensor:
        return self.mapper.training_loss(*self._split(batch))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch)
        if not torch.isfinite(loss):
            # Stop before the optimizer applies it: checkpoints written so far stay good.
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "stopped, the last checkpoint is from before this step — lower the lr or check the cache"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch[AUDIO_TARGET]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        features, target = self._split(batch)
        size = len(target)
        self.log("val/loss", self.mapper.training_loss(features, target), prog_bar=True, batch_size=size)
        # What inference does: the mapper's own tokens, not teacher forcing (exposure bias shows here).
        generated = self.mapper.generate(features)
        self.log("val/mse_generated", F.mse_loss(generated.float(), target), prog_bar=True, batch_size=size)

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
