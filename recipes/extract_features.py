"""`python -m recipes.extract_features --videos DIR_OR_CSV --out CACHE --preset tiny|paper [--devices N] [--num-nodes M] [--batch-size B]`

Fills (or resumes) a feature cache: one row per clip with CAVP, TimeChat and AudioMAE features.
Runs through Lightning Fabric: with `--devices N` (and `--num-nodes M`, one command per node, the
cache on a shared filesystem) it starts N DDP processes per node, each extracting its share of the
clips and writing its own shards. Clips already in the cache are skipped, so a rerun after an
interruption (even `kill -9`) finishes the job without losing or duplicating a clip. Bad files
are logged, skipped and listed in the report at the end.

Training extraction (default) needs the audio target and skips clips without an audio track;
`--inference` keeps them (no AudioMAE target for those rows). For long videos the CSV's `start`
column picks the 10 s window.

Exit status: 0 if any clip was extracted or everything was already done, 1 if every remaining
clip failed, 2 for unusable arguments (missing CSV, cache of another preset, ...).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from recipes.cli import ITEMS_FAILED, usage_error


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recipes.extract_features")
    parser.add_argument("--videos", required=True, help="folder of videos, or a VGGSound-style CSV (id,start,label,split)")
    parser.add_argument("--video-dir", default=None, help="where the CSV's videos live (default: CSV folder/videos)")
    parser.add_argument("--out", required=True, help="cache folder (created or resumed)")
    parser.add_argument("--preset", default="tiny", help="extractor preset (tiny: random offline weights; paper: released)")
    parser.add_argument("--devices", type=int, default=1, help="processes per node (GPUs, or CPU processes with --accelerator cpu)")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes (run the same command on each)")
    parser.add_argument("--accelerator", default="auto", help="auto, cpu, cuda or gpu")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per model call")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="decoding worker processes per device (default: the usable cores per device minus one, 1 to 8)")
    parser.add_argument("--shard-size", type=int, default=64, help="clips per cache shard (the unit of resumption)")
    parser.add_argument("--dtype", default=None, choices=["float16", "float32"],
                        help="stored feature dtype of a new cache (default float16; an existing cache keeps its own)")
    parser.add_argument("--inference", action="store_true",
                        help="inference extraction: keep clips without audio (no AudioMAE target for them)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from extractors.cache import FeatureCache
    from extractors.manifest import list_clips
    from extractors.presets import get_preset

    multi_process = args.devices * args.num_nodes > 1
    try:
        if args.devices < 1 or args.num_nodes < 1 or args.batch_size < 1 or args.shard_size < 1:
            raise ValueError("--devices, --num-nodes, --batch-size and --shard-size must be >= 1")
        if multi_process and argv is not None and list(argv) != sys.argv[1:]:
            # Fabric starts the other ranks by re-running this command line (sys.argv), not `argv`.
            raise ValueError("multi-process extraction must be started from the command line "
                             "(python -m recipes.extract_features ... --devices N)")
        items = list_clips(args.videos, args.video_dir)[: args.limit]
        preset = get_preset(args.preset)
        cache = FeatureCache(args.out)
        if cache.exists():  # every rank checks, read-only, before any process starts
            cache.initialise(preset, dtype=args.dtype, require_audio=not args.inference)
    except (FileNotFoundError, ValueError, KeyError) as error:
        return usage_error(error)

    report = run(args, items, preset, cache)
    if report is None:
        return 0  # a rank other than 0: rank 0 reports for everyone
    print(report.summary())
    nothing_worked = report.extracted == 0 and report.failed and report.skipped_done == 0
    return ITEMS_FAILED if nothing_worked else 0


def run(args: argparse.Namespace, items, preset, cache):
    """Launch the processes and extract; the report of all ranks on rank 0, None elsewhere."""
    import lightning as L

    from extractors.extraction import extract_to_cache
    from extractors.frozen import FrozenExtractors

    multi_process = args.devices * args.num_nodes > 1
    fabric = L.Fabric(
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy="ddp" if multi_process else "auto",
    )
    fabric.launch()
    logging.basicConfig(format=f"[rank {fabric.global_rank}] %(levelname)s %(message)s")
    workers = args.num_workers
    if workers is None:
        workers = max(1, min(8, len(os.sched_getaffinity(0)) // args.devices - 1))
    report = extract_to_cache(
        items, cache, FrozenExtractors.from_preset(preset),
        num_workers=workers, shard_size=args.shard_size, batch_size=args.batch_size,
        require_audio=not args.inference, dtype=args.dtype, progress=not args.no_progress, fabric=fabric,
    )
    return report if fabric.global_rank == 0 else None


if __name__ == "__main__":
    sys.exit(main())
