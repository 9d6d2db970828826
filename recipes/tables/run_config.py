"""One run's training command: the recipe, the variant's ablation overlays, and a per-run overlay.

The per-run overlay (``RUN/run.yaml``, written next to the run's outputs so the run can be repeated by
hand) sets what makes runs independent of each other: the seed, the run's folders (checkpoints, logs,
the exported mapper), the cache, the trainer's devices, and for the convergence runs an extra callback
that exports the mapper every k epochs. LightningCLI replaces lists rather than merging them, so the
overlay repeats the recipe's loggers and callbacks with their folders moved into the run.
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from recipes.tables.grid import ablation_files
from recipes.tables.scales import CONFIG_DIR, Scale

# recipes.train_mapper reads toy.yaml as its default config before any --config: every run's first layer
TRAIN_DEFAULT = CONFIG_DIR / "toy.yaml"
EXPORT_CALLBACK = "mapper.training.epoch_exports.EpochExports"


@dataclass(frozen=True)
class RunSettings:
    """What every run of a grid shares, beside its recipe."""

    cache: Path
    audioldm2: str | None  # None: the recipe's own
    devices: int | None  # None: the recipe's own
    num_nodes: int | None
    curve_every: int  # 0: no epoch exports
    max_epochs: int | None  # None: the recipe's own
    progress_bar: bool = True


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def grid_decoder(scale: Scale, override: str | None) -> str | None:
    """The AudioLDM-2 the runs render with: --audioldm2, else the one the recipe file itself names (None:
    the preset's). Not the merged config's: train_mapper's default toy.yaml would leak its `audioldm2: toy`
    into the paper recipe, which does not name one."""
    return override or read_yaml(scale.recipe).get("model", {}).get("audioldm2")


def merge(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base`` as LightningCLI layers configs: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and "class_path" not in value:
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def config_files(scale: Scale, variant: str) -> list[Path]:
    """The --config files of a variant, in order (the per-run overlay comes after them)."""
    return [scale.recipe, *ablation_files(variant)]


def merged_config(scale: Scale, variant: str) -> dict:
    """The variant's configuration before the per-run overlay, as train_mapper will see it."""
    config = read_yaml(TRAIN_DEFAULT)
    for path in config_files(scale, variant):
        config = merge(config, read_yaml(path))
    return config


def run_overlay(scale: Scale, variant: str, seed: int, run_dir: Path, settings: RunSettings, curve: bool) -> dict:
    config = merged_config(scale, variant)
    trainer = config.get("trainer", {})
    train_dir = run_dir / "train"
    callbacks = _as_list(trainer.get("callbacks"))
    if curve and settings.curve_every:
        callbacks.append({"class_path": EXPORT_CALLBACK,
                          "init_args": {"folder": str(run_dir / "epochs"), "every_n_epochs": settings.curve_every}})
    overlay_trainer = {"default_root_dir": str(train_dir), "logger": _moved_loggers(trainer.get("logger"), train_dir),
                       "callbacks": callbacks}
    for key, value in (("devices", settings.devices), ("num_nodes", settings.num_nodes),
                       ("max_epochs", settings.max_epochs)):
        if value is not None:
            overlay_trainer[key] = value
    if not settings.progress_bar:
        overlay_trainer["enable_progress_bar"] = False
    return {
        "seed_everything": seed,
        "trainer": overlay_trainer,
        "model": {"audioldm2": grid_decoder(scale, settings.audioldm2)},
        # the cache is prepared before the grid starts; runs never build a toy world or render samples
        "data": {"cache": str(settings.cache), "toy_world": None},
        "export_dir": str(run_dir / "mapper"),
        "sample_video": None,
        "toy_report_clips": 0,
    }


def train_command(scale: Scale, variant: str, overlay_file: Path, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "recipes.train_mapper"]
    for path in [*config_files(scale, variant), overlay_file]:
        command += ["--config", str(path)]
    return command + (["--resume", "true"] if resume else [])


def _as_list(value) -> list:
    return [] if value is None else copy.deepcopy(value if isinstance(value, list) else [value])


def _moved_loggers(logger, folder: Path):
    """The recipe's loggers writing into ``folder`` (False / None / True are kept as they are)."""
    if not isinstance(logger, (dict, list)):
        return logger
    moved = []
    for entry in _as_list(logger):
        entry.setdefault("init_args", {})["save_dir"] = str(folder)
        moved.append(entry)
    return moved if isinstance(logger, list) else moved[0]
