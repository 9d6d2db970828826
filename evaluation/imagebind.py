"""ImageBind (huge), vision and audio towers only: the embedder of the IB-score.

Architecture, from the hkchengrex/ImageBind fork that av-benchmark installs
(``imagebind/models/imagebind_model.py``: ``imagebind_huge``, ``multimodal_preprocessors.py``,
``transformer.py``, ``helpers.py``); each tower is preprocessor -> trunk -> head -> postprocessor:

* vision: two frames (3, 2, 224, 224) -> Conv3d kernel = stride (2, 14, 14), no bias -> 256 tokens;
  a CLS token, learnt position embeddings (257); a LayerNorm *before* the blocks (eps 1e-6);
  32 pre-LN blocks of width 1280, 16 heads; head: LayerNorm (1e-6), CLS, Linear(1280 -> 1024, no
  bias); postprocessor: L2 normalisation;
* audio: one fbank clip (1, 128, 204) -> Conv2d kernel 16 stride 10, no bias -> 12 x 19 = 228
  tokens, then a LayerNorm (eps 1e-5); CLS, learnt position embeddings (229); no LayerNorm before
  the blocks; 12 blocks of width 768, 12 heads, with ``add_bias_kv`` (a learnt key and value
  appended to every sequence: 230 keys); head as for vision (768 -> 1024); postprocessor: L2
  normalisation, then x ``clip(exp(log_logit_scale), max=100)``, a fixed buffer holding log(20).
* blocks (``BlockWithMasking``): ``x + attn(norm_1(x))``, ``x + mlp(norm_2(x))``; LayerNorm eps 1e-6,
  ``nn.MultiheadAttention`` (sequence-first, as the reference runs it), MLP 4x with exact GELU; no
  layer scale; drop path 0.1 in the audio trunk is inactive in eval.

Per file, the reference averages the clips' postprocessed embeddings (ImageBindModel.forward on
(B, S, ...) inputs): the mean of 9 unit vectors for a 4-frame video, of 3 vectors of norm 20 for
audio; neither is renormalised. IB-score = cosine(video, audio) per pair, averaged (``ib_score``).

Key names are those of ``imagebind_huge.pth``, which also holds the text, depth, thermal and IMU
towers; ``load_released`` keeps the vision / audio keys by an explicit prefix rule.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp

from evaluation.imagebind_inputs import (FRAMES_PER_CLIP, IMAGE_SIZE, NUM_MEL_BINS, SAMPLE_RATE, TARGET_FRAMES,
                                         audio_clips, video_clips)
from evaluation.weights import ReleasedFile, build_embedder, find_released_file
from extractors.checkpoint import load_strict, read_checkpoint

TOWERS = ("vision", "audio")
OTHER_TOWERS = ("text", "depth", "thermal", "imu")  # in the released file, not built here
STAGES = ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors")


@dataclass(frozen=True)
class ImageBindConfig:
    embed_dim: int = 1024  # out_embed_dim: the joint embedding space
    vision_width: int = 1280
    vision_depth: int = 32
    vision_heads: int = 16
    patch_size: int = 14  # vision Conv3d kernel = stride (FRAMES_PER_CLIP, patch_size, patch_size)
    image_size: int = IMAGE_SIZE
    audio_width: int = 768
    audio_depth: int = 12
    audio_heads: int = 12
    audio_kernel: int = 16  # audio Conv2d kernel; overlapping patches:
    audio_stride: int = 10  # stride 10 over (128, 204) -> a 12 x 19 grid
    num_mel_bins: int = NUM_MEL_BINS
    target_frames: int = TARGET_FRAMES
    mlp_ratio: int = 4
    audio_logit_scale: float = 20.0  # initial value of the (fixed) audio postprocessor scale
    sample_rate: int = SAMPLE_RATE  # the audio input's rate

    @property
    def vision_tokens(self) -> int:
        """CLS + (224/14)^2 patches = 257 (two frames make one temporal step)."""
        return 1 + (self.image_size // self.patch_size) ** 2

    @property
    def audio_grid(self) -> tuple[int, int]:
        """(frequency, time) patch grid of one fbank clip: (12, 19)."""
        return tuple((size - self.audio_kernel) // self.audio_stride + 1
                     for size in (self.num_mel_bins, self.target_frames))

    @property
    def audio_tokens(self) -> int:
        return 1 + math.prod(self.audio_grid)


PRESETS: dict[str, ImageBindConfig] = {
    "tiny": ImageBindConfig(embed_dim=12, vision_width=16, vision_depth=3, vision_heads=2,
                            audio_width=16, audio_depth=2, audio_heads=2),
    "paper": ImageBindConfig(),
}

RELEASED = ReleasedFile(name="imagebind_huge.pth",
                        source="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth (CC BY-NC-SA 4.0)")


class PatchEmbed(nn.Module):
    """``PatchEmbedGeneric``: conv stem, tokens flattened (time, height, width)-major, optional LayerNorm."""

    def __init__(self, proj: nn.Module, norm_layer: nn.Module | None = None):
        super().__init__()
        self.proj = proj
        self.norm_layer = norm_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)  # (N, C, [T,] H, W) -> (N, P, C)
        return x if self.norm_layer is None else self.norm_layer(x)


class PosEmbedding(nn.Module):
    """``SpatioTemporalPosEmbeddingHelper(learnable=True)``; inputs always have the trained size,
    so its interpolation path never runs."""

    def __init__(self, tokens: int, width: int):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, width) * width ** -0.5)


class Preprocessor(nn.Module):
    """``RGBDTPreprocessor`` / ``AudioPreprocessor``: stem tokens, CLS first, plus position embeddings."""

    def __init__(self, stem: PatchEmbed, tokens: int, width: int):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * width ** -0.5)
        self.rgbt_stem = stem  # the reference's attribute name, for the audio tower too
        self.pos_embedding_helper = PosEmbedding(tokens, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(x)  # (N, P, C)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)  # (N, 1+P, C)
        return tokens + self.pos_embedding_helper.pos_embed


class Block(nn.Module):
    """Pre-LN transformer block (``BlockWithMasking``, no layer scale, no mask) on (L, N, C) tokens."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, bias_kv: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, bias=True, add_bias_kv=bias_kv)
        self.norm_1 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, mlp_ratio * width, act_layer=nn.GELU)  # fc1 -> exact GELU -> fc2
        self.norm_2 = nn.LayerNorm(width, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class Trunk(nn.Module):
    """``SimpleTransformer``: optional LayerNorm, then the blocks, sequence-first inside."""

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: int, pre_norm: bool, bias_kv: bool):
        super().__init__()
        # index 0 as in the reference (its index 1 is a parameterless "b l d -> l b d")
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(width, eps=1e-6) if pre_norm else nn.Identity())
        self.blocks = nn.Sequential(*[Block(width, heads, mlp_ratio, bias_kv) for _ in range(depth)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.pre_transformer_layer(tokens).transpose(0, 1)  # (L, N, C)
        return self.blocks(x).transpose(0, 1)  # (N, L, C)


class SelectCLS(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


class LogitScale(nn.Module):
    """``LearnableLogitScaling(learnable=False)``: x * min(exp(log_logit_scale), 100), a saved buffer."""

    def __init__(self, init: float, max_scale: float = 100.0):
        super().__init__()
        self.max_scale = max_scale
        self.register_buffer("log_logit_scale", torch.ones([]) * math.log(init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clip(self.log_logit_scale.exp(), max=self.max_scale) * x


def _head(width: int, embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(width, eps=1e-6), SelectCLS(), nn.Linear(width, embed_dim, bias=False))


class ImageBindModel(nn.Module):
    def __init__(self, config: ImageBindConfig):
        super().__init__()
        self.config = c = config
        kernel = (FRAMES_PER_CLIP, c.patch_size, c.patch_size)
        # proj index 0 is the reference's PadIm2Video, a no-op for two-frame clips (it repeats single images)
        vision_stem = PatchEmbed(nn.Sequential(nn.Identity(), nn.Conv3d(3, c.vision_width, kernel, stride=kernel,
                                                                        bias=False)))
        audio_stem = PatchEmbed(nn.Conv2d(1, c.audio_width, c.audio_kernel, stride=c.audio_stride, bias=False),
                                norm_layer=nn.LayerNorm(c.audio_width))  # eps 1e-5 here
        self.modality_preprocessors = nn.ModuleDict({
            "vision": Preprocessor(vision_stem, c.vision_tokens, c.vision_width),
            "audio": Preprocessor(audio_stem, c.audio_tokens, c.audio_width)})
        self.modality_trunks = nn.ModuleDict({
            "vision": Trunk(c.vision_width, c.vision_depth, c.vision_heads, c.mlp_ratio, pre_norm=True, bias_kv=False),
            "audio": Trunk(c.audio_width, c.audio_depth, c.audio_heads, c.mlp_ratio, pre_norm=False, bias_kv=True)})
        self.modality_heads = nn.ModuleDict({"vision": _head(c.vision_width, c.embed_dim),
                                             "audio": _head(c.audio_width, c.embed_dim)})
        self.modality_postprocessors = nn.ModuleDict({
            "vision": Normalize(),
            "audio": nn.Sequential(Normalize(), LogitScale(c.audio_logit_scale))})

    def forward(self, tower: str, x: torch.Tensor) -> torch.Tensor:
        """``tower`` "vision" or "audio", one clip per row -> (N, embed_dim), postprocessed."""
        tokens = self.modality_preprocessors[tower](x)  # (N, L, C)
        tokens = self.modality_trunks[tower](tokens)  # (N, L, C)
        return self.modality_postprocessors[tower](self.modality_heads[tower](tokens))  # (N, D)

    def encode_vision(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, 3, 2, 224, 224) normalised frame pairs -> (N, embed_dim) unit vectors."""
        c = self.config
        expected = (3, FRAMES_PER_CLIP, c.image_size, c.image_size)
        if clips.dim() != 5 or tuple(clips.shape[1:]) != expected:
            raise ValueError(f"vision clips: expected (N, {', '.join(map(str, expected))}), got {tuple(clips.shape)}")
        return self("vision", clips)

    def encode_audio(self, fbanks: torch.Tensor) -> torch.Tensor:
        """(N, 1, 128, 204) normalised fbank clips -> (N, embed_dim) vectors of norm 20 (the logit scale)."""
        c = self.config
        expected = (1, c.num_mel_bins, c.target_frames)
        if fbanks.dim() != 4 or tuple(fbanks.shape[1:]) != expected:
            raise ValueError(f"audio clips: expected (N, {', '.join(map(str, expected))}), got {tuple(fbanks.shape)}")
        return self("audio", fbanks)


def tower_state_dict(state: dict, source) -> dict:
    """The vision and audio entries of a full ImageBind state dict, keys unchanged.

    Rule: every key of ``imagebind_huge.pth`` is ``<stage>.<tower>.<rest>`` with ``stage`` one of
    ``STAGES``; ``tower`` vision or audio is kept, text / depth / thermal / imu are dropped; any other
    key means the file is not an ImageBind state dict (one-line ValueError naming ``source``).
    """
    kept, strange = {}, []
    for key, value in state.items():
        stage, _, rest = key.partition(".")
        tower = rest.partition(".")[0]
        if stage in STAGES and tower in TOWERS:
            kept[key] = value
        elif not (stage in STAGES and tower in OTHER_TOWERS):
            strange.append(key)
    if strange:
        raise ValueError(f"{source}: not an ImageBind state dict: {len(strange)} keys outside "
                         f"<{'|'.join(STAGES)}>.<tower> (e.g. {strange[0]})")
    return kept


def load_checked(model: ImageBindModel, state: dict, source) -> None:
    """Load the vision/audio part of ``state`` strictly (every key, every shape), or one-line ValueError."""
    load_strict(model, tower_state_dict(state, source), source, "ImageBind-huge's vision/audio towers")


def load_released(model: ImageBindModel, weights_dir: str | os.PathLike | None = None) -> None:
    """``imagebind_huge.pth`` from ``weights_dir`` (or $MFM_WEIGHTS) into ``model``: vision + audio, strictly."""
    path = find_released_file(RELEASED, weights_dir)
    load_checked(model, read_checkpoint(path), path)


def build(preset: str = "tiny", weights_dir: str | os.PathLike | None = None, seed: int = 0) -> ImageBindModel:
    """tiny: seeded random weights; paper: the released file (built on the meta device, then assigned)."""
    return build_embedder("ImageBind", ImageBindModel, PRESETS, load_released, preset, weights_dir, seed)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def embed_video(model: ImageBindModel, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """IB video embeddings of a batch of videos.

    ``frames``: (B, T, 3, H, W) uint8 RGB, the first T = int(0.5 * duration) frames of ffmpeg's
    ``fps=0.5`` stream (T = 4 for 8 s; ``imagebind_inputs.fps_filter_indices``). Returns float32 on
    the model's device: ``embedding`` (B, embed_dim), the mean of the ``clip_embeddings``
    (B, 3 * (T - 1), embed_dim), unit vectors of every crop x consecutive-frame pair.
    """
    clips = video_clips(frames, model.config.image_size).to(_device(model))  # (B, S, 3, 2, 224, 224)
    batch, count = clips.shape[:2]
    per_clip = model.encode_vision(clips.flatten(0, 1)).reshape(batch, count, -1)  # (B, S, D)
    return {"embedding": per_clip.mean(dim=1), "clip_embeddings": per_clip}


@torch.inference_mode()
def embed_audio(model: ImageBindModel, waveform: torch.Tensor,
                num_samples: torch.Tensor | list[int] | None = None) -> dict[str, torch.Tensor]:
    """IB audio embeddings of a batch of files.

    ``waveform``: (B, C, N) or (B, N) float at ``model.config.sample_rate`` (16 kHz): the whole file,
    every channel as loaded (no mono mix, no mean removal, no truncation; ``to_model_rate`` resamples
    as av-benchmark does), right-padded to N; ``num_samples``: each file's length (default N).
    Returns float32 on the model's device: ``embedding`` (B, embed_dim), the mean of the
    ``clip_embeddings`` (B, 3, embed_dim), each of norm 20 (normalised, times the logit scale).
    """
    c = model.config
    mels = audio_clips(waveform, num_samples, sample_rate=c.sample_rate, num_mel_bins=c.num_mel_bins,
                       target_frames=c.target_frames).to(_device(model))  # (B, 3, 1, 128, 204)
    batch, count = mels.shape[:2]
    per_clip = model.encode_audio(mels.flatten(0, 1)).reshape(batch, count, -1)  # (B, 3, D)
    return {"embedding": per_clip.mean(dim=1), "clip_embeddings": per_clip}


def ib_score(video_embedding: torch.Tensor, audio_embedding: torch.Tensor) -> torch.Tensor:
    """(B,) cosine similarity of paired embeddings; av-benchmark's ``IB-Score`` is its mean (papers
    often print it x 100)."""
    return F.cosine_similarity(video_embedding, audio_embedding, dim=-1)
