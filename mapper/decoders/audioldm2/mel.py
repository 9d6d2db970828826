"""AudioLDM-2's mel spectrogram: what its VAE encodes and its HiFi-GAN vocoder inverts.

As in the original code (``haoheliu/AudioLDM2``, ``utilities/audio``: ``TacotronSTFT``): 16 kHz,
1024-point Hann STFT with 160-sample hop (10 ms), centred with reflect padding, magnitude (not
power), 64 Slaney mel bands 0-8 kHz (librosa's default filters), natural log clamped at 1e-5.
Needed to put a reference sound into the latent space (:mod:`~mapper.decoders.audioldm2.reference`) and to
measure seams (:mod:`mapper.generation.seams`). The sizes are read from the vocoder's config where it has
them (bins, rate, hop), so a tiny test decoder gets a matching front end.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160  # one mel frame = 10 ms
    num_mel_bins: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0
    clip_value: float = 1e-5

    @classmethod
    def for_vocoder(cls, vocoder_config) -> "MelConfig":
        """The front end whose frames the vocoder turns back into audio (bins, rate, hop)."""
        hop = int(np.prod(vocoder_config.upsample_rates))
        rate = int(vocoder_config.sampling_rate)
        return cls(sample_rate=rate, hop_length=hop, num_mel_bins=int(vocoder_config.model_in_dim), f_max=rate / 2)


@lru_cache(maxsize=8)
def _filters(config: MelConfig) -> torch.Tensor:
    bank = mel_filter_bank(
        num_frequency_bins=config.n_fft // 2 + 1,
        num_mel_filters=config.num_mel_bins,
        min_frequency=config.f_min,
        max_frequency=config.f_max,
        sampling_rate=config.sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )  # (n_fft/2 + 1, mels)
    return torch.from_numpy(bank.astype(np.float32))


def log_mel(waveform: torch.Tensor | np.ndarray, config: MelConfig = MelConfig()) -> torch.Tensor:
    """(S,) or (B, S) waveform -> (..., frames, mels) log-mel, frames = S // hop + 1."""
    x = torch.as_tensor(np.asarray(waveform, np.float32) if isinstance(waveform, np.ndarray) else waveform).float()
    window = torch.hann_window(config.n_fft, periodic=True, device=x.device)
    if x.shape[-1] <= config.n_fft // 2:  # reflect padding needs more samples than the pad
        x = torch.nn.functional.pad(x, (0, config.n_fft // 2 + 1 - x.shape[-1]))
    spec = torch.stft(
        x, config.n_fft, config.hop_length, config.n_fft, window, center=True, pad_mode="reflect", return_complex=True
    ).abs()  # (..., n_fft/2 + 1, frames)
    mel = torch.matmul(spec.transpose(-1, -2), _filters(config).to(x.device))  # (..., frames, mels)
    return torch.log(torch.clamp(mel, min=config.clip_value))
