"""`python -m recipes.extract_features --videos DIR_OR_CSV --out CACHE --preset tiny|paper [--devices N] [--num-nodes M] [--batch-size B]`

Fills (or resumes) a feature cache: one row per clip with CAVP, TimeChat and AudioMAE features.
Runs through Lightning Fabric: with `--devices N` (and `--num-nodes M`, one command per node, the
cache on a shared filesystem) it starts N DDP processes per node, each extracting its share of the
clips and writing its own shards. Clips already in the cache are skipped, so a rerun after an
interruption (even `kill -9`) finishes the job without losing or duplicating a clip. Bad files
are logged, skipped and listed in the report at the end. One extraction writes a cache at a time:
a second one into the same --out is refused while the first runs. Unreadable shards are moved to
CACHE/corrupt/ and their clips extracted again.

Training extraction (default) needs the audio target and skips clips without an audio track;
`--inference` keeps them (no AudioMAE target for those rows). For long videos the CSV's `start`
column picks the 10 s window.

`python -m recipes.extract_features --out CACHE --repair` makes a cache that refuses to load
because a clip is in two rows loadable again (keeps each clip's first row; see FeatureCache.repair).

Exit status: 0 if any clip was extracted or everything was already done, 1 if every remaining
clip failed, 2 for unusable arguments (missing CSV, cache of another preset, a cache another
extraction holds, released weights missing or refused, ...), checked before any model is built.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from recipes.cli import ITEMS_FAILED, USAGE_ERROR, OneLineArgumentParser, check_folder_option, int_in_range, usage_error

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="python -m recipes.extract_features", description=__doc__.split("\n\n")[1])
    parser.add_argument("--videos", default=None,
                        help="folder of videos, or a VGGSound-style CSV (id,start,label,split); required unless --repair")
    parser.add_argument("--video-dir", default=None, help="where the CSV's videos live (default: CSV folder/videos)")
    parser.add_argument("--out", required=True, help="cache folder (created or resumed)")
    parser.add_argument("--preset", default="tiny", help="extractor preset (tiny: random offline weights; paper: released)")
    parser.add_argument("--devices", type=int_in_range(1), default=1,
                        help="processes per node (GPUs, or CPU processes with --accelerator cpu)")
    parser.add_argument("--num-nodes", type=int_in_range(1), default=1, help="nodes (run the same command on each)")
    parser.add_argument("--accelerator", default="auto", choices=ACCELERATORS)
    parser.add_argument("--batch-size", type=int_in_range(1), default=8, help="clips per model call")
    parser.add_argument("--num-workers", type=int_in_range(0), default=None,
                        help="decoding worker processes per device (default: the usable cores per device minus one, 1 to 8)")
    parser.add_argument("--shard-size", type=int_in_range(1), default=64, help="clips per cache shard (the unit of resumption)")
    parser.add_argument("--dtype", default=None, choices=["float16", "float32"],
                        help="stored feature dtype of a new cache (default float16; an existing cache keeps its own)")
    parser.add_argument("--inference", action="store_true",
                        help="inference extraction: keep clips without audio (no AudioMAE target for them)")
    parser.add_argument("--limit", type=int_in_range(1), default=None, help="only the first N clips")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--repair", action="store_true",
                        help="only repair --out: keep the first row of each clip (a cache that refuses to load for a "
                             "clip in two rows), move unreadable shards aside")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from extractors.cache import CacheMismatchError, FeatureCache
    from extractors.presets import PRESETS, get_preset

    cache = FeatureCache(args.out)
    try:
        check_folder_option("--out", args.out)
        if args.repair:
            if args.videos is not None:
                raise ValueError("--repair only repairs --out; run the extraction (--videos) separately")
            return repair(cache)
        if args.videos is None:
            raise ValueError("--videos is required: a folder of videos or a CSV (id,start,label,split)")
        if args.devices * args.num_nodes > 1 and argv is not None and list(argv) != sys.argv[1:]:
            # Fabric starts the other ranks by re-running this command line (sys.argv), not `argv`.
            raise ValueError("--devices/--num-nodes: multi-process extraction must be started from the command line "
                             "(python -m recipes.extract_features ... --devices N)")
        check_accelerator(args.accelerator, args.devices)
        if args.preset not in PRESETS:
            raise ValueError(f"--preset {args.preset!r}: unknown; known presets: {', '.join(sorted(PRESETS))}")
        preset = get_preset(args.preset)
        check_released_weights(preset)
        items = clips_of(args.videos, args.video_dir)[: args.limit]
        if cache.exists() or cache.orphaned_shards():  # every rank checks, read-only, before any process starts
            try:
                cache.initialise(preset, dtype=args.dtype, require_audio=not args.inference)
            except CacheMismatchError as error:
                raise ValueError(f"--out {error}") from None
    except ValueError as error:
        return usage_error(error)
    return run(args, items, preset, cache)


def clips_of(videos: str, video_dir: str | None) -> list:
    """The clips --videos lists; ValueError naming the option for anything unusable."""
    from extractors.manifest import list_clips

    if video_dir is not None and not Path(video_dir).is_dir():
        raise ValueError(f"--video-dir {video_dir}: no such folder")
    try:
        items = list_clips(videos, video_dir)
    except UnicodeDecodeError:
        raise ValueError(f"--videos {videos}: not a CSV; give a folder of videos or a CSV (id,start,label,split)") from None
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"--videos {error}") from None
    if not items:
        raise ValueError(f"--videos {videos}: lists no clips (a folder needs video files, a CSV rows id,start,label,split)")
    return items


def check_released_weights(preset) -> None:
    """A preset of released weights: every file there, and the checkpoints that can be checked without
    building their model (CAVP's: weights-only unpickling onto the meta device, keys and shapes) usable;
    else ValueError, one line naming the file and the reason, before any model is built."""
    from extractors.cavp import CAVPConfig, check_released
    from extractors.checkpoint import CheckpointError
    from extractors.encoders import WEIGHTS_ENV, missing_released_files

    weights_dir = preset.resolved_weights_dir()
    if weights_dir is None:
        return  # random weights from the preset's seed
    configs = [*preset.visual.values(), preset.audiomae]
    missing = [name for config in configs for name in missing_released_files(config, weights_dir)]
    if missing:
        raise ValueError(f"--preset {preset.name}: {weights_dir}: released weights missing: {', '.join(missing)} "
                         f"(set {WEIGHTS_ENV} or the preset's weights_dir to the folder holding them)")
    for config in preset.visual.values():
        if isinstance(config, CAVPConfig):
            try:
                check_released(config, weights_dir)
            except (CheckpointError, FileNotFoundError) as error:
                raise ValueError(str(error)) from None


def check_accelerator(name: str, devices: int) -> None:
    """Fabric would fail on these only after starting; say it before anything starts."""
    import torch

    if name in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ValueError(f"--accelerator {name}: no CUDA device on this machine; use cpu or auto")
    if name in ("cuda", "gpu", "auto") and torch.cuda.is_available() and devices > torch.cuda.device_count():
        raise ValueError(f"--devices {devices}: this machine has {torch.cuda.device_count()} CUDA devices")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--accelerator mps: MPS is not available on this machine; use cpu or auto")


def repair(cache) -> int:
    from extractors.cache import CacheBusyError, CacheMismatchError

    try:
        done = cache.repair()
        clips = len(cache.completed_ids())
    except (FileNotFoundError, CacheMismatchError, CacheBusyError) as error:
        return usage_error(f"--out {error}")
    print("\n".join([*done, f"{cache.root}: {'repaired' if done else 'nothing to repair'}; {clips} clips, one row each"]))
    return 0


def run(args: argparse.Namespace, items, preset, cache) -> int:
    """Launch the processes and extract; rank 0 prints the report of all ranks. The exit status."""
    import lightning as L

    from extractors.cache import CacheBusyError, CacheMismatchError, DuplicateRowsError
    from extractors.checkpoint import CheckpointError
    from extractors.extraction import extract_to_cache

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
    try:
        report = extract_to_cache(  # given the preset, it builds the models once the cache is claimed
            items, cache, preset,
            num_workers=workers, shard_size=args.shard_size, batch_size=args.batch_size,
            require_audio=not args.inference, dtype=args.dtype, progress=not args.no_progress, fabric=fabric,
        )
    except (CacheBusyError, CacheMismatchError, DuplicateRowsError) as error:  # raised on every rank
        return usage_error(f"--out {error}") if fabric.global_rank == 0 else USAGE_ERROR
    except CheckpointError as error:  # a released file refused while loading (one that main could not check first)
        return usage_error(error) if fabric.global_rank == 0 else USAGE_ERROR
    if fabric.global_rank != 0:
        return 0  # rank 0 reports for everyone
    print(report.summary())
    nothing_worked = report.extracted == 0 and report.failed and report.skipped_done == 0
    return ITEMS_FAILED if nothing_worked else 0


def console() -> None:
    """The `mfm-extract` command."""
    sys.exit(main())


if __name__ == "__main__":
    console()
