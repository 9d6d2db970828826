"""Generation speed: where the time of a clip goes, the two presets, long videos, the mapper's decode.

    python -m benchmarks.generation                       # CPU (about 8 min on 2 quiet cores: 125 full-size UNet steps)
    python -m benchmarks.generation --paper-steps 10      # quicker: the paper preset's DDIM cut to 10 steps
    python -m benchmarks.generation --device cuda         # GPU, fp16: seconds per 10 s clip for both presets

Prints, from one run:

1. Full-size decoder. AudioLDM-2's UNet (347 M parameters), VAE (55 M) and HiFi-GAN vocoder (55 M)
   are built from the original configs (``haoheliu/AudioLDM2``: UNet channels 128 x [1, 2, 3, 5],
   2 res blocks, attention at 3 levels with 32-wide heads, streams [768, 1024]; VAE 128 x [1, 2, 4];
   vocoder 1024 channels, upsampling 5-4-2-2-2) with random weights: speed does not depend on the
   weights. The text side (Flan-T5, CLAP, GPT-2) is 2 layers deep at the real widths: it runs once
   per clip (T5) or once per process (the negative GPT-2 condition). The extractors are the tiny
   preset's; the mapper is paper-size (GPT-2 12 x 768). Measured: one UNet step at the CFG batch
   of 2 on a 10.24 s latent (8 x 256 x 16), one VAE decode, one vocoder pass (medians), then the
   whole pipeline on a 10 s toy video with the fast preset and the paper preset, and the
   overhead ratio  total / (steps x UNet step + VAE + vocoder)  (goal <= 1.10): everything that is
   not the decoder's arithmetic (video decoding, extractors, mapper, T5, scheduler, stitching).
   The ratio is printed twice: with the separately measured medians, and with the UNet / VAE /
   vocoder time measured inside the same run (forward hooks), which a shared machine's changing
   load cannot skew.
   Then the VAE decode's input layout: channels-last (what ``decode_latents`` uses on a CPU) against the
   default, side by side, for the toy VAE and the full-size one (section "layout").
2. Long videos on the tiny preset (whole pipeline, fast preset cut to --longform-steps, streamed
   to a wav as the CLI does), each length in a fresh process: seconds per audio-second at 10, 60
   and 300 s (goal: constant within +-10 %), and peak RSS (goal: <= +20 % from 10 s to 300 s).
   Per window the cost is constant; a long video needs windows / (window - overlap) more UNet work
   per second than a single 10 s window, which is printed as the expected ratio.
   Then the seam score (:mod:`mapper.generation.seams`) of both join modes, inpaint and crossfade, on one
   long toy video with the same seed.
3. The paper-size mapper (random init): its cached autoregressive decode of the 8 tokens against one
   forward pass over the 40-token prefix (goal <= 1.3 x), batch 1.

Length: one script of measured sections that share their setup; each section is a function.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import synchronize
from recipes.machine import machine_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OVERHEAD_GOAL = 1.10
LINEARITY_GOAL = 0.10
MEMORY_GOAL = 0.20
MAPPER_GOAL = 1.3


# ----------------------------------------------------------------------------------------------
# machine and helpers


def median_time(fn, repeats: int, device: torch.device, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_video(path: Path, seconds: float, fps: int = 4, size: int = 32) -> Path:
    """A small h264 video without audio (a moving square), cheap to decode at any length."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            frame = rng.integers(0, 24, (size, size, 3), dtype=np.uint8)
            x = int((np.sin(0.7 * i / fps) + 1) / 2 * (size - 8))
            frame[8:16, x : x + 8] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


class ComponentClock:
    """Wall time spent inside given modules' forward calls (hooks), to split a run's total time.

    Measured inside the same run as the total, so machine load affects both alike.
    """

    def __init__(self, device: torch.device, **modules: torch.nn.Module):
        self.device, self.modules = device, modules
        self.seconds = dict.fromkeys(modules, 0.0)
        self._handles, self._started = [], {}

    def __enter__(self):
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_pre_hook(lambda m, a, name=name: self._start(name)))
            self._handles.append(module.register_forward_hook(lambda m, a, o, name=name: self._stop(name)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()

    def _start(self, name: str) -> None:
        synchronize(self.device)
        self._started[name] = time.perf_counter()

    def _stop(self, name: str) -> None:
        synchronize(self.device)
        self.seconds[name] += time.perf_counter() - self._started.pop(name)


def rss_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process from /proc: unlike ru_maxrss, the peak starts
    afresh at exec, so a child started by a big benchmark process reports its own peak."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


# ----------------------------------------------------------------------------------------------
# 1: the full-size decoder


def full_size_audioldm2():
    """AudioLDM2Pipeline with the real UNet / VAE / vocoder sizes (random weights), light text side."""
    from diffusers import AudioLDM2UNet2DConditionModel, AutoencoderKL
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    from mapper.decoders.audioldm2 import build_tiny_audioldm2

    pipe = build_tiny_audioldm2(gpt2_width=768, t5_width=1024)  # 2-layer text encoders at the real widths
    torch.manual_seed(0)
    levels = (128, 256, 384, 640)  # model_channels 128 x channel_mult [1, 2, 3, 5]
    pipe.unet = AudioLDM2UNet2DConditionModel(
        sample_size=256,
        in_channels=8,
        out_channels=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=levels,
        layers_per_block=2,
        cross_attention_dim=[[None, 768, 1024]] * 4,
        attention_head_dim=[c // 32 for c in levels],  # num_head_channels 32 (diffusers' legacy name: heads)
    ).eval()
    pipe.vae = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        latent_channels=8,
        block_out_channels=(128, 256, 512),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=2,
    ).eval()
    pipe.vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=64,
            sampling_rate=16000,
            upsample_initial_channel=1024,
            upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4],
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5]] * 3,
            normalize_before=False,
        )
    ).eval()
    for module in (pipe.unet, pipe.vae, pipe.vocoder):
        module.requires_grad_(False)
    return pipe


def full_size_pipeline(device: torch.device, dtype: torch.dtype, size: str = "full"):
    """The benchmark's pipeline: tiny extractors, paper-size mapper, full-size decoder (``size="full"``);
    ``size="tiny"``: the tiny decoder and a 2-layer mapper of its width (dry runs of the same code)."""
    from extractors.presets import get_preset
    from mapper.config import MapperConfig
    from mapper.decoders.audioldm2 import build_tiny_audioldm2
    from mapper.generation.extractors_component import VisualExtractors
    from mapper.loading import build_mapper
    from mapper.generation import VideoToAudioPipeline

    tiny = get_preset("tiny")
    dims = tiny.dims
    layers, heads, width, decoder = (12, 12, 768, full_size_audioldm2) if size == "full" else (2, 2, 32, build_tiny_audioldm2)
    config = MapperConfig(  # the tiny extractors' features in, GPT-2 tokens of the decoder's width out
        streams={name: spec.to_dict() for name, spec in dims.streams.items()}, stream_order=list(dims.streams),
        num_frames=dims.num_frames, num_audio_tokens=dims.num_audio_tokens, audio_token_dim=width,
        extractor_preset=tiny.name, audioldm2=tiny.audioldm2, n_layer=layers, n_head=heads, dropout=0.0)
    torch.manual_seed(0)
    mapper = build_mapper(config).eval()
    pipe = VideoToAudioPipeline.from_parts(VisualExtractors.from_preset("tiny"), mapper, decoder())
    pipe.to(device)
    if dtype != torch.float32:
        for name in ("mapper", "vae", "text_encoder_2", "unet", "vocoder", "language_model", "text_encoder", "projection_model"):
            getattr(pipe, name).to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def bench_decoder(args, device: torch.device, dtype: torch.dtype, workdir: Path) -> dict:
    print("\n== 1. full-size AudioLDM-2 decoder (random weights), one 10 s clip ==")
    start = time.perf_counter()
    pipe = full_size_pipeline(device, dtype)
    sizes = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) / 1e6 for n in ("unet", "vae", "vocoder", "mapper")}
    print(f"built in {time.perf_counter() - start:.1f} s: " + ", ".join(f"{n} {m:.1f} M" for n, m in sizes.items()))
    return measure_decoder(pipe, args.fast_steps, args.paper_steps, device, dtype, workdir)


def measure_decoder(pipe, fast_steps: int, paper_steps: int, device: torch.device, dtype: torch.dtype,
                    workdir: Path) -> dict:
    """Section 1's measurements on a built pipeline; prints them and returns them (seconds; on CUDA
    also each preset's peak allocated bytes, the peak statistics reset before each preset's clip)."""
    from mapper.decoders.audioldm2 import encode_labels, gpt2_stream_width
    from mapper.decoders.audioldm2.conditions import DEFAULT_NEGATIVE_PROMPT
    from mapper.generation.sampling import sampling_config

    frames = pipe.window_frames
    latent = torch.randn(2, *pipe.geometry.latent_shape(frames)[1:], device=device, dtype=dtype)  # (2, 8, 256, 16)
    tokens = torch.randn(2, pipe.mapper.config.num_audio_tokens, gpt2_stream_width(pipe), device=device, dtype=dtype)

    t5, mask = encode_labels(pipe, ["dog barking", DEFAULT_NEGATIVE_PROMPT])
    t = torch.tensor(500, device=device)

    def unet_step():
        with torch.no_grad():
            pipe.unet(latent, t, encoder_hidden_states=tokens, encoder_hidden_states_1=t5.to(dtype),
                      encoder_attention_mask_1=mask, return_dict=False)  # fmt: skip

    def vae_decode():
        with torch.no_grad():
            return pipe.vae.decode(latent[:1] / pipe.vae.config.scaling_factor).sample

    mel = vae_decode()

    def vocode():
        with torch.no_grad():
            pipe.vocoder(mel.squeeze(1))

    repeats = 3 if device.type == "cpu" else 20
    unet = median_time(unet_step, repeats, device)
    vae = median_time(vae_decode, max(1, repeats - 1), device)
    vocoder = median_time(vocode, max(1, repeats - 1), device)
    print(f"latent {tuple(latent.shape[1:])} ({frames * pipe.frame_samples / pipe.sample_rate:.2f} s), dtype {dtype}, device {device}")
    print(f"UNet step (CFG batch 2): {unet:.3f} s    VAE decode: {vae:.3f} s    vocoder: {vocoder:.3f} s")

    video = write_video(workdir / "clip10.mp4", 10.0)
    presets = [("fast", sampling_config("fast", num_inference_steps=fast_steps)),
               ("paper", sampling_config("paper", num_inference_steps=paper_steps))]  # fmt: skip
    pipe(video, "dog barking", preset=sampling_config("fast", num_inference_steps=1))  # warm caches (negative, T5)
    totals, peaks, overheads = {}, {}, {}
    for name, sampling in presets:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with ComponentClock(device, unet=pipe.unet, vae=pipe.vae.decoder, vocoder=pipe.vocoder) as clock:
            synchronize(device)
            start = time.perf_counter()
            result = pipe(video, "dog barking", preset=sampling)
            synchronize(device)
            total = time.perf_counter() - start
        assert len(result.audio) == 10 * pipe.sample_rate
        steps = sampling.num_inference_steps
        expected = steps * unet + vae + vocoder
        inside = sum(clock.seconds.values())
        totals[name] = total
        overheads[name] = total / inside
        if device.type == "cuda":
            peaks[name] = torch.cuda.max_memory_allocated(device)
        print(f"{name:5s} preset ({sampling.scheduler}, {steps} steps): total {total:.2f} s per 10 s clip")
        print(f"      steps x UNet step + VAE + vocoder (medians above) = {expected:.2f} s -> overhead ratio "
              f"{total / expected:.3f}")  # fmt: skip
        print(f"      the same components timed inside this run: UNet {clock.seconds['unet']:.2f} s "
              f"({clock.seconds['unet'] / steps:.3f} s/step), VAE {clock.seconds['vae']:.2f} s, vocoder "
              f"{clock.seconds['vocoder']:.2f} s = {inside:.2f} s -> overhead ratio {total / inside:.3f} "
              f"(goal <= {OVERHEAD_GOAL}: {'ok' if total / inside <= OVERHEAD_GOAL else 'MISSED'})")  # fmt: skip
    unet_after = median_time(unet_step, repeats, device, warmup=0)
    print(f"UNet step re-measured after the clips: {unet_after:.3f} s (drift {unet_after / unet - 1:+.1%})")
    note = "" if paper_steps == 100 else f" (paper preset cut to {paper_steps} steps by --paper-steps)"
    print(f"paper / fast wall time: {totals['paper'] / totals['fast']:.2f}x{note}")
    return {"unet_step": unet, "vae": vae, "vocoder": vocoder, "unet_step_after": unet_after, "totals": totals,
            "steps": {name: sampling.num_inference_steps for name, sampling in presets}, "overhead": overheads,
            "peak_bytes": peaks}


def bench_decode_layout(device: torch.device, dtype: torch.dtype, rounds: int = 3) -> dict:
    """The VAE decode of one 10.24 s latent with the latent in channels-last (what ``decode_latents`` does on a
    CPU) against the default layout, interleaved over ``rounds`` rounds (medians), for the shipped toy VAE and the
    full-size one (random weights): the ratio is what the layout saves."""
    from mapper.decoders.audioldm2 import load_audioldm2

    print("\n== VAE decode layout: channels-last vs default, one 10.24 s latent ==")
    ratios = {}
    for name, vae in (("toy", load_audioldm2("toy").vae), ("full-size", full_size_audioldm2().vae)):
        vae = vae.to(device) if dtype == torch.float32 else vae.to(device=device, dtype=dtype)
        latent = torch.randn(1, vae.config.latent_channels, 256, 16, device=device, dtype=dtype)  # (1, 8, T, F)
        layouts = {"default": latent, "channels-last": latent.contiguous(memory_format=torch.channels_last)}
        times = {layout: [] for layout in layouts}
        with torch.inference_mode():
            for _ in range(rounds):
                for layout, value in layouts.items():
                    times[layout].append(median_time(lambda: vae.decode(value), 1, device,
                                                     warmup=0 if times[layout] else 1))
        seconds = {layout: statistics.median(values) for layout, values in times.items()}
        ratios[name] = seconds["channels-last"] / seconds["default"]
        print(f"{name:9s} VAE: default {seconds['default']:.3f} s, channels-last {seconds['channels-last']:.3f} s "
              f"-> {ratios[name]:.2f}x the time")
    return ratios


# ----------------------------------------------------------------------------------------------
# 2: long videos (tiny preset), one fresh process per length


def longform_child(video: str, steps: int, out: str) -> None:
    """Runs in a fresh process: load the tiny pipeline, stream one video into a wav, print JSON."""
    import soundfile as sf

    from mapper.config import MapperConfig
    from mapper.loading import build_mapper
    from mapper.generation.long_form import LongFormConfig
    from mapper.generation import AudioChunk, ClipDone, GenerationRequest, load_pipeline
    from mapper.generation.sampling import sampling_config

    mapper_dir = Path(out).with_suffix(".mapper")
    build_mapper(MapperConfig.from_preset("tiny", n_layer=2, n_head=2)).save_pretrained(mapper_dir)
    pipe = load_pipeline(mapper=mapper_dir)
    pipe.set_progress_bar_config(disable=True)
    sampling = sampling_config("fast", num_inference_steps=steps)
    warm = write_video(Path(out).with_suffix(".warm.mp4"), 2.0)
    pipe(warm, "dog barking", preset=sampling)  # first-call costs (tokenizers, decoder setup) out of the timing
    loaded_rss = rss_bytes("VmRSS")
    start = time.perf_counter()
    with sf.SoundFile(out, "w", samplerate=pipe.sample_rate, channels=1, subtype="PCM_16") as wav:
        for event in pipe.stream([GenerationRequest(video, "dog barking")], sampling, LongFormConfig(), batch_size=1):
            if isinstance(event, AudioChunk):
                wav.write(event.samples)
            elif isinstance(event, ClipDone):
                windows = len(event.result.audio_tokens)
            else:
                raise event.error
    seconds = time.perf_counter() - start
    peak = rss_bytes("VmHWM")
    frames = sf.info(out).frames
    print(json.dumps({"seconds": seconds, "windows": windows, "samples": frames, "peak_rss": peak, "loaded_rss": loaded_rss}))


def bench_longform(args, workdir: Path) -> None:
    from mapper.generation.long_form import LongFormConfig

    print(f"\n== 2. long videos, tiny preset, fast preset at {args.longform_steps} steps, streamed to a wav ==")
    overlap = LongFormConfig().overlap_seconds
    rows = []
    for seconds in args.lengths:
        video = write_video(workdir / f"long{seconds}.mp4", seconds)
        command = [sys.executable, "-m", "benchmarks.generation", "--longform-child", str(video),
                   str(args.longform_steps), str(workdir / f"long{seconds}.wav")]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"long-form run for {seconds} s failed:\n{done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        assert row["samples"] == seconds * 16000, row
        rows.append((seconds, row))
        print(f"{seconds:4d} s: {row['seconds']:7.2f} s wall, {row['seconds'] / seconds:.3f} s per audio-second, "
              f"{row['windows']:3d} windows ({row['seconds'] / row['windows']:.2f} s each), "
              f"peak RSS {row['peak_rss'] / 2**20:.0f} MiB (after loading {row['loaded_rss'] / 2**20:.0f} MiB)")  # fmt: skip
    base_seconds, base = rows[0]
    long_seconds, long = rows[-1]
    per_second = {s: r["seconds"] / s for s, r in rows}
    reference = per_second[rows[1][0]] if len(rows) > 2 else per_second[long_seconds]
    spread = max(abs(v / reference - 1) for s, v in per_second.items() if s != base_seconds)
    window_seconds = 10.0
    expected = window_seconds / (window_seconds - overlap)
    print(f"time per audio-second, {rows[1][0] if len(rows) > 2 else long_seconds} s vs {long_seconds} s: within "
          f"{spread:.1%} (goal +-{LINEARITY_GOAL:.0%}: {'ok' if spread <= LINEARITY_GOAL else 'MISSED'}); "
          f"{long_seconds} s vs {base_seconds} s: {per_second[long_seconds] / per_second[base_seconds]:.2f}x "
          f"(windows overlap by {overlap} s: a long video does {expected:.2f}x the UNet work per second of one 10 s window)")  # fmt: skip
    per_window = [r["seconds"] / r["windows"] for _, r in rows]
    window_spread = max(abs(w / statistics.mean(per_window) - 1) for w in per_window)
    print(f"seconds per window at every length: within {window_spread:.1%} of their mean")
    growth = long["peak_rss"] / base["peak_rss"] - 1
    print(f"peak RSS {base_seconds} s -> {long_seconds} s: {growth:+.1%} (goal <= +{MEMORY_GOAL:.0%}: "
          f"{'ok' if growth <= MEMORY_GOAL else 'MISSED'})")  # fmt: skip


def bench_seams(args, workdir: Path) -> None:
    """Seam scores of both join modes on one long toy video (tiny extractors and mapper, the `toy`
    AudioLDM-2 pretrained on toy-world audio, same seed)."""
    from mapper.config import MapperConfig
    from mapper.loading import build_mapper
    from mapper.generation.loading import load_pipeline
    from mapper.generation.sampling import sampling_config
    from mapper.generation.seams import seam_score

    print(f"\n== 2b. seams, tiny preset + toy AudioLDM-2, {args.seam_seconds} s toy video, fast preset at "
          f"{args.longform_steps} steps ==")
    mapper_dir = Path(args.seam_mapper) if args.seam_mapper else workdir / "seam_mapper"
    if not args.seam_mapper:  # untrained: its tokens are not the toy world's, the joins are still joins
        build_mapper(MapperConfig.from_preset("tiny", n_layer=2, n_head=2)).save_pretrained(mapper_dir)
    pipe = load_pipeline(mapper=mapper_dir, audioldm2="toy")
    video = write_video(workdir / "seams.mp4", args.seam_seconds)
    sampling = sampling_config("fast", num_inference_steps=args.longform_steps)
    for mode in ("inpaint", "crossfade"):
        result = pipe(video, "dog barking", preset=sampling, mode=mode)
        print(f"{mode:9s}: {seam_score(result.audio, result.joins)}  (1.0 = joins sound like any stretch inside a window)")


# ----------------------------------------------------------------------------------------------
# 3: the mapper's cached decode


def bench_mapper(device: torch.device) -> None:
    from mapper.config import MapperConfig, MapperOptions
    from mapper.loading import build_mapper

    print("\n== 3. paper-size mapper (GPT-2 12 x 768, random init), batch 1 ==")
    torch.manual_seed(0)
    mapper = build_mapper(MapperConfig.from_preset("paper", MapperOptions(dropout=0.0))).eval().to(device)
    config = mapper.config
    features = {name: torch.randn(1, *spec.shape, device=device) for name, spec in config.selected_streams.items()}

    def prefix_forward():
        with torch.no_grad():
            mapper.gpt2(inputs_embeds=mapper.fuse(features))

    def cached_decode():
        mapper.generate(features)

    repeats = 15
    forward, decode = [], []
    for _ in range(3):  # interleaved rounds: both see the same machine load
        forward.append(median_time(prefix_forward, repeats, device))
        decode.append(median_time(cached_decode, repeats, device))
    forward_t, decode_t = statistics.median(forward), statistics.median(decode)
    ratio = decode_t / forward_t
    step = (decode_t - forward_t) / (config.num_audio_tokens - 1)
    weights = sum(p.numel() * p.element_size() for p in mapper.gpt2.parameters()) / 2**20
    print(f"one forward over the {config.prefix_length}-token prefix: {forward_t * 1e3:.1f} ms; cached decode of "
          f"{config.num_audio_tokens} tokens: {decode_t * 1e3:.1f} ms; ratio {ratio:.2f}x "
          f"(goal <= {MAPPER_GOAL}: {'ok' if ratio <= MAPPER_GOAL else 'MISSED'})")  # fmt: skip
    print(f"each of the {config.num_audio_tokens - 1} cached one-token steps: {step * 1e3:.1f} ms "
          f"(it reads all {weights:.0f} MiB of GPT-2 weights for one token)")


# ----------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generation", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, choices=("fp32", "fp16", "bf16"), help="default: fp32 on CPU, fp16 on GPU")
    parser.add_argument("--paper-steps", type=int, default=100)
    parser.add_argument("--fast-steps", type=int, default=25)
    parser.add_argument("--longform-steps", type=int, default=10)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 60, 300], help="long-form video lengths (s)")
    parser.add_argument("--seam-seconds", type=int, default=60, help="toy video length for the seam scores")
    parser.add_argument("--seam-mapper", default=None, help="a trained tiny mapper for the seam scores (default: untrained)")
    parser.add_argument("--sections", nargs="+", default=["decoder", "layout", "longform", "seams", "mapper"],
                        choices=("decoder", "layout", "longform", "seams", "mapper"))  # fmt: skip
    parser.add_argument("--longform-child", nargs=3, metavar=("VIDEO", "STEPS", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.longform_child:
        video, steps, out = args.longform_child
        longform_child(video, int(steps), out)
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no GPU is visible", file=sys.stderr)
        return 1
    from mapper.generation.loading import parse_dtype

    dtype = parse_dtype(args.dtype or ("fp16" if device.type == "cuda" else "fp32"))
    print(machine_line(device, ("diffusers", "transformers")))
    with tempfile.TemporaryDirectory() as tmp:
        if "decoder" in args.sections:
            bench_decoder(args, device, dtype, Path(tmp))
        if "layout" in args.sections:
            bench_decode_layout(device, dtype)
        if "longform" in args.sections:
            bench_longform(args, Path(tmp))
        if "seams" in args.sections:
            bench_seams(args, Path(tmp))
        if "mapper" in args.sections:
            bench_mapper(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
