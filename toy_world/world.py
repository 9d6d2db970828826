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
    DIR/world.json        the plan: seed, audio.sample_rate, classes and every clip's duration,
                          start, split and event list (read back by ``toy_world.read_world``)

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

import csv
import io
import json
import math
import time
from pathlib import Path

import av
import numpy as np

from extractors.atomic import atomic_path, atomic_write_text
from extractors.clip import ClipConfig
from toy_world.classes import CLASSES, SIZE, VIDEO_FPS, Events, ToyClass
from toy_world.other_classes import OTHER_CLASSES
from toy_world.layout import metadata_csv, video_path, videos_dir, world_json
from toy_world.reader import read_plan

GENERATOR_VERSION = 1  # bump when the rendering changes; world.json records it
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}  # the rest is "train"
NOISE_LEVEL = 0.004  # background noise std (about -48 dBFS): present but far below the events
# The worlds' class sets: "default" (toy_world.classes, what the toy decoder and classifier know) and "other"
# (toy_world.other_classes: other pictures, other sounds). world.json names a set other than the default.
CLASS_SETS: dict[str, tuple[ToyClass, ...]] = {"default": CLASSES, "other": OTHER_CLASSES}
ALL_BY_LABEL = {c.label: c for classes in CLASS_SETS.values() for c in classes}



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


def plan_world(num_clips: int, seed: int, clip: ClipConfig = ClipConfig(), class_set: str = "default") -> dict:
    """Decide every random choice of a world (classes, durations, starts, splits, events) of the classes of
    ``class_set`` (``CLASS_SETS``).

    Rendering reads only this plan, so world.json is a complete description of the world.
    """
    if class_set not in CLASS_SETS:
        raise ValueError(f"class_set must be one of {', '.join(CLASS_SETS)}, got {class_set!r}")
    classes = CLASS_SETS[class_set]
    rng = np.random.default_rng(seed)
    labels = [classes[i % len(classes)].label for i in range(num_clips)]
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
                      "events": _draw_events(ALL_BY_LABEL[label], duration, crng),
                      "noise_seed": int(crng.integers(2**31))})
    return {
        "generator": "recipes.make_toy_data",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "num_clips": num_clips,
        "clip": clip.to_dict(),
        "video": {"fps": VIDEO_FPS, "height": SIZE, "width": SIZE, "codec": "h264"},
        # the world's sample rate: readers take it from here (ToyWorld.sample_rate), not from a default
        "audio": {"sample_rate": clip.sample_rate, "channels": 1, "codec": "aac",
                  "noise_std": NOISE_LEVEL},
        "classes": [{"label": c.label, "description": (c.__doc__ or "").strip().splitlines()[0]}
                    for c in classes],
        **({"class_set": class_set} if class_set != "default" else {}),  # default worlds' plans as before
        "clips": clips,
    }


# --------------------------------------------------------------------------------------------
# Rendering and encoding
# --------------------------------------------------------------------------------------------


def render_clip(spec: dict, sample_rate: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (T, SIZE, SIZE, 3) uint8 at VIDEO_FPS and audio (S,) float32 for one planned clip."""
    cls = ALL_BY_LABEL[spec["label"]]
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
    return frames, render_audio(spec, sample_rate)


def render_audio(spec: dict, sample_rate: int) -> np.ndarray:
    """The whole sound track (S,) float32 of one planned clip, without drawing its video."""
    cls = ALL_BY_LABEL[spec["label"]]
    ev = Events(np.asarray(spec["events"]["times"]), np.asarray(spec["events"]["lengths"]))
    num_samples = round(spec["duration"] * sample_rate)
    noise = np.random.default_rng(spec["noise_seed"]).standard_normal(num_samples)
    audio = cls.sound(ev, num_samples, sample_rate) + NOISE_LEVEL * noise
    return np.clip(audio, -1, 1).astype(np.float32)


def clip_window_audio(spec: dict, clip: ClipConfig) -> np.ndarray:
    """(clip.num_samples,) the clip's window [start, start + clip.seconds) of its sound track,
    zero-padded past the end: what extraction reads from the clip's file (before AAC coding)."""
    audio = render_audio(spec, clip.sample_rate)
    first = round(spec["start"] * clip.sample_rate)
    window = np.zeros(clip.num_samples, np.float32)
    part = audio[first : first + clip.num_samples]
    window[: len(part)] = part
    return window


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
                   verbose: bool = False, class_set: str = "default") -> Path:
    """Create (or complete) a toy world in `out_dir`; returns the path of metadata.csv.

    world.json is written first and metadata.csv last, so a metadata file means a complete
    world. A rerun keeps every clip already on disk; asking for a different world in the same
    directory is an error rather than a silent mix of two worlds.
    """
    out_dir = Path(out_dir)
    videos_dir(out_dir).mkdir(parents=True, exist_ok=True)
    world = plan_world(num_clips, seed, clip, class_set)
    world_path = world_json(out_dir)
    if world_path.exists():
        old = read_plan(out_dir)  # compared as written: any difference is another world
        if old != world:
            old = old if isinstance(old, dict) else {}
            raise ValueError(f"{out_dir}: holds a different toy world (seed {old.get('seed')}, "
                             f"{old.get('num_clips')} clips, version {old.get('version')}); "
                             "use another directory")
    atomic_write_text(world_path, json.dumps(world, indent=1) + "\n")
    made, t0 = 0, time.perf_counter()
    for spec in world["clips"]:
        path = video_path(out_dir, spec["id"])
        if path.exists():
            continue
        frames, audio = render_clip(spec, clip.sample_rate)
        encode_mp4(path, frames, audio, clip.sample_rate)
        made += 1
    metadata = metadata_csv(out_dir)
    atomic_write_text(metadata, _metadata_csv(world))
    if verbose:
        dt = time.perf_counter() - t0
        rate = f", {made / dt:.1f} clips/s" if made else ""
        print(f"{out_dir}: {made} clips written, {num_clips - made} already there "
              f"({dt:.1f} s{rate})")
    return metadata
