"""PaSST-S's input: av-benchmark's 10 s clip and hear21passt's ``AugmentMelSTFT`` in eval mode.

av-benchmark (``av_bench/extract.py``) zero-pads or cuts every 32 kHz clip to exactly 320,000
samples (10 s) before PaSST, so an 8 s clip carries 2 s of digital silence. hear21passt's front end
(``hear21passt/models/preprocess.py``, built by ``hear21passt.base.get_basic_model``) then does:

1. pre-emphasis as a valid 1-D convolution with ``[-0.97, 1]``: ``y[n] = x[n+1] - 0.97 x[n]``, one
   sample shorter (no ``x[-1]`` term, unlike Kaldi's);
2. ``torch.stft`` n_fft 1024, hop 320, a *symmetric* Hann of 800 (``periodic=False``, zero-padded
   to 1024 in the middle), ``center=True`` with reflect padding: ``1 + (N - 1) // 320`` frames, so
   1000 for 10 s; power ``re^2 + im^2``;
3. Kaldi mel banks (``torchaudio.compliance.kaldi.get_mel_banks``: 128 bins, 0 Hz to 15 kHz, slopes
   in the ``1127 ln(1 + f/700)`` mel domain, no VTLN warping at factor 1), plus one zero column for
   the Nyquist bin: 15 kHz because ``fmax=None`` becomes ``sr // 2 - fmax_aug_range // 2`` =
   16000 - 1000; in training fmin/fmax are jittered, in eval they are these;
4. ``log(mel + 1e-5)`` (no floor), then ``(x + 4.5) / 5``. SpecAugment masks run only in training.

The mel banks are the ones ``extractors/fbank.py`` already builds for the Kaldi fbank (same
formulae, float32, Nyquist column zero). Checked against the original in ``tests/test_eval_passt.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from extractors.fbank import mel_filterbank


@dataclass(frozen=True)
class PasstFrontendConfig:
    sample_rate: int = 32_000
    clip_samples: int = 320_000  # av-benchmark pads / cuts every clip to 10 s at 32 kHz
    n_fft: int = 1024
    win_length: int = 800  # 25 ms
    hop_length: int = 320  # 10 ms
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 15_000.0  # AugmentMelSTFT(fmax=None, fmax_aug_range=2000): 32000 // 2 - 2000 // 2
    preemphasis: float = 0.97
    log_offset: float = 1e-5
    norm_shift: float = 4.5  # "fast normalization": (log_mel + 4.5) / 5
    norm_scale: float = 5.0

    def num_frames(self, num_samples: int) -> int:
        """STFT frames: pre-emphasis drops one sample, the centred STFT keeps 1 + len // hop."""
        return 1 + (num_samples - 1) // self.hop_length


def pad_or_cut(waveform: torch.Tensor, clip_samples: int) -> torch.Tensor:
    """(B, N) -> (B, clip_samples): zeros appended, or the end cut off (``av_bench/extract.py``)."""
    n = waveform.shape[-1]
    return waveform[..., :clip_samples] if n >= clip_samples else F.pad(waveform, (0, clip_samples - n))


def mel_banks(cfg: PasstFrontendConfig = PasstFrontendConfig(), device=None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) float32: Kaldi banks with the zero Nyquist column, as AugmentMelSTFT pads them."""
    return mel_filterbank(cfg.n_mels, cfg.n_fft, cfg.sample_rate, low_freq=cfg.fmin, high_freq=cfg.fmax).to(device)


def log_mel(waveform: torch.Tensor, cfg: PasstFrontendConfig = PasstFrontendConfig()) -> torch.Tensor:
    """(B, N) waveform at ``cfg.sample_rate`` -> (B, n_mels, frames) float32 normalised log-mel.

    No padding to the clip length here; ``PasstModel.embed`` does that first.
    """
    if waveform.dim() != 2:
        raise ValueError(f"waveform must be (B, samples), got {tuple(waveform.shape)}")
    if waveform.shape[-1] <= cfg.n_fft // 2 + 1:
        raise ValueError(f"need more than {cfg.n_fft // 2 + 1} samples for the reflect-padded STFT, "
                         f"got {waveform.shape[-1]}")
    with torch.autocast(device_type=waveform.device.type, enabled=False):  # the reference is float32 throughout
        x = waveform.float()
        x = x[:, 1:] - cfg.preemphasis * x[:, :-1]  # (B, N-1)
        window = torch.hann_window(cfg.win_length, periodic=False, device=x.device)
        spec = torch.stft(x, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window=window,
                          center=True, pad_mode="reflect", normalized=False, return_complex=True)  # (B, K, T)
        power = torch.view_as_real(spec).pow(2).sum(-1)  # (B, K, T)
        mel = mel_banks(cfg, x.device) @ power  # (B, n_mels, T)
        return ((mel + cfg.log_offset).log() + cfg.norm_shift) / cfg.norm_scale
