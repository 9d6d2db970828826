"""Generate a procedural "toy-foley" world: short videos whose sounds are caused by what is seen.

Why a toy world: the whole pipeline (decode → features → mapper → decoder → evaluation) must be
runnable offline in seconds, and a mapper can only be judged on timing if the data has timing to
learn. Every clip shows one object and plays its sound exactly when the object does something:
a ball hits the floor, a lamp lights up, a stick strikes a drum, a hammer strikes a bell, two
hands meet. Event times are random, so a model has to look at *when* things happen, not only at
*what* is in the picture.

Output (VGGSound style)::

    DIR/videos/{id}.mp4   h264 yuv420p, 25 fps, 96×96;  AAC, mono, clip.sample_rate
    DIR/metadata.csv      no header: id,start,label,split
    DIR/world.json        seed, classes and every clip's duration, start and event list

Conventions
-----------
* Durations: about half of the clips last exactly ``clip.seconds`` (10 s), a quarter are short
  (0.5–0.9 × clip.seconds, i.e. 5–9 s: exercises zero-padding), about 15 % are long
  (1.1–1.5 ×, i.e. 11–15 s: exercises cropping).
* ``start``: 0 for short and normal clips. A long clip gets a whole second drawn from
  ``1 .. floor(duration - clip.seconds)``, so its ``clip.seconds`` window lies inside the video and
  never begins at 0 — a consumer that ignores ``start`` reads the wrong window and is caught.
* Event times (world.json) are seconds from the beginning of the *file*, not from ``start``. They
  sit on the 25-fps frame grid, so the frame shown at an event is the moment of contact.
* Splits are about 70/15/15, stratified by class, deterministic for a given seed.
* Reruns are cheap: clips already on disk are kept; each mp4 is written to a temporary file in
  the same directory and moved into place, so an interrupted run never leaves a half file.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from extractors.atomic import atomic_path, atomic_write_text
from extractors.clip import ClipConfig

VIDEO_FPS = 25  # frames per second of the files (the model samples them at clip.fps)
SIZE = 96  # frame height and width in pixels: small, fast to encode, multiple of 16
GENERATOR_VERSION = 1  # bump when the rendering changes; world.json records it
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}  # the rest is "train"
NOISE_LEVEL = 0.004  # background noise std (about -48 dBFS): present but far below the events


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
        out = np.zeros(num_samples)
        for onset in ev.times:
            _place(out, onset, thump, sample_rate)
        return out


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
        out = np.zeros(num_samples)
        for onset in ev.times:
            _place(out, onset, hit, sample_rate)
        return out


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
        out = np.zeros(num_samples)
        for onset in ev.times:
            _place(out, onset, ring, sample_rate)
        return out


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
        out = np.zeros(num_samples)
        for onset in ev.times:
            _place(out, onset, 0.4 * env * noise, sample_rate)
        return out


CLASSES: tuple[ToyClass, ...] = (
    BallBouncing(),
    LampBeeping(),
    DrumHitting(),
    BellRinging(),
    HandsClapping(),
)
BY_LABEL = {c.label: c for c in CLASSES}


# --------------------------------------------------------------------------------------------
# Planning: everything random is decided here, from the seed, and recorded in world.json
# --------------------------------------------------------------------------------------------


def _draw_events(cls: ToyClass, duration: float, rng: np.random.Generator) -> dict:
    """Random onsets on the frame grid, at least cls.min_gap apart, inside the clip."""
    lo, hi = round(0.4 * VIDEO_FPS), round((duration - 0.6) * VIDEO_FPS)  # frame indices
    gap = math.ceil(cls.min_gap * VIDEO_FPS)
    n = max(1, round(rng.uniform(*cls.rate) * duration))
    n = min(n, (hi - lo) // gap + 1)
    slack = (hi - lo) - (n - 1) * gap  # free frames left once the minimum gaps are laid out
    frames = np.sort(rng.integers(0, slack + 1, n)) + lo + gap * np.arange(n)
    lengths = cls.event_lengths(n, rng)
    return {
        "times": [round(f / VIDEO_FPS, 4) for f in frames.tolist()],
        "lengths": [round(float(x), 4) for x in lengths],
    }


def _durations(num_clips: int, clip: ClipConfig, rng: np.random.Generator) -> list[float]:
    """A quarter short, ~15 % long, the rest exactly clip.seconds; whole frames."""
    n_short, n_long = round(0.25 * num_clips), round(0.15 * num_clips)
    kinds = rng.permutation(["short"] * n_short + ["long"] * n_long
                            + ["normal"] * (num_clips - n_short - n_long))
    ranges = {"short": (0.5, 0.9), "normal": (1.0, 1.0), "long": (1.1, 1.5)}
    out = []
    for kind in kinds:
        lo, hi = (round(f * clip.seconds * VIDEO_FPS) for f in ranges[kind])
        out.append(int(rng.integers(lo, hi + 1)) / VIDEO_FPS)
    return out


def _splits(labels: list[str], rng: np.random.Generator) -> list[str]:
    """About 70/15/15, stratified: held-out picks are spread evenly along a class-sorted order."""
    n = len(labels)
    n_val, n_test = (max(1 if n >= 3 else 0, round(f * n)) for f in SPLIT_FRACTIONS.values())
    order = sorted(range(n), key=lambda i: (labels[i], rng.random()))  # by class, shuffled
    held = []  # "val", "test", "val", ... alternating until both quotas are used
    while len(held) < n_val + n_test:
        held += [s for s, quota in (("val", n_val), ("test", n_test)) if held.count(s) < quota]
    splits = ["train"] * n
    for k, split in enumerate(held):
        splits[order[math.floor((k + 0.5) * n / len(held))]] = split
    return splits


def plan_world(num_clips: int, seed: int, clip: ClipConfig = ClipConfig()) -> dict:
    """Decide every random choice of a world (classes, durations, starts, splits, events).

    Rendering reads only this plan, so world.json is a complete description of the world.
    """
    rng = np.random.default_rng(seed)
    labels = [CLASSES[i % len(CLASSES)].label for i in range(num_clips)]
    labels = [labels[i] for i in rng.permutation(num_clips)]
    durations = _durations(num_clips, clip, rng)
    splits = _splits(labels, rng)
    clips = []
    for i, (label, duration, split) in enumerate(zip(labels, durations, splits)):
        crng = np.random.default_rng([seed, i])  # per clip: independent of the other clips
        spare = math.floor(duration - clip.seconds + 1e-9)
        start = int(crng.integers(1, spare + 1)) if spare >= 1 else 0
        look = {"dx": int(crng.integers(-12, 13)),
                "background": [int(v) for v in 28 + crng.integers(-8, 9, 3)]}
        clips.append({"id": f"toy_{i:05d}", "label": label, "split": split,
                      "duration": duration, "start": start, "look": look,
                      "events": _draw_events(BY_LABEL[label], duration, crng),
                      "noise_seed": int(crng.integers(2**31))})
    return {
        "generator": "recipes.make_toy_data",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "num_clips": num_clips,
        "clip": clip.to_dict(),
        "video": {"fps": VIDEO_FPS, "height": SIZE, "width": SIZE, "codec": "h264"},
        "audio": {"sample_rate": clip.sample_rate, "channels": 1, "codec": "aac",
                  "noise_std": NOISE_LEVEL},
        "classes": [{"label": c.label, "description": (c.__doc__ or "").strip().splitlines()[0]}
                    for c in CLASSES],
        "clips": clips,
    }


# --------------------------------------------------------------------------------------------
# Rendering and encoding
# --------------------------------------------------------------------------------------------


def render_clip(spec: dict, sample_rate: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (T, SIZE, SIZE, 3) uint8 at VIDEO_FPS and audio (S,) float32 for one planned clip."""
    cls = BY_LABEL[spec["label"]]
    ev = Events(np.asarray(spec["events"]["times"]), np.asarray(spec["events"]["lengths"]))
    look, duration = spec["look"], spec["duration"]
    base = np.empty((SIZE, SIZE, 3), np.uint8)
    base[:] = look["background"]
    cls.draw_static(base, look)
    frames = []
    for i in range(round(duration * VIDEO_FPS)):
        img = base.copy()
        cls.draw(img, i / VIDEO_FPS, ev, look)
        frames.append(img)
    num_samples = round(duration * sample_rate)
    noise = np.random.default_rng(spec["noise_seed"]).standard_normal(num_samples)
    audio = cls.sound(ev, num_samples, sample_rate) + NOISE_LEVEL * noise
    return frames, np.clip(audio, -1, 1).astype(np.float32)


def encode_mp4(path: Path, frames: list[np.ndarray], audio: np.ndarray, sample_rate: int) -> None:
    """Write h264 (yuv420p, ultrafast) + AAC mono to `path` atomically (temp file, then rename)."""
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=VIDEO_FPS, options={"preset": "ultrafast",
                                                                "crf": "18"})
        v.width = v.height = SIZE
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=sample_rate, layout="mono")
        a.bit_rate = 64_000
        for img in frames:
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(v.encode())
        samples = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
        samples.sample_rate, samples.pts = sample_rate, 0
        out.mux(a.encode(samples))
        out.mux(a.encode())


def _metadata_csv(world: dict) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for c in world["clips"]:
        writer.writerow([c["id"], c["start"], c["label"], c["split"]])
    return buf.getvalue()


def make_toy_world(out_dir, num_clips: int, seed: int, *, clip: ClipConfig = ClipConfig(),
                   verbose: bool = False) -> Path:
    """Create (or complete) a toy world in `out_dir`; returns the path of metadata.csv.

    world.json is written first and metadata.csv last, so a metadata file means a complete
    world. A rerun keeps every clip already on disk; asking for a different world in the same
    directory is an error rather than a silent mix of two worlds.
    """
    out_dir = Path(out_dir)
    videos = out_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    world = plan_world(num_clips, seed, clip)
    world_path = out_dir / "world.json"
    if world_path.exists() and json.loads(world_path.read_text()) != world:
        old = json.loads(world_path.read_text())
        raise ValueError(f"{out_dir}: holds a different toy world (seed {old.get('seed')}, "
                         f"{old.get('num_clips')} clips, version {old.get('version')}); "
                         "use another directory")
    atomic_write_text(world_path, json.dumps(world, indent=1) + "\n")
    made, t0 = 0, time.perf_counter()
    for spec in world["clips"]:
        path = videos / f"{spec['id']}.mp4"
        if path.exists():
            continue
        frames, audio = render_clip(spec, clip.sample_rate)
        encode_mp4(path, frames, audio, clip.sample_rate)
        made += 1
    metadata = out_dir / "metadata.csv"
    atomic_write_text(metadata, _metadata_csv(world))
    if verbose:
        dt = time.perf_counter() - t0
        rate = f", {made / dt:.1f} clips/s" if made else ""
        print(f"{out_dir}: {made} clips written, {num_clips - made} already there "
              f"({dt:.1f} s{rate})")
    return metadata


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="directory of the world")
    p.add_argument("--num-clips", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        print(make_toy_world(args.out, args.num_clips, args.seed, verbose=True))
    except ValueError as e:  # a wrong directory is a usage error: one line, no traceback
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
