"""VGGish's log-mel patches, batched in torch: av-benchmark's numpy front end, same numbers.

av-benchmark (``av_bench/vggish/mel_features.py``, a copy of the TensorFlow model's
``mel_features.py`` / ``vggish_input.py``) runs this per clip in numpy, on the CPU:

1. frames of 400 samples (25 ms at 16 kHz) every 160 (10 ms), only complete ones (no centring, no
   padding): ``1 + (N - 400) // 160`` frames;
2. each frame times a *periodic* Hann window ``0.5 - 0.5 cos(2 pi n / 400)``, zero-padded to the
   next power of two (512), ``|rfft|`` (magnitude, not power);
3. times VGGish's own mel matrix (below), ``log(mel + 0.01)``;
4. non-overlapping patches of 96 frames (0.96 s), only complete ones: ``1 + (frames - 96) // 96``.
   8 s of audio (798 frames) gives 8 patches; its last 0.3 s is never seen.

The waveform arrives as float32; numpy promotes it to float64 at the window multiplication and
stays in float64 until the patches are cast to float32 for the CNN. This module computes in float64
too, so it matches the reference to float32 rounding (``tests/test_eval_vggish.py``).

The mel matrix is not librosa's HTK mel (``evaluation/mel.py``): the triangles are linear in the
*mel* domain (``1127 ln(1 + f/700)``), their edges ``linspace(mel(125), mel(7500), 66)``, the FFT
bins at ``linspace(0, 8000, 257)`` Hz, no normalisation, and the DC bin is zeroed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VGGishFrontendConfig:
    sample_rate: int = 16_000  # the caller resamples first (av-benchmark: torchaudio Resample in its loader)
    window_samples: int = 400  # round(16000 * 0.025)
    hop_samples: int = 160  # round(16000 * 0.010)
    num_mel_bins: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.01  # log(mel + 0.01): no floor, so digital silence gives log(0.01)
    patch_frames: int = 96  # 0.96 s per patch (one CNN input)
    patch_hop_frames: int = 96  # non-overlapping

    @property
    def fft_size(self) -> int:
        """Next power of two at or above the window: 512."""
        return 2 ** math.ceil(math.log2(self.window_samples))

    def num_frames(self, num_samples: int) -> int:
        return max(0, 1 + (num_samples - self.window_samples) // self.hop_samples)

    def num_patches(self, num_samples: int) -> int:
        """Patches for a clip of ``num_samples``: 8 for 8 s (128,000 samples); 0 below 15,600 (0.975 s)."""
        frames = self.num_frames(num_samples)
        return max(0, 1 + (frames - self.patch_frames) // self.patch_hop_frames)


def hertz_to_mel(hz):
    """HTK mel with the natural log, as ``mel_features.hertz_to_mel``: ``1127 ln(1 + f / 700)``."""
    if isinstance(hz, torch.Tensor):
        return 1127.0 * torch.log(1.0 + hz / 700.0)
    return 1127.0 * math.log(1.0 + hz / 700.0)


def mel_matrix(cfg: VGGishFrontendConfig = VGGishFrontendConfig(), dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> torch.Tensor:
    """``(fft_size // 2 + 1, num_mel_bins)`` weights, ``mel_features.spectrogram_to_mel_matrix``:
    post-multiply a magnitude spectrogram ``(..., 257)`` by it."""
    nyquist = cfg.sample_rate / 2.0
    if not 0.0 <= cfg.mel_min_hz < cfg.mel_max_hz <= nyquist:
        raise ValueError(f"need 0 <= mel_min_hz < mel_max_hz <= {nyquist}, got {cfg.mel_min_hz}, {cfg.mel_max_hz}")
    bins = cfg.fft_size // 2 + 1
    bins_mel = hertz_to_mel(torch.linspace(0.0, nyquist, bins, dtype=torch.float64)).unsqueeze(1)  # (K, 1)
    edges = torch.linspace(hertz_to_mel(cfg.mel_min_hz), hertz_to_mel(cfg.mel_max_hz), cfg.num_mel_bins + 2,
                           dtype=torch.float64)  # (M + 2,) band edges in mel
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]  # (M,) each
    rising = (bins_mel - lower) / (center - lower)  # (K, M)
    falling = (upper - bins_mel) / (upper - center)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0] = 0.0  # HTK leaves out the DC bin
    return weights.to(dtype=dtype, device=device)


def log_mel(waveform: torch.Tensor, cfg: VGGishFrontendConfig = VGGishFrontendConfig()) -> torch.Tensor:
    """(B, N) waveform at ``cfg.sample_rate`` -> (B, frames, num_mel_bins) float64 log-mel."""
    if waveform.dim() != 2:
        raise ValueError(f"waveform must be (B, samples), got {tuple(waveform.shape)}")
    if waveform.shape[-1] < cfg.window_samples:
        raise ValueError(f"need at least {cfg.window_samples} samples, got {waveform.shape[-1]}")
    wave = waveform.to(torch.float64)
    frames = wave.unfold(-1, cfg.window_samples, cfg.hop_samples)  # (B, T, 400), complete frames only
    n = torch.arange(cfg.window_samples, dtype=torch.float64, device=wave.device)
    window = 0.5 - 0.5 * torch.cos(2.0 * math.pi / cfg.window_samples * n)  # periodic Hann
    spectrum = torch.fft.rfft(frames * window, n=cfg.fft_size).abs()  # (B, T, 257) magnitude
    mel = spectrum @ mel_matrix(cfg, device=wave.device)  # (B, T, M)
    return torch.log(mel + cfg.log_offset)


def waveform_to_patches(waveform: torch.Tensor, cfg: VGGishFrontendConfig = VGGishFrontendConfig()) -> torch.Tensor:
    """(B, N) waveform -> (B, P, patch_frames, num_mel_bins) float32 patches, what the CNN sees.

    ``P = cfg.num_patches(N)``; a trailing part shorter than a patch is dropped, as in av-benchmark.
    """
    patches = cfg.num_patches(waveform.shape[-1])
    if patches < 1:
        raise ValueError(f"{waveform.shape[-1]} samples is shorter than one VGGish patch "
                         f"({cfg.window_samples + (cfg.patch_frames - 1) * cfg.hop_samples} samples)")
    features = log_mel(waveform, cfg)  # (B, T, M) float64
    out = features.unfold(1, cfg.patch_frames, cfg.patch_hop_frames)  # (B, P, M, 96)
    return out.transpose(-1, -2).to(torch.float32).contiguous()  # (B, P, 96, M)
