"""AudioLDM-2's denoising loop, with an optional known region kept fixed (latent inpainting).

Without a known region this is exactly ``AudioLDM2Pipeline.__call__``'s loop (same noise draw,
same guidance arithmetic, same scheduler calls; a test checks equality), so any diffusers
scheduler works unchanged. With one, the latent is continued rather than generated from scratch,
the way diffusers' legacy Stable Diffusion inpainting does it with a frozen model: after every
scheduler step the known region is overwritten by the known latent noised to the level the
sampler has just reached (``scheduler.add_noise`` at the next timestep, with the same noise that
started the run), and by the clean known latent after the last step. The UNet therefore always
sees a consistent noisy whole and fills in the unknown part so that it continues the known part.
This is how long videos are rendered window by window (the overlap with the previous window is
the known region) and how a reference sound is continued.

An optional ``guidance`` (``EnvelopeGuidance``: timing control towards a target loudness envelope)
adjusts the noise prediction after classifier-free guidance, on the steps it applies to; without it
(or at scale 0) the loop is unchanged, number for number.
"""
from __future__ import annotations

import contextlib
import inspect

import torch
from diffusers import SchedulerMixin

from mapper.decoders.audioldm2.conditions import Conditions
from mapper.decoders.audioldm2.envelope_guidance import EnvelopeGuidance


def _step_kwargs(scheduler: SchedulerMixin, generator, eta: float) -> dict:
    """The optional arguments this scheduler's ``step`` takes (diffusers' prepare_extra_step_kwargs)."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = generator
    return kwargs


@torch.no_grad()
def denoise(
    unet: torch.nn.Module,
    scheduler: SchedulerMixin,
    noise: torch.Tensor,
    conditions: Conditions,
    num_inference_steps: int,
    guidance_scale: float,
    known: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    eta: float = 0.0,
    progress_bar=None,
    guidance: EnvelopeGuidance | None = None,
) -> torch.Tensor:
    """Sample latents (B, C, T, F) from standard-normal ``noise`` (B, C, T, F).

    known (B, C, T, F) and known_mask (B, 1, T, 1) bool: where the mask is set, the result is
    ``known`` exactly and every intermediate latent is ``known`` at the current noise level.
    ``progress_bar``: a context manager with ``update()`` (a pipeline's ``progress_bar``).
    ``guidance``: envelope guidance applied to the noise prediction on its steps (known frames excluded).
    """
    if (known is None) != (known_mask is None):
        raise ValueError("known and known_mask go together")
    guided = guidance_scale > 1.0
    scheduler.set_timesteps(num_inference_steps, device=noise.device)
    timesteps = scheduler.timesteps
    latents = noise * scheduler.init_noise_sigma
    if known is not None:
        latents = torch.where(known_mask, scheduler.add_noise(known, noise, timesteps[:1]), latents)
    step_kwargs = _step_kwargs(scheduler, generator, eta)
    with progress_bar or contextlib.nullcontext() as bar:
        for i, t in enumerate(timesteps):
            model_input = torch.cat([latents] * 2) if guided else latents  # (2B | B, C, T, F)
            model_input = scheduler.scale_model_input(model_input, t)
            noise_pred = unet(
                model_input,
                t,
                encoder_hidden_states=conditions.generated,
                encoder_hidden_states_1=conditions.text,
                encoder_attention_mask_1=conditions.text_mask,
                return_dict=False,
            )[0]
            if guided:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + guidance_scale * (cond - uncond)
            if guidance is not None and guidance.applies(i, len(timesteps)):
                noise_pred = guidance.adjust(latents, t, noise_pred, scheduler, known_mask)
            latents = scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample
            if known is not None:
                if i + 1 < len(timesteps):  # the level the next step starts from
                    target = scheduler.add_noise(known, noise, timesteps[i + 1 : i + 2])
                else:
                    target = known
                latents = torch.where(known_mask, target.to(latents.dtype), latents)
            if bar is not None:
                bar.update()
    return latents
