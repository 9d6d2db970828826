"""The loop the three stages share: AdamW with a cosine decay, a fixed number of steps, progress lines."""
from __future__ import annotations

import math
import time
from typing import Callable

import torch


def random_crops(x: torch.Tensor, length: int, batch: int, generator: torch.Generator,
                 scale: int = 1, paired: torch.Tensor | None = None):
    """`batch` random windows of `length` steps along dim 1 of x (N, T, ...); with `paired` (N, T*scale, ...),
    the same windows of it too (a waveform beside its mel: `scale` samples per frame)."""
    items = torch.randint(0, x.shape[0], (batch,), generator=generator)
    starts = torch.randint(0, x.shape[1] - length + 1, (batch,), generator=generator)
    crops = torch.stack([x[i, s:s + length] for i, s in zip(items.tolist(), starts.tolist())])
    if paired is None:
        return crops
    return crops, torch.stack([paired[i, s * scale:(s + length) * scale] for i, s in zip(items.tolist(), starts.tolist())])


def train_steps(model: torch.nn.Module, loss_of: Callable[[int], torch.Tensor], steps: int, lr: float,
                name: str, log=print, warmup: int = 50) -> torch.nn.Module:
    """Run `steps` AdamW steps of `loss_of(step)` on `model`; returns it in eval mode, frozen."""
    model.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    started, running = time.perf_counter(), None
    for step in range(steps):
        loss = loss_of(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name}: loss is {loss.item()} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % max(1, steps // 10) == 0 or step + 1 == steps:
            elapsed = time.perf_counter() - started
            log(f"{name}: step {step + 1}/{steps}, loss {running:.4f}, {elapsed:.0f} s")
    return model.eval().requires_grad_(False)
