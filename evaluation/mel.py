"""Mel filterbanks as ``librosa.filters.mel`` builds them (librosa 0.11), without librosa.

Two scales (Slaney's, librosa's default: linear below 1 kHz, logarithmic above; or HTK's
``2595 log10(1 + f/700)``) and two normalisations (Slaney's "constant energy per band", dividing
each triangle by half its width in Hz; or none). The triangles are built in Hz between mel-spaced
edges, exactly as librosa does, including its float32 rounding (the triangles are stored in float32
before the Slaney factor multiplies them), so the matrix equals librosa's bit for bit or within
one float32 ulp. ``tests/test_eval_panns.py`` checks it against librosa outputs stored in
``tests/fixtures/eval/panns_golden.safetensors``.

Not every "HTK mel" is this one: VGGish's ``mel_features.spectrogram_to_mel_matrix`` builds its
triangles in the mel domain and zeroes the DC bin, a different matrix.
"""
from __future__ import annotations

import numpy as np

_SLANEY_F_SP = 200.0 / 3  # Hz per mel in the linear part
_SLANEY_MIN_LOG_HZ = 1000.0  # where the logarithmic part starts
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # = 15 mel
_SLANEY_LOGSTEP = np.log(6.4) / 27.0  # 27 mel per factor 6.4 in frequency


def hz_to_mel(frequencies, htk: bool = False) -> np.ndarray:
    """Frequencies in Hz to mels (float64 array)."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + frequencies / 700.0)
    mels = frequencies / _SLANEY_F_SP
    log_part = frequencies >= _SLANEY_MIN_LOG_HZ
    octaves = np.log(np.maximum(frequencies, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ)  # clamped: no log(0) warning
    return np.where(log_part, _SLANEY_MIN_LOG_MEL + octaves / _SLANEY_LOGSTEP, mels)


def mel_to_hz(mels, htk: bool = False) -> np.ndarray:
    """Mels to frequencies in Hz (float64 array)."""
    mels = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    freqs = _SLANEY_F_SP * mels
    log_part = mels >= _SLANEY_MIN_LOG_MEL
    return np.where(log_part, _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (mels - _SLANEY_MIN_LOG_MEL)), freqs)


def mel_filterbank(sample_rate: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None, *,
                   htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 weights, ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft,
    n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)``; ``fmax=None`` means sample_rate / 2.

    Multiply a power (or magnitude) spectrogram ``(..., n_fft // 2 + 1)`` by its transpose.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"norm={norm!r}: only 'slaney' or None (librosa's p-norms are not implemented)")
    if fmax is None:
        fmax = float(sample_rate) / 2
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)  # (F,) centre of each FFT bin, Hz
    # n_mels + 2 band edges equally spaced in mel; band i spans edges i .. i + 2, peaks at i + 1
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    widths = np.diff(edges)  # (n_mels + 1,)
    ramps = np.subtract.outer(edges, fft_freqs)  # (n_mels + 2, F)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    # librosa writes the triangles into a float32 array first, then scales that array in place
    weights = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)  # (n_mels, F)
    if norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights
