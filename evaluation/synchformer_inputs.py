"""Synchformer's inputs, built the way av-benchmark builds them (batched torch, no torchaudio / torchvision).

Video (``av_bench/data/video_dataset.py`` ``VideoDataset.sync_transform``, ``extract_video.py``):
frames decoded at 25 fps (RGB, the first ``25 * duration`` frames: 200 for 8 s; shorter videos are
skipped there) -> ``v2.Resize(224, BICUBIC)`` on the uint8 frames (short side to 224, long side
``int(224 * long / short)``, antialiased, rounded back to uint8: torchvision hands uint8 straight to
torch's CPU kernel) -> ``v2.CenterCrop(224)`` (offset ``round((size - 224) / 2)``) -> ``x / 255`` ->
``(x - 0.5) / 0.5`` -> segments of 16 frames every 8 frames (24 for 8 s).

Audio (``av_bench/extract.py`` ``encode_audio_with_sync``, ``SynchformerAudioDataset``): mono 16 kHz
(channel mean, resampled, cut to exactly ``16000 * duration`` samples; **no** mean removal, unlike
the other metrics' loader) -> segments of 10240 samples every 5120 (24 for 8 s) -> torchaudio
``MelSpectrogram(sample_rate=16000, win_length=400, hop_length=160, n_fft=1024, n_mels=128)`` with
its defaults (periodic hann of 400 zero-padded to 1024, centred frames with reflect padding, power 2,
HTK mel 0-8000 Hz, no filter normalisation): 65 frames -> ``log(x + 1e-6)`` -> zero-padded to 66
frames (the pad is in the log domain, so after normalisation the last column is 0.467, not 0) ->
``(x + 4.2677393) / (2 * 4.5689974)``.

``tests/test_eval_synchformer.py`` checks both against torchvision's / torchaudio's outputs stored in
``tests/fixtures/eval/synchformer_frontend_golden.safetensors``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from evaluation.synchformer_config import SynchformerConfig


def segment_count(length: int, size: int, stride: int) -> int:
    """Windows of ``size`` every ``stride`` that fit in ``length`` (av-benchmark's ``(t - size) // stride + 1``)."""
    return (length - size) // stride + 1 if length >= size else 0


# ----------------------------------------------------------------------------------------------- audio

@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) float32 on the CPU: ``torchaudio.functional.melscale_fbanks(n_fft // 2 + 1,
    f_min=0, f_max=sample_rate // 2, n_mels, sample_rate, norm=None, mel_scale="htk")``, computed the way
    torchaudio computes it (float32 tensors, mel edges from Python floats)."""
    all_freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)  # (F,)
    m_max = 2595.0 * math.log10(1.0 + float(sample_rate // 2) / 700.0)  # f_min = 0 -> 0 mel
    f_pts = 700.0 * (10.0 ** (torch.linspace(0.0, m_max, n_mels + 2) / 2595.0) - 1.0)  # (n_mels + 2,) band edges
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # (F, n_mels + 2)
    down = (-1.0 * slopes[:, :-2]) / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up))  # (F, n_mels)


def mel_spectrogram(waveform: torch.Tensor, config: SynchformerConfig) -> torch.Tensor:
    """(..., L) float waveform -> (..., n_mels, L // hop + 1) power mel spectrogram (torchaudio's
    ``MelSpectrogram`` with av-benchmark's arguments), on the waveform's device."""
    c = config
    shape = waveform.shape
    window = torch.hann_window(c.win_length).to(waveform.device)  # periodic; built on the CPU like torchaudio's buffer
    spec = torch.stft(waveform.reshape(-1, shape[-1]), n_fft=c.n_fft, hop_length=c.hop_length,
                      win_length=c.win_length, window=window, center=True, pad_mode="reflect", normalized=False,
                      onesided=True, return_complex=True)  # (N, F, frames), the window centred in n_fft
    power = spec.abs().pow(2.0)
    power = power.reshape(shape[:-1] + power.shape[-2:])  # (..., F, frames)
    fb = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels).to(waveform.device)
    return torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)  # (..., n_mels, frames)


def log_mel(segments: torch.Tensor, config: SynchformerConfig) -> torch.Tensor:
    """(..., segment_samples) -> (..., n_mels, spec_frames) normalised log-mel, as ``encode_audio_with_sync``."""
    c = config
    x = torch.log(mel_spectrogram(segments, c) + c.log_eps)
    if x.shape[-1] < c.spec_frames:
        x = F.pad(x, (0, c.spec_frames - x.shape[-1]))  # zeros in the log domain, before normalising
    else:
        x = x[..., :c.spec_frames]
    return (x - c.spec_mean) / (2 * c.spec_std)


def audio_segments(waveform: torch.Tensor, config: SynchformerConfig) -> torch.Tensor:
    """(B, L) mono waveform at ``config.sample_rate`` -> (B, S, segment_samples) overlapping segments (a view)."""
    c = config
    if waveform.dim() != 2 or not waveform.is_floating_point():
        raise ValueError(f"waveform: expected a float (batch, samples) tensor, got {tuple(waveform.shape)} "
                         f"{waveform.dtype}")
    if segment_count(waveform.shape[1], c.segment_samples, c.segment_hop_samples) < 1:
        raise ValueError(f"waveform: {waveform.shape[1]} samples; Synchformer needs at least {c.segment_samples} "
                         f"({c.segment_samples / c.sample_rate:.2f} s at {c.sample_rate} Hz)")
    return waveform.unfold(1, c.segment_samples, c.segment_hop_samples)  # (B, S, segment_samples)


def audio_input(waveform: torch.Tensor, config: SynchformerConfig) -> torch.Tensor:
    """(B, L) mono waveform -> (B, S, n_mels, spec_frames) float32, what ``synchformer.audio_features`` takes."""
    return log_mel(audio_segments(waveform.float(), config), config)


# ----------------------------------------------------------------------------------------------- video

def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's ``Resize(size)``: the short side becomes ``size``, the long side ``int(size * long / short)``."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def video_frames(frames: torch.Tensor, config: SynchformerConfig) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 RGB frames at ``config.fps`` -> (B, T, 3, size, size) float32, normalised.

    The bicubic resize runs on the CPU on the uint8 frames whatever their device, as av-benchmark's
    data loader does (torch's uint8 CPU kernel; elsewhere torchvision resizes in float and rounds,
    which can differ by one grey level). The result is on the frames' device.
    """
    if frames.dim() != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames: expected (B, T, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
    size = config.image_size
    b, t, h, w, _ = frames.shape
    x = frames.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w)  # (B*T, 3, H, W)
    new_h, new_w = resized_size(h, w, size)
    if (new_h, new_w) != (h, w):
        device = x.device
        x = F.interpolate(x.cpu().contiguous(), size=(new_h, new_w), mode="bicubic", align_corners=False,
                          antialias=True).to(device)  # uint8 in, uint8 out (rounded, clamped)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    x = x[:, :, top:top + size, left:left + size]
    x = x.to(torch.float32).mul_(1.0 / 255)  # torchvision ToDtype(float32, scale=True)
    x = (x - config.pixel_mean) / config.pixel_std
    return x.reshape(b, t, 3, size, size)


def video_segments(pixels: torch.Tensor, config: SynchformerConfig) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B, S, segment_frames, 3, H, W) overlapping segments (a view)."""
    c = config
    if pixels.dim() != 5:
        raise ValueError(f"pixels: expected (B, T, 3, H, W), got {tuple(pixels.shape)}")
    if segment_count(pixels.shape[1], c.segment_frames, c.segment_stride_frames) < 1:
        raise ValueError(f"video: {pixels.shape[1]} frames; Synchformer needs at least {c.segment_frames} "
                         f"({c.segment_frames / c.fps:.2f} s at {c.fps:g} fps)")
    return pixels.unfold(1, c.segment_frames, c.segment_stride_frames).permute(0, 1, 5, 2, 3, 4)


def video_input(frames: torch.Tensor, config: SynchformerConfig) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 frames at 25 fps -> (B, S, 16, 3, size, size), what ``synchformer.video_features``
    takes."""
    return video_segments(video_frames(frames, config), config)
