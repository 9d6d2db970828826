"""`python -m recipes.pretrain_toy_classifier [--seed 2] [--num-clips 400] [--epochs 8] [--batch-size 16]
[--threads 1] [--out DIR]`

Trains the evaluation suite's toy-world audio classifier (PANNs Cnn14 at its `toy` preset, one
output per toy class) on a toy-world plan of its own seed, sound only, and writes
`panns_toy.safetensors` and `PROVENANCE.json` to --out (default: the package's
evaluation/toy_weights, the file `recipes.evaluate --preset toy` loads). Prints the held-out
accuracy on the plan's test split. About 2-3 minutes on 2 CPU cores. Deterministic for a seed and
thread count on one machine. Training itself is `evaluation.toy_classifier`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from recipes.cli import OneLineArgumentParser, check_folder_option, int_in_range, usage_error

PROG = "python -m recipes.pretrain_toy_classifier"
# the defaults below are evaluation.toy_classifier.TrainConfig's, written out: that module is imported only once
# every argument is checked (importing it takes seconds)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1])
    parser.add_argument("--seed", type=int_in_range(0, 2**32 - 1), default=2,
                        help="the toy world plan's seed and every other random choice (0 and 1 are taken: "
                             "the mapper's and the toy decoder's worlds)")
    parser.add_argument("--num-clips", type=int_in_range(20, 20_000), default=400,
                        help="clips planned: about 70%% train, 15%% test")
    parser.add_argument("--epochs", type=int_in_range(1, 1000), default=8)
    parser.add_argument("--batch-size", type=int_in_range(2, 512), default=16,
                        help="clips per step (BatchNorm needs at least 2)")
    parser.add_argument("--threads", type=int_in_range(1, 256), default=1,
                        help="torch CPU threads (one by default: on shared cores a second one mostly waits at "
                             "OpenMP barriers; 4x slower here with another job running)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the two files (default: the package's evaluation/toy_weights)")
    args = parser.parse_args(argv)
    if args.out is not None:
        try:
            check_folder_option("--out", args.out)
        except ValueError as error:
            return usage_error(error)

    # every argument is checked: now the (slow) imports and the work
    import torch

    from evaluation.toy_classifier import WEIGHTS_FILE, TrainConfig, save_classifier, train_toy_classifier

    torch.set_num_threads(args.threads)
    out = args.out if args.out is not None else WEIGHTS_FILE.parent
    config = TrainConfig(seed=args.seed, num_clips=args.num_clips, epochs=args.epochs, batch_size=args.batch_size)
    command = (f"{PROG} --seed {args.seed} --num-clips {args.num_clips} --epochs {args.epochs} "
               f"--batch-size {args.batch_size} --threads {args.threads}")
    command += f" --out {args.out}" if args.out is not None else ""
    trained = train_toy_classifier(config)
    weights, provenance = save_classifier(trained, out, command)
    accuracy = trained.accuracy
    print(f"held-out accuracy ({trained.split_sizes['test']} test clips of seed {args.seed}'s plan): "
          f"{100 * accuracy['clean_10s']:.1f}% on 10 s windows, {100 * accuracy['clean_8s']:.1f}% on their first 8 s, "
          f"{100 * accuracy['augmented_8s']:.1f}% augmented; trained in {trained.seconds:.0f} s")
    print(f"wrote {weights} and {provenance}")
    return 0


def console() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console()
