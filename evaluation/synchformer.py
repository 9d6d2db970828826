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
import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation.synchformer_audio import AudioFeatureExtractor
from evaluation.synchformer_config import PRESETS, SynchformerConfig
from evaluation.synchformer_video import MotionFormer
from evaluation.weights import ReleasedFile, build_embedder, find_released_file
from extractors.checkpoint import load_strict, read_checkpoint


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
    load_checked(model, read_checkpoint(path), path)


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
