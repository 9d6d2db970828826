"""Time-aligned fusion of named visual feature streams into the mapper's input tokens.

Alignment rule. Every stream is windows of Q tokens, window w covering frames spans[w] = [start,
end) (``extractors.encoders.StreamSpec``). Frame t takes the tokens of the window that covers it,
adaptively average-pooled from Q tokens down (or, for windows longer than Q frames, repeated up)
to the window's frame count, in order: exactly ``F.adaptive_avg_pool1d(window_tokens, end - start)``.
A per-frame stream (CAVP: one window of T tokens over T frames) is its own alignment. With the
paper's TimeChat (40 frames, Q = 32), frames 0..31 take one token each of window 0, frames 32..39
take the means of four consecutive tokens of window 1. The rule is a fixed (T, W*Q) averaging
matrix, so alignment is a single matmul and differentiable.

Fusion modes (paper ablations), over the selected streams in the config's order:
- concat_proj: concat(aligned streams) along channels -> Linear -> width  (paper: CAVP ; TimeChat)
- add:         sum of Linear(aligned stream)
- time_cat:    [Linear(stream) ; ...] along time, no alignment (the streams' token counts add up)
With a single stream it goes through one Linear (after alignment).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from mapper.config import MapperConfig


def alignment_matrix(spans, queries: int, num_frames: int) -> torch.Tensor:
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
        raise ValueError(f"windows {spans} leave frames {missing} uncovered")
    return matrix


class VisualFusion(nn.Module):
    def __init__(self, config: MapperConfig):
        super().__init__()
        self.mode = config.fusion
        self.streams = config.selected_streams  # name -> StreamSpec, in fusion order
        width = config.audio_token_dim
        self.reset_alignment(config)
        if self.mode == "concat_proj" and len(self.streams) > 1:
            self.proj = nn.Linear(sum(spec.dim for spec in self.streams.values()), width)
        else:
            self.projections = nn.ModuleDict({name: nn.Linear(spec.dim, width) for name, spec in self.streams.items()})

    def reset_alignment(self, config: MapperConfig) -> None:
        """(Re)build the alignment matrices from the config (derived, never saved)."""
        for name, spec in config.selected_streams.items():
            if _is_per_frame(spec, config.num_frames):
                continue  # already one token per frame
            old = getattr(self, f"align_{name}", None)
            align = alignment_matrix(spec.spans, spec.queries, config.num_frames)  # (T, W*Q)
            self.register_buffer(f"align_{name}", align.to(old.device) if old is not None else align, persistent=False)

    def aligned(self, name: str, tokens: torch.Tensor) -> torch.Tensor:
        """(B, W*Q, D) tokens of stream ``name`` -> (B, T, D), one per frame."""
        align = getattr(self, f"align_{name}", None)
        if align is None:
            return tokens
        return torch.matmul(align.to(tokens.dtype), tokens)  # (T, W*Q) @ (B, W*Q, D)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """{stream name: (B, tokens, dim)} -> fused (B, prefix_length, width)."""
        missing = [name for name in self.streams if name not in features]
        if missing:
            raise KeyError(f"the mapper reads the streams {list(self.streams)}; missing {missing}")
        if self.mode == "time_cat":
            return torch.cat([self.projections[name](features[name]) for name in self.streams], dim=1)
        aligned = {name: self.aligned(name, features[name]) for name in self.streams}
        if self.mode == "concat_proj" and len(self.streams) > 1:
            return self.proj(torch.cat(list(aligned.values()), dim=-1))
        return sum(self.projections[name](tokens) for name, tokens in aligned.items())  # add, or one stream


def _is_per_frame(spec, num_frames: int) -> bool:
    return tuple(spec.spans) == ((0, num_frames),) and spec.queries == num_frames
