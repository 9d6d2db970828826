"""The frozen visual extractors as a diffusers pipeline component (save_pretrained / from_pretrained).

``extractors.frozen.FrozenExtractors`` is a plain ``nn.Module`` built from a named preset. To sit in
a ``DiffusionPipeline`` next to the UNet it needs diffusers' save/load protocol; this wrapper adds
exactly that: its config records the preset name, whether the weights were the released ones, and
the preset's fingerprint, and its weights are saved as safetensors like any diffusers model. A
saved pipeline therefore reloads its extractors without ``MFM_WEIGHTS``, and refuses to load if
the named preset's definition changed since (its features would no longer match the mapper).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from extractors.frozen import FrozenExtractors
from extractors.presets import ExtractorPreset, get_preset


def preset_fingerprint(preset: ExtractorPreset, pretrained: bool) -> str:
    """The fingerprint features extracted with ``preset`` carry, released weights or random."""
    return replace(preset, released=pretrained, weights_dir="released" if pretrained else None).fingerprint()


class VisualExtractors(ModelMixin, ConfigMixin):
    """The visual encoders (+ AudioMAE) of one preset; ``.frozen`` is the wrapped ``FrozenExtractors``."""

    ignore_for_config = ["frozen"]

    @register_to_config
    def __init__(
        self,
        preset: str = "tiny",
        pretrained: bool = False,
        fingerprint: str = "",
        frozen: FrozenExtractors | None = None,
    ):
        super().__init__()
        spec = frozen.preset if frozen is not None else get_preset(preset)
        expected = preset_fingerprint(spec, pretrained)
        if fingerprint and fingerprint != expected:
            raise ValueError(
                f"extractor preset '{preset}' changed since these weights were saved "
                f"(fingerprint {fingerprint}, now {expected}); its features would not match the mapper"
            )
        # Without `frozen` the weights come from from_pretrained: build the architecture only.
        self.frozen = frozen if frozen is not None else FrozenExtractors(replace(spec, released=False, weights_dir=None))

    @classmethod
    def from_preset(cls, preset: str | ExtractorPreset) -> "VisualExtractors":
        """Build a preset's extractors (released weights when its ``weights_dir`` is set)."""
        frozen = FrozenExtractors.from_preset(preset)
        pretrained = frozen.preset.resolved_weights_dir() is not None
        return cls(
            preset=frozen.preset.name,
            pretrained=pretrained,
            fingerprint=preset_fingerprint(frozen.preset, pretrained),
            frozen=frozen,
        )

    @property
    def preset(self) -> ExtractorPreset:
        return self.frozen.preset

    @torch.inference_mode()
    def encode_video(self, frames_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, H, W, 3) uint8 -> {stream name: (B, tokens, dim)}."""
        return self.frozen.encode_video(frames_uint8)
