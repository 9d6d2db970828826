"""Synchformer's video feature extractor: Motionformer with divided space-time attention.

From av-benchmark's vendored ``av_bench/synchformer/{motionformer,video_model_builder,vit_helper}.py``
(``MotionFormer(extract_features=True, factorize_space_time=True, agg_space_module=
'TransformerEncoderLayer', agg_time_module='torch.nn.Identity', add_global_repr=False)`` built from
``divided_224_16x4.yaml``: ViT-B/16, 224 px, tubelets of 2 frames, 8 temporal tokens, "separate"
position embeddings, divided attention). One video segment of T frames:

    (3, T, H, W) -> Conv3d tubelets (2 x p x p) -> t = T / 2 frames of N = (H / p)^2 patch tokens, frame-major
    -> [CLS] + tokens, + position: CLS gets pos_embed[0]; the token of frame f, patch n gets
       pos_embed[1 + n] + temp_embed[f]
    -> blocks: x += time_attn(norm3(x)); x += space_attn(norm1(x)); x += mlp(norm2(x))
       (time attention: each patch position attends over its t frames; space attention: each frame
       attends over its N patches; in both every group also sees the CLS key/value, and the CLS query
       attends to all tokens)
    -> drop CLS, LayerNorm -> per frame, a pre-norm TransformerEncoderLayer with its own CLS token over
       the N patches -> the CLS output: (t, D), 8 x 768 per 16-frame segment.

``patch_embed.proj`` (a 2-D 16x16 patch conv) is in the released state dict but never used: the
reference keeps it only to count patches. The reference's ``pre_logits`` / ``head`` are replaced by
identities in feature mode, so they have no keys.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation.synchformer_config import SynchformerConfig


class ClsAggregator(nn.TransformerEncoderLayer):
    """A pre-norm ``nn.TransformerEncoderLayer`` (GELU, LayerNorm eps 1e-6) that prepends a learned CLS
    token and returns that token's output: (N, L, D) -> (N, D).

    The reference's ``BaseEncoderLayer`` (``motionformer.py``), used for the spatial aggregation of
    the video stream and the frequency aggregation of the audio stream; its keys are ``cls_token`` and
    torch's ``self_attn.in_proj_*``, ``self_attn.out_proj.*``, ``linear1``, ``linear2``, ``norm1``, ``norm2``.
    In inference mode torch runs its fused fast path, as the reference did under av-benchmark.
    """

    def __init__(self, width: int, heads: int, mlp_dim: int):
        super().__init__(d_model=width, nhead=heads, dim_feedforward=mlp_dim, dropout=0.0, activation=nn.GELU(),
                         layer_norm_eps=1e-6, batch_first=True, norm_first=True)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (N, 1 + L, D)
        return super().forward(x)[:, 0]  # (N, D)


class DividedAttention(nn.Module):
    """Multi-head attention within groups of tokens (over time or over space), plus the CLS token.

    Tokens after the CLS are frame-major: (frames, patches). Over time, each patch position is one
    group (its ``frames`` tokens); over space, each frame is one group (its patches). Every group's
    keys / values start with the CLS key / value; the CLS query attends to all tokens at once.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, frames: int, over_time: bool) -> torch.Tensor:
        b, length, width = x.shape
        h, d = self.heads, width // self.heads
        q, k, v = self.qkv(x).view(b, length, 3, h, d).permute(2, 0, 3, 1, 4)  # 3 x (B, H, 1 + F*N, d)
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # (B, H, 1, d)

        def grouped(t: torch.Tensor) -> torch.Tensor:  # (B, H, F*N, d) -> (B, H, groups, group size, d)
            t = t[:, :, 1:].reshape(b, h, frames, -1, d)  # (B, H, F, N, d)
            return t.transpose(2, 3) if over_time else t

        q_, k_, v_ = grouped(q), grouped(k), grouped(v)
        groups, size = q_.shape[2:4]
        k_ = torch.cat([k[:, :, :1, None].expand(b, h, groups, 1, d), k_], dim=3)  # CLS key first
        v_ = torch.cat([v[:, :, :1, None].expand(b, h, groups, 1, d), v_], dim=3)
        out = F.scaled_dot_product_attention(  # 4-D, so that fused GPU kernels apply: (B, H*groups, size, d)
            q_.reshape(b, h * groups, size, d), k_.reshape(b, h * groups, size + 1, d),
            v_.reshape(b, h * groups, size + 1, d))
        out = out.view(b, h, groups, size, d)
        if over_time:
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, length - 1, d)], dim=2)  # (B, H, 1 + F*N, d)
        return self.proj(out.transpose(1, 2).reshape(b, length, width))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention, then space attention, then the MLP, each pre-norm and residual (no drop path)."""

    def __init__(self, width: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)  # before space attention
        self.attn = DividedAttention(width, heads)  # space
        self.timeattn = DividedAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)  # before the MLP
        self.mlp = Mlp(width, mlp_dim)
        self.norm3 = nn.LayerNorm(width, eps=1e-6)  # before time attention

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), frames, over_time=True)
        x = x + self.attn(self.norm1(x), frames, over_time=False)
        return x + self.mlp(self.norm2(x))


class _Projection(nn.Module):
    """Holds a patch convolution under the name ``proj`` (the reference's key layout)."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.proj = conv


class MotionFormer(nn.Module):
    """(B, S, T, 3, H, W) video segments -> (B, S, T / tubelet, D) per-frame-pair features."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        self.config = config
        c, width, p = config, config.video_width, config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + c.video_patches, width))  # CLS + one per patch position
        self.temp_embed = nn.Parameter(torch.zeros(1, c.video_time_tokens, width))  # one per tubelet
        self.patch_embed = _Projection(nn.Conv2d(3, width, kernel_size=p, stride=p))  # unused (released key)
        self.patch_embed_3d = _Projection(nn.Conv3d(3, width, kernel_size=(c.tubelet_frames, p, p),
                                                    stride=(c.tubelet_frames, p, p)))
        mlp_dim = int(width * c.video_mlp_ratio)
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(width, c.video_heads, mlp_dim) for _ in range(c.video_depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.spatial_attn_agg = ClsAggregator(width, c.video_heads, mlp_dim)
        for tensor in (self.cls_token, self.pos_embed, self.temp_embed):
            nn.init.trunc_normal_(tensor, std=0.02)  # random presets only; released weights replace them

    def forward_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """(B, S, T, 3, H, W) -> (B*S, 1 + t*N, D): the output of the last block (CLS first)."""
        c = self.config
        b, s, t, ch, h, w = video.shape
        if (t, ch, h, w) != (c.segment_frames, 3, c.image_size, c.image_size):
            raise ValueError(f"video segments: expected (B, S, {c.segment_frames}, 3, {c.image_size}, {c.image_size}), "
                             f"got {tuple(video.shape)}")
        x = video.reshape(b * s, t, ch, h, w).transpose(1, 2)  # (BS, 3, T, H, W)
        x = self.patch_embed_3d.proj(x).flatten(2).transpose(1, 2)  # (BS, t*N, D), frame-major
        frames, patches = c.video_time_tokens, c.video_patches
        pos = self.pos_embed[:, 1:].repeat(1, frames, 1) + self.temp_embed.repeat_interleave(patches, dim=1)
        pos = torch.cat([self.pos_embed[:, :1], pos], dim=1)  # (1, 1 + t*N, D)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos  # (BS, 1 + t*N, D)
        for block in self.blocks:
            x = block(x, frames)
        return x

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, s = video.shape[:2]
        frames, patches = self.config.video_time_tokens, self.config.video_patches
        x = self.norm(self.forward_tokens(video)[:, 1:])  # (BS, t*N, D): the CLS token is dropped before the norm
        x = self.spatial_attn_agg(x.reshape(b * s * frames, patches, -1))  # (BS*t, D): one vector per frame
        return x.reshape(b, s, frames, -1)  # (B, S, t, D)
