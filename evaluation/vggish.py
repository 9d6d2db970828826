"""VGGish, as av-benchmark uses it for FD-VGG: pre-ReLU 128-d embeddings of 0.96 s patches.

The architecture is Google's VGGish as harritaylor/torchvggish ports it (``torchvggish/vggish.py``),
with the one change av-benchmark makes (``av_bench/vggish/vggish.py``, "to match audioldm_eval"):
the ReLU after the last Linear is removed, so embeddings can be negative. No PCA / quantisation
(``postprocess=False``, asserted there). Layers:

* ``features``: VGG convolutions 3x3 (padding 1) + ReLU, with 2x2 max-pools, on a (1, 96, 64) patch
  (time x mel): 64, M, 128, M, 256, 256, M, 512, 512, M -> (512, 6, 4);
* flattened in TensorFlow's (H, W, C) order (the port transposes to channels-last before
  ``view``, so the Linear weights keep the TF layout) -> 12288;
* ``embeddings``: Linear 12288->4096, ReLU, Linear 4096->4096, ReLU, Linear 4096->128.

Keys are those of the released ``vggish-10086976.pth`` (torchvggish loads it strictly into this
layout): ``features.{0,3,6,8,11,13}.*``, ``embeddings.{0,2,4}.*``, 72.1 M parameters.
av-benchmark treats every patch as one sample of the FD statistics (8 per 8 s clip).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from evaluation.vggish_frontend import VGGishFrontendConfig, waveform_to_patches
from evaluation.weights import ReleasedFile, build_embedder, find_released_file
from extractors.checkpoint import load_strict, read_checkpoint

POOL = "M"


@dataclass(frozen=True)
class VGGishConfig:
    frontend: VGGishFrontendConfig = field(default_factory=VGGishFrontendConfig)
    # Conv widths with "M" for a 2x2 max-pool, in order (torchvggish ``make_layers``); the layer
    # indices, hence the state-dict keys, follow from it (each conv is followed by a ReLU).
    layers: tuple = (64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL)
    hidden: int = 4096  # the two hidden Linear widths
    embedding_size: int = 128

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def flat_features(self) -> int:
        """Conv output flattened: 512 channels x (96 / 16) x (64 / 16) = 12288 at paper size."""
        pools = sum(1 for v in self.layers if v == POOL)
        channels = [v for v in self.layers if v != POOL][-1]
        return channels * (self.frontend.patch_frames >> pools) * (self.frontend.num_mel_bins >> pools)


PRESETS: dict[str, VGGishConfig] = {
    "tiny": VGGishConfig(layers=(4, POOL, 8, POOL, 16, 16, POOL, 32, 32, POOL), hidden=32),
    "paper": VGGishConfig(),
}

# torchvggish release v0.1. The name's suffix is the start of the file's sha256 (torch.hub's
# convention); its md5 is not published.
RELEASED = ReleasedFile(
    name="vggish-10086976.pth",
    source="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
)


def _conv_stack(layers: tuple) -> nn.Sequential:
    modules: list[nn.Module] = []
    channels = 1
    for v in layers:
        if v == POOL:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = v
    return nn.Sequential(*modules)


class VGGishModel(nn.Module):
    """(N, 1, 96, 64) log-mel patches -> (N, 128) pre-ReLU embeddings; ``embed`` does the whole clip."""

    def __init__(self, config: VGGishConfig = VGGishConfig()):
        super().__init__()
        self.config = config
        self.features = _conv_stack(config.layers)
        self.embeddings = nn.Sequential(
            nn.Linear(config.flat_features, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.embedding_size),  # no final ReLU (av-benchmark)
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.features(patches)  # (N, C, 6, 4)
        x = x.permute(0, 2, 3, 1).flatten(1)  # (N, 6*4*C) in TF's (H, W, C) order
        return self.embeddings(x)  # (N, 128)

    @torch.no_grad()
    def embed(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, samples) mono waveform at 16 kHz -> ``{"embedding": (B, P, 128) float32}``.

        All clips of a batch have the same length (av-benchmark truncates to 8 s and does not pad:
        P = 8). ``P = config.frontend.num_patches(samples)``; each patch is one FD sample.
        """
        patches = waveform_to_patches(waveform, self.config.frontend)  # (B, P, 96, 64) float32
        b, p = patches.shape[:2]
        dtype = next(self.parameters()).dtype
        out = self(patches.reshape(b * p, 1, *patches.shape[2:]).to(dtype))  # (B*P, 128)
        return {"embedding": out.reshape(b, p, -1).float()}


def load_released(model: VGGishModel, weights_dir: str | os.PathLike | None = None) -> None:
    """Load ``vggish-10086976.pth`` into ``model``: every key and shape must match (no prefix)."""
    path = find_released_file(RELEASED, weights_dir)
    load_strict(model, read_checkpoint(path), path, "VGGish's released layout")


def build(preset: str = "tiny", weights_dir: str | os.PathLike | None = None, seed: int = 0) -> VGGishModel:
    """``tiny``: seeded random weights; ``paper``: the released file (FileNotFoundError if absent). Eval mode."""
    return build_embedder("VGGish", VGGishModel, PRESETS, load_released, preset, weights_dir, seed)
