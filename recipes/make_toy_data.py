"""`python -m recipes.make_toy_data --out DIR [--num-clips N] [--seed S] [--class-set other]`: build (or
complete) a toy-foley world; the world itself is `toy_world`."""
from __future__ import annotations

import sys
from pathlib import Path

from toy_world import make_toy_world, world
from toy_world.world import CLASS_SETS
from recipes.cli import OneLineArgumentParser, check_folder_option, int_in_range, usage_error

MAX_CLIPS = 100_000  # clip ids have five digits (toy_00000..toy_99999)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="python -m recipes.make_toy_data", description=world.__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="directory of the world (created if absent)")
    parser.add_argument("--num-clips", type=int_in_range(1, MAX_CLIPS), default=100,
                        help=f"clips in the world, 1 to {MAX_CLIPS} (a toy: a few hundred train a mapper)")
    parser.add_argument("--seed", type=int_in_range(0), default=0, help="numpy seeds are non-negative")
    parser.add_argument("--class-set", default="default", choices=list(CLASS_SETS),
                        help="default: the five classes the toy decoder and classifier know; other: four others")
    args = parser.parse_args(argv)
    try:
        check_folder_option("--out", args.out)
    except ValueError as error:
        return usage_error(error)
    try:
        print(make_toy_world(args.out, args.num_clips, args.seed, verbose=True, class_set=args.class_set))
    except ValueError as error:  # a directory holding another world: a usage error, no traceback
        return usage_error(f"--out {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
