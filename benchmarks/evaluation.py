"""Evaluation embedders' speed: clips/s of each model on 8-s clips, and what reading the files adds.

    python -m benchmarks.evaluation                      # CPU, tiny presets (~1.2 min on 2 quiet cores)
    python -m benchmarks.evaluation --threads 1          # the same, one torch thread (a shared, busy machine)
    python -m benchmarks.evaluation --device cuda        # GPU, paper sizes (random weights)
    python -m benchmarks.evaluation --size paper --skip imagebind synchformer   # paper size on CPU, the cheap ones

The embedders behind av-benchmark's metrics (``evaluation/``): PANNs Cnn14 (FD-PANN, KL/IS-PANNS),
VGGish (FD-VGG), PaSST-S (FD/KL/IS-PaSST), ImageBind-huge's audio and vision towers (IB-score) and
Synchformer (DeSync). Default size: tiny on CPU, paper on CUDA (``--size`` overrides). Paper-size
models are built from ``PRESETS["paper"]`` with seeded random weights: the released weights are not
needed, since weights do not change the cost.

Inputs are generated: ``--clips`` 8-s mono 16-bit wav files at ``--rate`` (44.1 kHz by default, so
every embedder resamples: to 16 kHz, or 32 kHz for PaSST), and random uint8 frames at 640x360 (the
size of the extraction benchmark's VGGSound-like videos) for the video towers.

Measured, per row, in interleaved rounds (the order alternates; medians of ``--repeats`` rounds):

* model-only: the embedder's own batched call on pre-loaded inputs (waveforms already on the device,
  video frames uint8 on the CPU, as decoded), front end
  included (PANNs' STFT/log-mel, VGGish's patches, PaSST's pad to 10 s + mel, ImageBind's clip
  sampling + fbanks / resize + crops, Synchformer's segments + mel / resize + crop), batches of
  ``--batch`` clips, outputs left on the device;
* end-to-end (audio rows): the suite's own path, ``evaluation.evaluate.cached_embed`` without a
  cache: per file ``evaluation.audio.load_audio`` from disk (soundfile decode,
  mono, mean removal where the embedder's loader has it, the band-limited resample, 8-s cut), four
  files at once and one batch ahead of the model, the files of a batch stacked, the same call,
  outputs copied to the CPU. The ratio end-to-end / model-only is computed per round (the two
  runs side by side) and the median is reported; goal <= 1.2. "Of which loading" is the same files
  through ``load_audio`` alone, in the same rounds.

Rows and what each call is:

* panns: ``panns.embed`` on (B, 128000) at 16 kHz;
* vggish: ``VGGishModel.embed`` on (B, 128000) at 16 kHz (8 patches of 0.96 s per clip);
* passt: ``PasstModel.embed`` on (B, 256000) at 32 kHz (padded to ``clip_samples``: 10 s at paper
  size, 1 s at tiny);
* imagebind audio: ``imagebind.embed_audio`` on (B, 128000) at 16 kHz (3 clips of 2 s). Its file
  loader here is ``load_audio(..., length_s=None, remove_mean=False)``; av-benchmark's ImageBind
  loader keeps every channel instead and builds the resampling filter in float32, which costs the
  same on these mono files;
* synchformer audio: ``audio_input`` + ``audio_features`` (24 segments) + ``window_logits`` (the
  two DeSync windows) against reference video features computed beforehand, which is what DeSync
  runs per generated file;
* imagebind video: ``imagebind.embed_video`` on (B, 4, 3, 360, 640) uint8 (8 s at 0.5 fps: 9 clips
  of 2 frames x 3 crops);
* synchformer video: ``video_input`` + ``video_features`` on (B, 200, 360, 640, 3) uint8 (8 s at
  25 fps: 24 segments of 16 frames). Both resizes run on the CPU whatever the device, as in
  av-benchmark.

Video rows are model-only: decoding videos is measured by ``benchmarks.extraction``. Files are read
from the page cache (written just before). CPU figures move with other processes on the machine: the
load average is printed. On 2 cores that other jobs keep busy, torch's 2 threads wait for each other:
``load_audio`` took 40-130 ms per file with 2 threads and ~5 ms with ``--threads 1``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

from benchmarks.common import synchronize
from evaluation.protocol import SCORED_SECONDS
from recipes.machine import machine_line

RATIO_GOAL = 1.2
VIDEO_FPS, HEIGHT, WIDTH = 25, 360, 640
EMBEDDERS = ("panns", "vggish", "passt", "imagebind", "synchformer")


# ----------------------------------------------------------------------------------------------
# models


def build(module, cls, size: str, device: torch.device) -> torch.nn.Module:
    """``cls(module.PRESETS[size])`` with seeded random weights, in eval mode, on ``device``.

    Built on the device directly where the constructor allows it (720 M random initialisations are
    seconds on a CPU), else on the CPU and moved.
    """
    config = module.PRESETS[size]
    torch.manual_seed(0)
    model = None
    if device.type != "cpu":
        try:
            with torch.device(device):
                model = cls(config)
        except Exception:  # a constructor that mixes devices: the CPU build below raises any real error
            model = None
    if model is None:
        model = cls(config)
    return model.to(device).eval().requires_grad_(False)


def parameters(model: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.3g} M"


@dataclass
class Row:
    """One measured line: ``call(batch)`` on inputs; audio rows also ``load(path)`` (the e2e side)."""

    name: str
    input: str  # what one clip is, for the table
    params: str
    call: Callable[[torch.Tensor], dict | torch.Tensor]
    load: Callable[[Path], torch.Tensor] | None = None  # None: a video row, model-only
    frames: Callable[[int], torch.Tensor] | None = None  # video rows: a batch of frames


def audio_loader(sample_rate: int, length_s: float | None, remove_mean: bool = True):
    from evaluation.audio import load_audio

    return lambda path: load_audio(path, sample_rate, length_s, remove_mean=remove_mean)


def rows_for(name: str, size: str, device: torch.device) -> list[Row]:
    """The rows of one embedder (one model shared by its audio and video rows)."""
    clip_16k = int(16_000 * SCORED_SECONDS)
    if name == "panns":
        from evaluation import panns

        model = build(panns, panns.PannsModel, size, device)
        return [Row("panns", f"{clip_16k} samples at 16 kHz", parameters(model),
                    lambda w: panns.embed(model, w), audio_loader(16_000, SCORED_SECONDS))]
    if name == "vggish":
        from evaluation import vggish

        model = build(vggish, vggish.VGGishModel, size, device)
        return [Row("vggish", f"{clip_16k} samples at 16 kHz (8 patches)", parameters(model),
                    lambda w: model.embed(w), audio_loader(16_000, SCORED_SECONDS))]
    if name == "passt":
        from evaluation import passt

        model = build(passt, passt.PasstModel, size, device)
        padded = model.config.frontend.clip_samples / model.config.sample_rate
        return [Row("passt", f"{int(32_000 * SCORED_SECONDS)} samples at 32 kHz (padded/cut to {padded:g} s)",
                    parameters(model), lambda w: model.embed(w), audio_loader(32_000, SCORED_SECONDS))]
    if name == "imagebind":
        from evaluation import imagebind

        model = build(imagebind, imagebind.ImageBindModel, size, device)
        frames = round(SCORED_SECONDS * 0.5)  # 0.5 fps
        return [
            Row("imagebind audio", f"{clip_16k} samples at 16 kHz (3 clips of 2 s)", parameters(model),
                lambda w: imagebind.embed_audio(model, w), audio_loader(16_000, None, remove_mean=False)),
            Row("imagebind video", f"{frames} frames {WIDTH}x{HEIGHT} uint8 ({3 * (frames - 1)} clips of 2 frames)",
                parameters(model), lambda f: imagebind.embed_video(model, f),
                frames=lambda b: torch.randint(0, 256, (b, frames, 3, HEIGHT, WIDTH), dtype=torch.uint8)),
        ]
    if name == "synchformer":
        from evaluation import synchformer
        from evaluation import synchformer_inputs as si

        model = build(synchformer, synchformer.SynchformerModel, size, device)
        c = model.config
        segments = si.segment_count(round(SCORED_SECONDS * c.fps), c.segment_frames, c.segment_stride_frames)  # 24
        torch.manual_seed(1)
        reference = torch.randn(1, segments, c.video_time_tokens, c.video_width, device=device)  # computed once per reference

        def desync(w: torch.Tensor) -> dict:
            audio = synchformer.audio_features(model, si.audio_input(w, c))  # (B, 24, 6, D)
            return synchformer.window_logits(model, reference.expand(len(w), -1, -1, -1), audio)

        frames = round(SCORED_SECONDS * c.fps)
        return [
            Row("synchformer audio", f"{clip_16k} samples at 16 kHz ({segments} segments + 2 windows)",
                parameters(model), desync, audio_loader(16_000, SCORED_SECONDS, remove_mean=False)),
            Row("synchformer video", f"{frames} frames {WIDTH}x{HEIGHT} uint8 ({segments} segments)", parameters(model),
                lambda f: synchformer.video_features(model, si.video_input(f, c)),
                frames=lambda b: torch.randint(0, 256, (b, frames, HEIGHT, WIDTH, 3), dtype=torch.uint8)),
        ]
    raise ValueError(name)


# ----------------------------------------------------------------------------------------------
# inputs and measurements


def write_wavs(folder: Path, clips: int, rate: int) -> list[Path]:
    """``clips`` 8-s mono 16-bit wavs at ``rate``: noise bursts under a slow envelope (content does not
    change the cost)."""
    rng = np.random.default_rng(0)
    t = np.arange(round(SCORED_SECONDS * rate)) / rate
    paths = []
    for k in range(clips):
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + 0.1 * k) * t)
        wave = 0.2 * envelope * rng.standard_normal(len(t)) + 0.1 * np.sin(2 * np.pi * (220 + 20 * k) * t)
        path = folder / f"gen{k:03d}.wav"
        sf.write(str(path), np.clip(wave, -1, 1).astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


def model_only(row: Row, batches: list[torch.Tensor]) -> None:
    for batch in batches:
        row.call(batch)


def end_to_end(row: Row, files: list[Path], batch: int, device: torch.device) -> None:
    """The suite's own path (evaluation.evaluate.cached_embed, no cache): files loaded (decode, mono,
    resample, cut) a few at once and one batch ahead while the model runs; outputs to the CPU."""
    from evaluation.evaluate import cached_embed, load_each, run_by_shape

    cached_embed(files, {path: str(path) for path in files}, None,
                 load=lambda paths: load_each(paths, row.load),
                 run=lambda loaded: run_by_shape(loaded, lambda x: row.call(x.to(device)), row.name),
                 batch_size=batch)


def measure(row: Row, files: list[Path], clips: int, batch: int, repeats: int, device: torch.device) -> dict:
    """Model-only (and end-to-end for audio rows) seconds per clip, interleaved rounds, and the ratio."""
    if row.load is not None:
        loaded = [row.load(path) for path in files]  # also warms the resampling filter's cache
        batches = [torch.stack(loaded[i: i + batch]).to(device) for i in range(0, clips, batch)]
    else:
        # one batch of frames reused (identical cost; 200 frames of 640x360 are 138 MB a clip)
        full = row.frames(min(batch, clips))
        batches = [full[: min(batch, clips - i)] for i in range(0, clips, batch)]
    row.call(batches[0])  # warm-up: first-call allocations, cudnn autotuning, cached filters
    parts = {"model": lambda: model_only(row, batches)}
    if row.load is not None:
        parts["e2e"] = lambda: end_to_end(row, files, batch, device)
        parts["load"] = lambda: [row.load(path) for path in files]  # the files alone: what e2e adds
    seconds: dict[str, list[float]] = {part: [] for part in parts}
    for r in range(repeats):
        for part in (list(parts) if r % 2 == 0 else list(parts)[::-1]):
            seconds[part].append(timed(parts[part], device) / clips)
        line = ", ".join(f"{part} {values[-1] * 1000:.1f} ms/clip" for part, values in seconds.items())
        print(f"   {row.name} round {r}: {line}", flush=True)
    result = {"model": statistics.median(seconds["model"]), "e2e": None, "ratio": None, "ratios": []}
    if row.load is not None:
        result["ratios"] = [e / m for e, m in zip(seconds["e2e"], seconds["model"])]  # side by side, same round
        result["e2e"] = statistics.median(seconds["e2e"])
        result["load"] = statistics.median(seconds["load"])
        result["ratio"] = statistics.median(result["ratios"])
    return result


def rate(seconds: float) -> str:
    """'23.4 clips/s (42.8 ms/clip)', with 3 significant digits below 10 clips/s."""
    per_s = 1 / seconds
    shown = f"{per_s:.1f}" if per_s >= 10 else f"{per_s:.3g}"
    return f"{shown} clips/s ({seconds * 1000:.1f} ms/clip)"


def table(results: list[tuple[Row, dict]], size: str, batch: int) -> str:
    lines = [f"| embedder ({size}) | one clip | parameters | model-only (batch {batch}) | end-to-end (load wav, resample, embed) "
             f"| of which loading | end-to-end / model-only (goal <= {RATIO_GOAL:g}) |",
             "|---|---|---|---|---|---|---|"]
    for row, r in results:
        model = rate(r["model"])
        if r["e2e"] is None:
            e2e, load, ratio = "not measured (video; decoding: benchmarks.extraction)", "-", "-"
        else:
            e2e = rate(r["e2e"])
            load = f"{r['load'] * 1000:.1f} ms/file"
            ratio = (f"{r['ratio']:.2f} (rounds {', '.join(f'{x:.2f}' for x in r['ratios'])}): "
                     f"{'met' if r['ratio'] <= RATIO_GOAL else 'NOT met'}")
        lines.append(f"| {row.name} | {row.input} | {row.params} | {model} | {e2e} | {load} | {ratio} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--size", choices=["tiny", "paper"], default=None, help="model size (default: tiny on cpu, paper on cuda)")
    p.add_argument("--clips", type=int, default=None, help="8-s clips per measurement, distinct wav files (default: 16 cpu, 64 cuda)")
    p.add_argument("--batch", type=int, default=None, help="clips per call (default: 8 cpu, 16 cuda)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians)")
    p.add_argument("--rate", type=int, default=44_100, help="sample rate of the wav files")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's, one per usable core; on a shared machine 1 avoids "
                        "threads waiting for a busy core)")
    p.add_argument("--skip", nargs="*", default=[], choices=EMBEDDERS)
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        torch.set_num_threads(threads)  # main() may run inside another process (the smoke test)


def run(args) -> int:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    cuda = device.type == "cuda"
    size = args.size or ("paper" if cuda else "tiny")
    clips = args.clips or (64 if cuda else 16)
    batch = min(args.batch or (16 if cuda else 8), clips)
    if clips < 1 or batch < 1 or args.repeats < 1:
        raise SystemExit("--clips, --batch and --repeats must be at least 1")
    warnings.filterwarnings("ignore")

    print("== machine ==")
    machine = machine_line(device, ("timm", "soundfile"))
    if cuda:
        machine += (f" (fp32; TF32 matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}, "
                    f"cudnn TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'})")
    print(machine)
    print(f"load average at start (other processes compete for the cores): {os.getloadavg()[0]:.2f}")
    print(f"device {device.type}, {size} size{' (random weights)' if size == 'paper' else ''}, {clips} clips of "
          f"{SCORED_SECONDS:g} s per measurement, batch {batch}, {args.repeats} interleaved rounds (medians); "
          f"wav files: mono 16-bit at {args.rate} Hz", flush=True)
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        files = write_wavs(Path(tmp), clips, args.rate)
        for name in EMBEDDERS:
            if name in args.skip:
                continue
            built = time.perf_counter()
            rows = rows_for(name, size, device)
            print(f"\n== {name} ({size}, {rows[0].params} parameters, built in {time.perf_counter() - built:.1f} s) ==",
                  flush=True)
            for row in rows:
                results.append((Row(row.name, row.input, row.params, call=None),  # keeps no model alive
                                measure(row, files, clips, batch, args.repeats, device)))
            del rows
            if cuda:
                torch.cuda.empty_cache()

    print(f"\n== evaluation embedders: {device.type}, {size} size, {clips} clips of {SCORED_SECONDS:g} s, batch {batch}, "
          f"medians of {args.repeats} rounds ==")
    print(table(results, size, batch))
    print(machine)
    print(f"load average at end: {os.getloadavg()[0]:.2f}; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
