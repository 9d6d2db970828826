"""The `toy` AudioMAE: the tiny build whose output norm is calibrated on toy-world audio.

AudioLDM-2's UNet reads the GPT-2 stream (the 8 AudioMAE tokens) through cross-attention, so how
those tokens are scaled decides whether it can learn from them. The tiny AudioMAE's random weights
give tokens dominated by one offset shared by every clip (over the toy world: norm 4.6 of 5.0, the
classes differing by ~0.05 per channel): an ill-conditioned input that a UNet trained for an hour on
a CPU does not learn to read (measured: with the label absent, oracle tokens gave chance-level class).
Real AudioMAE, trained on AudioSet, does not have that problem; our stand-in for its training is to
calibrate the affine weights of its final LayerNorm (``vit.norm``) so that every channel of the
pooled tokens has zero mean and unit variance over toy-world audio. Nothing else changes: same
architecture, same seeded weights, only two (D,) vectors.

Why only the norm, exactly: a token is ``pool(mean over blocks k of norm(h_k))`` with
``norm(x) = w * x_hat + b`` and pool = (avg + max) / 2 over patches. Averaging is linear and max
commutes with ``w * x + b`` for ``w > 0``, so a token is ``w * P + b`` channel-wise; with the
corpus's token mean ``mu`` and std ``sigma`` of the uncalibrated build, ``w' = w / sigma`` and
``b' = (b - mu) / sigma`` give ``(token - mu) / sigma`` for every clip.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from extractors.atomic import atomic_path
from extractors.checkpoint import load_strict, read_checkpoint

TOY_WEIGHTS = Path(__file__).parent / "toy_weights"  # shipped with the package
NORM_KEYS = ("weight", "bias")


def calibrated_norm(norm: torch.nn.LayerNorm, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """The final norm's {weight, bias} that standardise `tokens` (N, num_tokens, D), which that norm
    produced, channel by channel over all N * num_tokens rows."""
    if not bool((norm.weight > 0).all()):
        raise ValueError("the AudioMAE's final norm has non-positive weights: max pooling would not commute")
    rows = tokens.reshape(-1, tokens.shape[-1]).double()  # (N * num_tokens, D)
    mean, std = rows.mean(dim=0), rows.std(dim=0)
    weight, bias = norm.weight.detach().double(), norm.bias.detach().double()
    return {"weight": (weight / std).float(), "bias": ((bias - mean) / std).float()}


def save_calibration(state: dict[str, torch.Tensor], path: str | Path) -> None:
    with atomic_path(Path(path)) as tmp:
        save_file({key: state[key].contiguous() for key in NORM_KEYS}, str(tmp))


def load_calibration(norm: torch.nn.LayerNorm, path: str | Path) -> None:
    """Set the final norm from a calibration file (safetensors, exactly the norm's two vectors)."""
    load_strict(norm, read_checkpoint(path), path, "an AudioMAE norm calibration")


def calibration_path(name: str) -> Path:
    """A calibration file by name: one of the shipped ones, or a path."""
    shipped = TOY_WEIGHTS / name
    return shipped if shipped.is_file() or not Path(name).exists() else Path(name)
