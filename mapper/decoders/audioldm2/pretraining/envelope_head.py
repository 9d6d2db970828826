"""Training a latent envelope head (``mapper.decoders.audioldm2.envelope_head``) for a frozen decoder.

The head learns what guidance asks of it: from a latent noised as the sampler sees it
(``scheduler.add_noise(x0, noise, t)`` at a random training timestep t) and t, the envelope of the
clean audio x0 came from. Uniform t over the decoder's training timesteps: guidance may act at any
step, and the selective default acts on the noisiest ones. Plain MSE per frame; the envelopes are
z-scored per clip, so predicting 0 everywhere (what a head can do at t near 1000) scores 1.
"""
from __future__ import annotations

import numpy as np
import torch

from mapper.decoders.audioldm2.envelope_head import EnvelopeHead
from mapper.decoders.audioldm2.pretraining.training_loop import train_steps

NOISE_BANDS = ((0, 250), (250, 500), (500, 750), (750, 1000))  # training timesteps, low to high noise


def train_envelope_head(head: EnvelopeHead, latents: torch.Tensor, envelopes: torch.Tensor, scheduler, steps: int,
                        batch: int, lr: float, generator: torch.Generator, log=print) -> EnvelopeHead:
    """latents (N, C, T, F) scaled as the UNet's data, envelopes (N, T) -> the head trained in place (frozen after)."""
    timesteps = int(scheduler.config.num_train_timesteps)

    def loss_of(step: int) -> torch.Tensor:
        items = torch.randint(0, len(latents), (batch,), generator=generator)
        x0, target = latents[items], envelopes[items]  # (B, C, T, F), (B, T)
        t = torch.randint(0, timesteps, (batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        return torch.nn.functional.mse_loss(head(scheduler.add_noise(x0, noise, t), t), target)

    return train_steps(head, loss_of, steps, lr, "envelope head", log)


@torch.no_grad()
def held_out_scores(head: EnvelopeHead, latents: torch.Tensor, envelopes: torch.Tensor, scheduler,
                    generator: torch.Generator, batch: int = 16) -> dict[str, dict[str, float]]:
    """{"t 0-249": {"mse", "correlation"}, ...}: per noise band, every clip once at a random t in the band;
    MSE per frame and the mean over clips of the Pearson correlation of prediction and envelope."""
    scores = {}
    for low, high in NOISE_BANDS:
        errors, correlations = [], []
        for i in range(0, len(latents), batch):
            x0, target = latents[i:i + batch], envelopes[i:i + batch]
            t = torch.randint(low, high, (len(x0),), generator=generator)
            noise = torch.randn(x0.shape, generator=generator)
            predicted = head(scheduler.add_noise(x0, noise, t), t)  # (B, T)
            errors.append(((predicted - target) ** 2).mean(dim=1))
            correlations.extend(_pearson(p, y) for p, y in zip(predicted.numpy(), target.numpy()))
        scores[f"t {low}-{high - 1}"] = {"mse": float(torch.cat(errors).mean()),
                                         "correlation": float(np.nanmean(correlations))}
    return scores


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    scale = np.sqrt((a ** 2).sum() * (b ** 2).sum())
    return float((a * b).sum() / scale) if scale > 0 else float("nan")
