"""Training throughput of the full-size mapper: Lightning vs bare PyTorch, FLOP efficiency, cache loader.

    python -m benchmarks.train_throughput                   # CPU, fp32, batch 8 (~1.5 min on 2 idle cores)
    python -m benchmarks.train_throughput --threads 1       # steadier when other processes load the cores
    python -m benchmarks.train_throughput --device cuda --precision bf16-mixed [--compile]   # GPU, batches 48 and 256

Prints, from one run (measurements are interleaved and repeated; medians are reported):

1. Samples/s of the paper-size mapper (`MapperModule(preset="paper")`, random init: GPT-2 12 x 768,
   40 fused + 8 audio tokens) trained through Lightning (`Trainer.fit`, logging, checkpointing,
   progress bar and model summary off) and through a bare loop on the same module, data and
   optimizer (AdamW with the module's lr / weight decay, a per-step LambdaLR like the module's
   configure_optimizers; zero_grad, backward, step, scheduler step). Both loops read
   the same pre-collated in-memory float16 batches, so the data pipeline is out of this comparison
   (section 3 measures it). The first `--warmup` steps of each run are excluded; a step is timed from
   the end of the previous step to its own end, so it contains the fetch, transfer, forward, backward
   and optimizer step. CPU: a run's samples/s is batch / median step time ("best-step" columns use
   the fastest step: other processes only ever add time); CUDA: batch x steps / the whole timed window
   (the device is synchronised only at its two ends). Rounds alternate which loop runs first, and
   each round also measures the matmul peak of section 2, so every ratio is taken within one round.

2. Achieved FLOP/s of the bare loop against a measured matmul peak (torch.mm of large square
   matrices in the training compute dtype, same thread count). Model FLOPs are counted analytically
   (`mapper.training.flops.train_flops_per_sample`, formula there): 24.44 GFLOP per paper training sample.

3. Feature-cache loader throughput: ~512 random paper-shaped float16 rows are written through
   `FeatureCache` (paper preset, several shards, 80/10/10 train/val/test interleaved like a real
   cache), then an epoch of the train split is read through `MapperDataModule.train_dataloader()`
   and through alternatives, and compared with a plain numpy memory copy of the same bytes. Bytes are
   counted as the cache's stored feature bytes (float16: rows x 151,552 B for the paper shapes),
   whatever dtype the loader hands out (the dtype is printed).

4. With `--device cuda --precision bf16-mixed` the same comparison runs on the GPU at larger batches
   (default 48 and 256) under bf16 autocast; `--compile` compiles the mapper (`nn.Module.compile`)
   for both loops. On CUDA a third loop, "bare+sync", adds the module's per-step `isfinite(loss)`
   check (a device->host sync) to the bare loop, to show what that check costs.

Length: one script of measured sections that share their setup; each section is a function.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import synchronize
from recipes.machine import machine_line
from extractors.presets import AUDIO_TARGET
from mapper.training.flops import GPU_TRAIN_GOAL as GPU_GOAL, non_embedding_params, train_flops_per_sample

LIGHTNING_GOAL = 0.95
MFU_GOAL_CPU = 0.40
LOADER_GOAL = 0.30


# ----------------------------------------------------------------------------------------------
# machine


def synchronizer(device: torch.device):
    return lambda: synchronize(device)


# ----------------------------------------------------------------------------------------------
# model, data, FLOPs


def build_module(compile_model: bool, options=None, compile_backend: str = "inductor"):
    """`MapperModule(preset="paper")`; `options` (MapperOptions) overrides its architecture (dry runs: fewer
    layers), `compile_backend` the torch.compile backend."""
    from mapper.config import MapperOptions
    from mapper.training import MapperModule

    torch.manual_seed(0)
    module = MapperModule(preset="paper", mapper=options or MapperOptions())  # random init, the paper's 12 x 768 GPT-2
    if compile_model:
        module.mapper.compile(backend=compile_backend)  # in place: training_loss -> self(...) goes through the compiled call
    return module


def paper_shapes():
    from extractors.presets import get_preset

    return {name: tuple(shape) for name, shape in get_preset("paper").dims.shapes().items()}


class PrebatchedData(Dataset):
    """`length` batches cycling over a few pre-collated float16 batches (use with batch_size=None)."""

    def __init__(self, batch: int, length: int, pin: bool, distinct: int = 4, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        shapes = paper_shapes()
        self.batches = []
        for _ in range(distinct):
            b = {k: torch.randn((batch, *s), generator=gen).to(torch.float16) for k, s in shapes.items()}
            self.batches.append({k: v.pin_memory() for k, v in b.items()} if pin else b)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return self.batches[i % len(self.batches)]


# ----------------------------------------------------------------------------------------------
# 1 / 4: the two training loops


def autocast(device: torch.device, precision: str):
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_lightning(module, batch: int, warmup: int, steps: int, device, precision: str) -> tuple[float, float]:
    import lightning as L

    sync = synchronizer(device)
    stamps: list[float] = []
    last = warmup + steps - 1

    class Timer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch_, batch_idx):
            if batch_idx >= warmup - 1:
                if batch_idx in (warmup - 1, last):
                    sync()
                stamps.append(time.perf_counter())

    total = warmup + steps
    loader = DataLoader(PrebatchedData(batch, total, pin=device.type == "cuda"), batch_size=None)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        max_steps=total,
        limit_train_batches=total,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Timer()],
    )
    trainer.fit(module, train_dataloaders=loader)
    return throughput(stamps, batch, device)


def throughput(stamps: list[float], batch: int, device: torch.device) -> tuple[float, float]:
    """(typical, best) samples/s from the end-of-step times (the first: end of the last warm-up step).

    CPU: batch / median step time and batch / fastest step (other processes only ever add time, so
    the fastest step is the least disturbed one). CUDA: only the first and last stamps are
    synchronised, so both are the whole window's average."""
    if device.type == "cuda":
        sps = batch * (len(stamps) - 1) / (stamps[-1] - stamps[0])
        return sps, sps
    steps = np.diff(stamps)
    return batch / float(np.median(steps)), batch / float(steps.min())


def run_bare(
    module, batch: int, warmup: int, steps: int, device, precision: str, check_finite: bool = False
) -> tuple[float, float]:
    sync = synchronizer(device)
    module.to(device).train()
    hp = module.hparams
    optimizer = torch.optim.AdamW(module.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)  # as the module's, stepped per step
    total = warmup + steps
    loader = DataLoader(PrebatchedData(batch, total, pin=device.type == "cuda"), batch_size=None)
    stamps: list[float] = []
    for i, b in enumerate(loader):
        b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
        with autocast(device, precision):
            loss = module._step(b)  # the module's own loss (features .float(), MapperModel.training_loss)
        if check_finite and not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if i >= warmup - 1:
            if i in (warmup - 1, total - 1):
                sync()
            stamps.append(time.perf_counter())
    del optimizer, scheduler
    module.zero_grad(set_to_none=True)
    return throughput(stamps, batch, device)


def compare_loops(module, batch: int, args, device) -> dict[str, list[float]]:
    """Interleaved rounds (order alternates); the matmul peak is measured inside every round too."""
    loops = ["lightning", "bare"] + (["bare+sync"] if device.type == "cuda" else [])
    results: dict[str, list[float]] = {name: [] for name in loops + [n + "/best" for n in loops] + ["peak"]}
    for r in range(args.repeats):
        order = loops + ["peak"] if r % 2 == 0 else ["peak"] + loops[::-1]
        for name in order:
            if name == "peak":
                peaks = matmul_peak(device, args.peak_dtype, args.peak_sizes, args.peak_reps)
                results[name].append(max(peaks.values()))
                continue
            if name == "lightning":
                sps, best = run_lightning(module, batch, args.warmup, args.steps, device, args.precision)
            else:
                sps, best = run_bare(module, batch, args.warmup, args.steps, device, args.precision,
                                     check_finite=name == "bare+sync")
            results[name].append(sps)
            results[name + "/best"].append(best)
        cells = "  ".join(f"{n} {results[n][-1]:8.2f}" for n in loops)
        ratio = results["lightning"][-1] / results["bare"][-1]
        print(f"  batch {batch:4d} round {r}: samples/s  {cells}  lightning/bare {ratio:.3f}"
              f"  | matmul peak {results['peak'][-1] / 1e9:.1f} GFLOP/s", flush=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


# ----------------------------------------------------------------------------------------------
# 2: matmul peak


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes: list[int], reps: int) -> dict[int, float]:
    """Median FLOP/s of torch.mm(n x n, n x n) per size (one untimed call before the first size)."""
    sync = synchronizer(device)
    out = {}
    for i, n in enumerate(sizes):
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        c = torch.mm(a, b) if i == 0 else torch.empty(n, n, device=device, dtype=dtype)
        times = []
        for _ in range(reps):
            sync()
            t = time.perf_counter()
            torch.mm(a, b, out=c)
            sync()
            times.append(time.perf_counter() - t)
        out[n] = 2 * n**3 / statistics.median(times)
        del a, b, c
    return out


# ----------------------------------------------------------------------------------------------
# 3: the feature-cache loader


def write_cache(root: str, rows: int, shard_rows: int = 128, seed: int = 0):
    """`rows` random paper-shaped rows through FeatureCache (paper preset, float16), in shards."""
    from extractors.cache import FeatureCache
    from extractors.presets import get_preset

    preset = get_preset("paper")
    cache = FeatureCache(root)
    cache.initialise(preset, dtype="float16")
    dims = preset.dims
    shapes = paper_shapes()
    rng = np.random.default_rng(seed)
    splits = ["train"] * 8 + ["val", "test"]
    for start in range(0, rows, shard_rows):
        shard = []
        for i in range(start, min(rows, start + shard_rows)):
            row = {"id": f"clip{i:06d}", "label": "dog barking", "split": splits[i % 10], "start": 0.0,
                   "duration": 10.0, "num_valid_frames": dims.num_frames}
            for k, s in shapes.items():
                row[k] = rng.standard_normal(s, dtype=np.float32).astype(np.float16)
            shard.append(row)
        cache.write_shard(shard)
    return cache, preset


def loader_variants(cache, preset, batch: int):
    from mapper.training import MapperDataModule

    import lightning as L

    dm = MapperDataModule(cache=str(cache.root), preset="paper", batch_size=batch)
    # train_dataloader() may ask its trainer for world size / rank: attach a plain one-device Trainer.
    dm.trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                           enable_progress_bar=False, enable_model_summary=False)
    dm.setup("fit")
    rows = cache.load(preset)
    train_idx = np.flatnonzero(np.asarray(rows["split"]) == "train")
    # The reader the project used before mapper/feature_arrays.py, for comparison.
    formatted = rows.with_format("torch", columns=list(paper_shapes())).select(train_idx)
    variants = {
        "MapperDataModule.train_dataloader (shipped)": dm.train_dataloader(),
        "datasets torch formatter (before)": DataLoader(formatted, batch_size=batch, shuffle=True),
    }
    return variants, len(train_idx)


def time_epoch(loader) -> tuple[float, int, str]:
    t = time.perf_counter()
    n, dtype = 0, ""
    for b in loader:
        n += len(b[AUDIO_TARGET])
        dtype = str(b[AUDIO_TARGET].dtype).replace("torch.", "")
    return time.perf_counter() - t, n, dtype


def memcpy_rate(nbytes: int, reps: int) -> float:
    src = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return nbytes / statistics.median(times)


def loader_benchmark(args) -> dict:
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    shapes = paper_shapes()
    row_bytes = sum(int(np.prod(s)) * 2 for s in shapes.values())  # float16
    with tempfile.TemporaryDirectory(prefix="mfm-cache-bench-") as root:
        t = time.perf_counter()
        cache, preset = write_cache(root, args.rows)
        write_s = time.perf_counter() - t
        variants, n_train = loader_variants(cache, preset, args.loader_batch)
        epoch_bytes = n_train * row_bytes
        times: dict[str, list[float]] = {name: [] for name in variants}
        dtypes: dict[str, str] = {}
        mem: list[float] = []
        for loader in variants.values():  # one untimed epoch each: first-touch page faults, format setup
            time_epoch(loader)
        for r in range(args.loader_repeats):  # interleaved: every variant and the memcpy, each round
            for name, loader in variants.items():
                dt, n, dtypes[name] = time_epoch(loader)
                assert n == n_train, (name, n, n_train)
                times[name].append(dt)
            mem.append(memcpy_rate(epoch_bytes, 3))
        variants.clear()
    return {"write_s": write_s, "rows": args.rows, "train_rows": n_train, "row_bytes": row_bytes,
            "epoch_bytes": epoch_bytes, "times": times, "dtypes": dtypes, "memcpy": statistics.median(mem)}


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["32", "bf16-mixed"], default=None,
                   help="default: 32 on cpu, bf16-mixed on cuda")
    p.add_argument("--batch", type=int, nargs="+", default=None, help="default: 8 on cpu; 48 256 on cuda")
    p.add_argument("--steps", type=int, default=None, help="timed steps per run (default: 3 cpu, 40 cuda)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps per run (default: 1 cpu, 5 cuda; 10 with --compile)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default: 3)")
    p.add_argument("--compile", action="store_true", help="torch.compile the mapper (both loops)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--peak-sizes", type=int, nargs="+", default=None,
                   help="matmul sizes (default: 2048 4096 cpu, 8192 cuda)")
    p.add_argument("--rows", type=int, default=512, help="rows written to the benchmark cache")
    p.add_argument("--loader-batch", type=int, default=48, help="loader batch size (the paper's global batch)")
    p.add_argument("--loader-repeats", type=int, default=5)
    p.add_argument("--skip", nargs="*", default=[], choices=["loops", "loader"], help="sections to skip")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    cpu = device.type == "cpu"
    args.precision = args.precision or ("32" if cpu else "bf16-mixed")
    args.batch = args.batch or ([8] if cpu else [48, 256])
    args.steps = args.steps or (3 if cpu else 40)
    args.warmup = args.warmup if args.warmup is not None else (1 if cpu else (10 if args.compile else 5))
    args.repeats = args.repeats or 3
    if args.warmup < 1 or args.steps < 1:
        raise SystemExit("--warmup and --steps must be >= 1 (the timed window starts after a warm-up step)")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.peak_dtype = torch.bfloat16 if args.precision == "bf16-mixed" else torch.float32
    args.peak_sizes = args.peak_sizes or ([2048, 4096] if cpu else [8192])
    args.peak_reps = 2 if cpu else 10
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 in the peak and in "32" runs

    import lightning  # noqa: F401  (sets its loggers to INFO on import; quieten them afterwards)

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    started = time.perf_counter()
    print("== machine ==")
    print(machine_line(device, ("lightning", "transformers", "datasets")))
    usable = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} on {usable} usable cores")
    if cpu and load > 0.75 * usable:
        print(f"WARNING: other processes keep ~{load:.1f} cores busy; CPU figures below are slowed and noisy "
              f"(intra-op threads stall when a core is taken away). Rerun on an idle machine, or try --threads 1.")
    print(f"device {device.type}, precision {args.precision}, compile {args.compile}, batch {args.batch}, "
          f"warmup {args.warmup} + timed {args.steps} steps per run, {args.repeats} interleaved rounds", flush=True)

    loops: dict[int, dict[str, list[float]]] = {}
    flops = None
    if "loops" not in args.skip:
        module = build_module(args.compile)
        cfg = module.mapper.config
        flops = train_flops_per_sample(cfg)
        total_params = sum(q.numel() for q in module.parameters())
        print("\n== 1. training loop: Lightning Trainer.fit vs bare PyTorch (per round; peak = fp matmul, 2.) ==")
        print(f"mapper: MapperModule(preset='paper'), GPT-2 {cfg.n_layer}x{cfg.audio_token_dim}, "
              f"{cfg.prefix_length}+{cfg.num_audio_tokens} tokens, {total_params / 1e6:.1f}M params "
              f"({non_embedding_params(module) / 1e6:.1f}M non-embedding); inputs {paper_shapes()} float16", flush=True)
        for batch in args.batch:
            loops[batch] = compare_loops(module, batch, args, device)
        del module

    loader = None
    if "loader" not in args.skip:
        loader = loader_benchmark(args)

    # ------------------------------------------------------------------ summary
    med = statistics.median
    dtype_name = str(args.peak_dtype).replace("torch.", "")
    print("\n== summary (medians over rounds) ==")
    if loops:
        sync_cols = f" {'bare+sync':>10} {'sync/bare':>9}" if device.type == "cuda" else ""
        print(f"{'batch':>5} {'lightning s/s':>14} {'bare s/s':>10} {'L/bare':>7} {'goal .95':>8} "
              f"{'best-step L/bare':>16}"
              f"{sync_cols}   per-round L/bare")
        for batch, res in loops.items():
            lm, bm = med(res["lightning"]), med(res["bare"])
            ratios = [a / b for a, b in zip(res["lightning"], res["bare"])]
            best_ratio = max(res["lightning/best"]) / max(res["bare/best"])
            verdict = "ok" if med(ratios) >= LIGHTNING_GOAL else "MISS"
            line = f"{batch:5d} {lm:14.2f} {bm:10.2f} {med(ratios):7.3f} {verdict:>8} {best_ratio:16.3f}"
            if device.type == "cuda":
                sm = med(res["bare+sync"])
                line += f" {sm:10.1f} {sm / bm:9.3f}"
            print(line + "   " + ", ".join(f"{x:.3f}" for x in ratios))
        if device.type == "cuda":
            best = max(med(r["lightning"]) for r in loops.values())
            print(f"GPU goal >= {GPU_GOAL:.0f} samples/s (Lightning, one H100): best {best:.0f} -> "
                  f"{'ok' if best >= GPU_GOAL else 'MISS'}")

    if flops and loops:
        print(f"\nFLOPs per training sample (forward+backward): {flops['total'] / 1e9:.2f} GFLOP = "
              + " + ".join(f"{k} {v / 1e9:.3f}G" for k, v in flops.items() if k != "total"))
        print(f"{'batch':>5} {'peak GFLOP/s':>12} {'bare GFLOP/s':>12} {'bare/peak':>9} {'goal':>5} "
              f"{'lightning GFLOP/s':>17} {'L/peak':>7}   (peak: {dtype_name} torch.mm {args.peak_sizes}, "
              f"{torch.get_num_threads()} threads, best size per round)")
        for batch, res in loops.items():
            peak = res["peak"]
            bare = [s * flops["total"] for s in res["bare"]]
            light = [s * flops["total"] for s in res["lightning"]]
            mfu = med([b / q for b, q in zip(bare, peak)])
            lmfu = med([b / q for b, q in zip(light, peak)])
            best_mfu = max(res["bare/best"]) * flops["total"] / max(peak)
            goal = (" ok" if mfu >= MFU_GOAL_CPU else "MISS") if cpu else "  -"
            print(f"{batch:5d} {med(peak) / 1e9:12.1f} {med(bare) / 1e9:12.1f} {mfu:9.1%} {goal:>5} "
                  f"{med(light) / 1e9:17.1f} {lmfu:7.1%}   best step / best peak {best_mfu:.1%}; per-round peak "
                  + ", ".join(f"{q / 1e9:.1f}" for q in peak))

    if loader:
        eb, mem = loader["epoch_bytes"], loader["memcpy"]
        print(f"\n== 3. feature-cache loader ({loader['rows']} rows written through FeatureCache in "
              f"{loader['write_s']:.1f} s; train split {loader['train_rows']} rows x {loader['row_bytes']} B float16 = "
              f"{eb / 1e6:.1f} MB per epoch; batch {args.loader_batch}; num_workers 0; "
              f"1 warm-up + {args.loader_repeats} interleaved epochs) ==")
        print(f"{'loader':46s} {'MB/s':>8} {'rows/s':>8} {'vs memcpy':>9} {'goal .3':>7} {'out dtype':>9}")
        print(f"{'numpy memcpy (np.copyto) of the same bytes':46s} {mem / 1e6:8.1f} {mem / loader['row_bytes']:8.0f} "
              f"{1:9.1%} {'':>7} {'':>9}")
        for name, ts in loader["times"].items():
            dt = med(ts)
            rate = eb / dt
            print(f"{name:46s} {rate / 1e6:8.1f} {loader['train_rows'] / dt:8.0f} {rate / mem:9.1%} "
                  f"{'ok' if rate / mem >= LOADER_GOAL else 'MISS':>7} {loader['dtypes'][name]:>9}")
        if device.type == "cuda":
            shipped = loader["train_rows"] / med(next(iter(loader["times"].values())))
            print(f"(feeding {GPU_GOAL:.0f} samples/s needs {GPU_GOAL:.0f} rows/s from the loader; "
                  f"the shipped loader gives "
                  f"{shipped:.0f} rows/s per worker process)")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}; total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
