"""PANNs' log-mel front end (torchlibrosa 0.1.0's ``Spectrogram`` + ``LogmelFilterBank``), plain torch.

The original computes the STFT as two ``Conv1d`` layers whose kernels are the windowed DFT rows and
keeps the mel matrix ``melW``; all three are saved in the released checkpoint (frozen). Here the same
modules and key names (``stft.conv_real.weight``, ``stft.conv_imag.weight``, ``melW``), so a released
file loads as it is; their initial values are computed the way torchlibrosa/librosa compute them, so
a randomly initialised (tiny) model has the real front end too. With released weights the
checkpoint's values replace them, exactly as in av-benchmark (its ``load_state_dict`` does the same).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation.mel import mel_filterbank


def periodic_hann(length: int) -> np.ndarray:
    """``scipy.signal.get_window('hann', length, fftbins=True)``, float64, the way scipy computes it."""
    fac = np.linspace(-np.pi, np.pi, length + 1)[:length]
    return 0.5 + 0.5 * np.cos(fac)


def stft_kernels(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(real, imag) conv kernels, each (n_fft // 2 + 1, 1, n_fft) float32: row k is
    hann(n) * exp(-2 pi i k n / n_fft), the one-sided DFT of a periodic-hann-windowed frame."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    angle = 2 * np.pi * (np.outer(k, n) % n_fft) / n_fft  # (K, N); the modulo keeps the angle exact
    window = periodic_hann(n_fft)
    real = np.cos(angle) * window
    imag = -np.sin(angle) * window
    return (torch.from_numpy(real).float()[:, None, :], torch.from_numpy(imag).float()[:, None, :])


class _ConvSTFT(nn.Module):
    """Centred STFT (reflect padding of n_fft // 2 at both ends) as two strided convolutions."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop, bias=False)
        real, imag = stft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(real)
            self.conv_imag.weight.copy_(imag)
        self.requires_grad_(False)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(waveform[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")  # (B, 1, L + n_fft)
        return self.conv_real(x), self.conv_imag(x)  # each (B, K, frames), frames = L // hop + 1


class PowerSpectrogram(nn.Module):
    """waveform (B, L) -> power spectrogram (B, 1, frames, n_fft // 2 + 1), torchlibrosa's layout."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft = _ConvSTFT(n_fft, hop)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(waveform)
        power = real ** 2 + imag ** 2  # (B, K, frames)
        return power[:, None].transpose(2, 3)  # (B, 1, frames, K)


class LogMel(nn.Module):
    """power (..., n_fft // 2 + 1) -> 10 log10(max(power @ melW, amin)) (..., n_mels), dB re 1, no top_db."""

    def __init__(self, sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, amin: float = 1e-10):
        super().__init__()
        self.amin = amin
        mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney")  # (M, K)
        # a frozen Parameter, as in torchlibrosa (the released file stores it under this name)
        self.melW = nn.Parameter(torch.from_numpy(mel.T.copy()), requires_grad=False)  # (K, M)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(power, self.melW)  # (..., M)
        # torchlibrosa then subtracts 10 log10(max(amin, ref)) = 0 for ref = 1: nothing to do
        return 10.0 * torch.log10(torch.clamp(mel, min=self.amin))


def min_samples(n_fft: int, hop: int, min_frames: int) -> int:
    """Shortest waveform giving ``min_frames`` centred frames that reflect padding accepts."""
    return max((min_frames - 1) * hop, n_fft // 2 + 1)


__all__ = ["LogMel", "PowerSpectrogram", "min_samples", "periodic_hann", "stft_kernels"]
