"""`python -m recipes.paper_tables [--scale toy|paper] --cache CACHE --videos TEST_VIDEOS --out DIR`

The paper's ablation tables in one command: for every row (visual encoders, fusion, mapper) and seed,
train the variant (the scale's recipe + its ablation overlay), generate the test clips with it, score
them, and write DIR/tables.md (mean ± std over seeds), DIR/tables.json and DIR/convergence.png
(autoregressive mapper vs Diff-Mapper over epochs). Resumable: every step of every run leaves a done
marker in DIR/runs/VARIANT/seedK/, and a rerun does only what is missing. --print-plan lists the runs
(and at --scale paper their estimated GPU hours) and exits. Exit status: 0 done, 1 a run failed
(named; the others were completed), 2 a wrong command line (nothing was written).
"""
from __future__ import annotations

import argparse
import sys

from recipes.cli import ITEMS_FAILED, OneLineArgumentParser, int_in_range, usage_error


def parse_args(argv=None) -> argparse.Namespace:
    from recipes.tables.grid import TABLES, VARIANTS
    from recipes.tables.scales import SCALES

    toy = SCALES["toy"]
    parser = OneLineArgumentParser(prog="python -m recipes.paper_tables", description=__doc__.split("\n\n")[1])
    parser.add_argument("--scale", default="toy", choices=("toy", "paper"),
                        help="toy: the toy recipe on the toy world (CPU); paper: paper.yaml on a VGGSound cache")
    parser.add_argument("--cache", default=None,
                        help=f"feature cache to train on (toy default: {toy.cache}, built with the world if absent)")
    parser.add_argument("--videos", default=None,
                        help="test videos: a toy world, a VGGSound-style CSV or a folder (its test split, else all; "
                             f"toy default: {toy.videos})")
    parser.add_argument("--out", default=None, help="folder for the runs, tables.md, tables.json, convergence.png "
                                                     "(default: runs/tables/SCALE, runs/tables/quick)")
    parser.add_argument("--seeds", type=int_in_range(1, 100), default=None, help="seeds per variant (default 3)")
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated, from: {', '.join(TABLES)}")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny toy grid for tests: 1 seed, 2 epochs, 3 test clips, 4 sampling steps")
    parser.add_argument("--print-plan", action="store_true",
                        help="list the runs (and GPU hours at --scale paper), exit")
    cluster = parser.add_argument_group("parallel runs (one run per job or node)")
    cluster.add_argument("--only", default=None,
                         help=f"run only these variants (comma-separated: {', '.join(VARIANTS)})")
    cluster.add_argument("--seed", type=int_in_range(0, 99), default=None, help="run only this seed (< --seeds)")
    cluster.add_argument("--devices", type=int_in_range(1, 1024), default=None,
                         help="Lightning trainer.devices for each training run (default: the recipe's)")
    cluster.add_argument("--num-nodes", type=int_in_range(1, 1024), default=None,
                         help="Lightning trainer.num_nodes (one run across nodes: needs --only and --seed)")
    parser.add_argument("--device", default=None,
                        help="generation and evaluation device (default: cuda if present, else cpu)")
    parser.add_argument("--audioldm2", default=None,
                        help="the decoder every run's mapper renders with (default: the recipe's; tiny: random, fast)")
    parser.add_argument("--no-labels", action="store_true", help="generate without the clips' labels as prompts")
    parser.add_argument("--curve-every", type=int_in_range(0, 1000), default=None,
                        help="epochs between the convergence figure's points (default 10, quick 1; 0: no figure)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from recipes.tables.options import options_from

    try:
        options = options_from(args)
    except (FileNotFoundError, ValueError) as error:
        return usage_error(error)
    if options.print_plan:
        from recipes.tables.plan import format_plan

        print(format_plan(options))
        return 0
    return _run(options)


def _run(options) -> int:
    import torch

    from recipes.machine import machine_line
    from recipes.tables.outputs import missing_steps, write_outputs
    from recipes.tables.runner import launcher_rank, run_grid

    try:
        failures, context = run_grid(options)
    except (FileNotFoundError, ValueError) as error:  # the data could not be prepared (e.g. a broken video)
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return ITEMS_FAILED
    if launcher_rank() != 0:
        return 1 if failures else 0
    missing = missing_steps(options)
    if failures:
        print(f"{len(failures)} run(s) failed:\n  " + "\n  ".join(failures), file=sys.stderr)
    if missing:
        print(f"tables not written: {len(missing)} step(s) of the grid are not done yet (e.g. {missing[0]}); "
              "rerun without --only / --seed once every run is done")
        return ITEMS_FAILED if failures else 0
    for path in write_outputs(options, context, machine_line(torch.device(options.device))):
        print(f"wrote {path}")
    return ITEMS_FAILED if failures else 0


def console() -> None:
    """The `mfm-tables` command."""
    sys.exit(main())


if __name__ == "__main__":
    console()
