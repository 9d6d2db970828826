"""Writing audio files: soundfile, 16-bit PCM wav, atomically."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from extractors.atomic import atomic_path


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio in [-1, 1] (clipped) as a PCM-16 wav."""
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
