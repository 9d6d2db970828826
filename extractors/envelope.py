"""The loudness envelope: the one definition of "how loud is the sound, frame by frame", which timing
control steers the decoder by.

It sits in the lowest layer because three parts must compute the same thing: the decoder side (a
latent envelope head is trained to predict it from AudioLDM-2's noisy latent, and the sampler is
guided towards a target envelope, ``mapper.decoders.audioldm2.envelope_guidance``), the extraction
side (a clip's true envelope, stored per clip, is what a video head learns to predict) and the
evaluation.

Definition, for a waveform ``x`` and a frame length ``frame_samples`` (samples per latent frame of
the decoder: ``LatentGeometry.frame_samples`` / ``VideoToAudioPipeline.frame_samples``; AudioLDM-2:
4 mel frames of 160 samples = 640 samples = 40 ms at 16 kHz, so envelope frame k is latent frame k):

1. energy: frame k is samples ``[k * frame_samples, (k + 1) * frame_samples)``, the layout in which
   ``decode_latents`` writes latent frame k; ``e_k = 10 log10(mean(x^2) + 1e-12)`` dB. A frame only
   partly inside the audio is the mean over its samples there; a frame wholly past the end is NaN
   ("no target": guidance leaves it free), so a 10 s clip asked for 256 frames (10.24 s, the
   decoder's window) gives 250 numbers and 6 NaN.
2. floor: ``max(e_k, max_k e_k - floor_db)``. Silence (digital zeros, padding) would otherwise be
   -120 dB and the shape of the quietest frames would dominate; ``floor_db`` (default 60 dB) is
   below the toy world's noise floor relative to its events, so real background noise is kept.
3. z-score per clip over its finite frames: ``(e - mean) / std`` (std floored at 1e-3 dB, so a
   silent or constant clip is all zeros). The level of a clip is therefore removed: the envelope is
   its shape in time (where the sound is, relative to where it is not), which is what a video can
   tell and what says nothing about the class or the loudness the decoder renders.
"""
from __future__ import annotations

import math

import numpy as np
import torch

FLOOR_DB = 60.0  # dynamic range kept below the loudest frame of a clip
_EPS_ENERGY = 1e-12  # -120 dB: log of silence stays finite before the floor lifts it
_MIN_STD_DB = 1e-3  # a constant envelope is all zeros, not 0 / 0


def audio_envelope(audio: np.ndarray | torch.Tensor, frame_samples: int, frames: int | None = None,
                   floor_db: float = FLOOR_DB) -> np.ndarray | torch.Tensor:
    """Waveforms (B, N) or (N,) -> envelopes (B, frames) or (frames,), float32, of the input's kind
    (numpy in, numpy out). ``frames`` defaults to ``ceil(N / frame_samples)``; frames wholly past the
    audio's end are NaN. See the module docstring for the definition."""
    if isinstance(frame_samples, bool) or not isinstance(frame_samples, int) or frame_samples < 1:
        raise ValueError(f"frame_samples must be a positive integer, got {frame_samples!r}")
    if not floor_db > 0:
        raise ValueError(f"floor_db must be > 0, got {floor_db!r}")
    is_numpy = not isinstance(audio, torch.Tensor)
    x = torch.as_tensor(np.asarray(audio, np.float32) if is_numpy else audio).float()
    single = x.dim() == 1
    if single:
        x = x[None]
    if x.dim() != 2 or x.shape[1] == 0:
        raise ValueError(f"audio must be (N,) or (B, N) samples with N > 0, got shape {tuple(x.shape)}")
    length = x.shape[1]
    frames = math.ceil(length / frame_samples) if frames is None else frames
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    padded = frames * frame_samples
    x = torch.nn.functional.pad(x, (0, max(0, padded - length)))[:, :padded]  # (B, frames * frame_samples)
    # how many samples of each frame lie inside the audio: the mean is over those
    inside = (length - torch.arange(frames, device=x.device) * frame_samples).clamp(0, frame_samples)  # (frames,)
    energy = (x ** 2).view(x.shape[0], frames, frame_samples).sum(dim=2)  # (B, frames)
    power = energy / inside.clamp(min=1)
    db = 10.0 * torch.log10(power + _EPS_ENERGY)
    valid = (inside > 0).expand_as(db)  # (B, frames)
    db = torch.where(valid, db, torch.nan)
    peak = torch.where(valid, db, -torch.inf).amax(dim=1, keepdim=True)  # (B, 1)
    db = torch.maximum(db, peak - floor_db)
    count = valid.sum(dim=1, keepdim=True)
    mean = torch.nansum(db, dim=1, keepdim=True) / count
    std = (torch.nansum((db - mean) ** 2, dim=1, keepdim=True) / count).sqrt().clamp(min=_MIN_STD_DB)
    envelope = ((db - mean) / std).float()  # (B, frames), NaN past the end
    envelope = envelope[0] if single else envelope
    return envelope.cpu().numpy() if is_numpy else envelope
