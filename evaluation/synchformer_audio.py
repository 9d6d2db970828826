"""Synchformer's audio feature extractor: the Audio Spectrogram Transformer (AST) on mel segments.

From av-benchmark's vendored ``av_bench/synchformer/{ast,hf_src/modeling_ast}.py`` (``AST(
extract_features=True, max_spec_t=66, factorize_freq_time=True, agg_freq_module=
'TransformerEncoderLayer', agg_time_module='torch.nn.Identity', add_global_repr=False)``), which is
Hugging Face's ``ASTModel`` (transformers 4.x layout, default ``ASTConfig``: ViT-B, 16x16 patches at
stride 10 in both axes, LayerNorm eps 1e-12, exact GELU) with its position table cut to the
patches of a 66-frame spectrogram. One segment, a (128 mel, 66 frame) log-mel:

    (F, T) -> Conv2d(1 -> D, 16x16, stride 10) -> f x t = 12 x 6 patch tokens, frequency-major
    -> [CLS, DIST] + tokens + position_embeddings (2 + f*t rows)
    -> ViT layers: x += attn(layernorm_before(x)); x += mlp(layernorm_after(x)) -> final LayerNorm
    -> drop CLS and DIST -> per time step, a pre-norm TransformerEncoderLayer with its own CLS token
       over the f frequency tokens -> the CLS output: (t, D), 6 x 768 per 0.64 s segment.

Our own modules rather than ``transformers.ASTModel``: transformers 5 renamed the layer keys
(``layers.N.attention.q_proj``...), and the released Synchformer file has the 4.x names
(``encoder.layer.N.attention.attention.query``...), which this file keeps.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation.synchformer_config import SynchformerConfig
from evaluation.synchformer_video import ClsAggregator


class _Dense(nn.Module):
    """Holds a Linear under the name ``dense`` (Hugging Face's key layout)."""

    def __init__(self, width_in: int, width_out: int):
        super().__init__()
        self.dense = nn.Linear(width_in, width_out)


class ASTSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, width = x.shape
        q, k, v = (proj(x).view(b, length, self.heads, -1).transpose(1, 2)  # (B, H, L, d)
                   for proj in (self.query, self.key, self.value))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, length, width)


class ASTAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attention = ASTSelfAttention(width, heads)
        self.output = _Dense(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(x))


class ASTLayer(nn.Module):
    def __init__(self, width: int, heads: int, mlp_dim: int, eps: float):
        super().__init__()
        self.attention = ASTAttention(width, heads)
        self.intermediate = _Dense(width, mlp_dim)
        self.output = _Dense(mlp_dim, width)
        self.layernorm_before = nn.LayerNorm(width, eps=eps)
        self.layernorm_after = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x))))


class ASTEncoder(nn.Module):
    def __init__(self, config: SynchformerConfig):
        super().__init__()
        c = config
        self.layer = nn.ModuleList(ASTLayer(c.audio_width, c.audio_heads, c.audio_mlp_dim, c.audio_layer_norm_eps)
                                   for _ in range(c.audio_depth))


class ASTEmbeddings(nn.Module):
    def __init__(self, config: SynchformerConfig):
        super().__init__()
        c, width = config, config.audio_width
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 2 + c.audio_freq_tokens * c.audio_time_tokens, width))
        self.patch_embeddings = nn.Module()
        self.patch_embeddings.projection = nn.Conv2d(1, width, kernel_size=c.audio_patch, stride=c.audio_stride)
        for tensor in (self.cls_token, self.distillation_token, self.position_embeddings):
            nn.init.trunc_normal_(tensor, std=0.02)  # random presets only; released weights replace them

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(N, F, T) log-mel segments -> (N, 2 + f*t, D) tokens with positions."""
        x = self.patch_embeddings.projection(spec.unsqueeze(1)).flatten(2).transpose(1, 2)  # (N, f*t, D)
        aux = torch.cat([self.cls_token, self.distillation_token], dim=1).expand(x.shape[0], -1, -1)
        return torch.cat([aux, x], dim=1) + self.position_embeddings


class AST(nn.Module):
    """The ``ASTModel`` trunk: (N, F, T) -> (N, 2 + f*t, D) after the final LayerNorm."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        self.embeddings = ASTEmbeddings(config)
        self.encoder = ASTEncoder(config)
        self.layernorm = nn.LayerNorm(config.audio_width, eps=config.audio_layer_norm_eps)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(spec)
        for layer in self.encoder.layer:
            x = layer(x)
        return self.layernorm(x)


class AudioFeatureExtractor(nn.Module):
    """(B, S, F, T) normalised log-mel segments -> (B, S, t, D) per-time-step features."""

    def __init__(self, config: SynchformerConfig):
        super().__init__()
        self.config = config
        self.ast = AST(config)
        self.freq_attn_agg = ClsAggregator(config.audio_width, config.audio_heads, config.audio_mlp_dim)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        c = self.config
        b, s, n_mels, frames = spec.shape
        if (n_mels, frames) != (c.n_mels, c.spec_frames):
            raise ValueError(f"audio segments: expected (B, S, {c.n_mels}, {c.spec_frames}) log-mels, "
                             f"got {tuple(spec.shape)}")
        x = self.ast(spec.reshape(b * s, n_mels, frames))[:, 2:]  # (BS, f*t, D) without CLS and DIST
        f, t = c.audio_freq_tokens, c.audio_time_tokens
        x = x.reshape(b * s, f, t, -1).transpose(1, 2).reshape(b * s * t, f, -1)  # (BS*t, f, D)
        return self.freq_attn_agg(x).reshape(b, s, t, -1)  # (B, S, t, D)
