"""Train the mapper: `python -m recipes.train_mapper [--config recipes/configs/X.yaml] [overrides]`.

With no arguments it runs `recipes/configs/toy.yaml`: builds the toy-foley world and its feature
cache if absent, trains on CPU, prints held-out MSE next to the baselines, exports the mapper
(`save_pretrained`) and renders one sample wav from a held-out toy video. The schema of every
YAML is the signatures of `MapperModule` and `MapperDataModule` (see `--help`, `--print_config`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recipes.cli import usage_error

if TYPE_CHECKING:  # for the annotations only
    from mapper.training import MapperDataModule, MapperModule
    from mapper.training.model_card import TrainingRecord

# Lightning (torch) and the mapper are imported in main(): LightningCLI builds its parser, --help included,
# from the signatures of Trainer, MapperModule and MapperDataModule, so even --help and a wrong option need
# them; what only the training and the export use is imported once the command line is accepted.

CONFIG_DIR = Path(__file__).parent / "configs"


def _cli_class():
    """``TrainMapperCLI``: LightningCLI with the recipe's own arguments, checked before any class is built."""
    from lightning.pytorch.cli import LightningCLI

    from mapper.training import MapperDataModule, MapperModule

    class TrainMapperCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            parser.link_arguments("data.preset", "model.preset")
            parser.add_argument("--export_dir", default="runs/mapper", help="where the trained mapper is saved")
            parser.add_argument("--sample_video", default=None, help="video to render a sample from after training")
            parser.add_argument("--sample_steps", type=int, default=100,
                                help="AudioLDM-2 steps for the sample (and the toy report)")
            parser.add_argument("--toy_report_clips", type=int, default=0,
                                help="after training on a toy world: render this many held-out clips four ways "
                                     "(oracle / video / shuffled video / label only) and report class accuracy, "
                                     "event-sync error and FD (0: no report)")
            parser.add_argument("--resume", type=bool, default=False,
                                help="continue from the last checkpoint (last.ckpt)")
            parser.add_argument("--ckpt_path", default=None, help="continue from this checkpoint (a local file)")
            parser.add_argument("--allow_remote_checkpoint", type=bool, default=False,
                                help="allow --ckpt_path to be a URL (still read weights-only)")

        def before_instantiate_classes(self) -> None:
            # Every argument is checked before any class is built: a bad value costs no model.
            check_run_arguments(self.config)
            MapperDataModule.check_arguments(**self.config["data"].as_dict())
            MapperModule.check_arguments(**self.config["model"].as_dict())

    return TrainMapperCLI


def check_run_arguments(config) -> None:
    """The recipe's own arguments, checked before any class is built (ValueError / FileNotFoundError, one line)."""
    from mapper.arguments import check_int
    from mapper.training.checkpointing import check_checkpoint_path

    export_dir = Path(config["export_dir"])
    if export_dir.exists() and not export_dir.is_dir():
        raise ValueError(f"--export_dir {export_dir} is a file; expected a folder for the mapper")
    if config["sample_video"] is not None and not Path(config["sample_video"]).is_file():
        raise ValueError(f"--sample_video {config['sample_video']}: no such file")
    check_int("--sample_steps", config["sample_steps"], 1, 1000)
    check_int("--toy_report_clips", config["toy_report_clips"], 0)
    ckpt_path = config["ckpt_path"]
    if ckpt_path is not None:
        if config["resume"]:
            raise ValueError("--resume and --ckpt_path both name where to continue from; give one")
        check_checkpoint_path(ckpt_path, config["allow_remote_checkpoint"], "--ckpt_path")


def main(args: list[str] | None = None) -> dict | int:
    from jsonargparse import ArgumentError
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from mapper.training import MapperDataModule, MapperModule
    from recipes.lightning_compat import quiet_lightning_tips

    quiet_lightning_tips()  # building the Trainer logs a tip to install Lightning's cloud logger (see the module)
    try:
        cli = _cli_class()(
            MapperModule,
            MapperDataModule,
            run=False,
            args=args,
            save_config_kwargs={"overwrite": True},
            # parse errors are raised, then printed below as one line
            parser_kwargs={"default_config_files": [str(CONFIG_DIR / "toy.yaml")], "exit_on_error": False},
        )
    except (ArgumentError, ValueError, KeyError, FileNotFoundError, MisconfigurationException) as error:
        # jsonargparse's messages span lines; a KeyError's str() is quoted
        return usage_error(" ".join(str(error.args[0] if isinstance(error, KeyError) else error).split()))
    from extractors.cache import CacheBusyError, CacheMismatchError, CorruptShardError, DuplicateRowsError
    from mapper.last_mapper import remember_last_mapper
    from mapper.training.checkpointing import SafeCheckpointIO, UnsafeCheckpointError
    from mapper.training.data import DataError
    from mapper.training.metrics import evaluate_envelope_predictor, evaluate_mapper, format_report
    from mapper.training.model_card import write_model_card
    from recipes.lightning_compat import use_treespec_leaf

    use_treespec_leaf()  # Trainer.fit's CombinedLoader without torch's deprecated LeafSpec() (see the module)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    # Every checkpoint this run reads (--ckpt_path, --resume, the best one) goes through this.
    trainer.strategy.checkpoint_io = SafeCheckpointIO(allow_remote=cli.config["allow_remote_checkpoint"])
    _fix_checkpoint_dir(trainer)
    print(data.apply_batch_plan(trainer).describe())
    ckpt_path = cli.config["ckpt_path"] or ("last" if cli.config["resume"] else None)
    try:
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    except (DataError, UnsafeCheckpointError, CacheMismatchError, CacheBusyError, CorruptShardError, DuplicateRowsError) as error:
        # the cache or checkpoint cannot be used as it is: one line, nothing trained
        return usage_error(error)
    _load_best(model, trainer)

    export_dir = Path(cli.config["export_dir"])
    model.export(export_dir)  # before anything else can fail: the trained mapper is kept
    remember_last_mapper(export_dir)
    record = _training_record(cli, data)
    write_model_card(export_dir, model.mapper.config, record)  # a card from the start; figures added below
    print(f"mapper saved to {export_dir}")
    metrics = {}
    if len(data.splits["test"]) == 1:  # the shuffled-video baseline is another held-out clip's prediction
        print(f"{data.cache.root}: 1 clip in the 'test' split; held-out metrics skipped (their shuffled-video "
              "baseline needs at least 2)")
    elif len(data.splits["test"]):
        metrics = evaluate_mapper(model.mapper, data.splits["train"], data.splits["test"])
        if model.envelope_predictor is not None:
            metrics.update(evaluate_envelope_predictor(model.envelope_predictor, data.splits["test"]))
        for logger in trainer.loggers:
            logger.log_metrics({f"test/{name}": value for name, value in metrics.items()}, step=trainer.global_step)
            logger.save()
        record.held_out = format_report(metrics)
        print(record.held_out)
    else:
        print(f"{data.cache.root}: no clips in the 'test' split; held-out metrics skipped")

    sample = (cli.config["sample_video"], None) if cli.config["sample_video"] else _held_out_toy_clip(data)
    if sample:
        _render_sample(export_dir, *sample, steps=cli.config["sample_steps"])
    if cli.config["toy_report_clips"] and data.toy_world is not None:
        metrics["toy_report"], record.toy_report = _toy_report(export_dir, data.toy_world.root,
                                                               cli.config["toy_report_clips"],
                                                               steps=cli.config["sample_steps"])
    write_model_card(export_dir, model.mapper.config, record)
    return metrics


def _training_record(cli, data: MapperDataModule) -> TrainingRecord:
    """What the model card says of this run: its config and the data it saw."""
    from mapper.training.model_card import TrainingRecord

    world = data.toy_world
    dataset = f"toy-foley (seed {world.seed})" if world is not None else data.cache.root.name
    data_lines = [f"feature cache: `{data.cache.root}` (extractor preset `{data.preset}`)",
                  "clips: " + ", ".join(f"{split} {len(rows)}" for split, rows in data.splits.items())]
    if world is not None:
        data_lines.append(f"toy world: `{world.root}`, {world.num_clips} clips, seed {world.seed}")
    return TrainingRecord(training_config_yaml=cli.parser.dump(cli.config, skip_none=False), dataset=dataset,
                          data_lines=data_lines, init_language_model=cli.config["model"].get("init_language_model"))


def _fix_checkpoint_dir(trainer) -> None:
    """Checkpoints go to `<default_root_dir>/checkpoints` unless a config names a folder: one
    fixed place per run folder, so `--resume` finds `last.ckpt` (Lightning's default folder
    changes with every logger version)."""
    callback = trainer.checkpoint_callback
    if callback is not None and callback.dirpath is None:
        callback.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")


def _load_best(model: MapperModule, trainer) -> None:
    from mapper.training.checkpointing import load_checkpoint_file

    best = getattr(trainer.checkpoint_callback, "best_model_path", "")
    if best:
        model.load_state_dict(load_checkpoint_file(best)["state_dict"])
        print(f"best checkpoint: {best}")


def _held_out_toy_clip(data: MapperDataModule) -> tuple[str, str] | None:
    """(video, label) of the first test-split clip of the toy world, if training used one."""
    if data.toy_world is None:
        return None
    from extractors.manifest import list_clips

    test = [item for item in list_clips(data.toy_world.root) if item.split == "test"]
    return (str(test[0].path), test[0].label) if test else None


def _render_sample(mapper_dir: Path, video: str, label: str | None, steps: int) -> None:
    from mapper.generation.wav import write_wav
    from mapper.generation.loading import load_pipeline

    pipeline = load_pipeline(mapper=mapper_dir)
    result = pipeline(video, label=label, num_inference_steps=steps)
    out = mapper_dir / "sample.wav"
    write_wav(out, result.audio, result.sample_rate)
    print(f"sample: {out} ({len(result.audio) / result.sample_rate:.2f} s from {video})")


def _toy_report(mapper_dir: Path, world: Path, clips: int, steps: int) -> tuple[dict, str | None]:
    """The toy report (dict) and its printed table, or ({}, None) when the world is too small for one."""
    import json

    from evaluation.toy_report import TOY_REPORT_FILE, format_toy_report, toy_report
    from extractors.atomic import atomic_write_text
    from mapper.generation.loading import load_pipeline
    from mapper.generation.sampling import sampling_config

    try:
        report = toy_report(load_pipeline(mapper=mapper_dir), world, limit=clips,
                            sampling=sampling_config("fast", num_inference_steps=steps))
    except ValueError as error:  # e.g. a world without test clips: the mapper is saved already
        print(f"toy report skipped: {error}")
        return {}, None
    table = format_toy_report(report)
    atomic_write_text(mapper_dir / TOY_REPORT_FILE, json.dumps(report, indent=1) + "\n")  # beside the mapper
    print(table)
    return report, table


def console() -> None:
    """The `mfm-train` command: `main` on sys.argv, its exit status (metrics mean success)."""
    result = main()
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    console()
