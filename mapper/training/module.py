"""The mapper as a LightningModule: loss, NaN stop, the autoregressive validation metric, AdamW + schedule,
and beside it the video envelope predictor of timing control (``mapper.envelope_predictor``).

The predictor reads the raw streams and shares no weight with the mapper; its loss is added to the
mapper's, so each gets only its own gradient, and it is built under a forked random state: the mapper
trains exactly as it would alone (same initial weights, same dropout, same updates; AdamW's update is
per parameter). Only a trainer-level gradient-norm clip (``gradient_clip_val``, which no shipped
config sets) would couple them.

Its ``__init__`` signature is the ``model:`` schema of ``recipes/configs/*.yaml`` (LightningCLI).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from extractors.presets import AUDIO_TARGET, ENVELOPE_TARGET, get_preset
from mapper.arguments import check_choice, check_int, check_number
from mapper.config import MapperConfig, MapperOptions
from mapper.decoders.audioldm2.loading import check_audioldm2_name
from mapper.envelope_predictor import (FOLDER, LEARNING_RATE, WEIGHT_DECAY, EnvelopePredictorConfig, VideoEnvelopePredictor,
                                       envelope_loss, training_batch)
from mapper.generation_defaults import GenerationDefaults, check_sync_guidance, write_generation_defaults
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
        envelope_predictor: bool = True,
        sync_guidance: float = 0.0,
    ):
        """`preset`: the extractor preset of the features (linked to `data.preset`); `mapper`: the
        architecture and ablation switches (`MapperOptions`); `lr_schedule`: "constant" (the paper
        states only AdamW at 1e-3) or "cosine" (decay to 0 over the run); `warmup_steps`: linear
        warm-up; `init_language_model`: AudioLDM-2's GPT-2 to start from (a local `language_model`
        folder, or the hub id `cvssp/audioldm2` — the only case that goes online); `audioldm2`: the
        AudioLDM-2 the exported mapper renders with ("tiny", "toy", a folder or a hub id; default: the
        preset's); `envelope_predictor`: also train the video envelope predictor that timing control
        (sync guidance) needs, on the cache's `envelope` column; `sync_guidance`: the timing-control scale
        the exported mapper generates with by default (its generation_config.json; 0: off, the paper's
        decoding)."""
        config = self.check_arguments(preset, mapper, lr, weight_decay, lr_schedule, warmup_steps, init_language_model,
                                      audioldm2, envelope_predictor, sync_guidance)
        super().__init__()
        # Plain data in the checkpoint's hyperparameters, so it loads with weights_only=True.
        self.save_hyperparameters(ignore=["mapper"])
        self.hparams["mapper"] = dataclasses.asdict(mapper)
        self.mapper = build_mapper(config)
        self.envelope_predictor = None
        if envelope_predictor:
            with torch.random.fork_rng(devices=[]):  # its initial weights leave the mapper's random state as it was
                self.envelope_predictor = VideoEnvelopePredictor(
                    EnvelopePredictorConfig.for_mapper(config, get_preset(preset).clip))

    @staticmethod
    def check_arguments(preset, mapper, lr, weight_decay, lr_schedule, warmup_steps, init_language_model,
                        audioldm2=None, envelope_predictor=True, sync_guidance=0.0) -> MapperConfig:
        """`__init__`'s arguments, checked without building anything (the CLI calls it first); the
        mapper's config."""
        check_choice("model.lr_schedule", lr_schedule, LR_SCHEDULES)
        check_number("model.lr", lr, above=0.0)
        check_number("model.weight_decay", weight_decay, low=0.0)
        check_int("model.warmup_steps", warmup_steps, 0)
        if not isinstance(envelope_predictor, bool):
            raise ValueError(f"model.envelope_predictor must be true or false, got {envelope_predictor!r}")
        check_sync_guidance(sync_guidance, "model.sync_guidance")
        if sync_guidance and not envelope_predictor:
            raise ValueError("model.sync_guidance > 0 needs model.envelope_predictor: true (guidance follows its envelope)")
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

    def export(self, folder) -> None:
        """What generation loads: the mapper (``save_pretrained``), its envelope predictor in
        ``folder/envelope_predictor`` and its generation defaults (``generation_config.json``)."""
        self.mapper.save_pretrained(folder)
        if self.envelope_predictor is not None:
            self.envelope_predictor.save_pretrained(Path(folder) / FOLDER)
        write_generation_defaults(folder, GenerationDefaults(sync_guidance=self.hparams.sync_guidance))

    def _split(self, batch: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A cache batch -> ({stream name: (B, tokens, dim)} the mapper reads, target (B, N, D)), float32."""
        features = {name: batch[name].float() for name in self.mapper.input_streams}
        return features, batch[AUDIO_TARGET].float()

    def _step(self, batch: dict) -> torch.Tensor:
        """The mapper's own loss on a cache batch."""
        return self.mapper.training_loss(*self._split(batch))

    def _envelope_loss(self, batch: dict, augment_seed: int | None = None) -> torch.Tensor | None:
        """The predictor's masked MSE against the cache's envelope (None without a predictor); with
        ``augment_seed``, on its training batch (time-shifted copies, dropout: ``training_batch``)."""
        if self.envelope_predictor is None:
            return None
        features = {name: batch[name].float() for name in self.envelope_predictor.input_streams}
        target = batch[ENVELOPE_TARGET].float()
        if augment_seed is not None:
            features, target = training_batch(self.envelope_predictor, features, target, augment_seed)
        return envelope_loss(self.envelope_predictor(features), target)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        size = len(batch[AUDIO_TARGET])
        loss = self._step(batch)
        # its own random numbers, a function of the step, the batch and the rank (resumable, never the mapper's)
        envelope = self._envelope_loss(batch, 1_000_003 * self.global_step + 1009 * batch_idx + self.global_rank)
        for name, value in (("training loss", loss), ("envelope predictor loss", envelope)):
            if value is not None and not torch.isfinite(value):
                # Stop before the optimizer applies it: checkpoints written so far stay good.
                raise FloatingPointError(
                    f"{name} is {value.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                    "stopped, the last checkpoint is from before this step — lower the lr or check the cache"
                )
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if envelope is None:
            return loss
        self.log("train/envelope_loss", envelope, batch_size=size)
        return loss + envelope  # disjoint parameters: each part gets only its own gradient

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        features, target = self._split(batch)
        size = len(target)
        self.log("val/loss", self.mapper.training_loss(features, target), prog_bar=True, batch_size=size)
        envelope = self._envelope_loss(batch)
        if envelope is not None:
            self.log("val/envelope_loss", envelope, prog_bar=True, batch_size=size)
        # What inference does: the mapper's own tokens, not teacher forcing (exposure bias shows here).
        generated = self.mapper.generate(features)
        self.log("val/mse_generated", F.mse_loss(generated.float(), target), prog_bar=True, batch_size=size)

    def configure_optimizers(self):
        groups = [{"params": list(self.mapper.parameters())}]
        if self.envelope_predictor is not None:  # a group of its own: the mapper's updates are as without it
            groups.append({"params": list(self.envelope_predictor.parameters()), "lr": LEARNING_RATE,
                           "weight_decay": WEIGHT_DECAY})
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
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
