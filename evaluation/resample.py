"""Band-limited resampling exactly as torchaudio 2.9 does it, without torchaudio.

av-benchmark resamples every file with torchaudio's defaults: a windowed-sinc low-pass (Hann
window, 6 zero crossings each side, cutoff 0.99 of the lower Nyquist frequency) applied as one
strided ``conv1d``. This module recomputes that filter with the same tensor operations in the same
dtypes, so the output equals torchaudio's (the golden test, ``tests/test_eval_resample.py``, finds
no difference at all for the rate pairs it covers).

torchaudio has two entry points with the same defaults but not the same numbers, and av-benchmark
uses both:

* ``torchaudio.transforms.Resample`` builds the filter in float64 (the phase term ``j / new`` alone in
  float32) and keeps it as float32. av-benchmark's ``AudioDataset`` (PANNs, VGGish, PaSST) and
  ``SynchformerAudioDataset`` use it: ``kernel_dtype=torch.float64``, our default.
* ``torchaudio.functional.resample`` builds the filter in the waveform's dtype, float32 for audio.
  av-benchmark's ImageBind loader uses it: ``kernel_dtype=None``.

On unit-variance noise the two differ by about 1e-5 (44.1 → 16 kHz), so parity needs the right one.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 6  # zero crossings of the sinc kept on each side of the centre tap
ROLLOFF = 0.99  # cutoff as a fraction of the lower of the two Nyquist frequencies


def _reduced_rates(orig_sr, new_sr) -> tuple[int, int]:
    """The rates divided by their gcd; the filter has one phase per output sample of a period."""
    for name, rate in (("orig_sr", orig_sr), ("new_sr", new_sr)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or int(rate) != rate or rate <= 0:
            raise ValueError(f"{name} must be a positive whole number of Hz, got {rate!r}")
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    gcd = math.gcd(orig_sr, new_sr)
    return orig_sr // gcd, new_sr // gcd


@functools.lru_cache(maxsize=32)
def _sinc_kernel(orig: int, new: int, kernel_dtype: torch.dtype | None, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """(new, 1, 2·width + orig) filter bank for reduced rates, and the padding ``width``.

    Row j holds the taps that produce output sample j of each period of ``new`` outputs from the
    ``2·width + orig`` input samples around it; ``dtype`` is the waveform's, ``kernel_dtype`` the
    dtype the taps are computed in (None: the waveform's own).
    """
    cutoff = min(orig, new) * ROLLOFF  # in units of the reduced rates
    width = math.ceil(LOWPASS_FILTER_WIDTH * orig / cutoff)  # input samples of padding each side
    compute = kernel_dtype if kernel_dtype is not None else dtype
    # Resample computes the phase j/new from an integer arange, so in torch's default float dtype
    # (float32), and only then promotes it to float64; functional.resample does it in `compute`.
    phase_dtype = torch.float32 if kernel_dtype is not None else compute
    taps = torch.arange(-width, width + orig, dtype=compute)[None, None] / orig  # (1, 1, K) input times
    phase = torch.arange(0, -new, -1, dtype=phase_dtype)[:, None, None] / new  # (new, 1, 1) output times
    t = (phase + taps) * cutoff  # (new, 1, K) distance in cycles of the cutoff
    t = t.clamp(-LOWPASS_FILTER_WIDTH, LOWPASS_FILTER_WIDTH)
    window = torch.cos(t * math.pi / LOWPASS_FILTER_WIDTH / 2) ** 2  # Hann, zero at ±width crossings
    t = t * math.pi
    kernel = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)  # sinc
    kernel = kernel * (window * (cutoff / orig))  # unit DC gain
    return kernel.to(dtype), width


def resample(waveform: torch.Tensor, orig_sr: int, new_sr: int, *,
             kernel_dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """``waveform`` (..., time) at ``orig_sr`` → (..., ceil(time · new_sr / orig_sr)) at ``new_sr``.

    Equal rates return ``waveform`` itself, as torchaudio does. ``kernel_dtype``: see the module
    docstring (float64: ``torchaudio.transforms.Resample``; None: ``torchaudio.functional.resample``).
    Unlike ``Resample``, which fails on float64 input, a float64 waveform gets a float64 filter.
    """
    orig, new = _reduced_rates(orig_sr, new_sr)
    if not torch.is_tensor(waveform) or not waveform.is_floating_point():
        raise TypeError(f"waveform must be a floating-point tensor, got {getattr(waveform, 'dtype', type(waveform))}")
    if waveform.dim() == 0:
        raise ValueError("waveform must have a time axis (..., time), got a scalar")
    if orig == new:
        return waveform
    kernel, width = _sinc_kernel(orig, new, kernel_dtype, waveform.dtype)
    shape = waveform.shape
    x = waveform.reshape(math.prod(shape[:-1]), shape[-1])  # (B, T); torchaudio's view(-1, T) fails for T = 0
    length = x.shape[-1]
    x = F.pad(x, (width, width + orig))  # (B, width + T + width + orig)
    y = F.conv1d(x[:, None], kernel.to(x.device), stride=orig)  # (B, new, periods)
    y = y.transpose(1, 2).reshape(x.shape[0], -1)  # (B, periods · new), output samples in order
    target = math.ceil(new * length / orig)  # same float arithmetic as torchaudio
    return y[:, :target].reshape(*shape[:-1], target)  # (..., target); y has at least target columns
