"""The toy grid's data when ``--cache`` is absent: the recipe's toy world, built and extracted once, before
any run (what ``recipes.train_mapper`` does with ``data.toy_world``), so that the runs only read it."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

from recipes.tables.run_config import read_yaml
from recipes.tables.scales import Scale


def world_settings(scale: Scale) -> tuple[int, int, str]:
    """(number of clips, seed, extractor preset) of the toy world the scale's recipe builds: the recipe's
    values, else MapperDataModule's defaults (which the recipe is read with)."""
    from mapper.training.data import MapperDataModule, ToyWorldSettings

    config = read_yaml(scale.recipe).get("data", {})
    world = ToyWorldSettings(**(config.get("toy_world") or {}))
    preset = config.get("preset", inspect.signature(MapperDataModule).parameters["preset"].default)
    return scale.world_clips or world.num_clips, world.seed, preset


def planned_world(scale: Scale) -> dict:
    """The world.json the recipe's toy world will have (a plan: nothing is rendered), as JSON reads it back."""
    from toy_world import plan_world

    num_clips, seed, _ = world_settings(scale)
    return json.loads(json.dumps(plan_world(num_clips, seed)))


def build_toy_data(scale: Scale, cache: Path, videos: Path) -> None:
    """Build the toy world into ``videos`` and extract it into ``cache`` (resumable; no-op if the cache exists)."""
    from mapper.training.data import MapperDataModule, ToyWorldSettings

    num_clips, seed, preset = world_settings(scale)
    data = MapperDataModule(cache=str(cache), preset=preset, toy_world=ToyWorldSettings(str(videos), num_clips, seed))
    data.prepare_data()
