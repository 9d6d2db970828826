"""`python -m recipes.make_toy_data --out DIR [--num-clips N] [--seed S]`: build (or complete) a
toy-foley world; the world itself is `mapper.training.toy_world`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mapper.training.toy_world import make_toy_world, world
from recipes.cli import usage_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.make_toy_data", description=world.__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="directory of the world")
    parser.add_argument("--num-clips", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_clips < 1:
        return usage_error(f"--num-clips must be >= 1, got {args.num_clips}")
    try:
        print(make_toy_world(args.out, args.num_clips, args.seed, verbose=True))
    except ValueError as error:  # a directory holding another world: a usage error, no traceback
        return usage_error(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
