"""Four more toy-foley classes, none of them like the default five in picture or sound: a world made of these
(``make_toy_world(..., class_set="other")``) checks that what is learnt from the toy world (the video envelope
predictor, timing control) is not tuned to the five defaults.

Same contract as ``toy_world.classes``: each class draws a frame at time t (the object acting exactly at its
event times) and synthesises the whole track from the same events.
"""
from __future__ import annotations

import math

import numpy as np

from toy_world.classes import SIZE, VIDEO_FPS, ToyClass, _at_every_onset, _decay, _disc, _place, _rect


class DoorKnocking(ToyClass):
    """A fist swings against a brown door; every contact is a hollow wooden knock (two damped modes)."""

    label, min_gap, rate, length = "door knocking", 0.3, (0.6, 1.2), 0.12
    swing = 0.1  # seconds the fist takes to reach the door

    def draw_static(self, img, look):
        cx = SIZE / 2 + look["dx"]
        _rect(img, 10, 90, cx - 8, cx + 12, (110, 70, 40))

    def draw(self, img, t, ev, look):
        gap = min(1.0, ev.distance(t) / self.swing) * 22  # px between fist and door
        _disc(img, 48, SIZE / 2 + look["dx"] - 14 - gap, 6, (240, 200, 170))

    def sound(self, ev, num_samples, sample_rate):
        t, env = _decay(self.length, 0.02, sample_rate)
        knock = 0.5 * env * (np.sin(2 * np.pi * 380 * t) + 0.6 * np.sin(2 * np.pi * 1130 * t))
        return _at_every_onset(knock, ev.times, num_samples, sample_rate)


class GlassClinking(ToyClass):
    """Two glasses tip towards each other and touch; every touch is a high, pure ping that rings on."""

    label, min_gap, rate, length = "glass clinking", 0.7, (0.3, 0.7), 0.7
    swing = 0.15

    def draw(self, img, t, ev, look):
        cx, half = SIZE / 2 + look["dx"], 4 + min(1.0, ev.distance(t) / self.swing) * 16
        for side in (-1, 1):
            x = cx + side * (half + 5)
            _rect(img, 40, 70, x - 5, x + 5, (170, 220, 235))
            _rect(img, 70, 78, x - 1, x + 1, (170, 220, 235))

    def sound(self, ev, num_samples, sample_rate):
        t, env = _decay(self.length, 0.18, sample_rate)
        ping = 0.25 * env * (np.sin(2 * np.pi * 3150 * t) + 0.3 * np.sin(2 * np.pi * 4720 * t))
        return _at_every_onset(ping, ev.times, num_samples, sample_rate)


class WaterDripping(ToyClass):
    """A drop falls from a tap into a basin; every landing is a plop (a short rising chirp)."""

    label, min_gap, rate, length = "water dripping", 0.5, (0.4, 0.9), 0.08
    fall = 0.3  # seconds a drop falls

    def draw_static(self, img, look):
        cx = SIZE / 2 + look["dx"]
        _rect(img, 10, 16, cx - 14, cx + 4, (160, 160, 170))  # tap
        _rect(img, 80, 86, cx - 20, cx + 20, (60, 90, 160))  # basin

    def draw(self, img, t, ev, look):
        k = np.searchsorted(ev.times, t, side="left")  # the next landing at or after t
        if k < len(ev.times) and ev.times[k] - t < self.fall:
            u = 1 - (ev.times[k] - t) / self.fall  # 0 at the tap, 1 in the basin
            _disc(img, 18 + u * u * 60, SIZE / 2 + look["dx"] - 5, 3, (120, 170, 255))

    def sound(self, ev, num_samples, sample_rate):
        t, env = _decay(self.length, 0.025, sample_rate)
        phase = 2 * np.pi * (600 * t + 0.5 * 6000 * t ** 2)  # 600 Hz rising at 6 kHz/s
        plop = 0.5 * env * np.sin(phase)
        return _at_every_onset(plop, ev.times, num_samples, sample_rate)


class WhistleBlowing(ToyClass):
    """A referee's whistle puffs a cloud while it blows; a 2.4-kHz warbling tone sounds exactly then."""

    label, min_gap, rate, length = "whistle blowing", 1.0, (0.3, 0.6), 0.5

    def event_lengths(self, n, rng):
        return rng.integers(8, 19, n) / VIDEO_FPS  # 0.32-0.72 s, whole frames

    def draw_static(self, img, look):
        cx = SIZE / 2 + look["dx"]
        _rect(img, 50, 60, cx - 16, cx + 6, (200, 200, 210))

    def draw(self, img, t, ev, look):
        k = np.searchsorted(ev.times, t, side="right") - 1
        if k >= 0 and t < ev.times[k] + ev.lengths[k]:
            _disc(img, 40, SIZE / 2 + look["dx"] + 14, 8, (245, 245, 245))

    def sound(self, ev, num_samples, sample_rate):
        out = np.zeros(num_samples)
        for onset, length in zip(ev.times, ev.lengths):
            t = np.arange(round(length * sample_rate)) / sample_rate
            fade = np.minimum(1.0, np.minimum(t, length - t) / 0.01)
            warble = np.sin(2 * np.pi * (2400 * t + 60 / (2 * math.pi * 12) * np.sin(2 * np.pi * 12 * t)))
            _place(out, onset, 0.25 * fade * warble, sample_rate)
        return out


OTHER_CLASSES: tuple[ToyClass, ...] = (DoorKnocking(), GlassClinking(), WaterDripping(), WhistleBlowing())
