"""The paper's data size on one machine: what the feature cache costs at 1k, 10k and 77k clips.

    python -m benchmarks.scale                                  # 1000, 10000, 77000 clips (~12 GB at 77k)
    python -m benchmarks.scale --sizes 1000,10000 --rounds 1    # smaller, one round
    python -m benchmarks.scale --keep /data/scale               # keep the caches (DIR/n<N>/)
    python -m benchmarks.scale --threads 1                      # steadier training steps on a busy machine

For each size N a synthetic cache is built with the preset's shapes and dtype (paper: CAVP 40x512,
TimeChat 64x768, AudioMAE 8x768, float16: 151,552 B of features per clip), written the way
extraction writes it: `FeatureCache.initialise` then `write_shard(rows, rank)` with float32 rows of
`--shard-size` clips (64, extraction's default), as `--ranks` extraction processes would (rank r takes
every r-th clip of the manifest, so the merge on load really sorts). Ids are random strings, splits
80/10/10. Features are random (slices of one random pool; their values cost nothing here).

Then, for every size, a fresh process (so its memory figures are its own) measures:

- open: `FeatureCache.load` (open every shard, merge them sorted by id), then
  `MapperDataModule.setup` (load + splits + the zero-copy views of mapper/training/feature_arrays.py);
- memory: RSS of that process before the open, after it and after one training epoch, split into
  anonymous memory (what the process allocated) and file-backed pages (the cache's memory-mapped
  Arrow files: page cache, shared and reclaimable, counted in RSS once touched);
- loader: samples/s of `MapperDataModule.train_dataloader()` (the resumable epoch order of
  mapper/training/order.py) at the paper's global batch 48, whole epochs of the train split;
- resume: what a resumed extraction computes before its first clip, with a manifest of the N clips
  plus 1% new ones: the lock, `_prepare` (cache check, clean-up, `quarantine_corrupt`,
  `FeatureCache.completed_ids`) and the list of clips left;
- training: s/step of `MapperModule(preset)` (paper: MapperConfig.from_preset("paper"), GPT-2 12x768;
  `--n-layer`/`--n-head` for smaller ones) through `Trainer.fit` on that cache, global batch
  `--train-batch` (48), `--warmup` untimed steps then `--steps` timed ones (median).

Open, setup and resume are timed `--repeats` times in that process (median); the loader runs one epoch,
then more until they add up to `--loader-seconds` (first-epoch and later-epoch rates are both printed:
the first one also faults the cache's pages into the process).

Sizes are measured in interleaved rounds (`--rounds`; the order alternates), with every cache on
disk at once, so the ratios 77k/1k are taken side by side within a round (their median is printed),
not across minutes of a shared machine's changing load. Goals: per-clip costs flat within +-10%
(77k / 1k), anonymous RSS growth <= 10% of the cache's size.

The caches are deleted at the end unless `--keep DIR` names where to put them. Free disk is checked
first; a size that does not fit is replaced by the largest one that does, and the run says so.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULT_TAG = "SCALE-RESULT "
NEW_FRACTION = 0.01  # clips of the resume manifest not in the cache yet
DISK_MARGIN = 2 << 30  # bytes left free for everybody else
FLAT_GOAL = 0.10  # per-clip costs 77k / 1k within +-10%
RSS_GOAL = 0.10  # anonymous RSS growth <= 10% of the cache size
MiB = 1 << 20


# ----------------------------------------------------------------------------------------------
# the synthetic cache


def clip_ids(n: int, seed: int) -> list[str]:
    """`n` distinct VGGSound-like ids (11 random characters + start) in manifest order, not sorted."""
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    chars = alphabet[rng.integers(0, len(alphabet), size=(n, 11))]
    return [f"{''.join(c)}_{i:06d}" for i, c in enumerate(chars)]  # the suffix makes them distinct


def row_bytes(shapes: dict, dtype: str = "float16") -> int:
    return sum(int(np.prod(s)) for s in shapes.values()) * np.dtype(dtype).itemsize


def build_cache(root: Path, n: int, preset_name: str, shard_size: int, ranks: int, seed: int) -> dict:
    """Write `n` random clips through `FeatureCache.write_shard`, `ranks` writers' worth of shards."""
    from extractors.cache import FeatureCache
    from extractors.presets import get_preset

    preset = get_preset(preset_name)
    shapes = preset.dims.shapes()
    cache = FeatureCache(root)
    cache.initialise(preset, dtype="float16", require_audio=True)
    ids = clip_ids(n, seed)
    rng = np.random.default_rng(seed + 1)
    largest = max(int(np.prod(s)) for s in shapes.values())
    pool = rng.standard_normal(4 * MiB + largest, dtype=np.float32)  # rows are slices of it: float32, like extraction
    splits = ["train"] * 8 + ["val", "test"]

    def row(i: int) -> dict:
        out = {"id": ids[i], "label": "dog barking", "split": splits[i % 10], "start": 0.0, "duration": 10.0,
               "num_valid_frames": preset.dims.num_frames}
        for name, shape in shapes.items():
            start = int(rng.integers(0, 4 * MiB))
            out[name] = pool[start:start + int(np.prod(shape))].reshape(shape)
        return out

    write_s, shards = 0.0, 0
    started = time.perf_counter()
    for rank in range(ranks):
        mine = list(range(n))[rank::ranks]  # extraction's share: todo[rank::world_size]
        for at in range(0, len(mine), shard_size):
            rows = [row(i) for i in mine[at:at + shard_size]]
            t = time.perf_counter()
            cache.write_shard(rows, rank=rank)
            write_s += time.perf_counter() - t
            shards += 1
    return {"build_s": time.perf_counter() - started, "write_s": write_s, "shards": shards,
            "disk_bytes": folder_bytes(root)}


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------
# measuring one cache (in its own process)


def memory() -> dict[str, int]:
    """This process's resident memory, bytes: rss, anon (allocated), file (mapped files), peak."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "VmHWM": "peak"}
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in fields:
                    out[fields[key]] = int(line.split()[1]) * 1024
    except OSError:  # not Linux: only the peak, from getrusage (KiB on Linux, bytes on macOS)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {"rss": 0, "anon": 0, "file": 0, "peak": peak if sys.platform == "darwin" else peak * 1024}
    return out


def quiet() -> None:
    import lightning  # noqa: F401  (sets its loggers to INFO on import; quieten them afterwards)
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def plain_trainer(**kwargs):
    import lightning as L

    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)


def page_faults() -> tuple[int, int]:
    """(major, minor) page faults of this process so far: major ones read a page from disk."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_majflt, usage.ru_minflt


def time_epochs(loader, min_seconds: float, max_epochs: int) -> tuple[list[float], int, dict, list[int]]:
    """Whole epochs of `loader`: the first, then more until `min_seconds` of them or `max_epochs`;
    (seconds per epoch, samples per epoch, memory after the first epoch, its (major, minor) page faults)."""
    from extractors.presets import AUDIO_TARGET

    times, after_first, samples, faults = [], None, 0, []
    while not times or (sum(times[1:]) < min_seconds and len(times) < max_epochs):
        loader.sampler.set_epoch(len(times))  # what Lightning does at each epoch start
        before = page_faults()
        t, samples = time.perf_counter(), 0
        for batch in loader:
            samples += len(batch[AUDIO_TARGET])
        times.append(time.perf_counter() - t)
        if after_first is None:
            after_first = memory()
            faults = [now - then for now, then in zip(page_faults(), before)]
    return times, samples, after_first, faults


def time_resume(cache, preset, ids: list[str], seed: int) -> tuple[float, int]:
    """What a resumed extraction computes before its first clip: (seconds, clips left)."""
    from extractors.extraction import _prepare, _unique
    from extractors.manifest import ClipItem

    new = [f"new{seed}_{i:07d}" for i in range(max(1, int(len(ids) * NEW_FRACTION)))]
    items = [ClipItem(id=i, path=Path(f"videos/{i}.mp4")) for i in ids + new]  # the manifest, read before
    t = time.perf_counter()
    with cache.lock():
        done, _ = _prepare(cache, preset, None, True)
    unique, _ = _unique(items)
    todo = [item for item in unique if item.id not in done]
    seconds = time.perf_counter() - t
    if len(todo) != len(new):
        raise RuntimeError(f"resume found {len(todo)} clips left, expected {len(new)}")
    return seconds, len(todo)


def time_training(cache_root: Path, preset_name: str, batch: int, warmup: int, steps: int, n_layer: int,
                  n_head: int) -> dict:
    """Median s/step of `Trainer.fit` (MapperModule + MapperDataModule) after `warmup` steps."""
    import lightning as L
    import torch

    from mapper.config import MapperOptions
    from mapper.training import MapperDataModule, MapperModule

    stamps: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch_, batch_idx):
            if batch_idx >= warmup - 1:
                stamps.append(time.perf_counter())

    torch.manual_seed(0)
    module = MapperModule(preset=preset_name, mapper=MapperOptions(n_layer=n_layer, n_head=n_head))
    dm = MapperDataModule(cache=str(cache_root), preset=preset_name, batch_size=batch)
    trainer = plain_trainer(max_epochs=-1, max_steps=warmup + steps, limit_val_batches=0, num_sanity_val_steps=0,
                            callbacks=[Timer()])
    trainer.fit(module, datamodule=dm)
    steps_s = np.diff(stamps).tolist()
    config = module.mapper.config
    return {"step_s": float(np.median(steps_s)), "best_s": min(steps_s), "steps_s": steps_s,
            "layers": config.n_layer, "width": config.audio_token_dim,
            "params": sum(p.numel() for p in module.parameters())}


def measure(cache_root: Path, n: int, args) -> dict:
    """Every figure for one cache; see the module docstring."""
    quiet()
    from extractors.cache import FeatureCache
    from extractors.presets import get_preset
    from mapper.training import MapperDataModule

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    cache = FeatureCache(cache_root)
    gc.collect()
    before = memory()

    load_all = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        rows = cache.load(preset, require_audio=True)
        load_all.append(time.perf_counter() - t)
        if len(rows) != n:
            raise RuntimeError(f"{cache_root}: {len(rows)} rows, expected {n}")
        del rows
        gc.collect()

    dm = MapperDataModule(cache=str(cache_root), preset=args.preset, batch_size=args.batch)
    dm.trainer = plain_trainer()  # train_dataloader() asks it for world size and rank
    setup_all = []
    for _ in range(args.repeats):
        dm.splits = {}
        gc.collect()
        t = time.perf_counter()
        dm.setup("fit")
        setup_all.append(time.perf_counter() - t)
    gc.collect()
    opened = memory()

    loader = dm.train_dataloader()
    epochs, samples, after_epoch, faults = time_epochs(loader, args.loader_seconds, args.max_epochs)
    if samples != len(dm.splits["train"]):
        raise RuntimeError(f"an epoch gave {samples} samples, the train split has {len(dm.splits['train'])}")
    order_all = []  # the epoch order alone (mapper/training/order.py): one epoch's permutation, resumed half-way
    for epoch in range(args.repeats):
        loader.sampler.set_epoch(1000 + epoch)
        loader.sampler.resume(1000 + epoch, samples // 2)
        t = time.perf_counter()
        rest = list(iter(loader.sampler))
        order_all.append(time.perf_counter() - t)
        if len(rest) != samples - samples // 2:
            raise RuntimeError(f"a resumed epoch order gave {len(rest)} clips, expected {samples - samples // 2}")
    del loader
    del dm
    gc.collect()

    resumes = [time_resume(cache, preset, clip_ids(n, args.seed), args.seed) for _ in range(args.repeats)]
    resume_all, left = [seconds for seconds, _ in resumes], resumes[0][1]
    med = statistics.median
    out = {"n": n, "load_s": med(load_all), "setup_s": med(setup_all), "resume_s": med(resume_all),
           "order_s": med(order_all), "first_epoch_faults": faults, "load_all": load_all, "setup_all": setup_all,
           "resume_all": resume_all, "resume_left": left,
           "epoch_s": epochs, "train_rows": samples, "mem_before": before, "mem_open": opened,
           "mem_epoch": after_epoch}
    if args.steps:
        out["train"] = time_training(cache_root, args.preset, args.train_batch, args.warmup, args.steps,
                                     args.n_layer, args.n_head)
    out["mem_end"] = memory()
    return out


def measure_in_child(cache_root: Path, n: int, args) -> dict:
    """`measure` in a fresh interpreter (its memory figures are then its own)."""
    command = [sys.executable, "-m", "benchmarks.scale", "--measure", str(cache_root), "--measure-n", str(n),
               "--preset", args.preset, "--batch", str(args.batch), "--train-batch", str(args.train_batch),
               "--warmup", str(args.warmup), "--steps", str(args.steps), "--seed", str(args.seed),
               "--loader-seconds", str(args.loader_seconds), "--max-epochs", str(args.max_epochs),
               "--repeats", str(args.repeats),
               "--threads", str(args.threads or 0), "--n-layer", str(args.n_layer), "--n-head", str(args.n_head)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if done.returncode or not lines:
        raise RuntimeError(f"measuring {cache_root} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_TAG):])


# ----------------------------------------------------------------------------------------------
# sizes that fit, and the report


def fitting_sizes(sizes: list[int], free: int, per_clip: int) -> tuple[list[int], list[str]]:
    """The sizes whose caches fit in `free` bytes (all at once: they are measured side by side)."""
    notes, fitted = [], list(sizes)
    need = lambda ns: int(sum(ns) * per_clip * 1.02) + len(ns) * 64 * MiB + DISK_MARGIN  # noqa: E731
    while fitted and need(fitted) > free:
        largest = fitted.pop()
        room = (free - need(fitted) - 64 * MiB) / (per_clip * 1.02)
        fits = int(room // 1000 * 1000) if room >= 1000 else int(max(room, 0))
        notes.append(f"not enough free disk for {largest:,} clips ({need(fitted + [largest]) / 2**30:.1f} GiB needed "
                     f"with the smaller caches, {free / 2**30:.1f} GiB free); "
                     + (f"using {fits:,}, the largest that fits" if fits > (fitted[-1] if fitted else 0) else "skipped"))
        if fits > (fitted[-1] if fitted else 0):
            fitted.append(fits)
            break
    return fitted, notes


def per_round_ratios(results: dict, small: int, large: int, value) -> list[float]:
    """value(large) / value(small) in each round (sizes side by side)."""
    return [value(r[large]) / value(r[small]) for r in results["rounds"]]


def report(results: dict, args) -> bool:
    """Print the table and the ratios; True if every goal is met."""
    sizes, rounds, built = results["sizes"], results["rounds"], results["built"]
    med = statistics.median

    def m(n, value):  # median over rounds
        return med([value(r[n]) for r in rounds])

    loader_sps = lambda r: r["train_rows"] / med(r["epoch_s"][1:] or r["epoch_s"])  # noqa: E731
    first_sps = lambda r: r["train_rows"] / r["epoch_s"][0]  # noqa: E731
    growth = lambda r, kind: r["mem_epoch"][kind] - r["mem_before"][kind]  # noqa: E731
    rows = [
        ("shards (write_shard calls)", lambda n: f"{built[n]['shards']:,}"),
        ("cache on disk", lambda n: f"{built[n]['disk_bytes'] / 2**30:.2f} GiB"),
        ("build: write_shard, ms per clip", lambda n: f"{1e3 * built[n]['write_s'] / n:.2f}"),
        ("build: wall, s", lambda n: f"{built[n]['build_s']:.1f}"),
        ("FeatureCache.load (open + merge by id), s", lambda n: f"{m(n, lambda r: r['load_s']):.2f}"),
        ("  per 1k clips, s", lambda n: f"{1e3 * m(n, lambda r: r['load_s']) / n:.3f}"),
        ("MapperDataModule.setup (load + splits + views), s", lambda n: f"{m(n, lambda r: r['setup_s']):.2f}"),
        ("  per 1k clips, s", lambda n: f"{1e3 * m(n, lambda r: r['setup_s']) / n:.3f}"),
        ("resume: what is left to extract, s", lambda n: f"{m(n, lambda r: r['resume_s']):.2f}"),
        ("  per 1k clips, s", lambda n: f"{1e3 * m(n, lambda r: r['resume_s']) / n:.3f}"),
        ("epoch order (EpochShuffleSampler, resumed half-way), ms", lambda n: f"{1e3 * m(n, lambda r: r['order_s']):.2f}"),
        (f"loader samples/s, batch {args.batch}, first epoch", lambda n: f"{m(n, first_sps):,.0f}"),
        ("  first epoch: pages read from disk (major faults), per round",
         lambda n: ", ".join(f"{r[n]['first_epoch_faults'][0]:,}" for r in rounds)),
        (f"loader samples/s, batch {args.batch}, later epochs", lambda n: f"{m(n, loader_sps):,.0f}"),
        ("RSS before open, MiB (anon + file)", lambda n: mem_cell(rounds, n, "mem_before")),
        ("RSS after open, MiB (anon + file)", lambda n: mem_cell(rounds, n, "mem_open")),
        ("RSS after one epoch, MiB (anon + file)", lambda n: mem_cell(rounds, n, "mem_epoch")),
        ("anonymous RSS growth, open + epoch, % of cache", lambda n: f"{100 * m(n, lambda r: growth(r, 'anon')) / built[n]['disk_bytes']:.2f}%"),
    ]
    if args.steps:
        rows.append((f"training s/step, batch {args.train_batch}: median (best)",
                     lambda n: f"{m(n, lambda r: r['train']['step_s']):.2f} "
                               f"({min(r[n]['train']['best_s'] for r in rounds):.2f})"))
        rows.append(("training samples/s (median step)", lambda n: f"{args.train_batch / m(n, lambda r: r['train']['step_s']):.2f}"))

    small, large = sizes[0], sizes[-1]
    print(f"\n== figures: medians of {len(rounds)} interleaved round(s) ==")
    print("| figure | " + " | ".join(f"{n:,} clips" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for name, cell in rows:
        print(f"| {name} | " + " | ".join(cell(n) for n in sizes) + " |")

    ok = True
    if len(sizes) > 1:
        print(f"\n== {large:,} / {small:,} (per clip; medians of per-round ratios; goal: flat within "
              f"+-{FLAT_GOAL:.0%}, i.e. <= {1 + FLAT_GOAL:.2f}) ==")

        def side_by_side(value):
            return per_round_ratios(results, small, large, value)

        checks = [
            ("build: write_shard per clip", [built[large]["write_s"] / large / (built[small]["write_s"] / small)]),
            ("FeatureCache.load per clip", side_by_side(lambda r: r["load_s"] / r["n"])),
            ("MapperDataModule.setup per clip", side_by_side(lambda r: r["setup_s"] / r["n"])),
            ("resume per clip", side_by_side(lambda r: r["resume_s"] / r["n"])),
            ("epoch order per clip", side_by_side(lambda r: r["order_s"] / r["n"])),
            ("loader time per sample, first epoch", side_by_side(lambda r: 1 / first_sps(r))),
            ("loader time per sample, later epochs", side_by_side(lambda r: 1 / loader_sps(r))),
        ]
        if args.steps:  # the best step: other processes only ever add time to a step
            checks.append(("training time per step (best step)",
                           side_by_side(lambda r: r["train"]["best_s"])))
            checks.append(("training time per step (median step)",
                           side_by_side(lambda r: r["train"]["step_s"])))
        for name, ratios in checks:
            ratio = med(ratios)
            verdict = "met" if ratio <= 1 + FLAT_GOAL else "NOT MET"
            ok &= ratio <= 1 + FLAT_GOAL
            print(f"{name:40s} {ratio:6.3f}  {verdict:8s} rounds " + ", ".join(f"{x:.3f}" for x in ratios))
    print(f"\n== memory: RSS growth from before the open to after one epoch (goal at {large:,} clips: anonymous "
          f"memory <= {RSS_GOAL:.0%} of the cache) ==")
    for n in sizes:
        anon = m(n, lambda r: growth(r, "anon"))
        file = m(n, lambda r: growth(r, "file"))
        size = built[n]["disk_bytes"]
        verdict = ""
        if n == large:
            ok &= anon <= RSS_GOAL * size
            verdict = f"  goal: {'met' if anon <= RSS_GOAL * size else 'NOT MET'}"
        print(f"{n:>7,} clips: anonymous {anon / MiB:+8,.1f} MiB = {anon / size:6.2%} of the cache;"
              f" file-backed {file / MiB:+9,.0f} MiB = {file / size:4.0%} of the cache{verdict}")
    print("(file-backed = the cache's memory-mapped Arrow pages an epoch touched: page cache, shared by every "
          "process that maps the cache and dropped by the kernel under memory pressure, not allocated memory)")
    if args.steps:
        t = rounds[0][sizes[0]]["train"]
        print(f"training: MapperModule(preset={args.preset!r}), GPT-2 {t['layers']}x{t['width']}, "
              f"{t['params'] / 1e6:.1f}M parameters, {args.warmup} warm-up + {args.steps} timed steps per run")
    return ok


def mem_cell(rounds: list[dict], n: int, key: str) -> str:
    anon = statistics.median([r[n][key]["anon"] for r in rounds]) / MiB
    file = statistics.median([r[n][key]["file"] for r in rounds]) / MiB
    return f"{anon:,.0f} + {file:,.0f}"


# ----------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: comma-separated clip counts, not {text!r}") from None
    if not sizes or sizes[0] < 10:
        raise argparse.ArgumentTypeError("--sizes: every size must be at least 10 clips")
    return sizes


def main(argv=None) -> int:
    from extractors.presets import PRESETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1000,10000,77000"),
                   help="clip counts, comma-separated (default 1000,10000,77000)")
    p.add_argument("--keep", metavar="DIR", default=None, help="build the caches in DIR/n<N>/ and keep them")
    p.add_argument("--dir", default=None, help="where temporary caches go (default: the system temp folder)")
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS),
                   help="extractor preset of the cache and the mapper (default paper)")
    p.add_argument("--shard-size", type=int, default=64, help="clips per write_shard (extraction's default 64)")
    p.add_argument("--ranks", type=int, default=8, help="extraction processes whose shards are simulated")
    p.add_argument("--rounds", type=int, default=2, help="interleaved measuring rounds (default 2)")
    p.add_argument("--batch", type=int, default=48, help="loader batch (the paper's global batch 48)")
    p.add_argument("--train-batch", type=int, default=48, help="training global batch (default 48)")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps (default 1)")
    p.add_argument("--steps", type=int, default=2, help="timed training steps (default 2; 0: no training)")
    p.add_argument("--n-layer", type=int, default=12, help="mapper GPT-2 layers (default 12, the paper's)")
    p.add_argument("--n-head", type=int, default=12, help="mapper GPT-2 heads (default 12, the paper's)")
    p.add_argument("--loader-seconds", type=float, default=2.0,
                   help="time further epochs until they add up to this (default 2 s)")
    p.add_argument("--max-epochs", type=int, default=100, help="loader epochs at most, the first included (default 100)")
    p.add_argument("--repeats", type=int, default=3,
                   help="times each open / setup / resume is timed in a process; the median is kept (default 3)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--in-process", action="store_true",
                   help="measure in this process (quicker; memory figures then include earlier sizes)")
    p.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # the child's job
    p.add_argument("--measure-n", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.warmup, args.rounds, args.shard_size, args.ranks, args.repeats, args.max_epochs) < 1 or args.steps < 0:
        p.error("--warmup, --rounds, --shard-size, --ranks, --repeats, --max-epochs >= 1; --steps >= 0")

    if args.measure is not None:  # the child: one cache, one JSON line
        print(RESULT_TAG + json.dumps(measure(args.measure, args.measure_n, args)), flush=True)
        return 0

    from recipes.machine import machine_line
    from extractors.presets import get_preset

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    print("== machine ==")
    print(machine_line(torch.device("cpu"), ("datasets", "pyarrow", "lightning")))
    usable = len(os.sched_getaffinity(0))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {usable} usable cores", flush=True)

    shapes = get_preset(args.preset).dims.shapes()
    per_clip = row_bytes(shapes)
    if args.keep:
        taken = [f"n{n}" for n in args.sizes if (Path(args.keep) / f"n{n}").exists()]
        if taken:
            p.error(f"--keep {args.keep}: {', '.join(taken)} already there; remove them or keep elsewhere")
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mfm-scale-", dir=args.dir))
    base.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(base).free
    sizes, notes = fitting_sizes(args.sizes, free, per_clip)
    print(f"preset {args.preset}: {', '.join(f'{k} {tuple(v)}' for k, v in shapes.items())} float16 = "
          f"{per_clip:,} B per clip; {free / 2**30:.1f} GiB free on {base}'s disk")
    for note in notes:
        print("NOTE: " + note)
    if not sizes:
        print("no size fits on this disk")
        return 1

    built: dict[int, dict] = {}
    try:
        print(f"\n== building {len(sizes)} cache(s) through FeatureCache.write_shard "
              f"({args.shard_size} clips per shard, {args.ranks} simulated ranks) ==", flush=True)
        for n in sizes:
            root = base / f"n{n}"
            built[n] = build_cache(root, n, args.preset, args.shard_size, args.ranks, args.seed)
            print(f"{n:>7,} clips: {built[n]['shards']:,} shards, {built[n]['disk_bytes'] / 2**30:.2f} GiB, "
                  f"built in {built[n]['build_s']:.1f} s (write_shard {built[n]['write_s']:.1f} s)", flush=True)

        results: dict = {"sizes": sizes, "built": built, "rounds": []}
        print(f"\n== measuring, {args.rounds} interleaved round(s), "
              f"{'in this process' if args.in_process else 'a fresh process per size'} ==", flush=True)
        for r in range(args.rounds):
            order = sizes if r % 2 == 0 else sizes[::-1]
            results["rounds"].append({})
            for n in order:
                root = base / f"n{n}"
                res = measure(root, n, args) if args.in_process else measure_in_child(root, n, args)
                results["rounds"][-1][n] = res
                train = f", train {res['train']['step_s']:.2f} s/step" if "train" in res else ""
                print(f"round {r} {n:>7,} clips: load {res['load_s']:.2f} s, setup {res['setup_s']:.2f} s, "
                      f"resume {res['resume_s']:.2f} s, loader {res['train_rows'] / res['epoch_s'][0]:,.0f} / "
                      f"{res['train_rows'] / statistics.median(res['epoch_s'][1:] or res['epoch_s']):,.0f} samples/s "
                      f"(first / later epochs){train}", flush=True)
        ok = report(results, args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    where = f"caches kept in {base}" if args.keep else "caches deleted"
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}; total wall time {time.perf_counter() - started:.0f} s; "
          f"{where}")
    print("all goals met" if ok else "some goals NOT MET (see above)")
    return 0  # a missed goal is a finding, not a failure of the benchmark


if __name__ == "__main__":
    sys.exit(main())
