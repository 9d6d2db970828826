"""`python -m recipes.extract_features --videos DIR_OR_CSV --out CACHE --preset tiny|paper`

Fills (or resumes) a feature cache: one row per clip with CAVP, TimeChat and AudioMAE features.
Clips already in the cache are skipped; bad files are reported at the end and skipped. Exits 0
if any clip was extracted or everything was already done, 1 if every remaining clip failed.
"""
from __future__ import annotations

import argparse
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m recipes.extract_features")
    parser.add_argument("--videos", required=True, help="folder of videos, or a VGGSound-style CSV (id,start,label,split)")
    parser.add_argument("--video-dir", default=None, help="where the CSV's videos live (default: CSV folder/videos)")
    parser.add_argument("--out", required=True, help="cache folder (created or resumed)")
    parser.add_argument("--preset", default="tiny", help="extractor preset (tiny: random offline weights; paper: released)")
    parser.add_argument("--num-workers", type=int, default=2, help="decoding worker processes")
    parser.add_argument("--shard-size", type=int, default=64, help="clips per cache shard (the unit of resumption)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="stored feature dtype")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from extractors.cache import FeatureCache
    from extractors.clips import list_clips
    from extractors.extraction import extract_to_cache
    from extractors.frozen import FrozenExtractors
    from extractors.presets import get_preset

    try:
        items = list_clips(args.videos, args.video_dir)[: args.limit]
        preset = get_preset(args.preset)
        cache = FeatureCache(args.out)
        cache.initialise(preset, dtype=args.dtype)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = extract_to_cache(items, cache, FrozenExtractors.from_preset(preset), num_workers=args.num_workers, shard_size=args.shard_size)
    print(report.summary())
    nothing_worked = report.extracted == 0 and report.failed and report.skipped_done == 0
    return 1 if nothing_worked else 0


if __name__ == "__main__":
    sys.exit(main())
