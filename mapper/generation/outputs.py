"""What generation hands back: the soundtrack and its provenance, and the events of a stream."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from extractors.video import MediaReadError


@dataclass
class GeneratedAudio:
    audio: np.ndarray | None  # (samples,) float32 mono; None when streamed (see VideoToAudioPipeline.stream)
    sample_rate: int
    video: str
    label: str
    # (windows, N, D): the mapper's predicted AudioMAE tokens per window (all N; a video shorter than the clip
    # window was rendered from the leading ones inside it, mapper.generation.window_tokens)
    audio_tokens: np.ndarray
    joins: list[tuple[int, int]] = field(default_factory=list)  # [start, end) samples where windows meet
    reference_samples: int = 0  # leading samples that are the (re-rendered) reference sound
    # timing control: the loudness envelope the sound was guided towards (z-scored, extractors.envelope), one
    # value per latent frame of envelope_frame_seconds from the start of `audio` (NaN: none); None when unguided
    envelope: np.ndarray | None = None
    envelope_frame_seconds: float = 0.0

    @property
    def num_samples(self) -> int:
        return 0 if self.audio is None else len(self.audio)


@dataclass(frozen=True)
class GenerationRequest:
    """One soundtrack to render: ``video`` from ``start`` for ``duration`` seconds (None: to its end)."""

    video: str | os.PathLike
    label: str = ""
    start: float = 0.0
    duration: float | None = None
    reference_audio: str | os.PathLike | np.ndarray | None = None  # file, or (S,) at the pipeline's rate


@dataclass
class AudioChunk:
    """The next finished samples of request ``index`` (in order)."""

    index: int
    samples: np.ndarray


@dataclass
class ClipDone:
    index: int
    result: GeneratedAudio  # audio is None: it came as AudioChunks


@dataclass
class ClipFailed:
    index: int
    error: MediaReadError
