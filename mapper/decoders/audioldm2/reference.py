"""A reference sound in AudioLDM-2's latent space, to be continued by generation.

``generate(video, label, reference_audio=wav)`` puts the reference's latent in front of the first
window as a known region (the same inpainting that joins long-form windows), so the generated
soundtrack starts as a continuation of the reference and inherits its timbre. The reference is
prepared as AudioLDM-2 prepares audio for its VAE (``read_wav_file`` + ``wav_to_fbank`` in the
original code): mean removed, peak-normalised to 0.5, log-mel (:mod:`~mapper.decoders.audioldm2.mel`), then VAE
encoding (the posterior's mode, so it is deterministic) times the VAE's scaling factor.
"""
from __future__ import annotations

import numpy as np
import torch

from mapper.decoders.audioldm2.mel import MelConfig, log_mel


def normalize_reference(waveform: np.ndarray) -> np.ndarray:
    """AudioLDM-2's input normalisation: zero mean, peak 0.5."""
    waveform = waveform - waveform.mean()
    return (0.5 * waveform / (np.abs(waveform).max() + 1e-8)).astype(np.float32)


@torch.no_grad()
def encode_reference(
    vae, vocoder_config, waveform: np.ndarray, frames: int, frame_samples: int
) -> torch.Tensor:
    """The last ``frames`` latent frames of ``waveform`` (S,) -> (1, C, frames, F) scaled latent.

    ``frame_samples``: samples per latent frame (VAE time factor x vocoder hop).
    """
    needed = frames * frame_samples
    if len(waveform) < needed:
        raise ValueError(f"reference has {len(waveform)} samples, {needed} needed for {frames} latent frames")
    clip = normalize_reference(np.asarray(waveform[len(waveform) - needed :], np.float32))
    config = MelConfig.for_vocoder(vocoder_config)
    mel_frames = needed // config.hop_length
    mel = log_mel(clip, config)[:mel_frames]  # (frames * 4, mels): drop the centred STFT's extra frame
    vae_dtype, vae_device = next(vae.parameters()).dtype, next(vae.parameters()).device
    posterior = vae.encode(mel[None, None].to(vae_device, vae_dtype)).latent_dist  # input (1, 1, T, mels)
    return posterior.mode() * vae.config.scaling_factor  # (1, C, frames, mels / 4)
