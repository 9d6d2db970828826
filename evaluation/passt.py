"""PaSST-S, as av-benchmark uses it for FD-PaSST, KL-PaSST and IS-PaSST.

av-benchmark builds ``hear21passt.base.get_basic_model(mode="all")`` (hkchengrex/passt_hear21): the
``AugmentMelSTFT`` front end (``evaluation/passt_frontend.py``) and
``get_model(arch="passt_s_swa_p16_128_ap476")``, a DeiT-style distilled ViT over the log-mel image
(``hear21passt/models/passt.py``):

* patches 16x16 with stride 10 (overlapping) over (128 mel x 998 frames) -> a (12 freq, 99 time)
  grid; 1000 frames of a 10 s clip also give 99 time patches, so the table is used whole;
* factorised position embeddings: ``freq_new_pos_embed`` (1, D, 12, 1) + ``time_new_pos_embed``
  (1, D, 1, 99) added on the grid (the time table is cut when the input is shorter); the grid is
  flattened freq-major (``flatten(2)`` of (D, F, T));
* a CLS and a distillation token, each with its own row of ``new_pos_embed`` (1, 2, D), in front;
* 12 pre-norm blocks (LayerNorm eps 1e-6, qkv bias, exact GELU, MLP x4), final LayerNorm eps 1e-6;
* embedding = (CLS + DIST) / 2 after the final norm; logits = ``head`` = LayerNorm (eps **1e-5**,
  PyTorch's default) + Linear(D, 527) on that mean. ``head_dist`` is in the checkpoint but the
  forward never uses it. Structured / unstructured patchout only acts in training mode.

``mode="all"`` returns ``cat([logits, embedding], 1)``: av-benchmark keeps ``[:, :527]`` (pre-sigmoid
logits: softmax'ed for KL and IS) and ``[:, 527:]`` (the 768-d embedding for FD).
Keys are the released ``passt-s-f128-p16-s10-ap.476-swa.pt``'s (hear21passt loads it strictly into
this module; a ``{"model": ...}`` wrapper, which its ``checkpoint_filter_fn`` accepts, is unwrapped).
The blocks are timm's ``Block``: same keys, same maths (timm fuses the attention; the goldens agree
to float rounding).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from evaluation.passt_frontend import PasstFrontendConfig, log_mel, pad_or_cut
from evaluation.weights import ReleasedFile, build_embedder, find_released_file
from extractors.checkpoint import load_strict, read_checkpoint


@dataclass(frozen=True)
class PasstConfig:
    frontend: PasstFrontendConfig = field(default_factory=PasstFrontendConfig)
    # The checkpoint's input image is (n_mels, input_tdim) = (128, 998); the position tables hold
    # n_mels // stride x input_tdim // stride entries (hear21passt's PatchEmbed.grid_size).
    input_tdim: int = 998
    patch_size: int = 16
    stride: int = 10
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    num_classes: int = 527  # AudioSet

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def grid(self) -> tuple[int, int]:
        """(freq, time) sizes of the position tables: (12, 99) at paper size."""
        return self.frontend.n_mels // self.stride, self.input_tdim // self.stride


PRESETS: dict[str, PasstConfig] = {
    # 1 s clips, so 100 frames fill the 9-entry time table exactly, as 1000 frames fill 99
    "tiny": PasstConfig(frontend=PasstFrontendConfig(clip_samples=32_000), input_tdim=98, embed_dim=32, depth=2,
                        num_heads=2),
    "paper": PasstConfig(),
}

# kkoutini/PaSST release v0.0.1-audioset (hear21passt's default_cfgs URL for this arch); md5 unpublished.
RELEASED = ReleasedFile(
    name="passt-s-f128-p16-s10-ap.476-swa.pt",
    source="https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt",
)


class PatchEmbed(nn.Module):
    """Overlapping patches as one strided convolution: (B, 1, F, T) -> (B, D, F', T') (not flattened)."""

    def __init__(self, config: PasstConfig):
        super().__init__()
        self.proj = nn.Conv2d(1, config.embed_dim, kernel_size=config.patch_size, stride=config.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PasstModel(nn.Module):
    """(B, n_mels, frames) normalised log-mel -> (logits (B, 527), embedding (B, D)); ``embed`` does the clip."""

    def __init__(self, config: PasstConfig = PasstConfig()):
        super().__init__()
        self.config = config
        d = config.embed_dim
        freq, time = config.grid
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, d))  # rows for CLS and DIST
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, d, freq, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, d, 1, time))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(*[
            Block(d, config.num_heads, mlp_ratio=config.mlp_ratio, qkv_bias=True, norm_layer=norm)
            for _ in range(config.depth)])
        self.norm = norm(d)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, config.num_classes))  # eps 1e-5 here
        self.head_dist = nn.Linear(d, config.num_classes)  # in the checkpoint; unused by the forward
        for p in (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                  self.time_new_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)

    def forward_features(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_mels, frames) -> CLS and DIST tokens after the final norm, (B, D) each."""
        x = self.patch_embed(mel.unsqueeze(1))  # (B, D, F', T')
        b, _, f, t = x.shape
        table = self.time_new_pos_embed.shape[-1]
        if f != self.freq_new_pos_embed.shape[2] or t > table:
            raise ValueError(f"{mel.shape[-2]} mels x {mel.shape[-1]} frames give a {f}x{t} patch grid; the "
                             f"position tables allow {self.freq_new_pos_embed.shape[2]}x{table} at most")
        x = x + self.time_new_pos_embed[..., :t] + self.freq_new_pos_embed  # shorter inputs: table cut
        x = x.flatten(2).transpose(1, 2)  # (B, F'*T', D), freq-major
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        x = self.norm(self.blocks(torch.cat([cls, dist, x], dim=1)))  # (B, 2 + F'*T', D)
        return x[:, 0], x[:, 1]

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls, dist = self.forward_features(mel)
        embedding = (cls + dist) / 2  # (B, D)
        return self.head(embedding), embedding

    @torch.no_grad()
    def embed(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, samples) mono waveform at 32 kHz -> ``{"logits": (B, 527), "embedding": (B, D)}`` float32.

        Every clip is first zero-padded / cut to ``config.frontend.clip_samples`` (10 s), as
        av-benchmark does, whatever the evaluation length. Logits are pre-sigmoid (KL / IS apply a
        softmax); the embedding feeds FD.
        """
        wave = pad_or_cut(waveform, self.config.frontend.clip_samples)
        mel = log_mel(wave, self.config.frontend)  # (B, n_mels, frames) float32
        logits, embedding = self(mel.to(next(self.parameters()).dtype))
        return {"logits": logits.float(), "embedding": embedding.float()}


def load_released(model: PasstModel, weights_dir: str | os.PathLike | None = None) -> None:
    """Load ``passt-s-f128-p16-s10-ap.476-swa.pt`` into ``model``: every key and shape must match."""
    path = find_released_file(RELEASED, weights_dir)
    state = read_checkpoint(path)
    if "model" in state and not isinstance(state["model"], torch.Tensor):  # checkpoint_filter_fn's unwrap
        state = state["model"]
    load_strict(model, state, path, "PaSST-S's released layout")


def build(preset: str = "tiny", weights_dir: str | os.PathLike | None = None, seed: int = 0) -> PasstModel:
    """``tiny``: seeded random weights; ``paper``: the released file (FileNotFoundError if absent). Eval mode."""
    return build_embedder("PaSST", PasstModel, PRESETS, load_released, preset, weights_dir, seed)
