"""Every GPU figure the README lists as "not measured", from one short command (~6 min on one H200, 8 budgeted).

    python -m benchmarks.gpu --device cuda                     # the real run: full-size models, random weights
    python -m benchmarks.gpu --device cuda --sections training # rerun one section (extraction training generation evaluation)
    python -m benchmarks.gpu --device cpu --dry-run            # tiny sizes, every section, seconds (the test)

One process, four sections, each measured with the functions of the benchmark that owns it (so the
figures mean what the README's rows say); the real run's sizes are cut so the whole run fits one
short GPU window:

1. extraction (``benchmarks.extraction.compare``): the paper preset's three encoders at full size
   (CAVP, TimeChat's EVA-ViT-g + Q-Formers, AudioMAE; random weights, each in its original
   precision: TimeChat fp16 autocast, CAVP and AudioMAE fp32) on generated 640x360 VGGSound-like
   10-s clips: model-only clips/s (pre-decoded batches) and end-to-end clips/s (``extract_to_cache``:
   decoding workers, models, float16 shards written; steady state), one round.
2. training (``benchmarks.train_throughput.run_lightning`` / ``run_bare``): the paper-size mapper
   (GPT-2 12 x 768), bf16 autocast, samples/s through Lightning's ``Trainer.fit`` and a bare loop,
   eager at batches 48 and 256 and ``torch.compile``d at batch 256; the achieved TFLOP/s from the
   script's analytic FLOP count.
3. generation (``benchmarks.generation.measure_decoder``): the full-size AudioLDM-2 decoder in fp16
   behind the tiny extractors and a paper-size mapper: seconds per 10 s clip with the fast preset
   and the paper preset (DDIM, 100 steps), then one 5-minute video (fast
   preset, 40 windows), whole pipeline.
4. evaluation (``benchmarks.evaluation.rows_for`` / ``measure``): each embedder at paper size
   (random weights) on 8-s clips: model-only clips/s and, for audio rows, end-to-end clips/s (wav
   files loaded and resampled).

Every row also gets the peak GPU memory of its measurement (``torch.cuda.max_memory_allocated``,
reset before it; model weights included). Each section prints its wall time against its budget.
Output: one markdown table on stdout, and the same as JSON (rows, section times, errors, the machine)
in ``--out FILE`` or, when the ``OUT`` environment variable is set, ``$OUT/gpu_benchmark.json``; the
JSON is rewritten after every section, so a run cut short keeps what it measured. A section that
fails prints its traceback and the run goes on to the next one, then exits 1 naming the failures.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

from benchmarks.common import synchronize
from recipes.machine import machine_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTIONS = ("extraction", "training", "generation", "evaluation")
TOTAL_BUDGET_S = 480  # the whole real run, one H200 (fits one short device window with set-up to spare)
JSON_NAME = "gpu_benchmark.json"
LABEL = "dog barking"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes of one run. ``REAL`` is budgeted for one H200 (estimates in README); ``DRY`` exercises
    the same code at tiny sizes on a CPU."""

    # 1. extraction
    extraction_preset: str  # "paper-random" (the paper's encoders, random weights) or "tiny"
    video_files: int  # distinct 10-s files written (the measurements cycle over them)
    video_size: tuple[int, int]  # (height, width) of the generated videos
    extraction_items: int  # clips per measurement
    extraction_small: int  # clips of the short run subtracted for the end-to-end steady state
    extraction_batch: int
    extraction_workers: int | None  # decoding workers; None: the usable cores - 1, at most 12
    # 2. training
    train_layers: int | None  # GPT-2 depth (None: the paper's 12)
    train_batches: tuple[int, ...]  # eager runs
    train_compiled_batches: tuple[int, ...]  # torch.compile runs
    train_steps: int
    train_warmup: int
    train_compile_warmup: int
    compile_backend: str
    # 3. generation
    generation_size: str  # "full" (the real AudioLDM-2 sizes) or "tiny"
    fast_steps: int
    paper_steps: int
    long_seconds: int  # the long video
    long_preset: str
    long_steps: int
    # 4. evaluation
    evaluation_size: str  # "paper" or "tiny"
    evaluation_clips: int
    evaluation_batch: int
    evaluation_repeats: int
    # wall-time budget per section (s), printed against the measured time
    budgets: dict = dataclasses.field(default_factory=dict)


REAL = Plan(
    extraction_preset="paper-random", video_files=4, video_size=(360, 640), extraction_items=128, extraction_small=32,
    extraction_batch=16, extraction_workers=None,
    train_layers=None, train_batches=(48, 256), train_compiled_batches=(256,), train_steps=30, train_warmup=5,
    train_compile_warmup=10, compile_backend="inductor",
    generation_size="full", fast_steps=25, paper_steps=100, long_seconds=300, long_preset="fast", long_steps=25,
    evaluation_size="paper", evaluation_clips=16, evaluation_batch=8, evaluation_repeats=2,
    budgets={"setup": 20, "extraction": 100, "training": 150, "generation": 110, "evaluation": 100},
)
DRY = Plan(
    extraction_preset="tiny", video_files=1, video_size=(48, 64), extraction_items=4, extraction_small=2,
    extraction_batch=2, extraction_workers=0,
    train_layers=1, train_batches=(2,), train_compiled_batches=(2,), train_steps=1, train_warmup=1,
    train_compile_warmup=1, compile_backend="eager",
    generation_size="tiny", fast_steps=2, paper_steps=2, long_seconds=15, long_preset="fast", long_steps=2,
    evaluation_size="tiny", evaluation_clips=2, evaluation_batch=2, evaluation_repeats=1,
    budgets={"setup": 30, "extraction": 30, "training": 60, "generation": 60, "evaluation": 60},
)


# ----------------------------------------------------------------------------------------------
# helpers


def release(device: torch.device) -> None:
    """Free what the last measurement left (models, optimizers) before the next one is measured."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak(device: torch.device) -> None:
    release(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak(device: torch.device) -> int | None:
    """Peak bytes allocated since the last ``reset_peak`` (None on the CPU)."""
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def gib(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**30:.1f} GiB"  # None: on the CPU, or a row without one


def row(section: str, figure: str, value: float, unit: str, text: str, peak_bytes: int | None,
        readme: str = "", **extra) -> dict:
    """One line of the table (``readme``: the README figure it fills)."""
    return {"section": section, "figure": figure, "value": value, "unit": unit, "text": text,
            "peak_gpu_bytes": peak_bytes, "readme": readme, **extra}


def build_on(device: torch.device, build):
    """``build()`` created directly on ``device`` (random initialisation of a billion parameters is
    seconds on a GPU, a minute on a CPU), else on the CPU and moved."""
    if device.type == "cuda":
        try:
            with torch.device(device):
                return build().to(device), "on the GPU"
        except Exception as err:  # noqa: BLE001 - a constructor that insists on CPU tensors: build it there
            print(f"   building on the GPU failed ({type(err).__name__}: {err}); building on the CPU", flush=True)
            release(device)
    return build().to(device), "on the CPU"


def benchmark_preset(name: str):
    """The extractor preset measured: ``paper-random`` is the paper preset with random weights (the
    released files are not needed: weights do not change the cost) and TimeChat's timestamps
    tokenized by the builtin vocabulary (the same tokens for these sentences, no bert-base-uncased
    folder needed)."""
    from extractors.presets import PRESETS, get_preset, register_preset
    from extractors.timechat import BUILTIN_TOKENIZER

    if name != "paper-random":
        return get_preset(name)
    if name not in PRESETS:
        paper = get_preset("paper")
        timechat = dataclasses.replace(paper.visual["timechat"], tokenizer=BUILTIN_TOKENIZER)
        register_preset(dataclasses.replace(paper, name=name, released=False, weights_dir=None,
                                            visual={**paper.visual, "timechat": timechat}))
    return get_preset(name)


# ----------------------------------------------------------------------------------------------
# 1. extraction


def section_extraction(plan: Plan, device: torch.device, workdir: Path) -> list[dict]:
    from benchmarks import extraction as bench
    from extractors.extraction import encode_clips, shared_frame_size
    from extractors.frozen import FrozenExtractors
    from extractors.manifest import ClipItem

    logging.getLogger("extractors.extraction").setLevel(logging.ERROR)
    preset = benchmark_preset(plan.extraction_preset)
    workers = plan.extraction_workers
    if workers is None:
        workers = max(1, min(12, len(os.sched_getaffinity(0)) - 1))
    started = time.perf_counter()
    height, width = plan.video_size
    files = []
    for k in range(plan.video_files):
        path = workdir / f"clip{k:02d}.mp4"
        bench.write_video(path, 10.0, seed=k, height=height, width=width)
        files.append(path)
    items = [ClipItem(id=f"c{k}", path=files[k % len(files)]) for k in range(plan.extraction_items)]
    print(f"   {len(files)} x 10 s {width}x{height} videos written in {time.perf_counter() - started:.1f} s", flush=True)

    reset_peak(device)
    started = time.perf_counter()
    extractors, where = build_on(device, lambda: FrozenExtractors(preset))
    sizes = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in [*extractors.visual.items(),
                                                                                 ("audiomae", extractors.audiomae)]}
    print(f"   preset {preset.name} built {where} in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{n} {m:.0f} M" for n, m in sizes.items()), flush=True)
    c = bench.compare(f"{preset.name} preset ({device.type})", lambda b: encode_clips(extractors, b),
                      lambda its: bench.extraction(extractors, its, plan.extraction_batch, workers, workdir),
                      items, preset.clip, plan.extraction_batch, workers, 1, plan.extraction_small,
                      shared_frame_size(preset))
    bench.print_comparison(c, clips_per_s=True)
    peak_bytes = peak(device)
    setup = f"batch {c['batch']}, {workers} decoding workers, {c['clips']} clips"
    return [
        row("extraction", f"{preset.name}: model-only (pre-decoded batches)", 1 / c["model"], "clips/s",
            f"{1 / c['model']:.1f} clips/s ({setup})", peak_bytes),
        row("extraction", f"{preset.name}: end-to-end (extract_to_cache, steady state)", 1 / c["e2e"], "clips/s",
            f"{1 / c['e2e']:.1f} clips/s (goal >= {bench.GPU_GOAL:g}; end-to-end / model-only {c['ratio']:.2f}, "
            f"goal <= {bench.RATIO_GOAL}; decode pipeline alone {1 / c['decode']:.1f} clips/s)", peak_bytes,
            readme="Feature extraction: GPU clips/s, paper preset", comparison=c),
    ]


# ----------------------------------------------------------------------------------------------
# 2. training


def section_training(plan: Plan, device: torch.device, workdir: Path) -> list[dict]:
    import lightning  # noqa: F401  (sets its loggers to INFO on import; quieten them afterwards)

    from benchmarks import train_throughput as bench
    from mapper.config import MapperOptions

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    options = MapperOptions() if plan.train_layers is None else MapperOptions(n_layer=plan.train_layers)
    precision = "bf16-mixed"
    rows = []
    for compiled, batches in ((False, plan.train_batches), (True, plan.train_compiled_batches)):
        if not batches:
            continue
        release(device)
        started = time.perf_counter()
        module = bench.build_module(compiled, options, plan.compile_backend)
        flops = bench.train_flops_per_sample(module.mapper.config)["total"]
        cfg = module.mapper.config
        print(f"   mapper GPT-2 {cfg.n_layer}x{cfg.audio_token_dim} built in {time.perf_counter() - started:.1f} s"
              f"{f', torch.compile backend {plan.compile_backend}' if compiled else ''}; "
              f"{flops / 1e9:.2f} GFLOP per training sample", flush=True)
        warmup = plan.train_compile_warmup if compiled else plan.train_warmup
        for batch in batches:
            for loop, run in (("lightning", bench.run_lightning), ("bare", bench.run_bare)):
                reset_peak(device)
                started = time.perf_counter()
                samples_per_s, _ = run(module, batch, warmup, plan.train_steps, device, precision)
                wall = time.perf_counter() - started
                peak_bytes = peak(device)
                mode = f"torch.compile ({plan.compile_backend})" if compiled else "eager"
                figure = f"{'Lightning Trainer.fit' if loop == 'lightning' else 'bare loop'}, bf16, {mode}, batch {batch}"
                print(f"   {figure}: {samples_per_s:.1f} samples/s ({samples_per_s * flops / 1e12:.1f} TFLOP/s; "
                      f"{warmup} warm-up + {plan.train_steps} timed steps, {wall:.1f} s wall), peak {gib(peak_bytes)}",
                      flush=True)
                goal = f"; goal >= {bench.GPU_GOAL:.0f}" if loop == "lightning" else ""
                rows.append(row("training", figure, samples_per_s, "samples/s",
                                f"{samples_per_s:.0f} samples/s ({samples_per_s * flops / 1e12:.1f} TFLOP/s{goal})",
                                peak_bytes, readme="Mapper training: samples/s, bf16" if loop == "lightning" else "",
                                wall_s=wall, batch=batch, compiled=compiled))
        del module
    return rows


# ----------------------------------------------------------------------------------------------
# 3. generation


def section_generation(plan: Plan, device: torch.device, workdir: Path) -> list[dict]:
    from benchmarks import generation as bench
    from mapper.generation.sampling import sampling_config

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    release(device)
    started = time.perf_counter()
    pipe = bench.full_size_pipeline(device, dtype, plan.generation_size)
    pipe.set_progress_bar_config(disable=True)
    sizes = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) / 1e6 for n in ("unet", "vae", "vocoder", "mapper")}
    print(f"   {plan.generation_size}-size decoder built in {time.perf_counter() - started:.1f} s ({dtype}): "
          + ", ".join(f"{n} {m:.1f} M" for n, m in sizes.items()), flush=True)
    r = bench.measure_decoder(pipe, plan.fast_steps, plan.paper_steps, device, dtype, workdir)
    rows = []
    for name in ("fast", "paper"):
        rows.append(row("generation", f"{name} preset ({r['steps'][name]} steps), one 10 s clip, {str(dtype)[6:]}",
                        r["totals"][name], "s", f"{r['totals'][name]:.2f} s per 10 s clip (overhead ratio "
                        f"{r['overhead'][name]:.3f}, goal <= {bench.OVERHEAD_GOAL})",
                        r["peak_bytes"].get(name), readme=f"Generation: seconds per 10 s clip, {name} preset"))
    rows.append(row("generation", "UNet step (CFG batch 2) / VAE decode / vocoder", r["unet_step"], "s",
                    f"{r['unet_step'] * 1e3:.1f} / {r['vae'] * 1e3:.1f} / {r['vocoder'] * 1e3:.1f} ms", None,
                    vae=r["vae"], vocoder=r["vocoder"]))

    video = bench.write_video(workdir / f"long{plan.long_seconds}.mp4", plan.long_seconds)
    sampling = sampling_config(plan.long_preset, num_inference_steps=plan.long_steps)
    reset_peak(device)
    synchronize(device)
    started = time.perf_counter()
    result = pipe(video, LABEL, preset=sampling)
    synchronize(device)
    seconds = time.perf_counter() - started
    peak_bytes = peak(device)
    assert len(result.audio) == plan.long_seconds * pipe.sample_rate, (len(result.audio), plan.long_seconds)
    windows = len(result.audio_tokens)
    print(f"   {plan.long_seconds} s video, {plan.long_preset} preset ({plan.long_steps} steps): {seconds:.1f} s, "
          f"{windows} windows, {seconds / plan.long_seconds:.3f} s per audio-second, peak {gib(peak_bytes)}", flush=True)
    length = f"{plan.long_seconds // 60}-minute" if plan.long_seconds % 60 == 0 else f"{plan.long_seconds} s"
    rows.append(row("generation", f"{length} video, {plan.long_preset} preset ({plan.long_steps} steps), "
                    f"{str(dtype)[6:]}", seconds, "s",
                    f"{seconds:.1f} s ({windows} windows, {seconds / plan.long_seconds:.3f} s per audio-second)",
                    peak_bytes, readme="Generation: a 5-minute video", windows=windows))
    del pipe
    return rows


# ----------------------------------------------------------------------------------------------
# 4. evaluation


def section_evaluation(plan: Plan, device: torch.device, workdir: Path) -> list[dict]:
    from benchmarks import evaluation as bench

    files = bench.write_wavs(workdir, plan.evaluation_clips, 44_100)
    clips, batch = plan.evaluation_clips, min(plan.evaluation_batch, plan.evaluation_clips)
    rows = []
    for name in bench.EMBEDDERS:
        reset_peak(device)
        started = time.perf_counter()
        measured = bench.rows_for(name, plan.evaluation_size, device)
        print(f"   {name} ({plan.evaluation_size}, {measured[0].params} parameters) built in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        for embedder in measured:
            reset_peak(device)
            r = bench.measure(embedder, files, clips, batch, plan.evaluation_repeats, device)
            peak_bytes = peak(device)
            text = f"{1 / r['model']:.1f} clips/s model-only"
            if r["e2e"] is not None:
                text += (f", {1 / r['e2e']:.1f} clips/s end-to-end (end-to-end / model-only {r['ratio']:.2f}, "
                         f"goal <= {bench.RATIO_GOAL:g})")
            rows.append(row("evaluation", f"{embedder.name} ({plan.evaluation_size}), batch {batch}", 1 / r["model"],
                            "clips/s", text, peak_bytes, readme="Evaluation: clips/s per embedder",
                            e2e_clips_per_s=None if r["e2e"] is None else 1 / r["e2e"]))
        del measured
    return rows


RUNNERS = {"extraction": section_extraction, "training": section_training, "generation": section_generation,
           "evaluation": section_evaluation}


# ----------------------------------------------------------------------------------------------
# report


def table(report: dict) -> str:
    lines = ["| section | figure | measured | peak GPU memory |", "|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['section']} | {r['figure']} | {r['text']} | {gib(r['peak_gpu_bytes'])} |")
    for name, s in report["sections"].items():
        state = ("FAILED: " + s["error"].strip().splitlines()[-1] if s["error"]
                 else "over budget" if s["seconds"] > s["budget_s"] else "ok")
        lines.append(f"| {name} | section wall time (budget) | {s['seconds']:.0f} s ({s['budget_s']} s): {state} | |")
    total, budget = report["total_seconds"], report["budget_s"]
    lines.append(f"| all | total wall time (budget) | {total:.0f} s ({budget} s): "
                 f"{'over budget' if total > budget else 'ok'} | |")
    return "\n".join(lines)


def write_json(report: dict, path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report, indent=1, default=str))
    partial.replace(path)  # a reader never sees half a file


def output_path(out: str | None) -> Path | None:
    if out:
        return Path(out)
    return Path(os.environ["OUT"]) / JSON_NAME if os.environ.get("OUT") else None


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes: every section in seconds (on the CPU: the test)")
    p.add_argument("--out", default=None, help=f"JSON file (default: $OUT/{JSON_NAME} when OUT is set, else none)")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is visible (a dry run on the CPU: --device cpu --dry-run)",
              file=sys.stderr)
        return 2
    plan = DRY if args.dry_run else REAL
    threads = torch.get_num_threads()
    if args.dry_run and device.type == "cpu":
        torch.set_num_threads(1)  # tiny models: threads only wait for each other, more so on a shared machine
    try:
        return run(args, device, plan, started)
    finally:
        torch.set_num_threads(threads)  # main() may run inside another process (the test)


def run(args, device: torch.device, plan: Plan, started: float) -> int:
    path = output_path(args.out)
    warnings.filterwarnings("ignore")
    machine = machine_line(device, ("diffusers", "transformers", "lightning", "timm", "av", "decord"))
    if device.type == "cuda":
        machine += (f" ({torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB; TF32 matmul "
                    f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}, cudnn TF32 "
                    f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'})")
    budget = sum(plan.budgets.get(name, 0) for name in ("setup", *args.sections))
    print("== machine ==\n" + machine)
    print(f"{'dry run (tiny sizes)' if args.dry_run else 'real run (full sizes, random weights)'} on {device}; sections "
          f"{', '.join(args.sections)}; budget {budget} s" + (f"; JSON -> {path}" if path else ""), flush=True)
    report = {"command": "python -m benchmarks.gpu " + " ".join(args.argv),
              "machine": machine, "device": str(device), "dry_run": args.dry_run, "plan": dataclasses.asdict(plan),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "rows": [], "sections": {}, "budget_s": budget,
              "total_seconds": 0.0, "ok": False}
    with tempfile.TemporaryDirectory(prefix="mfm-gpu-bench-") as tmp:
        for name in args.sections:
            print(f"\n== {name} (budget {plan.budgets.get(name, 0)} s) ==", flush=True)
            section_started = time.perf_counter()
            error = None
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                report["rows"].extend(RUNNERS[name](plan, device, workdir))
            except Exception:  # noqa: BLE001 - reported loudly below and in the exit status; the next section still runs
                error = traceback.format_exc()
                print(f"\nSECTION {name} FAILED:\n{error}", file=sys.stderr, flush=True)
            release(device)
            seconds = time.perf_counter() - section_started
            report["sections"][name] = {"seconds": seconds, "budget_s": plan.budgets.get(name, 0), "error": error}
            report["total_seconds"] = time.perf_counter() - started
            over = seconds > plan.budgets.get(name, 0)
            print(f"== {name}: {'FAILED' if error else 'done'} in {seconds:.1f} s (budget {plan.budgets.get(name, 0)} s"
                  f"{': OVER' if over else ''}); {report['total_seconds']:.0f} s so far ==", flush=True)
            write_json(report, path)
    failed = [name for name, s in report["sections"].items() if s["error"]]
    report["ok"] = not failed
    report["total_seconds"] = time.perf_counter() - started
    report["table"] = table(report)
    write_json(report, path)
    print("\n== GPU figures ==\n" + report["table"])
    print(machine)
    if failed:
        print(f"error: sections failed: {', '.join(failed)} (tracebacks above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
