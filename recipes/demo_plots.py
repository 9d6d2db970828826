"""The demo's spectrogram: the generated soundtrack, where its windows were joined, and (for a toy
example) when the video's events really happen.

Drawn with matplotlib's Agg backend into a PNG file, so it needs no display.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

N_FFT = 512  # 32 ms at 16 kHz
HOP = 160  # 10 ms
FLOOR_DB = -80.0  # below the loudest bin


def log_spectrogram(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """(frequency bins, frames) magnitude in dB (0 at the loudest bin), and the seconds per frame."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    frames = 1 + (len(audio) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]  # (frames, N_FFT)
    spectrum = np.abs(np.fft.rfft(audio[index] * np.hanning(N_FFT), axis=1)).T  # (bins, frames)
    db = 20 * np.log10(np.maximum(spectrum, 1e-10))
    return np.maximum(db - db.max(), FLOOR_DB), HOP / sample_rate


def spectrogram_png(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    joins: Sequence[tuple[int, int]] = (),
    events: Sequence[tuple[float, float]] = (),
    title: str = "",
    envelope: tuple[np.ndarray, float] | None = None,
) -> None:
    """Write a spectrogram of ``audio`` to ``path`` (PNG).

    ``joins``: [start, end) sample ranges where consecutive windows overlap (shaded);
    ``events``: (time, length) seconds of the true events (a line at each onset, its length shaded);
    ``envelope``: (values, seconds per value), the loudness envelope the sound was guided towards (a white
    line on its own axis; NaN: none).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: nothing global, safe in a server's threads

    db, frame_seconds = log_spectrogram(audio, sample_rate)
    seconds = len(audio) / sample_rate
    figure = Figure(figsize=(8, 3.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(db, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                extent=(0, db.shape[1] * frame_seconds, 0, sample_rate / 2000))  # fmt: skip
    axes.set(xlim=(0, max(seconds, frame_seconds)), xlabel="time (s)", ylabel="frequency (kHz)", title=title)
    for i, (start, end) in enumerate(joins):
        axes.axvspan(start / sample_rate, end / sample_rate, color="#4fc3f7", alpha=0.18, lw=0,
                     label="window join" if i == 0 else None)  # fmt: skip
        axes.axvline(start / sample_rate, color="#4fc3f7", lw=1, ls="--")
        axes.axvline(end / sample_rate, color="#4fc3f7", lw=1, ls="--")
    for i, (time, length) in enumerate(events):
        axes.axvline(time, color="#7CFC00", lw=1.2, label="true event" if i == 0 else None)
        axes.axvspan(time, time + length, color="#7CFC00", alpha=0.15, lw=0)
    if envelope is not None:
        values, step = envelope
        guide = axes.twinx()
        guide.plot((np.arange(len(values)) + 0.5) * step, values, color="white", lw=1.2, label="guiding envelope")
        guide.set(ylabel="envelope (z)", xlim=axes.get_xlim())
    if len(joins) or len(events) or envelope is not None:
        handles, names = axes.get_legend_handles_labels()
        if envelope is not None:
            extra = guide.get_legend_handles_labels()
            handles, names = handles + extra[0], names + extra[1]
        axes.legend(handles, names, loc="upper right", fontsize=8, framealpha=0.8)
    figure.savefig(path, format="png")
