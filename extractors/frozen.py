"""A preset's frozen foundation models behind one module: video -> named visual streams, audio -> AudioMAE.

Features are computed once and cached at training time, and recomputed for new videos at generation
time; both must come from *identical* weights. Released checkpoints guarantee that for the paper
preset; for random (tiny) presets every model is built right after ``torch.manual_seed(preset.seed)``
inside a forked RNG, so any process builds the same weights without disturbing the caller's RNG.

Numerics follow the originals (``tests/test_fidelity.py`` checks each model against fixtures made by
running them): CAVP and AudioMAE in fp32; TimeChat's visual side in its config's ``precision`` (the
paper preset: fp16 mixed precision exactly as TimeChat; the features come back as float32).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from extractors.audiomae import waveform_to_audiomae_input
from extractors.audiomae_calibration import calibration_path, load_calibration
from extractors.encoders import WEIGHTS_ENV, build_encoder, load_encoder_weights, missing_released_files
from extractors.presets import ExtractorPreset, FeatureDims, get_preset


class FrozenExtractors(nn.Module):
    """The preset's visual encoders (``visual[name]``) + AudioMAE, eval mode, no gradients."""

    def __init__(self, preset: ExtractorPreset):
        super().__init__()
        self.preset = preset
        weights_dir = preset.resolved_weights_dir()
        if weights_dir is not None:  # one clear error before any (possibly billion-parameter) model is built
            configs = [*preset.visual.values(), preset.audiomae]
            missing = [name for config in configs for name in missing_released_files(config, weights_dir)]
            if missing:
                raise FileNotFoundError(f"{weights_dir}: released weights missing: {', '.join(missing)} "
                                        f"(set {WEIGHTS_ENV} or the preset's weights_dir to the folder holding them)")
        self.visual = nn.ModuleDict()
        with torch.random.fork_rng(devices=[]):
            for name, config in preset.visual.items():
                torch.manual_seed(preset.seed)  # each model's random weights independent of the others
                self.visual[name] = build_encoder(config)
            torch.manual_seed(preset.seed)
            self.audiomae = build_encoder(preset.audiomae)
        if weights_dir is not None:
            for name, config in preset.visual.items():
                load_encoder_weights(self.visual[name], config, weights_dir)
            load_encoder_weights(self.audiomae, preset.audiomae, weights_dir)
        if preset.audiomae_norm is not None:
            path = calibration_path(preset.audiomae_norm)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: preset {preset.name!r}'s AudioMAE norm calibration is missing "
                                        "(make it with python -m recipes.pretrain_toy_decoder --stages audiomae)")
            load_calibration(self.audiomae.vit.norm, path)
        self.eval().requires_grad_(False)

    @classmethod
    def from_preset(cls, preset: ExtractorPreset | str) -> "FrozenExtractors":
        return cls(get_preset(preset) if isinstance(preset, str) else preset)

    @property
    def dims(self) -> FeatureDims:
        return self.preset.dims

    @property
    def device(self) -> torch.device:
        return next(self.audiomae.parameters()).device

    @torch.inference_mode()
    def encode_video(self, frames_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, H, W, 3) uint8 frames -> {stream name: (B, tokens, dim) float32}, in the preset's order.

        T must be the preset's frame count (clip seconds x fps); frames are resized by each model.
        """
        d = self.dims
        b, t = frames_uint8.shape[:2]
        if t != d.num_frames:
            raise ValueError(f"expected {d.num_frames} frames per clip ({self.preset.clip.seconds} s at "
                             f"{self.preset.clip.fps} fps), got {t}")
        frames = frames_uint8.to(self.device)
        streams = {}
        for name, encoder in self.visual.items():
            streams[name] = encoder.encode(frames, self.preset.clip)
            expected = (b, *d.streams[name].shape)
            assert streams[name].shape == expected, f"{name}: {tuple(streams[name].shape)} != {expected}"
        return streams

    @torch.inference_mode()
    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, num_samples) float32 mono at the clip sample rate -> AudioMAE targets (B, num_audio_tokens, Da)."""
        if waveform.dim() != 2:
            raise ValueError(f"expected a (B, num_samples) waveform, got {tuple(waveform.shape)}")
        fbank = waveform_to_audiomae_input(waveform.to(self.device), self.preset.audiomae)  # (B, 1024, 128)
        tokens = self.audiomae(fbank).float()
        d = self.dims
        assert tokens.shape == (waveform.shape[0], d.num_audio_tokens, d.audio_token_dim), tokens.shape
        return tokens
