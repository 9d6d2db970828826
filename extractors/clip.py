"""The one owner of clip timing facts: frame rate, clip length, audio sample rate.

Every stage (decoding, extractors, fusion, mapper, generation) reads these numbers from a
`ClipConfig`; nothing re-derives them.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# One loudness-envelope frame (``extractors.envelope``): AudioLDM-2's latent frame (4 mel hops of 10 ms), so
# envelope frame k of a window is latent frame k of the decoder's window.
ENVELOPE_FRAME_SECONDS = 0.04


@dataclass(frozen=True)
class ClipConfig:
    fps: float = 4.0  # visual sampling rate of the paper (4 fps over 10 s -> 40 frames)
    seconds: float = 10.0  # window the mapper sees; short clips are zero-padded, long ones cropped
    sample_rate: int = 16_000  # AudioMAE / AudioLDM-2 audio rate (mono)

    @property
    def num_frames(self) -> int:
        return round(self.fps * self.seconds)

    @property
    def num_samples(self) -> int:
        return round(self.sample_rate * self.seconds)

    @property
    def envelope_frame_samples(self) -> int:
        """Audio samples per envelope frame (640 at 16 kHz)."""
        return round(self.sample_rate * ENVELOPE_FRAME_SECONDS)

    @property
    def envelope_frames(self) -> int:
        """Envelope frames of one clip window (250 for 10 s): the cache's ``envelope`` column."""
        return math.ceil(self.num_samples / self.envelope_frame_samples)

    def to_dict(self) -> dict:
        return asdict(self)
