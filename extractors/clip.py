"""The one owner of clip timing facts: frame rate, clip length, audio sample rate.

Every stage (decoding, extractors, fusion, mapper, generation) reads these numbers from a
`ClipConfig`; nothing re-derives them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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

    def to_dict(self) -> dict:
        return asdict(self)
