"""The grid's results once every run of the chosen tables is done: tables.md, tables.json, convergence.png.

They are rebuilt from the runs' markers on every invocation that finds the grid complete, so a grid run
as separate jobs (``--only VARIANT --seed K``) is tabulated by rerunning the plain command at the end.
"""
from __future__ import annotations

from pathlib import Path

from recipes.tables.figure import collect_curves, draw_convergence
from recipes.tables.grid import variants_for
from recipes.tables.markers import read_marker
from recipes.tables.options import GridOptions
from recipes.tables.paper_numbers import PAPER_NUMBERS, SOURCE
from recipes.tables.report import collect, write_report
from recipes.tables.run_config import config_files, grid_decoder
from recipes.tables.runner import runs_of
from recipes.tables.scales import CONFIG_DIR
from recipes.tables.steps import GridContext, Run

FIGURE = "convergence.png"


def grid_runs(options: GridOptions) -> list[Run]:
    """Every run of the chosen tables and seeds, whatever --only / --seed picked for this invocation."""
    return runs_of(options, variants_for(options.tables), range(options.seeds))


def missing_steps(options: GridOptions) -> list[str]:
    return [f"{run.variant} seed {run.seed}: {step}" for run in grid_runs(options) for step in run.steps
            if read_marker(run.folder, step) is None]


def write_outputs(options: GridOptions, context: GridContext, machine: str) -> list[Path]:
    runs = grid_runs(options)
    folders = {(run.variant, run.seed): run.folder for run in runs}
    scale = options.scale.name
    tables = collect(folders, scale, options.tables)
    # a convergence point is timed by its own marker (the curve step's time misses points of a cut attempt)
    seconds = sum(read_marker(run.folder, step)["seconds"] for run in runs for step in run.steps if step != "curve")
    seconds += sum(read_marker(run.folder, f"curve_epoch{int(epoch):04d}")["seconds"]
                   for run in runs if run.curve for epoch in read_marker(run.folder, "curve")["points"])
    paper = PAPER_NUMBERS if scale == "paper" and PAPER_NUMBERS else None
    notes = grid_notes(options, context, seconds, machine, paper is not None)
    variants = {v: [str(p.relative_to(CONFIG_DIR.parents[1])) for p in config_files(options.scale, v)]
                for v in variants_for(options.tables)}
    extra = {"seeds": list(range(options.seeds)), "quick": options.quick, "variants": variants,
             "test_clips": [c.path.stem for c in context.testset.clips], "audio_length_s": context.testset.audio_length,
             "step_seconds": round(seconds, 1), "machine": machine}
    written = [options.out / "tables.md", options.out / "tables.json"]
    if options.figure:
        curves = collect_curves(folders, scale)
        extra["convergence"] = {v: {k: {str(e): s for e, s in points.items()} for k, points in by_key.items()}
                                for v, by_key in curves.items()}
        title = f"Autoregressive mapper vs Diff-Mapper, {scale} scale ({_seeds(options.seeds)})"
        draw_convergence(options.out / FIGURE, curves, scale, title)
        written.append(options.out / FIGURE)
    write_report(options.out, tables, scale, notes, extra, paper)
    return written


def grid_notes(options: GridOptions, context: GridContext, seconds: float, machine: str, with_paper: bool) -> list[str]:
    scale, testset = options.scale, context.testset
    steps = f", {scale.sampling_steps} steps" if scale.sampling_steps else ""
    notes = [
        f"Scale {scale.name}{' (quick grid: ' + str(scale.max_epochs) + ' epochs)' if options.quick else ''}: "
        f"`{scale.recipe.name}` + the row's ablation overlay (`tables.json` lists each variant's config files); "
        f"{_seeds(options.seeds)}. A row shared by several tables is one trained variant.",
        f"Test set: {len(testset.clips)} clips of `{options.videos}`; each generated once per run "
        f"(AudioLDM-2 `{_decoder(options)}`, sampling preset `{scale.sampling_preset}`{steps}, the run's seed, prompt: "
        f"{'the clip’s label' if options.labels else 'empty'}) and scored on its first "
        f"{testset.audio_length:g} s.",
        "Cells: mean ± sample standard deviation (n − 1) over seeds; a single value has no ±; n/a: not "
        "computable (IS needs at least 10 clips, one per split; FD needs 2).",
    ]
    if scale.name == "toy":
        notes += [
            "FD and IS: `recipes.evaluate --preset toy`, i.e. PANNs Cnn14 trained on the toy world's 5 classes "
            "(its 32-d embedding for FD, its 5 logits for IS, so IS ≤ 5). Event-sync error: mean |lag| between "
            "the generated onsets and the toy world's true event times (the wrong-video baseline is in "
            "tables.json). Class accuracy: the same toy classifier on the first 8 s (`evaluation.toy_report.score`).",
            "IB-score and DeSync are not reported at toy scale: ImageBind and Synchformer have no toy weights, "
            "and their random tiny models measure nothing.",
            "The tiny extractors are random, not CAVP and TimeChat: these tables exercise the machinery end to "
            "end; they do not test the paper's claims about the encoders.",
        ]
    elif not with_paper:
        notes.append(f"The paper's own numbers are not shown: they have not been checked against the paper "
                     f"({SOURCE}); `recipes/tables/paper_numbers.py` says how to add them.")
    if options.figure:
        notes.append(f"{FIGURE}: the mapper exported every {options.curve_every} epoch(s) of the convergence runs, "
                     "each generated and scored like the final mapper (which is the best checkpoint by "
                     "val/mse_generated, so the table and the figure's last point can differ).")
    notes.append(f"Compute: {seconds / 3600:.2f} h of recorded step time (train, generate, evaluate, convergence "
                 f"points; a step cut by an interruption counts only its last attempt). Machine: {machine}.")
    return notes


def _seeds(count: int) -> str:
    return "1 seed (0)" if count == 1 else f"{count} seeds (0..{count - 1}), mean ± std"


def _decoder(options: GridOptions) -> str:
    return grid_decoder(options.scale, options.audioldm2) or "the preset's"
