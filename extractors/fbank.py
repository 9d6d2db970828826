"""Kaldi-compatible log-mel filterbank in pure torch (AudioMAE's front end uses it).

AudioLDM-2 feeds AudioMAE with ``torchaudio.compliance.kaldi.fbank(wave, htk_compat=True,
sample_frequency=16000, use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0,
frame_shift=10)``. torchaudio is not a dependency of this toolkit, so this module re-implements
exactly that computation (Kaldi's ``compute-fbank-feats`` as torchaudio ports it), batched:

1. cut the waveform into frames of ``frame_length`` ms every ``frame_shift`` ms, keeping only frames
   that fit completely (Kaldi ``snip_edges=true``): ``1 + (N - window) // shift`` frames;
2. per frame: remove the DC offset, pre-emphasise ``x[j] -= 0.97 * x[j-1]`` (``x[-1] := x[0]``),
   multiply by the window, zero-pad to the next power of two;
3. power spectrum ``|rfft|^2``, triangular mel filters on Kaldi's mel scale ``1127 ln(1 + f/700)``
   (the Nyquist bin gets no weight), ``log(max(energy, float32 eps))``.

Options AudioMAE never uses are left out on purpose (dither, VTLN warping, ``snip_edges=false``,
energy columns, cepstral mean subtraction, magnitude instead of power); ``use_energy=False`` makes
``htk_compat`` a no-op. The intermediate arithmetic follows torchaudio's (float32 mel banks,
``rfft(...).abs().pow(2)``) so results agree to float rounding; the tests compare against
spectra written by Kaldi itself.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Kaldi floors every mel energy at std::numeric_limits<float>::epsilon() before the log, so
# digital silence maps to log(eps) = -15.942385 rather than -inf.
LOG_FLOOR_EPS = float(torch.finfo(torch.float32).eps)

WINDOW_TYPES = ("hanning", "hamming", "povey", "rectangular", "blackman")


def mel_scale(freq_hz):
    """Kaldi's (HTK-style, natural-log) mel scale."""
    if isinstance(freq_hz, torch.Tensor):
        return 1127.0 * (1.0 + freq_hz / 700.0).log()
    return 1127.0 * math.log(1.0 + freq_hz / 700.0)


def num_frames(num_samples: int, sample_rate: float = 16000.0, frame_length_ms: float = 25.0,
               frame_shift_ms: float = 10.0) -> int:
    """Frames Kaldi keeps with ``snip_edges=true`` (only windows that fit entirely)."""
    window, shift = _window_sizes(sample_rate, frame_length_ms, frame_shift_ms)
    return 0 if num_samples < window else 1 + (num_samples - window) // shift


def _window_sizes(sample_rate: float, frame_length_ms: float, frame_shift_ms: float) -> tuple[int, int]:
    # Kaldi truncates (not rounds) milliseconds to samples: 25 ms @ 16 kHz -> 400, 10 ms -> 160.
    return int(sample_rate * frame_length_ms * 0.001), int(sample_rate * frame_shift_ms * 0.001)


def _next_power_of_two(x: int) -> int:
    return 1 if x == 0 else 2 ** (x - 1).bit_length()


def window_function(window_type: str, size: int, blackman_coeff: float = 0.42) -> torch.Tensor:
    """Kaldi's symmetric analysis windows (float32)."""
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False)
    if window_type == "povey":  # Kaldi default: a Hann window raised to 0.85, zero at both ends
        return torch.hann_window(size, periodic=False).pow(0.85)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46)
    if window_type == "rectangular":
        return torch.ones(size)
    if window_type == "blackman":  # generalised Blackman with Kaldi's free coefficient
        a = 2 * math.pi / (size - 1)
        n = torch.arange(size, dtype=torch.float32)
        return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    raise ValueError(f"unknown window_type {window_type!r}; expected one of {WINDOW_TYPES}")


def mel_filterbank(num_mel_bins: int, padded_window: int, sample_rate: float,
                   low_freq: float = 20.0, high_freq: float = 0.0) -> torch.Tensor:
    """Triangular filters, (num_mel_bins, padded_window // 2 + 1), Kaldi ``MelBanks`` formulae.

    Bins are equally spaced on the mel scale between ``low_freq`` and ``high_freq``
    (``high_freq <= 0`` counts back from Nyquist); bin ``m`` rises from ``left = low + m*delta`` to
    its centre ``left + delta`` and falls to ``left + 2*delta``, with
    ``delta = (mel(high) - mel(low)) / (num_mel_bins + 1)``. The slopes are evaluated in mel, at
    FFT-bin frequencies ``k * sample_rate / padded_window``; the Nyquist column is zero.
    """
    if num_mel_bins <= 3:
        raise ValueError("Kaldi needs more than 3 mel bins")
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise ValueError(f"bad mel range low_freq={low_freq} high_freq={high_freq} (nyquist {nyquist})")
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_mel_bins + 1)
    m = torch.arange(num_mel_bins).unsqueeze(1)  # (M, 1)
    left, center, right = mel_low + m * delta, mel_low + (m + 1.0) * delta, mel_low + (m + 2.0) * delta
    fft_bin_width = sample_rate / padded_window
    mel = mel_scale(fft_bin_width * torch.arange(padded_window // 2, dtype=torch.float32)).unsqueeze(0)  # (1, K)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)  # (M, K)
    return F.pad(banks, (0, 1))  # (M, K + 1): the Nyquist bin carries no weight


def kaldi_fbank(
    waveform: torch.Tensor,
    *,
    sample_rate: float = 16000.0,
    num_mel_bins: int = 128,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    round_to_power_of_two: bool = True,
    window_type: str = "hanning",
    blackman_coeff: float = 0.42,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Log-mel filterbank of ``waveform`` (B, N) or (N,) -> (B, frames, num_mel_bins) or (frames, M).

    Defaults are Kaldi's, except ``window_type`` and ``num_mel_bins`` which are AudioMAE's.
    The waveform's scale is used as is (Kaldi reads int16 counts, AudioLDM-2 float [-1, 1]).
    """
    squeeze = waveform.dim() == 1
    wave = waveform.unsqueeze(0) if squeeze else waveform  # (B, N)
    if wave.dim() != 2:
        raise ValueError(f"waveform must be (N,) or (B, N), got {tuple(waveform.shape)}")
    if not wave.is_floating_point():
        wave = wave.float()
    window, shift = _window_sizes(sample_rate, frame_length_ms, frame_shift_ms)
    padded = _next_power_of_two(window) if round_to_power_of_two else window
    if not 2 <= window <= wave.shape[-1]:
        raise ValueError(f"need at least one {window}-sample window, got {wave.shape[-1]} samples")
    if padded % 2:
        raise ValueError("the (padded) window size must be even; use round_to_power_of_two")

    frames = wave.unfold(-1, window, shift)  # (B, T, window), snip_edges=true
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if preemphasis != 0.0:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)  # x[-1] := x[0]
        frames = frames - preemphasis * previous
    frames = frames * window_function(window_type, window, blackman_coeff).to(frames)
    if padded != window:
        frames = F.pad(frames, (0, padded - window))  # (B, T, padded)

    power = torch.fft.rfft(frames).abs().pow(2.0)  # (B, T, padded//2 + 1)
    banks = mel_filterbank(num_mel_bins, padded, sample_rate, low_freq, high_freq).to(power)  # (M, K+1)
    mel_energies = power @ banks.T  # (B, T, M)
    out = mel_energies.clamp_min(LOG_FLOOR_EPS).log()
    return out.squeeze(0) if squeeze else out
