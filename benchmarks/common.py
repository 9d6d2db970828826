"""What every benchmark needs besides the machine line (``recipes.machine``): device synchronisation, and the
sampling-seed offsets the toy benchmarks render their clips at (clip i seeded i + offset)."""
from __future__ import annotations

import argparse

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU), so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_offsets(text: str) -> list[int]:
    """An argparse type: comma-separated seed offsets, distinct integers >= 0 ("0,100,200" -> [0, 100, 200])."""
    try:
        offsets = [int(part) for part in text.split(",")]
    except ValueError:
        offsets = []
    if not offsets or min(offsets) < 0 or len(set(offsets)) != len(offsets):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0 separated by commas, got {text!r}")
    return offsets
