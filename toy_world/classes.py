"""The five toy-foley classes: what is seen and what is heard for the same list of events.

Each class draws a frame at time t (the object doing something exactly at its event times) and
synthesises the whole sound track from the same events, so sound is caused by what is seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

VIDEO_FPS = 25  # frames per second of the files (the model samples them at clip.fps)
SIZE = 96  # frame height and width in pixels: small, fast to encode, multiple of 16


# --------------------------------------------------------------------------------------------
# Events and drawing helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Events:
    """The shared event list one clip's picture and sound are both rendered from."""

    times: np.ndarray  # (E,) onsets in seconds, sorted, on the video frame grid
    lengths: np.ndarray  # (E,) seconds the event lasts (the lamp stays lit; others: sound length)

    def since_last(self, t: float) -> float:
        """Seconds since the latest onset at or before t (inf before the first event)."""
        k = np.searchsorted(self.times, t, side="right") - 1
        return math.inf if k < 0 else t - float(self.times[k])

    def distance(self, t: float) -> float:
        """Seconds to the nearest onset, before or after t."""
        return float(np.min(np.abs(self.times - t))) if len(self.times) else math.inf


def _disc(img: np.ndarray, cy: float, cx: float, r: float, color) -> None:
    """Fill a disc in place; only the bounding box is touched, so it costs microseconds."""
    h, w, _ = img.shape
    y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 2)
    x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 2)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    img[y0:y1, x0:x1][mask] = color


def _rect(img: np.ndarray, y0: float, y1: float, x0: float, x1: float, color) -> None:
    """Fill an axis-aligned rectangle in place, clipped to the image."""
    h, w, _ = img.shape
    y0, y1 = max(0, round(y0)), min(h, round(y1))
    x0, x1 = max(0, round(x0)), min(w, round(x1))
    if y0 < y1 and x0 < x1:
        img[y0:y1, x0:x1] = color


def _place(out: np.ndarray, onset: float, grain: np.ndarray, sample_rate: int) -> None:
    """Add a sound grain to `out` starting at `onset` seconds (cut at the end of the clip)."""
    i = round(onset * sample_rate)
    n = min(len(grain), len(out) - i)
    if n > 0:
        out[i : i + n] += grain[:n]


def _at_every_onset(grain: np.ndarray, times: np.ndarray, num_samples: int, sample_rate: int) -> np.ndarray:
    """(num_samples,) the same grain placed at every onset (``_place``)."""
    out = np.zeros(num_samples)
    for onset in times:
        _place(out, onset, grain, sample_rate)
    return out


def _decay(seconds: float, tau: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Time axis and an exponential envelope with a 2-ms attack (no click from a hard edge)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate  # (S,)
    return t, np.exp(-t / tau) * np.minimum(1.0, t / 0.002)


# --------------------------------------------------------------------------------------------
# The classes: each says what is seen and what is heard for the same event list
# --------------------------------------------------------------------------------------------


class ToyClass:
    """One sound class. Subclasses draw a frame at time t and synthesise the whole track."""

    label: str
    min_gap: float  # seconds between onsets, so every event is seen and heard separately
    rate: tuple[float, float]  # range of events per second
    length: float  # seconds an event lasts (sound length), unless event_lengths overrides it

    def event_lengths(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, self.length)

    def draw_static(self, img: np.ndarray, look: dict) -> None:
        """Parts that never move (drawn once per clip)."""

    def draw(self, img: np.ndarray, t: float, ev: Events, look: dict) -> None:
        raise NotImplementedError

    def sound(self, ev: Events, num_samples: int, sample_rate: int) -> np.ndarray:
        raise NotImplementedError


class BallBouncing(ToyClass):
    """A red ball is dropped and bounces; every floor contact knocks (short low thump).

    Between two contacts the ball flies a parabola whose height grows with the gap (as under
    gravity), so the picture alone tells when the next knock comes. It never rests on the
    floor: touching the floor always means a knock.
    """

    label, min_gap, rate, length = "ball bouncing", 0.4, (0.4, 0.9), 0.25
    floor, radius, fall = 84, 7, 0.6  # floor row, ball radius (px), seconds of the first drop

    def draw_static(self, img, look):
        _rect(img, self.floor, self.floor + 2, 8, SIZE - 8, (150, 150, 150))

    def height(self, t: float, ev: Events) -> float:
        """Height above the floor as a fraction of the free space (0 = touching, >1 = gone)."""
        k = np.searchsorted(ev.times, t, side="right")
        if k == 0:  # held, then dropped so it lands on the first event
            return min(1.0, ((ev.times[0] - t) / self.fall) ** 2)
        if k == len(ev.times):  # the last bounce carries it up and out of the picture
            return (t - ev.times[-1]) / 0.3
        t0, t1 = ev.times[k - 1], ev.times[k]
        u = (t - t0) / (t1 - t0)
        return min(1.0, ((t1 - t0) / 1.5) ** 2) * 4 * u * (1 - u)

    def draw(self, img, t, ev, look):
        top, bottom = 10 + self.radius, self.floor - self.radius
        cy = bottom - self.height(t, ev) * (bottom - top)
        _disc(img, cy, SIZE / 2 + look["dx"], self.radius, (220, 40, 40))

    def sound(self, ev, num_samples, sample_rate):
        t, env = _decay(self.length, 0.05, sample_rate)
        thump = 0.6 * env * np.sin(2 * np.pi * 90 * t * (1 + 0.5 * np.exp(-t / 0.02)))
        return _at_every_onset(thump, ev.times, num_samples, sample_rate)


class LampBeeping(ToyClass):
    """A lamp lights up at random moments; a 1-kHz tone beeps exactly while it is lit."""

    label, min_gap, rate, length = "lamp beeping", 0.8, (0.4, 0.8), 0.3

    def event_lengths(self, n, rng):
        return rng.integers(5, 13, n) / VIDEO_FPS  # 0.2–0.48 s, whole frames

    def draw_static(self, img, look):
        _rect(img, 30, 80, SIZE / 2 + look["dx"] - 2, SIZE / 2 + look["dx"] + 2, (110, 110, 110))

    def draw(self, img, t, ev, look):
        k = np.searchsorted(ev.times, t, side="right") - 1
        lit = k >= 0 and t < ev.times[k] + ev.lengths[k]
        _disc(img, 24, SIZE / 2 + look["dx"], 11, (255, 240, 90) if lit else (90, 85, 40))

    def sound(self, ev, num_samples, sample_rate):
        out = np.zeros(num_samples)
        for onset, length in zip(ev.times, ev.lengths):
            t = np.arange(round(length * sample_rate)) / sample_rate
            fade = np.minimum(1.0, np.minimum(t, length - t) / 0.005)  # 5-ms ramps, no clicks
            _place(out, onset, 0.3 * fade * np.sin(2 * np.pi * 1000 * t), sample_rate)
        return out


class DrumHitting(ToyClass):
    """A stick comes down on a drum; every strike is a noisy burst with a low body."""

    label, min_gap, rate, length = "drum hitting", 0.35, (0.5, 1.0), 0.4
    skin, swing = 60, 0.12  # drum top row; seconds the stick takes to come down

    def draw_static(self, img, look):
        cx = SIZE / 2 + look["dx"]
        _rect(img, self.skin, 88, cx - 22, cx + 22, (140, 80, 30))
        _rect(img, self.skin, self.skin + 3, cx - 22, cx + 22, (230, 220, 200))

    def draw(self, img, t, ev, look):
        lift = min(1.0, ev.distance(t) / self.swing) * 25  # px between stick tip and skin
        cx = SIZE / 2 + look["dx"] + 6
        _rect(img, self.skin - lift - 20, self.skin - lift, cx - 2, cx + 2, (240, 240, 240))

    def sound(self, ev, num_samples, sample_rate):
        t, env = _decay(self.length, 0.08, sample_rate)
        noise = np.random.default_rng(0).standard_normal(len(t))
        noise = np.convolve(noise, np.ones(4) / 4, mode="same")  # take the hiss off the top
        hit = env * (0.35 * noise * np.exp(-t / 0.03) + 0.5 * np.sin(2 * np.pi * 150 * t))
        return _at_every_onset(hit, ev.times, num_samples, sample_rate)


class BellRinging(ToyClass):
    """A hammer strikes a golden bell, which swings and rings with inharmonic partials."""

    label, min_gap, rate, length = "bell ringing", 0.8, (0.3, 0.6), 1.0
    swing = 0.15  # seconds the hammer takes to reach the bell

    def draw(self, img, t, ev, look):
        cx = SIZE / 2 + look["dx"]
        age = ev.since_last(t)
        shift = 6 * math.exp(-age / 0.25) * math.sin(2 * math.pi * 2.5 * age) if age < 2 else 0
        _rect(img, 12, 18, cx - 2, cx + 2, (120, 120, 120))  # hanger
        _rect(img, 18, 40, cx - 10 + shift, cx + 10 + shift, (230, 180, 40))  # body
        _rect(img, 40, 45, cx - 15 + shift, cx + 15 + shift, (230, 180, 40))  # lip
        gap = min(1.0, ev.distance(t) / self.swing) * 20  # px between hammer and bell
        _disc(img, 32, cx + 15 + gap, 5, (170, 170, 190))
        _rect(img, 31, 33, cx + 20 + gap, SIZE, (170, 170, 190))  # handle

    def sound(self, ev, num_samples, sample_rate):
        t, env = _decay(self.length, 0.3, sample_rate)
        partials = [(1.0, 1.0), (2.0, 0.5), (2.76, 0.4), (5.4, 0.2)]  # (ratio, amplitude)
        ring = env * sum(a * np.sin(2 * np.pi * 700 * r * t) for r, a in partials) * 0.25
        return _at_every_onset(ring, ev.times, num_samples, sample_rate)


class HandsClapping(ToyClass):
    """Two hands meet in the middle; every meeting is a short, bright crack."""

    label, min_gap, rate, length = "hands clapping", 0.3, (0.6, 1.2), 0.05
    swing = 0.1  # seconds the hands take to close

    def draw(self, img, t, ev, look):
        cx, half = SIZE / 2 + look["dx"], min(1.0, ev.distance(t) / self.swing) * 18
        _rect(img, 40, 70, cx - half - 10, cx - half, (235, 180, 150))
        _rect(img, 40, 70, cx + half, cx + half + 10, (235, 180, 150))

    def sound(self, ev, num_samples, sample_rate):
        t, env = _decay(self.length, 0.008, sample_rate)
        noise = np.diff(np.random.default_rng(1).standard_normal(len(t) + 1))  # high-passed
        return _at_every_onset(0.4 * env * noise, ev.times, num_samples, sample_rate)


CLASSES: tuple[ToyClass, ...] = (
    BallBouncing(),
    LampBeeping(),
    DrumHitting(),
    BellRinging(),
    HandsClapping(),
)
BY_LABEL = {c.label: c for c in CLASSES}
