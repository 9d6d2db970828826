"""Event-sync error on the toy world, where the true event times are known (its plan, ``toy_world.read_world``).

For a generated soundtrack of a toy clip: the onset envelope of the audio (half-wave rectified
rise of the frame log-energy, 10 ms frames) is cross-correlated with the clip's event train
(one impulse per event, in the same frames); the lag of the peak, within ``max_lag`` seconds, is
how far the generated sound sits from the events. The error is its absolute value. The baseline
scores each clip's audio against the events of another clip (the next one in name order): what
an error looks like when the sound ignores the video.

Generated audio is taken to start at the clip's ``start`` second of its file (what
``recipes.generate`` renders for a world's metadata.csv), so the events are counted from there too
(``toy_world.window_event_times``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toy_world import read_world

HOP_SECONDS = 0.01
MAX_LAG_SECONDS = 1.0


def onset_envelope(audio: np.ndarray, sample_rate: int, hop_seconds: float = HOP_SECONDS) -> np.ndarray:
    """(frames,) onset strength: the positive rise of log frame energy."""
    hop = max(1, round(sample_rate * hop_seconds))
    frames = len(audio) // hop
    if frames < 2:
        return np.zeros(max(frames, 0))
    energy = (np.asarray(audio[: frames * hop], dtype=np.float64).reshape(frames, hop) ** 2).mean(axis=1)
    log_energy = np.log(energy + 1e-10)
    return np.maximum(np.diff(log_energy, prepend=log_energy[0]), 0.0)


def event_train(times: np.ndarray, frames: int, hop_seconds: float = HOP_SECONDS) -> np.ndarray:
    train = np.zeros(frames)
    index = np.round(np.asarray(times) / hop_seconds).astype(int)
    train[index[(index >= 0) & (index < frames)]] = 1.0
    return train


def sync_offset(audio: np.ndarray, sample_rate: int, event_times: np.ndarray,
                max_lag: float = MAX_LAG_SECONDS, hop_seconds: float = HOP_SECONDS) -> float:
    """Seconds by which the audio's onsets lag the events (negative: early); NaN without events."""
    envelope = onset_envelope(audio, sample_rate, hop_seconds)
    train = event_train(event_times, len(envelope), hop_seconds)
    if not train.any() or not envelope.any():
        return float("nan")
    lags = np.arange(-round(max_lag / hop_seconds), round(max_lag / hop_seconds) + 1)
    # score(lag) = sum_t train[t] * envelope[t + lag]
    scores = [np.dot(train[max(0, -lag): len(train) - max(0, lag)], envelope[max(0, lag): len(envelope) - max(0, -lag)])
              for lag in lags]
    return float(lags[int(np.argmax(scores))] * hop_seconds)


@dataclass
class ToySyncResult:
    per_clip: dict[str, float]  # clip id -> |offset| seconds
    baseline: dict[str, float]  # clip id -> |offset| against another clip's events

    @property
    def error(self) -> float:
        return float(np.nanmean(list(self.per_clip.values()))) if self.per_clip else float("nan")

    @property
    def baseline_error(self) -> float:
        return float(np.nanmean(list(self.baseline.values()))) if self.baseline else float("nan")


def load_world_events(world_dir: str | Path) -> dict[str, np.ndarray]:
    """Clip id -> event times in seconds from the clip's ``start``, of the toy world in ``world_dir``
    (ValueError of one line if it is not one)."""
    return read_world(world_dir).event_times()


def toy_sync(audio: dict[str, np.ndarray], sample_rate: int, events: dict[str, np.ndarray]) -> ToySyncResult:
    """``audio``: clip id -> mono waveform at ``sample_rate`` (ids missing from ``events`` are skipped)."""
    ids = sorted(i for i in audio if i in events)
    per_clip = {i: abs(sync_offset(audio[i], sample_rate, events[i])) for i in ids}
    others = ids[1:] + ids[:1]
    baseline = {i: abs(sync_offset(audio[i], sample_rate, events[o])) for i, o in zip(ids, others)} if len(ids) > 1 else {}
    return ToySyncResult(per_clip, baseline)
