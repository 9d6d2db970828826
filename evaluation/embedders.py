"""The audio embedders behind the metrics, behind one interface: build at a preset, the sample
rate their input must have, and a batched call returning named float32 outputs.

Which embedder each metric needs (av-benchmark's key names):

    FD-PASST, KL-PASST-softmax, ISC-PASST-*   passt     32 kHz, logits (527) + embedding (768)
    FD-PANN, KL-PANNS-softmax, ISC-PANNS-*    panns     16 kHz, embedding (2048) + logits (527)
    FD-VGG                                    vggish    16 kHz, embedding per 0.96 s patch (P, 128)
    IB-Score                                  imagebind video of the reference, audio of the generation
    DeSync                                    synchformer video of the reference, audio of the generation
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import torch

from evaluation import panns, passt, vggish


@dataclass(frozen=True)
class AudioEmbedder:
    name: str
    module: ModuleType  # build(preset, weights_dir), PRESETS, RELEASED
    call: Callable[[torch.nn.Module, torch.Tensor], dict[str, torch.Tensor]]  # (model, (B, L)) -> outputs

    def config(self, preset: str):
        if preset not in self.module.PRESETS:
            raise ValueError(f"{self.name}: preset {preset!r} is not one of {', '.join(self.module.PRESETS)}")
        return self.module.PRESETS[preset]

    def sample_rate(self, preset: str) -> int:
        return self.config(preset).sample_rate

    def config_dict(self, preset: str) -> dict:
        return dataclasses.asdict(self.config(preset))

    def build(self, preset: str, weights_dir=None, device: str | torch.device = "cpu") -> torch.nn.Module:
        return self.module.build(preset, weights_dir=weights_dir).to(device).eval()


AUDIO_EMBEDDERS: dict[str, AudioEmbedder] = {
    "panns": AudioEmbedder("panns", panns, panns.embed),
    "vggish": AudioEmbedder("vggish", vggish, lambda model, waveform: model.embed(waveform)),
    "passt": AudioEmbedder("passt", passt, lambda model, waveform: model.embed(waveform)),
}
