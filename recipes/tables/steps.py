"""One (variant, seed) run's steps. Each returns what its done marker records; StepFailed stops the run.

    train     ``recipes.train_mapper`` in a subprocess (so ``--devices N`` DDP relaunches that command,
              not the grid), from ``last.ckpt`` when a killed attempt left one
    generate  ``recipes.generate`` on the test set with the exported mapper (``--skip-existing``); a guided
              variant (``GUIDED_VARIANTS``) has no train step and renders its base variant's mapper (same
              seed) with ``--sync-guidance``
    evaluate  ``recipes.evaluate`` (the scale's preset and metrics), plus on the toy world the class
              accuracy of the toy classifier (``evaluation.toy_report.score``)
    curve     generate + evaluate each mapper the run exported every k epochs (the convergence figure),
              each point with its own marker
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from extractors.atomic import atomic_write_text, remove_stale_temporaries
from mapper.training.epoch_exports import export_folder, exported_epochs
from recipes.tables.grid import GUIDED_VARIANTS
from recipes.tables.markers import read_marker, write_marker
from recipes.tables.options import GridOptions
from recipes.tables.run_config import RunSettings, run_overlay, train_command
from recipes.tables.testset import TestSet


class StepFailed(RuntimeError):
    """A step could not finish; the message is one line (the step's own output says more)."""


@dataclass
class Run:
    variant: str
    seed: int
    folder: Path
    curve: bool  # this run also draws the convergence figure's points

    @property
    def steps(self) -> list[str]:
        if self.variant in GUIDED_VARIANTS:
            return ["generate", "evaluate"]
        return ["train", "generate", "evaluate"] + (["curve"] if self.curve else [])

    @property
    def mapper(self) -> Path:
        """The mapper this run renders: its own, or its base variant's (same seed) for a guided variant."""
        base = GUIDED_VARIANTS.get(self.variant)
        return self.folder / "mapper" if base is None else self.folder.parents[1] / base / self.folder.name / "mapper"


@dataclass
class GridContext:
    """What every run shares: the settings, the test set, and models loaded once for all runs."""

    options: GridOptions
    settings: RunSettings
    testset: TestSet
    world: Path | None  # the toy world of the test clips (class accuracy), if scored against one
    embeddings: Path  # the embedding cache shared by every evaluation
    _toy: dict = field(default_factory=dict)


def train(context: GridContext, run: Run) -> dict:
    options = context.options
    overlay = run_overlay(options.scale, run.variant, run.seed, run.folder, context.settings, run.curve)
    overlay_file = run.folder / "run.yaml"
    atomic_write_text(overlay_file, yaml.safe_dump(overlay, sort_keys=False))
    resume = (run.folder / "train" / "checkpoints" / "last.ckpt").is_file()
    command = train_command(options.scale, run.variant, overlay_file, resume)
    code = subprocess.run(command).returncode
    if code != 0:
        raise StepFailed(f"recipes.train_mapper exited with status {code} (its output above says why)")
    mapper = run.folder / "mapper"
    return {"command": command, "resumed": resume, "mapper": str(mapper),
            "files": [mapper / "config.json", mapper / "model.safetensors"]}


def generate(context: GridContext, mapper: Path, out: Path, seed: int, sync_guidance: float | None = None) -> None:
    from recipes import generate as generate_recipe

    options, scale = context.options, context.options.scale
    argv = [str(context.testset.csv), "--video-dir", str(context.testset.video_dir), "--out", f"{out}/",
            "--mapper", str(mapper), "--preset", scale.sampling_preset, "--seed", str(seed),
            "--duration", str(_window_seconds(mapper)), "--device", options.device, "--skip-existing",
            "--no-progress"]  # fmt: skip
    if scale.sampling_steps is not None:
        argv += ["--steps", str(scale.sampling_steps)]
    if not options.labels:
        argv += ["--label", ""]
    if sync_guidance is not None:
        argv += ["--sync-guidance", str(sync_guidance)]
    code = generate_recipe.main(argv)
    if code != 0:
        raise StepFailed(f"recipes.generate exited with status {code} for {mapper}")


def evaluate(context: GridContext, generated: Path, out: Path) -> dict:
    """The run's evaluation record: recipes.evaluate's metrics (+ the toy world's sync error and class accuracy)."""
    from recipes import evaluate as evaluate_recipe

    scale = context.options.scale
    argv = ["--generated", str(generated), "--reference", str(context.testset.reference),
            "--videos", str(context.testset.video_dir), "--out", str(out),
            "--audio-length", str(context.testset.audio_length), "--preset", scale.eval_preset,
            "--metrics", ",".join(scale.metrics), "--cache", str(context.embeddings),
            "--device", context.options.device]  # fmt: skip
    code = evaluate_recipe.main(argv)
    if code not in (0, 1):  # 1: some files were skipped, each named; the rest is scored
        raise StepFailed(f"recipes.evaluate exited with status {code} for {generated}")
    report = json.loads((out / "metrics.json").read_text())
    record = {key: value for key, value in report["metrics"].items()}
    skipped = report["skipped"]
    record["skipped_files"] = sum(len(v) for v in skipped.values())
    if "toy_world" in report:
        record["event_sync_error_s"] = report["toy_world"]["event_sync_error_s"]
        record["event_sync_wrong_video_baseline_s"] = report["toy_world"]["wrong_video_baseline_s"]
    if context.world is not None:
        record["class_accuracy"] = _class_accuracy(context, generated)
    return record


def run_generate(context: GridContext, run: Run) -> dict:
    if not (run.mapper / "config.json").is_file():
        raise StepFailed(f"{run.mapper}: no trained mapper (train variant {GUIDED_VARIANTS[run.variant]!r} first)")
    scale = guided_scale(run.mapper) if run.variant in GUIDED_VARIANTS else None
    generate(context, run.mapper, run.folder / "generated", run.seed, scale)
    record = {"clips": len(context.testset.clips), "files": _wavs(run.folder / "generated")}
    return record if scale is None else {**record, "sync_guidance": scale, "mapper": str(run.mapper)}


def guided_scale(mapper: Path) -> float:
    """The sync-guidance scale of a guided row: the mapper folder's default, or the decoder side's default
    where the folder's is 0 (the paper recipe's fidelity setting)."""
    from mapper.decoders.audioldm2.envelope_guidance import DEFAULT_SCALE
    from mapper.generation_defaults import read_generation_defaults

    return read_generation_defaults(mapper).sync_guidance or DEFAULT_SCALE


def run_evaluate(context: GridContext, run: Run) -> dict:
    return {"metrics": evaluate(context, run.folder / "generated", run.folder / "eval"),
            "files": [*_wavs(run.folder / "generated"), run.folder / "eval" / "metrics.json"]}


def _wavs(folder: Path) -> list[Path]:
    """The generations a marker vouches for: their loss or change redoes the steps that made and scored them."""
    return sorted(folder.glob("*.wav"))


def run_curve(context: GridContext, run: Run) -> dict:
    """Generate and evaluate every epoch export of the run, each point once (its own marker)."""
    exports = run.folder / "epochs"
    remove_stale_temporaries(exports)  # a half-written export of a killed run
    points = {}
    for epoch in exported_epochs(exports):
        step = f"curve_epoch{epoch:04d}"
        done = read_marker(run.folder, step)
        if done is None:
            start = time.perf_counter()
            folder = run.folder / "curve" / f"epoch{epoch:04d}"
            generate(context, export_folder(exports, epoch), folder / "generated", run.seed)
            metrics = evaluate(context, folder / "generated", folder / "eval")
            done = write_marker(run.folder, step, time.perf_counter() - start, epoch=epoch, metrics=metrics,
                                files=[*_wavs(folder / "generated"), folder / "eval" / "metrics.json"])
        points[str(epoch)] = done["metrics"]
    if not points:
        raise StepFailed(f"{exports}: no epoch exports (was the run trained with the convergence callback?)")
    return {"points": points}


STEPS = {"train": train, "generate": run_generate, "evaluate": run_evaluate, "curve": run_curve}


def _window_seconds(mapper: Path) -> float:
    """The clip window of the mapper's extractor preset: one window per clip, never long-form."""
    from extractors.presets import get_preset
    from mapper.config import MapperConfig

    return get_preset(MapperConfig.from_pretrained(mapper).extractor_preset).clip.seconds


def _class_accuracy(context: GridContext, generated: Path) -> float:
    """The toy classifier's accuracy on the generations (first 8 s, zero-padded to the window like the clips)."""
    import numpy as np

    from evaluation.toy_classifier import load_toy_classifier
    from evaluation.toy_report import held_out_clips, score
    from extractors.video import read_audio_file

    clip = context.testset.clip
    toy = context._toy  # the clips' true audio and the classifier, read once for every run
    if not toy:
        toy["clips"] = held_out_clips(context.world, clip, limit=len(context.testset.clips))
        toy["classifier"] = load_toy_classifier()
        if toy["clips"].ids != [c.path.stem for c in context.testset.clips]:
            raise StepFailed(f"{context.world}: its test clips are not the test set's; the class accuracy "
                             "would score other clips")
    clips = toy["clips"]
    audio = np.zeros((len(clips.ids), clip.num_samples), np.float32)
    for row, name in enumerate(clips.ids):
        samples = read_audio_file(generated / f"{name}.wav", clip.sample_rate)[: clip.num_samples]
        audio[row, : len(samples)] = samples
    return score(audio, clips, clip.sample_rate, toy["classifier"])["class_accuracy"]
