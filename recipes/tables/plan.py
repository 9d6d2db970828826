"""``--print-plan``: every run the grid would do, its config files and overrides, and (paper scale) the
estimated GPU hours of its training. Nothing is read from the data or written."""
from __future__ import annotations

from pathlib import Path

from recipes.tables.grid import CURVE_VARIANTS, GUIDED_VARIANTS
from recipes.tables.options import GridOptions
from recipes.tables.run_config import config_files
from recipes.tables.scales import CONFIG_DIR

REPO = CONFIG_DIR.parents[1]


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def format_plan(options: GridOptions) -> str:
    scale, out = options.scale, str(options.out)
    runs = [(variant, seed) for variant in options.variants for seed in options.seed_list]
    overrides = ["seed_everything K", f"trainer.default_root_dir + logger save_dir {out}/runs/VARIANT/seedK/train",
                 f"export_dir {out}/runs/VARIANT/seedK/mapper", f"data.cache {options.cache or '(--cache)'}",
                 "data.toy_world null", "toy_report_clips 0"]
    if options.audioldm2:
        overrides.append(f"model.audioldm2 {options.audioldm2}")
    for name, value in (("devices", options.devices), ("num_nodes", options.num_nodes),
                        ("max_epochs", scale.max_epochs)):
        if value is not None:
            overrides.append(f"trainer.{name} {value}")
    lines = [f"paper tables, scale {scale.name}{' (quick)' if options.quick else ''}: {len(options.variants)} "
             f"variants x {len(options.seed_list)} seeds = {len(runs)} runs; tables: {', '.join(options.tables)}",
             f"each run: python -m recipes.train_mapper --config ... --config {out}/runs/VARIANT/seedK/run.yaml, "
             f"then recipes.generate (preset {scale.sampling_preset}) on the test clips and recipes.evaluate "
             f"(--preset {scale.eval_preset}, metrics {','.join(scale.metrics)})",
             f"run.yaml overrides: {'; '.join(overrides)}"]
    if options.figure:
        curve = ", ".join(v for v in CURVE_VARIANTS if v in options.variants)
        lines.append(f"convergence runs ({curve}): the mapper exported every {options.curve_every} epochs, "
                     "each export generated and evaluated")
    costs = _costs(options) if scale.name == "paper" else None
    shown = {v: " + ".join(_shown(p) for p in config_files(scale, v)) for v in options.variants}
    width = max(len("config files"), *map(len, shown.values()))
    header = f"{'#':>3}  {'variant':<16} {'seed':>4}  {'config files':<{width}}"
    lines += ["", (header + ("  GFLOP/sample  samples  GPU-h" if costs else "")).rstrip()]
    total = 0.0
    for number, (variant, seed) in enumerate(runs, 1):
        line = f"{number:>3}  {variant:<16} {seed:>4}  {shown[variant]:<{width}}"
        if variant in GUIDED_VARIANTS:  # trains nothing: renders its base variant's mapper
            lines.append(f"{line}  (no training: {GUIDED_VARIANTS[variant]}'s mapper, sync guidance)".rstrip())
            continue
        if costs:
            flops, samples, hours = costs[variant]
            line += f"  {flops / 1e9:>12.2f}  {samples / 1e6:>5.2f}M  {hours:>5.2f}"
            total += hours
        lines.append(line.rstrip())
    if costs:
        assumption = costs["assumption"]
        counted = costs["full"][0] if "full" in costs else None
        lines += ["", f"total: {total:.2f} GPU hours of training for {len(runs)} runs (generation and evaluation "
                      "of the test set not included); a run on --devices N x --num-nodes M GPUs takes about "
                      "its hours / (N x M) of wall time",
                  f"samples per run: {costs['clips']:,} training clips (the paper's VGGSound set) x the recipe's "
                  "epochs",
                  f"throughput: {assumption.text}"]
        if counted is not None:
            lines.append(f"check: FlopCounterMode counts {counted / 1e9:.2f} GFLOP/sample for the paper's mapper, "
                         f"the benchmark's formula {assumption.flops_per_sample / 1e9:.2f} "
                         f"({100 * (counted / assumption.flops_per_sample - 1):+.1f}%)")
    else:
        lines += ["", "toy runs train on the CPU: no GPU-hour estimate (tables.md records the time a grid took)"]
    return "\n".join(lines)


def _costs(options: GridOptions) -> dict:
    from recipes.tables.cost import PAPER_TRAIN_CLIPS, flops_per_sample, gpu_assumption, gpu_hours, training_samples

    assumption = gpu_assumption(options.scale)
    costs: dict = {"assumption": assumption, "clips": PAPER_TRAIN_CLIPS}
    for variant in [v for v in options.variants if v not in GUIDED_VARIANTS]:
        flops = flops_per_sample(options.scale, variant)
        samples = training_samples(options.scale, variant)
        costs[variant] = (flops, samples, gpu_hours(flops, samples, assumption))
    return costs
