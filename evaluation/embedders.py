"""The audio embedders behind the metrics, behind one interface: build at a preset, the sample
rate their input must have, and a batched call returning named float32 outputs.

Which embedder each metric needs (av-benchmark's key names):

    FD-PASST, KL-PASST-softmax, ISC-PASST-*   passt     32 kHz, logits (527) + embedding (768)
    FD-PANN, KL-PANNS-softmax, ISC-PANNS-*    panns     16 kHz, embedding (2048) + logits (527)
    FD-VGG                                    vggish    16 kHz, embedding per 0.96 s patch (P, 128)
    IB-Score                                  imagebind video of the reference, audio of the generation
    DeSync                                    synchformer video of the reference, audio of the generation

A suite run has one preset (``SUITE_PRESETS``) and each embedder runs at ``embedder_preset(run's, its
PRESETS)``: ``tiny`` (random weights, offline tests) and ``paper`` (the released files) are the same
preset for every embedder; ``toy`` is an embedder's own ``toy`` preset where it has one (trained on
the toy world and shipped with the package: today PANNs, whose 5 toy-class logits then feed KL-PANNS
and ISC-PANNS and its embedding FD-PANN) and ``tiny`` for the others, which have no toy weights.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Mapping

import torch

from evaluation import panns, passt, vggish
from extractors.file_hash import file_sha256

SUITE_PRESETS = ("tiny", "toy", "paper")


def embedder_preset(suite_preset: str, presets: Mapping) -> str:
    """The preset an embedder with ``presets`` runs at in a suite run at ``suite_preset``."""
    if suite_preset not in SUITE_PRESETS:
        raise ValueError(f"suite preset {suite_preset!r} is not one of {', '.join(SUITE_PRESETS)}")
    return "tiny" if suite_preset == "toy" and "toy" not in presets else suite_preset


@dataclass(frozen=True)
class AudioEmbedder:
    name: str
    module: ModuleType  # build(preset, weights_dir), PRESETS, RELEASED; SHIPPED where some preset's weights ship
    call: Callable[[torch.nn.Module, torch.Tensor], dict[str, torch.Tensor]]  # (model, (B, L)) -> outputs

    def config(self, preset: str):
        if preset not in self.module.PRESETS:
            raise ValueError(f"{self.name}: preset {preset!r} is not one of {', '.join(self.module.PRESETS)}")
        return self.module.PRESETS[preset]

    def sample_rate(self, preset: str) -> int:
        return self.config(preset).sample_rate

    def config_dict(self, preset: str) -> dict:
        """The preset's configuration; for weights shipped with the package, their sha256 too, so cached
        embeddings of an earlier file (the classifier retrained) are never reused."""
        config = dataclasses.asdict(self.config(preset))
        shipped = getattr(self.module, "SHIPPED", {})
        if preset in shipped:
            config["shipped_weights_sha256"] = file_sha256(shipped[preset])
        return config

    def build(self, preset: str, weights_dir=None, device: str | torch.device = "cpu") -> torch.nn.Module:
        return self.module.build(preset, weights_dir=weights_dir).to(device).eval()


AUDIO_EMBEDDERS: dict[str, AudioEmbedder] = {
    "panns": AudioEmbedder("panns", panns, panns.embed),
    "vggish": AudioEmbedder("vggish", vggish, lambda model, waveform: model.embed(waveform)),
    "passt": AudioEmbedder("passt", passt, lambda model, waveform: model.embed(waveform)),
}
