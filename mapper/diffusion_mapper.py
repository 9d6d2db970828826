"""The paper's "Diff-Mapper" ablation: the same GPT-2 backbone trained as a denoiser.

Input sequence (GPT-2 `inputs_embeds`, causal attention):

    [timestep embedding (1)] [fused visual tokens (S)] [noisy AudioMAE tokens (N)] [query tokens (N)]

The hidden states at the N learnable query tokens predict the *clean* AudioMAE tokens; since
they come last, causal attention lets them see everything before them. Training: draw a noise
level t, noise the target with diffusers' DDPM schedule, regress the clean target (MSE or L1).
Inference: start from Gaussian noise and denoise with DDIM for `diffusion_inference_steps`.
"""
from __future__ import annotations

from typing import Mapping

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from mapper.config import MapperConfig
from mapper.model import MapperBase, regression_loss

BETA_SCHEDULE = "squaredcos_cap_v2"  # cosine schedule: keeps some signal at every training level


class DiffusionMapperModel(MapperBase):
    def __init__(self, config: MapperConfig):
        super().__init__(config)
        width = config.audio_token_dim
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(width, width)
        self.query_tokens = nn.Parameter(torch.randn(config.num_audio_tokens, width) * 0.02)  # (N, D)

    @property
    def sequence_length(self) -> int:
        return 1 + self.config.prefix_length + 2 * self.config.num_audio_tokens

    def _train_scheduler(self) -> DDPMScheduler:
        return DDPMScheduler(
            num_train_timesteps=self.config.diffusion_train_timesteps,
            beta_schedule=BETA_SCHEDULE,
            prediction_type="sample",
        )

    def denoise(self, fused: torch.Tensor, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Predict clean tokens (B, N, D) from noisy ones (B, N, D) at `timesteps` (B,)."""
        batch = noisy.shape[0]
        time = self.time_embedding(self.time_proj(timesteps).to(noisy.dtype))[:, None]  # (B, 1, D)
        queries = self.query_tokens[None].expand(batch, -1, -1).to(noisy.dtype)  # (B, N, D)
        hidden = self.gpt2(inputs_embeds=torch.cat([time, fused, noisy, queries], dim=1)).last_hidden_state
        return hidden[:, -self.config.num_audio_tokens :]

    def training_loss(self, features: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        scheduler = self._train_scheduler()
        noise = torch.randn_like(target)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (target.shape[0],), device=target.device)
        noisy = scheduler.add_noise(target, noise, timesteps)
        return regression_loss(self.config.loss, self.denoise(self.fuse(features), noisy, timesteps), target)

    @torch.no_grad()
    def generate(self, features: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> torch.Tensor:
        """Iterative DDIM denoising from Gaussian noise -> (B, N, D)."""
        fused = self.fuse(features)
        scheduler = DDIMScheduler.from_config(self._train_scheduler().config)
        scheduler.set_timesteps(self.config.diffusion_inference_steps, device=fused.device)
        shape = (fused.shape[0], self.config.num_audio_tokens, self.config.audio_token_dim)
        generator = generator or torch.Generator(device="cpu").manual_seed(0)
        sample = torch.randn(shape, generator=generator, device="cpu").to(fused.device, fused.dtype)
        for t in scheduler.timesteps:
            clean = self.denoise(fused, sample, t.expand(shape[0]).to(fused.device))
            sample = scheduler.step(clean, t, sample).prev_sample
        return sample
