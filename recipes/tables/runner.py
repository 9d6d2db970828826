"""The grid: every (variant, seed) run's steps in order, skipping those with a done marker.

``DIR/runs/<variant>/seed<k>/`` holds a run: ``run.yaml`` (its training overlay), ``train/``
(checkpoints, logs), ``mapper/``, ``generated/``, ``eval/``, for the convergence runs ``epochs/`` and
``curve/``, and a ``<step>.done.json`` per finished step. A failed step is reported and ends its run;
the other runs go on, and the exit status says that something failed.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from extractors.atomic import atomic_write_text
from recipes.tables.grid import CURVE_VARIANTS
from recipes.tables.markers import read_marker, write_marker
from recipes.tables.options import PLAN_FILE, GridOptions
from recipes.tables.progress import Progress
from recipes.tables.run_config import RunSettings
from recipes.tables.steps import STEPS, GridContext, Run, StepFailed


def run_folder(out: Path, variant: str, seed: int) -> Path:
    return out / "runs" / variant / f"seed{seed}"


def runs_of(options: GridOptions, variants, seeds) -> list[Run]:
    """The runs of `variants` x `seeds` in `options.out`; the convergence variants also draw the figure."""
    return [Run(variant, seed, run_folder(options.out, variant, seed), options.figure and variant in CURVE_VARIANTS)
            for variant in variants for seed in seeds]


def launcher_rank() -> int:
    """This process's rank when a cluster launcher started one per device/node (SLURM, torchrun), else 0."""
    for name in ("RANK", "SLURM_PROCID"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def run_grid(options: GridOptions, log=print) -> tuple[list[str], GridContext]:
    """Every chosen run's missing steps; returns one line per failed run, and the shared context."""
    context = prepare(options, log)
    runs = runs_of(options, options.variants, options.seed_list)  # what --only / --seed picked
    # Another rank of a multi-node run (one launched per node by SLURM / torchrun) only takes part in
    # training; rank 0 writes the markers and does the rest.
    rank = launcher_rank()
    todo = [(run, step) for run in runs for step in (run.steps if rank == 0 else ["train"])
            if read_marker(run.folder, step) is None]
    progress = Progress([step for _, step in todo])
    failures, failed_runs = [], set()
    for run, step in todo:
        if id(run) in failed_runs:
            progress.finished(step, None)
            continue
        index, position = runs.index(run) + 1, run.steps.index(step) + 1
        log(Progress.line(index, len(runs), run.variant, run.seed, step, position, len(run.steps), progress.eta()))
        sys.stdout.flush()  # the step's own output (a subprocess for training) follows this line
        run.folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            content = STEPS[step](context, run)
        except StepFailed as error:
            failures.append(f"{run.variant} seed {run.seed}: step {step}: {error}")
            log(f"error: {failures[-1]}")
            failed_runs.add(id(run))
            progress.finished(step, None)
            continue
        seconds = time.perf_counter() - start
        if rank == 0:
            write_marker(run.folder, step, seconds, variant=run.variant, seed=run.seed, **content)
        progress.finished(step, seconds)
    return failures, context


def prepare(options: GridOptions, log) -> GridContext:
    """Everything the runs share, made once: the toy data if absent, the test set, plan.json."""
    from evaluation.suite import toy_world_of
    from recipes.tables.testset import prepare_test_set, select_test_clips
    from recipes.tables.toy_data import build_toy_data, world_settings
    from extractors.cache import FeatureCache
    from extractors.presets import get_preset

    out, scale = options.out, options.scale
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / PLAN_FILE, json.dumps(_plan_record(options), indent=1) + "\n")
    if scale.toy_world and not FeatureCache(options.cache).exists():
        log(f"building the toy world in {options.videos} and its feature cache in {options.cache}")
        build_toy_data(scale, options.cache, options.videos)
    clips = select_test_clips(options.videos, scale.test_clips)
    clip = get_preset(world_settings(scale)[2]).clip  # the recipe's extractor preset owns the clip window
    testset = prepare_test_set(clips, out / "testset", clip)
    world = toy_world_of(testset.video_dir) if scale.toy_world else None
    settings = RunSettings(cache=options.cache.resolve(), audioldm2=options.audioldm2, devices=options.devices,
                           num_nodes=options.num_nodes, curve_every=options.curve_every,
                           max_epochs=scale.max_epochs, progress_bar=not options.quick)
    return GridContext(options, settings, testset, world, out / "embeddings")


def _plan_record(options: GridOptions) -> dict:
    return {"grid": options.grid_identity(), "seeds": options.seeds, "tables": options.tables,
            "runs": [f"{variant}/seed{seed}" for variant in options.variants for seed in options.seed_list]}
