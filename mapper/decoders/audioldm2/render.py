"""Mapper tokens + sound labels -> waveform of an exact length, through the stock ``AudioLDM2Pipeline``.

The reference path: diffusers' own pipeline runs the UNet, VAE, vocoder and scheduler with our
conditions passed as embeddings (its bring-your-own-embeddings arguments), so tests can check that
the toolkit's own sampling loop (:mod:`~mapper.decoders.audioldm2.denoise`) and conditions equal
what diffusers does.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from diffusers import AudioLDM2Pipeline

from mapper.decoders.audioldm2.conditions import (
    DEFAULT_NEGATIVE_PROMPT,
    NegativeMode,
    guidance_conditions,
    negative_tokens,
)



def _request_seconds(pipe: AudioLDM2Pipeline, num_samples: int) -> float:
    """The ``audio_length_in_s`` that makes the pipeline render >= ``num_samples`` samples.

    The pipeline floors ``seconds / hop`` to mel frames, rounds frames up to the VAE factor and
    floors ``seconds * sr`` for its crop; float error can cost a frame or a sample. Asking for a
    whole number of VAE-aligned frames plus half a sample makes every floor land where intended.
    The latent shape (hence the noise) is the one the pipeline picks for the same duration.
    """
    sampling_rate = pipe.vocoder.config.sampling_rate
    hop = int(np.prod(pipe.vocoder.config.upsample_rates))  # samples per mel frame
    frames = math.ceil(max(num_samples, 1) / hop)  # the pipeline renders at least one latent step
    frames = math.ceil(frames / pipe.vae_scale_factor) * pipe.vae_scale_factor
    return (frames * hop + 0.5) / sampling_rate


@torch.no_grad()
def render(
    pipe: AudioLDM2Pipeline,
    audio_tokens: torch.Tensor,
    labels: list[str],
    seconds: float,
    num_inference_steps: int,
    guidance_scale: float,
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    negative_mode: NegativeMode = "audioldm2",
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> np.ndarray:
    """Mapper tokens (B, 8, gpt2_width) + sound labels -> waveforms (B, round(seconds * sr)).

    The tokens replace AudioLDM-2's GPT-2 output; the labels go through Flan-T5 exactly as the
    pipeline encodes a prompt. With guidance (scale > 1) the negative pair is T5(negative
    prompt) and :func:`~mapper.decoders.audioldm2.conditions.negative_tokens`, built by
    :func:`~mapper.decoders.audioldm2.conditions.guidance_conditions` as the toolkit's pipeline builds them. Use "" for no label;
    negative_prompt="" with negative_mode="zeros" is AudioLDM-2's fully unconditional pair.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    guided = guidance_scale > 1.0  # the pipeline's own switch for classifier-free guidance
    negative = negative_tokens(pipe, negative_prompt, negative_mode, audio_tokens.shape[1]) if guided else None
    negative_half, positive = guidance_conditions(pipe, audio_tokens, labels, negative_prompt, negative).halves()
    conditions = dict(
        prompt_embeds=positive.text,
        attention_mask=positive.text_mask,
        generated_prompt_embeds=positive.generated,
    )
    if negative_half is not None:
        conditions.update(
            negative_prompt_embeds=negative_half.text,
            negative_attention_mask=negative_half.text_mask,
            negative_generated_prompt_embeds=negative_half.generated,
        )
    num_samples = round(seconds * pipe.vocoder.config.sampling_rate)
    audio = pipe(
        **conditions,
        audio_length_in_s=_request_seconds(pipe, num_samples),
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        generator=generator,
        output_type="np",
    ).audios  # (B, >= num_samples)
    return np.ascontiguousarray(audio[:, :num_samples], dtype=np.float32)
