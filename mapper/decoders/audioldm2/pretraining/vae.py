"""Stage 1: the mel VAE, trained as AudioLDM-2's is (reconstruction + a small KL), then scaled.

AudioLDM-2's VAE loss also has a patch discriminator and LPIPS-style terms; the toy world's mels are
simple enough that L1 reconstruction and the KL keep the latent smooth for the diffusion model. The
latent scale is set afterwards as AudioLDM-2 does (``scale_by_std``): 1 / std of encoded training
latents, so the UNet's unit-Gaussian prior and encoded audio share one scale.
"""
from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from mapper.decoders.audioldm2.pretraining.training_loop import random_crops, train_steps

KL_WEIGHT = 1e-4  # per latent element, relative to the per-element L1


def train_vae(vae: AutoencoderKL, mels: torch.Tensor, steps: int, batch: int, crop_frames: int,
              lr: float, generator: torch.Generator, log=print) -> AutoencoderKL:
    """mels (N, T, M) -> the trained VAE (train mode off). Crops of `crop_frames` mel frames."""

    def loss_of(step: int) -> torch.Tensor:
        x = random_crops(mels, crop_frames, batch, generator)[:, None]  # (B, 1, crop, M)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        return (recon - x).abs().mean() + KL_WEIGHT * posterior.kl().mean() / posterior.mean[0].numel()

    return train_steps(vae, loss_of, steps, lr, "vae", log)


@torch.no_grad()
def _modes(vae: AutoencoderKL, mels: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([vae.encode(mels[i:i + batch, None]).latent_dist.mode() for i in range(0, len(mels), batch)])


def scaled_latents(vae: AutoencoderKL, mels: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """(N, T, M) mels -> (N, C, T/4, M/4) latents (posterior modes), the UNet's data, after setting the VAE's
    scaling factor from them as AudioLDM-2's scale_by_std does: 1 / std of the training latents."""
    latents = _modes(vae, mels, batch)
    vae.register_to_config(scaling_factor=1.0 / latents.std().item())
    return latents * vae.config.scaling_factor


def encode_latents(vae: AutoencoderKL, mels: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """(N, T, M) mels -> (N, C, T/4, M/4) latents at the VAE's recorded scaling factor (a VAE trained before)."""
    return _modes(vae, mels, batch) * vae.config.scaling_factor
