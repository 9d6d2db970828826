"""Reading an audio file the way av-benchmark's ``AudioDataset`` reads it for every audio metric.

``av_bench/data/audio_dataset.py`` (``AudioDataset.read_from_file``), in this order:

1. ``torchaudio.load``: (channels, samples) float32 in [-1, 1]. Here soundfile decodes instead.
   For PCM WAV / FLAC both scale integers by 2^-(bits-1), so the samples should be the same (not
   checked against torchaudio 2.9's TorchCodec decoder, which cannot be installed here); lossy
   formats depend on the decoder. av-benchmark only looks at ``*.wav`` and ``*.flac``.
2. mono: the mean over channels;
3. the waveform's own mean is subtracted (after the mix, before resampling);
4. resampled with ``torchaudio.transforms.Resample(file_rate, sample_rate)`` (float64-built filter,
   :func:`evaluation.resample.resample`'s default), skipped when the rates are equal;
5. cut to ``int(sample_rate * length_s)`` samples (``int`` truncates: 8.04 s at 16 kHz keeps
   128639 samples). Shorter clips are NOT padded: each embedder pads or not in its own way.

``tests/test_eval_audio.py`` checks steps 2–5 against av-benchmark's own ``read_from_file``
(fixture ``tests/fixtures/eval/resample_golden.safetensors``, provenance ``resample.md``).

Where this differs from av-benchmark: a file that cannot be used raises :class:`AudioReadError`
(one line, ``"{path}: {reason}"``), including an empty file, one with no samples and one with
NaN/inf samples. av-benchmark logs the error and returns the NEXT file's audio under the next file's
name, so the bad clip silently drops out of every metric. ``length_s=None`` keeps the whole file
(av-benchmark's ``--audio_length`` has no default and crashes without one).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from evaluation.resample import resample
from extractors.video import AudioReadError, read_audio_samples

__all__ = ["AudioReadError", "load_audio"]


def load_audio(path: str | os.PathLike, sample_rate: int, length_s: float | None, remove_mean: bool = True) -> torch.Tensor:
    """(samples,) float32 mono at ``sample_rate``, mean removed, at most ``sample_rate · length_s`` long.

    ``remove_mean=False``: av-benchmark's Synchformer loader, which skips step 3."""
    if length_s is not None and not length_s > 0:
        raise ValueError(f"length_s must be a positive number of seconds or None, got {length_s!r}")
    data, file_rate = read_audio_samples(path)  # (S, C)
    waveform = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, S), as torchaudio.load returns it
    waveform = waveform.mean(dim=0)  # (S,) mono
    if remove_mean:
        waveform = waveform - waveform.mean()
    audio = resample(waveform, file_rate, sample_rate)  # (S',); the same tensor when the rates match
    if length_s is not None:
        audio = audio[: int(sample_rate * length_s)]
    return audio
