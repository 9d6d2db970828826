"""Feature-extraction speed: decoding, the frozen models, and the whole pipeline (decode overlapped with models).

    python -m benchmarks.extraction                      # CPU: decode, tiny preset, full-size CAVP (~8 min on 2 cores)
    python -m benchmarks.extraction --device cuda        # + all three encoders at full size on the GPU

Inputs are generated, VGGSound-like videos (no dataset is needed): 640x360 h264 at 25 fps with a
keyframe every 2 s (YouTube's usual spacing), AAC 44.1 kHz stereo, textured panning picture with
moving objects and grain (the bitrate, printed, is that of 360p web video, ~0.6 Mbit/s); `--clips`
10-s clips and one 60-s video whose window starts at 25 s (a long VGGSound source video with a CSV
`start`). The model sections cycle over the 10-s files to get `--items` clips per measurement.

Prints, medians of `--repeats` interleaved rounds:

1. Decode time per clip at 4 fps (40 frames), one process, no overlap:
   seek-based = `read_clip` (decord: frame index by timestamp, `get_batch` seeks to the keyframe
   before the window), with and without the audio track (extraction decodes both);
   decode-everything = PyAV decoding every frame from the start of the file to the end of the
   window and keeping the nearest frame to each 4-fps instant (frames only).
2. Tiny preset: model-only time per clip (`encode_clips` = the three encoders on pre-decoded batches
   of `--batch` clips, what extraction calls) and end-to-end time per clip (`extract_to_cache` on
   the same clips: DataLoader workers decoding, models, float16 shards written), and the ratio
   end-to-end / model-only (goal <= 1.15: decoding hidden behind compute), computed per round
   (the two runs side by side) and reported as the median over rounds. Also the decode pipeline
   alone (the same workers, no model): end-to-end can never beat it, so where it is slower than the
   model (the tiny models are), the job is decode-bound and the ratio says how much.
3. Full-size CAVP (SlowOnly ResNet3d-50 + head, random weights, the paper config) on the CPU: the
   40 frames of a clip are one (1, 40, 224, 224) batch; model-only vs the same decode pipeline
   (workers decoding + CAVP, its resize included in both), and the ratio.
4. With `--device cuda`: the same model-only / end-to-end comparison for the tiny preset and for
   the paper preset (CAVP + TimeChat EVA-ViT-g + Q-Formers + AudioMAE at full size, random weights,
   the preset's own precision), in clips/s (goal >= 15 clips/s on one H100). Without a CUDA device
   this section says it was not run.

CPU figures move with other processes on the machine: the load average is printed; timed rounds
alternate their order, and medians are reported.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from recipes.machine import machine_line
from extractors.cache import FeatureCache
from extractors.clip import ClipConfig
from extractors.manifest import ClipItem
from extractors.extraction import decoded_batches, encode_clips, extract_to_cache, shared_frame_size, square_frames
from extractors.video import read_clip

RATIO_GOAL = 1.15
GPU_GOAL = 15.0  # clips/s, paper preset on one H100
VIDEO_FPS, HEIGHT, WIDTH, KEYFRAME_EVERY = 25, 360, 640, 50
AUDIO_RATE = 44_100
LONG_SECONDS, LONG_START = 60.0, 25.0


# ----------------------------------------------------------------------------------------------
# inputs


def write_video(path: Path, seconds: float, seed: int, height: int = HEIGHT, width: int = WIDTH) -> None:
    """A VGGSound-like mp4 (see module docstring), rendered and encoded frame by frame (smaller frames: dry runs)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8, (width + 400) // 8, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1).astype(np.int16)  # (H, W + 400, 3)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=VIDEO_FPS, options={
            "preset": "veryfast", "crf": "23", "x264-params": f"keyint={KEYFRAME_EVERY}:min-keyint={KEYFRAME_EVERY}:scenecut=0"})
        video.height, video.width, video.pix_fmt = height, width, "yuv420p"
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        for i in range(round(seconds * VIDEO_FPS)):
            t = i / VIDEO_FPS
            shift = int(40 * t) % 400
            img = texture[:, shift : shift + width].copy()
            cy, cx = height / 2 + 120 * np.sin(2.1 * t + seed), width / 2 + 250 * np.cos(1.3 * t)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < 40**2] = (240, 200, 40)
            img += rng.normal(0, 3, img.shape).astype(np.int16)  # grain
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = round(seconds * AUDIO_RATE)
        wave = (0.1 * rng.standard_normal((2, samples)) * (np.sin(np.arange(samples) / AUDIO_RATE * 6) > 0.5)).astype(np.float32)
        for offset in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, offset : offset + 1024]), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts, chunk.time_base = AUDIO_RATE, offset, Fraction(1, AUDIO_RATE)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode())


def make_inputs(folder: Path, clips: int) -> tuple[list[ClipItem], ClipItem]:
    items = []
    for k in range(clips):
        path = folder / f"clip{k:02d}.mp4"
        if not path.exists():
            write_video(path, 10.0, seed=k)
        items.append(ClipItem(id=path.stem, path=path))
    long_path = folder / "long.mp4"
    if not long_path.exists():
        write_video(long_path, LONG_SECONDS, seed=99)
    return items, ClipItem(id="long", path=long_path, start=LONG_START)


# ----------------------------------------------------------------------------------------------
# 1. decoding


def decode_everything(path: Path, clip: ClipConfig, start: float) -> np.ndarray:
    """(T, H, W, 3) uint8: decode every frame from 0 to the window's end, keep the nearest to each instant."""
    wanted = start + np.arange(clip.num_frames) / clip.fps  # (T,)
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # ffmpeg's frame threads, as decord uses
        previous = None
        for frame in container.decode(stream):
            while len(frames) < len(wanted) and frame.time >= wanted[len(frames)]:
                t = wanted[len(frames)]
                nearest = previous if previous is not None and t - previous.time <= frame.time - t else frame
                frames.append(nearest.to_ndarray(format="rgb24"))
            if len(frames) == len(wanted):
                break
            previous = frame
    while len(frames) < len(wanted):  # past the end: zero frames, like read_clip
        frames.append(np.zeros_like(frames[0]))
    return np.stack(frames)


def mean_time(fn, items) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - started) / len(items)


def decode_section(items, long_item, clip: ClipConfig, repeats: int) -> dict[str, float]:
    ways = {
        "seek-based, frames only (read_clip, with_audio=False)": lambda it: read_clip(it.path, clip, it.start, with_audio=False),
        "seek-based, frames + audio (read_clip)": lambda it: read_clip(it.path, clip, it.start, with_audio=True),
        "seek-based, frames + audio + motion (read_clip, as extraction)":
            lambda it: read_clip(it.path, clip, it.start, with_audio=True, motion=True),
        "decode-everything, frames only (PyAV)": lambda it: decode_everything(it.path, clip, it.start),
    }
    np.testing.assert_array_equal(read_clip(items[0].path, clip, with_audio=False).frames,
                                  decode_everything(items[0].path, clip, 0.0))  # same frames both ways
    times: dict[str, list[float]] = {}
    for r in range(repeats):
        order = list(ways) if r % 2 == 0 else list(ways)[::-1]
        for name in order:
            times.setdefault(f"10-s clip  | {name}", []).append(mean_time(ways[name], items))
            times.setdefault(f"60-s video, window at {LONG_START:g} s | {name}", []).append(mean_time(ways[name], [long_item]))
    return {name: statistics.median(v) for name, v in sorted(times.items())}


# ----------------------------------------------------------------------------------------------
# 2-4. models vs pipeline


def model_only(encode, batches: list[list], clips: int) -> float:
    """Seconds per clip for `encode` over pre-decoded batches (DecodedClip lists)."""
    started = time.perf_counter()
    for batch in batches:
        encode(batch)
    return (time.perf_counter() - started) / clips


def pipeline(encode, items, clip: ClipConfig, batch: int, workers: int, frame_size: int | None = None) -> float:
    """Seconds for all `items`: DataLoader workers decode while the main process runs `encode`."""
    started = time.perf_counter()
    for decoded in decoded_batches(items, clip, batch, workers, frame_size):
        encode([d.clip for d in decoded])
    return time.perf_counter() - started


def extraction(extractors, items, batch: int, workers: int, root: Path) -> float:
    """Seconds of the real job for all `items`: extract_to_cache into a fresh cache (shards written)."""
    renamed = [ClipItem(id=f"{it.id}-{k}", path=it.path, start=it.start) for k, it in enumerate(items)]
    cache = FeatureCache(Path(tempfile.mkdtemp(dir=root)) / "cache")
    report = extract_to_cache(renamed, cache, extractors, num_workers=workers, batch_size=batch, progress=False)
    assert report.extracted == len(items), report.summary()
    return report.seconds


def steady_and_wall(run, items, small: int) -> tuple[float, float]:
    """(steady-state s/clip, wall s/clip): `run(items)` for all items and for the first `small`.

    Steady state = (T(all) - T(small)) / (all - small): the start-up (worker processes, cache) and
    the pipeline fill (the first batch is decoded before any model runs) cancel out; a long job pays
    them once. With small = 0 it is the plain wall time per clip.
    """
    whole = run(items)
    part = run(items[:small]) if small else 0.0
    return (whole - part) / (len(items) - small), whole / len(items)


def compare(name: str, encode, e2e, items, clip, batch: int, workers: int, repeats: int, small: int,
            frame_size: int | None = None) -> dict:
    """Interleaved rounds of model-only, end-to-end (`e2e(items)` seconds) and the decode pipeline alone.

    Model-only gets the frames as extraction hands them to the models: resized to `frame_size` by
    the workers when the preset's video models share one size (`shared_frame_size`), else as decoded.
    """
    decoded = {it.path: read_clip(it.path, clip, it.start, motion=True) for it in items}  # each file once
    for d in decoded.values():
        d.frames = square_frames(d.frames, frame_size) if frame_size else d.frames
    clips = [decoded[it.path] for it in items]
    batches = [clips[i : i + batch] for i in range(0, len(clips), batch)]
    encode(batches[0])  # warm-up (first-call allocations, lazy tokenizer, cudnn autotune)
    parts = {
        "model": lambda: (model_only(encode, batches, len(items)),) * 2,
        "e2e": lambda: steady_and_wall(e2e, items, small),
        "decode": lambda: steady_and_wall(lambda its: pipeline(lambda b: None, its, clip, batch, workers, frame_size), items, small),
    }
    result: dict[str, list[tuple[float, float]]] = {part: [] for part in parts}
    for r in range(repeats):
        for part in (list(parts) if r % 2 == 0 else list(parts)[::-1]):
            result[part].append(parts[part]())
            steady, wall = result[part][-1]
            print(f"   round {r}: {part:6s} {steady:.3f} s/clip" + (f" (wall {wall:.3f})" if part != "model" else ""), flush=True)
    c = {part: statistics.median(v[0] for v in values) for part, values in result.items()}
    c["e2e_wall"] = statistics.median(v[1] for v in result["e2e"])
    ratios = [e[0] / m[0] for e, m in zip(result["e2e"], result["model"])]  # side by side, same round
    return {"name": name, **c, "ratio": statistics.median(ratios), "ratios": ratios, "clips": len(items),
            "small": small, "batch": batch, "workers": workers}


def print_comparison(c: dict, clips_per_s: bool = False) -> None:
    steady = f"steady state over clips {c['small'] + 1}..{c['clips']}" if c["small"] else "wall time"
    print(f"{c['name']} [{c['clips']} clips, batch {c['batch']}, {c['workers']} workers]: "
          f"model-only {c['model']:.3f} s/clip ({1 / c['model']:.2f} clips/s); "
          f"end-to-end {c['e2e']:.3f} s/clip ({1 / c['e2e']:.2f} clips/s, {steady}; "
          f"wall incl. start-up {c['e2e_wall']:.3f}); decode pipeline alone {c['decode']:.3f} s/clip; "
          f"end-to-end / model-only = {c['ratio']:.2f} (rounds {', '.join(f'{r:.2f}' for r in c['ratios'])}; "
          f"goal <= {RATIO_GOAL}: {'met' if c['ratio'] <= RATIO_GOAL else 'NOT met'})"
          + (f"; {1 / c['e2e']:.1f} clips/s end-to-end (goal >= {GPU_GOAL:g}: {'met' if 1 / c['e2e'] >= GPU_GOAL else 'NOT met'})"
             if clips_per_s else ""))


def stand_in(seconds_per_clip: float):
    """A 'model' that takes `seconds_per_clip` without using the CPU, as a GPU kernel does."""
    return lambda clips: time.sleep(seconds_per_clip * len(clips))


def cavp_only(device: torch.device):
    from extractors.cavp import CAVPEncoder
    from extractors.presets import get_preset

    torch.manual_seed(0)
    model = CAVPEncoder(get_preset("paper").visual["cavp"]).eval().requires_grad_(False).to(device)

    @torch.inference_mode()
    def encode(clips) -> np.ndarray:
        frames = torch.from_numpy(np.stack([c.frames for c in clips])).to(device)  # (b, 40, H, W, 3) uint8
        return model(model.preprocess(frames)).float().cpu().numpy()  # (b, 40, 512)

    return encode


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--clips", type=int, default=8, help="distinct 10-s files generated")
    p.add_argument("--items", type=int, default=None, help="clips per measurement, cycling over the files (default: 48 cpu, 512 cuda)")
    p.add_argument("--small", type=int, default=None, help="clips of the short run subtracted for the steady state (default: 16 cpu, 128 cuda)")
    p.add_argument("--cavp-items", type=int, default=4, help="clips for the full-size CAVP section on CPU (wall time: its fill is ~1%%)")
    p.add_argument("--batch", type=int, default=None, help="clips per model call (default: 8 cpu, 16 cuda)")
    p.add_argument("--workers", type=int, default=None, help="decoding workers (default: 2 cpu, 12 cuda)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--videos", default=None, help="keep the generated videos in this folder (reused next time)")
    p.add_argument("--skip", nargs="*", default=[], choices=["decode", "tiny", "cavp", "paper"])
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    cuda = device.type == "cuda"
    args.items = args.items or (512 if cuda else 48)
    args.small = args.small if args.small is not None else (128 if cuda else 16)
    args.batch = args.batch or (16 if cuda else 8)
    args.workers = args.workers if args.workers is not None else (12 if cuda else 2)
    warnings.filterwarnings("ignore")
    logging.getLogger("extractors.extraction").setLevel(logging.ERROR)

    from extractors.frozen import FrozenExtractors
    from extractors.presets import get_preset

    clip = get_preset("tiny").clip
    print("== machine ==")
    print(machine_line(device, ("decord", "av")))
    print(f"load average at start (other processes compete for the cores): {os.getloadavg()[0]:.2f}")
    print(f"device {device.type}, batch {args.batch} clips per model call, {args.workers} decoding workers, "
          f"{args.repeats} rounds (medians)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.videos or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        items, long_item = make_inputs(folder, args.clips)
        size = sum(it.path.stat().st_size for it in items) / len(items)
        cycled = [ClipItem(id=f"c{k}", path=items[k % len(items)].path) for k in range(args.items)]
        print(f"inputs: {len(items)} x 10 s and 1 x {LONG_SECONDS:g} s, {WIDTH}x{HEIGHT} h264 {VIDEO_FPS} fps, keyframe every "
              f"{KEYFRAME_EVERY / VIDEO_FPS:g} s, AAC {AUDIO_RATE} Hz stereo; {size * 8 / 10 / 1e6:.2f} Mbit/s "
              f"(generated in {time.perf_counter() - started:.0f} s)", flush=True)

        if "decode" not in args.skip:
            print(f"\n== 1. decode time per clip at {clip.fps:g} fps ({clip.num_frames} frames), one process ==")
            for name, seconds in decode_section(items, long_item, clip, args.repeats).items():
                print(f"{name}: {seconds * 1000:.0f} ms")

        comparisons = []
        root = Path(tmp)
        if "tiny" not in args.skip:
            print(f"\n== 2. tiny preset on {device.type}: model-only vs end-to-end (extract_to_cache) ==", flush=True)
            tiny = FrozenExtractors.from_preset("tiny").to(device)
            comparisons.append((compare(
                f"tiny preset ({device.type})", lambda b: encode_clips(tiny, b),
                lambda its: extraction(tiny, its, args.batch, args.workers, root),
                cycled, clip, args.batch, args.workers, args.repeats, args.small, shared_frame_size(tiny.preset)), cuda))
            print_comparison(*comparisons[-1])
            if not cuda:
                seconds = comparisons[-1][0]["model"]
                print(f"\n== 2b. the same pipeline with a stand-in model that takes {seconds:.3f} s/clip without using "
                      f"the CPU (as a GPU does): can decoding hide behind it? ==", flush=True)
                comparisons.append((compare(
                    "stand-in model (cpu idle while it runs)", stand_in(seconds),
                    lambda its: pipeline(stand_in(seconds), its, clip, args.batch, args.workers),
                    cycled, clip, args.batch, args.workers, max(1, args.repeats - 1), args.small), False))
                print_comparison(*comparisons[-1])
        if "cavp" not in args.skip and not cuda:
            print("\n== 3. full-size CAVP on cpu (40 frames of a clip = one batch): model-only vs decode pipeline ==", flush=True)
            encode = cavp_only(device)
            comparisons.append((compare(
                "full-size CAVP (cpu)", encode, lambda its: pipeline(encode, its, clip, 1, args.workers),
                cycled[: args.cavp_items], clip, 1, args.workers, args.repeats, 0), False))
            print_comparison(*comparisons[-1])
        print("\n== 4. paper preset, all three encoders at full size, on a GPU ==")
        if not cuda or "paper" in args.skip:
            print("not run: " + ("no --device cuda (rerun with --device cuda on a machine with a GPU)" if not cuda else "--skip paper"))
        else:
            paper = FrozenExtractors.from_preset(get_preset("paper")).to(device)  # random weights unless MFM_WEIGHTS
            comparisons.append((compare(
                f"paper preset ({torch.cuda.get_device_name(device)})", lambda b: encode_clips(paper, b),
                lambda its: extraction(paper, its, args.batch, args.workers, root),
                cycled, clip, args.batch, args.workers, args.repeats, args.small, shared_frame_size(paper.preset)), True))
            print_comparison(*comparisons[-1])

        print("\n== summary ==")
        for c, gpu in comparisons:
            print_comparison(c, clips_per_s=gpu)
        print(f"load average at end: {os.getloadavg()[0]:.2f}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
