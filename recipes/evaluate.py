"""`python -m recipes.evaluate --generated DIR --reference DIR [--videos DIR] --audio-length 8 --preset paper --out DIR`

Scores generated audio the way av-benchmark (MMAudio's evaluation, used by every recent V2A paper)
does: FD over PaSST / PANNs / VGGish embeddings, KL over PANNs and PaSST, Inception Score,
IB-Score (ImageBind, needs --videos) and DeSync (Synchformer, needs --videos). Files pair by
exact name (or --name-rule vggsound); unpaired, unreadable and too-short files (a dangling symlink
and a folder with an audio name too) are named and left out. Embeddings are cached by file content
and embedder (--cache), so a rerun embeds only what is new. With --videos pointing at a toy world
(it has world.json), the event-sync error against the world's true event times is reported too.

--preset: paper (every embedder at its released weights), tiny (every embedder random: tests), or
toy (for toy worlds: PANNs is the classifier trained on the toy world that ships with the package,
so FD-PANN, KL-PANNS and ISC-PANNS measure toy-class content; the other embedders have no toy
weights and run tiny). Each embedder's preset is written to metrics.json ("embedder_presets").

Writes OUT/metrics.json (av-benchmark's key names; IB-Score also x100, labelled) and OUT/metrics.md,
and prints the table in the paper's column order. Exit status: 0 all files scored, 1 some were
skipped (listed), 2 a wrong command line (nothing was embedded).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from evaluation.pairing import NAME_RULES
from evaluation.protocol import SCORED_SECONDS
from recipes.cli import ITEMS_FAILED, OneLineArgumentParser, check_folder_option, int_in_range, usage_error

# The embedders (torch) are imported once the command line is parsed: --help and a wrong option answer at
# once. The names below are those of their owners, evaluation.embedders.SUITE_PRESETS and
# evaluation.suite.ALL_METRICS, which cannot be imported without torch; tests/test_console.py checks they agree.
SUITE_PRESETS = ("tiny", "toy", "paper")
ALL_METRICS = ("fd_passt", "fd_panns", "fd_vggish", "kl_panns", "kl_passt", "is_panns", "is_passt", "ib_score",
               "desync")


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="python -m recipes.evaluate", description=__doc__.split("\n\n")[1])
    parser.add_argument("--generated", required=True, help="folder of generated audio (.wav/.flac/.ogg/.mp3)")
    parser.add_argument("--reference", required=True, help="folder of reference audio, same names")
    parser.add_argument("--videos", default=None, help="folder of the reference videos, same names (IB-Score, DeSync)")
    parser.add_argument("--out", required=True, help="folder for metrics.json and metrics.md")
    parser.add_argument("--audio-length", type=float, default=SCORED_SECONDS,
                        help="seconds of each file that are scored (av-benchmark's protocol for VGGSound: "
                             f"{SCORED_SECONDS:g})")
    parser.add_argument("--preset", default="paper", choices=SUITE_PRESETS,
                        help="embedders: paper (released weights from --weights-dir / $MFM_WEIGHTS), tiny (random, "
                             "tests) or toy (PANNs trained on the toy world, shipped; the others tiny)")
    parser.add_argument("--metrics", default=",".join(ALL_METRICS),
                        help=f"comma-separated, from: {', '.join(ALL_METRICS)}")
    parser.add_argument("--name-rule", default="exact", choices=NAME_RULES,
                        help="exact: same stem; vggsound: <ytid>_<start> from VGGSound generation names")
    parser.add_argument("--cache", default=None, help="embedding cache folder (default: $MFM_HOME/embeddings)")
    parser.add_argument("--no-cache", action="store_true", help="embed everything, store nothing")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int_in_range(1, 4096), default=16, help="files per model call")
    parser.add_argument("--devices", type=int_in_range(1, 64), default=1,
                        help="processes embedding in parallel (GPUs with --device cuda, else CPU processes); "
                             "each takes every N-th file, rank 0 computes the metrics")
    parser.add_argument("--weights-dir", default=None, help="folder with the released files (default: $MFM_WEIGHTS)")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace):
    """SuiteOptions from the command line; ValueError / FileNotFoundError naming the option."""
    import torch

    from evaluation.suite import VIDEO_METRICS, SuiteOptions
    from mapper.last_mapper import home

    for option in ("generated", "reference"):
        if not Path(getattr(args, option)).is_dir():
            raise FileNotFoundError(f"--{option} {getattr(args, option)}: no such folder")
    if args.videos is not None and not Path(args.videos).is_dir():
        raise FileNotFoundError(f"--videos {args.videos}: no such folder")
    if not (math.isfinite(args.audio_length) and 0 < args.audio_length <= 600):
        raise ValueError(f"--audio-length {args.audio_length}: must be a number of seconds in (0, 600]")
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(f"--metrics {args.metrics!r}: {', '.join(unknown) or 'empty'}; allowed: {', '.join(ALL_METRICS)}")
    if args.videos is None and set(metrics) & set(VIDEO_METRICS) and args.metrics != ",".join(ALL_METRICS):
        raise ValueError(f"--metrics {', '.join(sorted(set(metrics) & set(VIDEO_METRICS)))} need --videos")
    if args.videos is None:
        metrics = tuple(m for m in metrics if m not in VIDEO_METRICS)  # the default set, without videos
    check_folder_option("--out", args.out)
    cache = None if args.no_cache else Path(args.cache) if args.cache else home() / "embeddings"
    if cache is not None:
        check_folder_option("--cache", cache)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"--device {args.device!r}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"--device {args.device}: no such CUDA device here")
    if args.devices > 1 and cache is None:
        raise ValueError("--devices N shares the work through the embedding cache; drop --no-cache")
    if args.devices > 1 and device.type == "cuda" and args.devices > torch.cuda.device_count():
        raise ValueError(f"--devices {args.devices}: only {torch.cuda.device_count()} CUDA devices here")
    if args.preset == "paper":
        _check_released_files(args.weights_dir, metrics)
    if args.preset == "toy":
        _check_shipped_files(metrics)
    return SuiteOptions(
        generated=Path(args.generated), reference=Path(args.reference), out=Path(args.out),
        videos=Path(args.videos) if args.videos else None, audio_length=args.audio_length, preset=args.preset,
        metrics=metrics, name_rule=args.name_rule, cache=cache, device=args.device, batch_size=args.batch_size,
        weights_dir=args.weights_dir,
    )  # fmt: skip


def _check_released_files(weights_dir, metrics) -> None:
    """Every released file the chosen metrics need, checked before anything is embedded."""
    from evaluation import imagebind, panns, passt, synchformer, vggish
    from evaluation.evaluate import METRICS
    from evaluation.weights import find_released_file

    modules = {"panns": panns, "vggish": vggish, "passt": passt, "ib_score": imagebind, "desync": synchformer}
    for name in dict.fromkeys(METRICS.get(m, m) for m in metrics):
        find_released_file(modules[name].RELEASED, weights_dir)


def _check_shipped_files(metrics) -> None:
    """The weights that ship with the package for ``--preset toy`` (PANNs'), present before any work."""
    from evaluation import panns
    from evaluation.evaluate import METRICS

    if "panns" in {METRICS.get(m) for m in metrics} and not panns.SHIPPED["toy"].is_file():
        raise FileNotFoundError(f"--preset toy: {panns.SHIPPED['toy']} is missing (a broken installation; "
                                f"python -m recipes.pretrain_toy_classifier makes it)")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        options = options_from(args)
    except (FileNotFoundError, ValueError) as error:
        return usage_error(error)
    from evaluation.evaluate import format_table
    from evaluation.suite import run_suite, write_report

    if args.devices > 1:
        if argv is not None and list(argv) != sys.argv[1:]:
            # Fabric starts the other ranks by re-running this command line (sys.argv), not `argv`.
            return usage_error("--devices N must be started from the command line (python -m recipes.evaluate ...)")
        options = _embed_in_parallel(options, args.devices)
        if options is None:
            return 0  # a rank other than 0: rank 0 reports for everyone
    try:
        result = run_suite(options)
    except (FileNotFoundError, ValueError) as error:  # e.g. two files with one name
        return usage_error(error)
    # audio-named entries that are no readable file (a dangling symlink, a folder named x.wav): left out
    # of the pairing, reported and counted as skipped like a file that cannot be decoded
    result.failed.update({str(path): reason for path, reason in result.pairing.unusable.items()})
    path = write_report(options, result)
    print(format_table(result.metrics))
    if result.toy is not None:
        print(f"toy world: event-sync error {result.toy['event_sync_error_s']:.3f} s over {result.toy['clips']} clips "
              f"(wrong-video baseline {result.toy['wrong_video_baseline_s']:.3f} s)")
    skipped = [*map(str, result.pairing.unpaired_generated), *map(str, result.pairing.unpaired_reference)]
    for name in skipped:
        print(f"  unpaired: {name}", file=sys.stderr)
    for name in result.unpaired_videos:
        print(f"  no video for: {name}", file=sys.stderr)
    for reason in result.failed.values():
        print(f"  skipped: {reason}", file=sys.stderr)
    print(f"metrics written to {path}")
    return ITEMS_FAILED if result.skipped_anything else 0


def _embed_in_parallel(options, devices: int):
    """Every rank embeds its share into the cache; rank 0 gets the options to compute the metrics
    (everything is cached by then), the others None."""
    import dataclasses

    import lightning as L

    fabric = L.Fabric(accelerator="cuda" if options.device.startswith("cuda") else "cpu", devices=devices,
                      strategy="ddp")
    fabric.launch()
    device = str(fabric.device)
    run_suite_share = dataclasses.replace(options, device=device, shard=(fabric.global_rank, fabric.world_size),
                                          embed_only=True)
    from evaluation.suite import run_suite

    run_suite(run_suite_share, log=lambda line: None)
    fabric.barrier()
    return dataclasses.replace(options, device=device) if fabric.global_rank == 0 else None


def console() -> None:
    """The `mfm-evaluate` command."""
    sys.exit(main())


if __name__ == "__main__":
    console()
