"""Time-aligned fusion of CAVP and TimeChat features into the mapper's input tokens.

Alignment rule (used by `concat_proj`, `add` and TimeChat-only input). CAVP gives one vector per
frame (T steps). TimeChat gives Q tokens per sliding window, each window covering frames
[start, end). Frame t takes the tokens of the window that covers it, adaptively average-pooled
from Q tokens down (or, for windows longer than Q frames, repeated up) to the window's frame
count, in order — exactly `F.adaptive_avg_pool1d(window_tokens, end - start)`. With the paper's
40 frames, Q = 32: frames 0..31 take one token each of window 0, frames 32..39 take the means of
four consecutive tokens of window 1. The rule is a fixed (T, W*Q) averaging matrix, so alignment
is a single matmul and differentiable.

Fusion modes (paper ablations):
- concat_proj: concat(CAVP, aligned TimeChat) along channels -> Linear -> width  (paper)
- add:         Linear(CAVP) + Linear(aligned TimeChat)
- time_cat:    [Linear(CAVP) ; Linear(TimeChat)] along time, no alignment (T + W*Q tokens)
With a single encoder the chosen features go through one Linear.
"""
from __future__ import annotations

import torch
from torch import nn

from mapper.config import MapperConfig


def alignment_matrix(spans: list[list[int]], queries: int, num_frames: int) -> torch.Tensor:
    """(num_frames, len(spans) * queries) matrix mapping window tokens to frames."""
    # Explicit CPU: built from config, also when the model is constructed on the meta device.
    matrix = torch.zeros(num_frames, len(spans) * queries, device="cpu")
    for window, (start, end) in enumerate(spans):
        length = end - start
        for i in range(length):
            # adaptive_avg_pool1d's bins: [floor(i*Q/L), ceil((i+1)*Q/L))
            lo = (i * queries) // length
            hi = -((-(i + 1) * queries) // length)
            matrix[start + i, window * queries + lo : window * queries + hi] = 1.0 / (hi - lo)
    covered = matrix.sum(dim=1)
    if not torch.allclose(covered, torch.ones_like(covered)):
        missing = (covered == 0).nonzero().flatten().tolist()
        raise ValueError(f"TimeChat windows {spans} leave frames {missing} uncovered")
    return matrix


class VisualFusion(nn.Module):
    def __init__(self, config: MapperConfig):
        super().__init__()
        self.mode, self.encoders = config.fusion, config.encoders
        width = config.audio_token_dim
        self.register_buffer("align", torch.empty(0), persistent=False)
        self.reset_alignment(config)
        if self.encoders == "both" and self.mode == "concat_proj":
            self.proj = nn.Linear(config.cavp_dim + config.timechat_dim, width)
        else:
            if self.encoders in ("both", "cavp"):
                self.cavp_proj = nn.Linear(config.cavp_dim, width)
            if self.encoders in ("both", "timechat"):
                self.timechat_proj = nn.Linear(config.timechat_dim, width)

    def reset_alignment(self, config: MapperConfig) -> None:
        align = alignment_matrix(config.timechat_spans, config.timechat_queries, config.num_frames)
        self.align = align.to(self.align.device)  # (T, W*Q)

    def aligned(self, timechat: torch.Tensor) -> torch.Tensor:
        # (T, W*Q) @ (B, W*Q, D) -> (B, T, D)
        return torch.matmul(self.align.to(timechat.dtype), timechat)

    def forward(self, cavp: torch.Tensor, timechat: torch.Tensor) -> torch.Tensor:
        """cavp (B, T, Dc), timechat (B, W*Q, Dt) -> fused (B, prefix_length, width)."""
        if self.encoders == "cavp":
            return self.cavp_proj(cavp)
        if self.encoders == "timechat":
            return self.timechat_proj(self.aligned(timechat))
        if self.mode == "concat_proj":
            return self.proj(torch.cat([cavp, self.aligned(timechat)], dim=-1))
        if self.mode == "add":
            return self.cavp_proj(cavp) + self.timechat_proj(self.aligned(timechat))
        return torch.cat([self.cavp_proj(cavp), self.timechat_proj(timechat)], dim=1)  # time_cat
