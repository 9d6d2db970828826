"""Synchformer's configuration and its presets: the inputs av-benchmark feeds it and the sizes of its three parts.

Its own module so that the model (``synchformer.py``), its two extractors (``synchformer_video.py``,
``synchformer_audio.py``) and the input builders (``synchformer_inputs.py``) all import it from below.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SynchformerConfig:
    # --- inputs (av-benchmark: data/video_dataset.py, extract_video.py, extract.py, extraction_models.py)
    fps: float = 25.0  # video frame rate the segments are cut at
    sample_rate: int = 16000  # the rate the waveform must have
    image_size: int = 224  # frames: short side resized to this (bicubic, antialiased), centre crop square
    pixel_mean: float = 0.5  # (x / 255 - mean) / std, every channel
    pixel_std: float = 0.5
    segment_frames: int = 16  # one segment: 16 frames = 0.64 s = 10240 samples
    segment_stride_frames: int = 8  # segments overlap by half: 8 s -> 24 segments
    n_fft: int = 1024  # torchaudio MelSpectrogram(n_fft=1024, win_length=400, hop_length=160, n_mels=128)
    win_length: int = 400  # periodic hann, zero-padded to n_fft, centred frames, reflect padding, power 2
    hop_length: int = 160
    n_mels: int = 128  # HTK mel scale, 0-8000 Hz, no filter normalisation
    log_eps: float = 1e-6  # log(mel + eps)
    spec_frames: int = 66  # 65 frames per segment, zero-padded (after the log) to AST's max_spec_t
    spec_mean: float = -4.2677393  # AST's AudioSet statistics: (x - mean) / (2 * std)
    spec_std: float = 4.5689974
    # --- video extractor (Motionformer, divided_224_16x4.yaml)
    patch_size: int = 16
    tubelet_frames: int = 2  # VIT.PATCH_SIZE_TEMP: 16 frames -> 8 temporal tokens
    video_width: int = 768
    video_depth: int = 12
    video_heads: int = 12
    video_mlp_ratio: float = 4.0  # blocks and the spatial aggregation layer
    # --- audio extractor (AST, transformers' default ASTConfig)
    audio_patch: int = 16
    audio_stride: int = 10  # frequency and time stride of the patch conv
    audio_width: int = 768
    audio_depth: int = 12
    audio_heads: int = 12
    audio_mlp_dim: int = 3072  # AST layers and the frequency aggregation layer
    audio_layer_norm_eps: float = 1e-12
    # --- sync transformer (GlobalTransformer)
    sync_width: int = 768
    sync_depth: int = 3
    sync_heads: int = 8
    window_segments: int = 14  # segments per classified window; fixes the position table (198 rows)
    num_offsets: int = 21  # classes on linspace(-max_offset, max_offset, num_offsets)
    max_offset: float = 2.0  # seconds

    def __post_init__(self):
        checks = [
            (self.image_size % self.patch_size == 0, "image_size must be a multiple of patch_size"),
            (self.segment_frames % self.tubelet_frames == 0, "segment_frames must be a multiple of tubelet_frames"),
            ((self.segment_frames * self.sample_rate) % self.fps == 0
             and (self.segment_stride_frames * self.sample_rate) % self.fps == 0,
             "segments must be a whole number of audio samples"),
            (self.video_width % self.video_heads == 0 and self.audio_width % self.audio_heads == 0
             and self.sync_width % self.sync_heads == 0, "widths must be multiples of their head counts"),
            (self.spec_frames >= self.audio_patch and self.n_mels >= self.audio_patch,
             "spectrogram smaller than a patch"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SynchformerConfig: {message}")

    @property
    def segment_samples(self) -> int:
        """Audio samples per segment: the video segment's duration (10240 at 16 kHz)."""
        return int(self.segment_frames * self.sample_rate // self.fps)

    @property
    def segment_hop_samples(self) -> int:
        return int(self.segment_stride_frames * self.sample_rate // self.fps)

    @property
    def video_patches(self) -> int:
        """Patch tokens per frame pair: (224 / 16)^2 = 196."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def video_time_tokens(self) -> int:
        """Features per video segment: 8."""
        return self.segment_frames // self.tubelet_frames

    @property
    def audio_freq_tokens(self) -> int:
        return (self.n_mels - self.audio_patch) // self.audio_stride + 1  # 12

    @property
    def audio_time_tokens(self) -> int:
        """Features per audio segment: 6."""
        return (self.spec_frames - self.audio_patch) // self.audio_stride + 1

    @property
    def sync_tokens(self) -> int:
        """[OFF] + visual + [MOD] + audio tokens of one window: 198."""
        return 2 + self.window_segments * (self.video_time_tokens + self.audio_time_tokens)

    def offsets(self) -> torch.Tensor:
        """(num_offsets,) float32 seconds of each class (av-benchmark's ``make_class_grid(-2, 2, 21)``)."""
        return torch.from_numpy(np.linspace(-self.max_offset, self.max_offset, self.num_offsets)).float()


PRESETS: dict[str, SynchformerConfig] = {
    # every stage and the real segment geometry (16 frames, 66 mel frames, 14-segment windows), narrow
    "tiny": SynchformerConfig(image_size=32, video_width=32, video_depth=2, video_heads=2, audio_width=32,
                              audio_depth=2, audio_heads=2, audio_mlp_dim=64, sync_width=32, sync_depth=2,
                              sync_heads=2),
    "paper": SynchformerConfig(),
}
