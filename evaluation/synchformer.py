"""Synchformer, the audio-visual offset classifier behind av-benchmark's DeSync.

The model av-benchmark builds (``av_bench/synchformer/synchformer.py``: ``Synchformer()``, the
"S2: Synchformer: AudioSet" architecture of v-iashin/Synchformer's ``configs/sync.yaml``) and
loads strictly from MMAudio's ``synchformer_state_dict.pth`` (flat state dict, no prefix, 513 keys,
237.5 M parameters). For one window of S = 14 segments (4.8 s):

    video (B, 14, 16, 3, 224, 224) -> Motionformer (synchformer_video.py) -> (B, 14, 8, 768)
    audio (B, 14, 128, 66) log-mels -> AST (synchformer_audio.py)           -> (B, 14, 6, 768)
    -> vproj / aproj (Linear 768 -> 768), flattened to 112 visual and 84 audio tokens
    -> [OFF] + LN(visual) + [MOD] + LN(audio) + a learned position table (198 rows)
    -> 3 GPT blocks (pre-norm, 8 heads, GELU MLP x4, no mask) -> LN -> Linear on [OFF]
    -> 21 logits over the offsets linspace(-2, 2, 21) s (audio relative to video).

How av-benchmark scores DeSync (``av_bench/evaluate.py``): segment features are computed once per
clip (ground-truth video, generated audio; 24 segments for 8 s), then the classifier runs on
segments ``[:14]`` and ``[-14:]`` (0-4.8 s and 3.2-8.0 s); each run's argmax picks an offset and
DeSync is the mean |offset| over the 2N predictions. ``desync_logits`` returns both windows'
logits; the mean lives in ``evaluation/metrics.py``. Features do not mix segments, so a window's
logits equal those of the window's segments alone (``offset_logits``).

Inputs are built by ``evaluation/synchformer_inputs.py``. Faithfulness: ``tests/test_eval_synchformer.py``
against fixtures made by running av-benchmark's code (``tests/fixtures/eval/synchformer.md``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation.synchformer_audio import AudioFeatureExtractor
from evaluation.synchformer_video import MotionFormer
from evaluation.weights import ReleasedFile, find_released_file, read_state_dict, load_strict, build_embedder


@dataclass(frozen=True)
class SynchformerConfig:
    # --- inputs (av-benchmark: data/video_dataset.py, extract_video.py, extract.py, extraction_models.py)
    fps: float = 25.0  # video frame rate the segments are cut at
    sample_rate: int = 16000  # the rate the waveform must have
    image_size: int = 224  # frames: short side resized to this (bicubic, antialiased), centre crop square
    pixel_mean: float = 0.5  # (x / 255 - mean) / std, every channel
    pixel_std: float = 0.5
    segment_frames: int = 16  # one segment: 16 frames = 0.64 s = 10240 samples
    segment_stride_frames: int = 8  # segments overlap by half: 8 s -> 24 segments
    n_fft: int = 1024  # torchaudio MelSpectrogram(n_fft=1024, win_length=400, hop_length=160, n_mels=128)
    win_length: int = 400  # periodic hann, zero-padded to n_fft, centred frames, reflect padding, power 2
    hop_length: int = 160
    n_mels: int = 128  # HTK mel scale, 0-8000 Hz, no filter normalisation
    log_eps: float = 1e-6  # log(mel + eps)
    spec_frames: int = 66  # 65 frames per segment, zero-padded (after the log) to AST's max_spec_t
    spec_mean: float = -4.2677393  # AST's AudioSet statistics: (x - mean) / (2 * std)
    spec_std: float = 4.5689974
    # --- video extractor (Motionformer, divided_224_16x4.yaml)
    patch_size: int = 16
    tubelet_frames: int = 2  # VIT.PATCH_SIZE_TEMP: 16 frames -> 8 temporal tokens
    video_width: int = 768
    video_depth: int = 12
    video_heads: int = 12
    video_mlp_ratio: float = 4.0  # blocks and the spatial aggregation layer
    # --- audio extractor (AST, transformers' default ASTConfig)
    audio_patch: int = 16
    audio_stride: int = 10  # frequency and time stride of the patch conv
    audio_width: int = 768
    audio_depth: int = 12
    audio_heads: int = 12
    audio_mlp_dim: int = 3072  # AST layers and the frequency aggregation layer
    audio_layer_norm_eps: float = 1e-12
    # --- sync transformer (GlobalTransformer)
    sync_width: int = 768
    sync_depth: int = 3
    sync_heads: int = 8
    window_segments: int = 14  # segments per classified window; fixes the position table (198 rows)
    num_offsets: int = 21  # classes on linspace(-max_offset, max_offset, num_offsets)
    max_offset: float = 2.0  # seconds

    def __post_init__(self):
        checks = [
            (self.image_size % self.patch_size == 0, "image_size must be a multiple of patch_size"),
            (self.segment_frames % self.tubelet_frames == 0, "segment_frames must be a multiple of tubelet_frames"),
            ((self.segment_frames * self.sample_rate) % self.fps == 0
             and (self.segment_stride_frames * self.sample_rate) % self.fps == 0,
             "segments must be a whole number of audio samples"),
            (self.video_width % self.video_heads == 0 and self.audio_width % self.audio_heads == 0
             and self.sync_width % self.sync_heads == 0, "widths must be multiples of their head counts"),
            (self.spec_frames >= self.audio_patch and self.n_mels >= self.audio_patch,
             "spectrogram smaller than a patch"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SynchformerConfig: {message}")

    @property
    def segment_samples(self) -> int:
        """Audio samples per segment: the video segment's duration (10240 at 16 kHz)."""
        return int(self.segment_frames * self.sample_rate // self.fps)

    @property
    def segment_hop_samples(self) -> int:
        return int(self.segment_stride_frames * self.sample_rate // self.fps)

    @property
    def video_patches(self) -> int:
        """Patch tokens per frame pair: (224 / 16)^2 = 196."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def video_time_tokens(self) -> int:
        """Features per video segment: 8."""
        return self.segment_frames // self.tubelet_frames

    @property
    def audio_freq_tokens(self) -> int:
        return (self.n_mels - self.audio_patch) // self.audio_stride + 1  # 12

    @property
    def audio_time_tokens(self) -> int:
        """Features per audio segment: 6."""
        return (self.spec_frames - self.audio_patch) // self.audio_stride + 1

    @property
    def sync_tokens(self) -> int:
        """[OFF] + visual + [MOD] + audio tokens of one window: 198."""
        return 2 + self.window_segments * (self.video_time_tokens + self.audio_time_tokens)

    def offsets(self) -> torch.Tensor:
        """(num_offsets,) float32 seconds of each class (av-benchmark's ``make_class_grid(-2, 2, 21)``)."""
        return torch.from_numpy(np.linspace(-self.max_offset, self.max_offset, self.num_offsets)).float()


PRESETS: dict[str, SynchformerConfig] = {
    # every stage and the real segment geometry (16 frames, 66 mel frames, 14-segment windows), narrow
    "tiny": SynchformerConfig(image_size=32, video_width=32, video_depth=2, video_heads=2, audio_width=32,
                              audio_depth=2, audio_heads=2, audio_mlp_dim=64, sync_width=32, sync_depth=2,
                              sync_heads=2),
    "paper": SynchformerConfig(),
}

RELEASED = ReleasedFile(
    name="synchformer_state_dict.pth",
    source="https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth",
    md5="5b2f5594b0730f70e41e549b7c94390c")  # MMAudio's download_utils.py


class SelfAttention(nn.Module):
    """minGPT's attention: separate key / query / value Linears, no mask."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.key = nn.Linear(width, width)
        self.query = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, width = x.shape
        q, k, v = (proj(x).view(b, length, self.heads, -1).transpose(1, 2)  # (B, H, L, d)
                   for proj in (self.query, self.key, self.value))
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, length, width))


class SyncBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.ln2 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))  # mlp.0, mlp.2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class SyncTransformer(nn.Module):
    """``GlobalTransformer``: (B, S*tv, D) visual and (B, S*ta, D) audio tokens -> (B, num_offsets) logits."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        width = config.sync_width
        self.vis_in_lnorm = nn.LayerNorm(width)
        self.aud_in_lnorm = nn.LayerNorm(width)
        self.OFF_tok = nn.Parameter(torch.randn(1, 1, width))
        self.MOD_tok = nn.Parameter(torch.randn(1, 1, width))
        self.pos_emb_cfg = nn.Module()  # the reference's RandInitPositionalEncoding, one (1, L, D) table
        self.pos_emb_cfg.pos_emb = nn.Parameter(torch.randn(1, config.sync_tokens, width))
        self.blocks = nn.Sequential(*(SyncBlock(width, config.sync_heads) for _ in range(config.sync_depth)))
        self.ln_f = nn.LayerNorm(width)
        self.off_head = nn.Linear(width, config.num_offsets)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        b = visual.shape[0]
        x = torch.cat([self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(visual),
                       self.MOD_tok.expand(b, -1, -1), self.aud_in_lnorm(audio)], dim=1)  # (B, L, D)
        if x.shape[1] != self.pos_emb_cfg.pos_emb.shape[1]:
            raise ValueError(f"sync transformer: {x.shape[1]} tokens, but its position table has "
                             f"{self.pos_emb_cfg.pos_emb.shape[1]} (one window of exactly window_segments segments)")
        x = self.ln_f(self.blocks(x + self.pos_emb_cfg.pos_emb))
        return self.off_head(x[:, 0])  # (B, num_offsets) from the [OFF] token


class SynchformerModel(nn.Module):
    """Both feature extractors and the offset classifier (inference only: always in eval mode)."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        self.config = config
        self.vfeat_extractor = MotionFormer(config)
        self.afeat_extractor = AudioFeatureExtractor(config)
        self.vproj = nn.Linear(config.video_width, config.sync_width)
        self.aproj = nn.Linear(config.audio_width, config.sync_width)
        self.transformer = SyncTransformer(config)
        self.eval()

    def train(self, mode: bool = True) -> "SynchformerModel":
        return super().train(False)  # frozen evaluator: dropout never runs

    def compare(self, video_features: torch.Tensor, audio_features: torch.Tensor) -> torch.Tensor:
        """(B, W, tv, Dv) and (B, W, ta, Da) features of one window -> (B, num_offsets) logits
        (the reference's ``compare_v_a``)."""
        visual = self.vproj(video_features).flatten(1, 2)  # (B, W*tv, D)
        audio = self.aproj(audio_features).flatten(1, 2)  # (B, W*ta, D)
        return self.transformer(visual, audio)

    def forward(self, video_segments: torch.Tensor, audio_segments: torch.Tensor) -> torch.Tensor:
        return self.compare(self.vfeat_extractor(video_segments), self.afeat_extractor(audio_segments))


def build(preset: str = "tiny", weights_dir: str | os.PathLike | None = None, seed: int = 0) -> SynchformerModel:
    """``tiny``: seeded random weights; ``paper``: the released file (FileNotFoundError if absent). Eval mode."""
    return build_embedder("Synchformer", SynchformerModel, PRESETS, load_released, preset, weights_dir, seed)


def load_released(model: SynchformerModel, weights_dir: str | os.PathLike | None) -> None:
    """Load ``synchformer_state_dict.pth`` into ``model``: every key and shape (no prefix), as
    av-benchmark's ``Synchformer().load_state_dict(sd)`` (strict) does."""
    path = find_released_file(RELEASED, weights_dir)
    load_checked(model, read_state_dict(path), path)


def load_checked(model: SynchformerModel, state: dict, source) -> None:
    """Load ``state`` strictly; a mismatch is one line naming ``source`` and the first offending keys."""
    load_strict(model, state, source, "Synchformer's released state dict")
    model.requires_grad_(False)


def _on_model(model: nn.Module, x: torch.Tensor, name: str, dims: int) -> torch.Tensor:
    if x.dim() != dims or not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor with {dims} dims, got {tuple(x.shape)} {x.dtype}")
    return x.to(device=next(model.parameters()).device, dtype=torch.float32)


@torch.inference_mode()
def video_features(model: SynchformerModel, video_segments: torch.Tensor) -> torch.Tensor:
    """(B, S, segment_frames, 3, H, W) normalised frames (``synchformer_inputs.video_input``) ->
    (B, S, 8, 768) float32 features, one segment at a time (segments never mix)."""
    return model.vfeat_extractor(_on_model(model, video_segments, "video_segments", 6)).float()


@torch.inference_mode()
def audio_features(model: SynchformerModel, audio_segments: torch.Tensor) -> torch.Tensor:
    """(B, S, n_mels, spec_frames) normalised log-mels (``synchformer_inputs.audio_input``) ->
    (B, S, 6, 768) float32 features."""
    return model.afeat_extractor(_on_model(model, audio_segments, "audio_segments", 4)).float()


@torch.inference_mode()
def offset_logits(model: SynchformerModel, video_segments: torch.Tensor, audio_segments: torch.Tensor) -> torch.Tensor:
    """(B, num_offsets) float32 logits for one window of exactly ``window_segments`` video and audio
    segments (14 = 4.8 s); class i is the offset ``model.config.offsets()[i]`` seconds."""
    w = model.config.window_segments
    if video_segments.shape[1] != w or audio_segments.shape[1] != w:
        raise ValueError(f"one window is {w} segments; got {video_segments.shape[1]} video and "
                         f"{audio_segments.shape[1]} audio segments (use desync_logits for whole clips)")
    return model.compare(video_features(model, video_segments), audio_features(model, audio_segments)).float()


@torch.inference_mode()
def window_logits(model: SynchformerModel, video_feats: torch.Tensor,
                  audio_feats: torch.Tensor) -> dict[str, torch.Tensor]:
    """The two windows av-benchmark classifies per clip, from whole-clip segment features
    (``video_features`` of the ground-truth video, ``audio_features`` of the generated audio):
    ``{"first": logits of segments [:W], "last": logits of segments [-W:]}``, each (B, num_offsets) float32.

    A clip needs at least W = ``window_segments`` segments in both streams (av-benchmark crashes on
    fewer: the position table does not fit); 8 s gives 24. When the two streams have different
    counts, "last" pairs the last W of each, as av-benchmark does.
    """
    c = model.config
    w = c.window_segments
    if video_feats.shape[0] != audio_feats.shape[0]:
        raise ValueError(f"video features for {video_feats.shape[0]} clips, audio features for {audio_feats.shape[0]}")
    if min(video_feats.shape[1], audio_feats.shape[1]) < w:
        seconds = (c.segment_frames + (w - 1) * c.segment_stride_frames) / c.fps
        raise ValueError(f"a clip needs at least {w} segments ({seconds:.2f} s) "
                         f"for DeSync; got {video_feats.shape[1]} video and {audio_feats.shape[1]} audio segments")
    video_feats = _on_model(model, video_feats, "video_feats", 4)
    audio_feats = _on_model(model, audio_feats, "audio_feats", 4)
    return {"first": model.compare(video_feats[:, :w], audio_feats[:, :w]).float(),
            "last": model.compare(video_feats[:, -w:], audio_feats[:, -w:]).float()}


@torch.inference_mode()
def desync_logits(model: SynchformerModel, video_segments: torch.Tensor,
                  audio_segments: torch.Tensor) -> dict[str, torch.Tensor]:
    """Whole clips (B, S, ...) of segments -> ``window_logits``: {"first", "last"} (B, num_offsets) float32."""
    return window_logits(model, video_features(model, video_segments), audio_features(model, audio_segments))
