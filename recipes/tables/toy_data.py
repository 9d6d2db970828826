"""The toy grid's data when ``--cache`` is absent: the recipe's toy world, built and extracted once, before
any run (what ``recipes.train_mapper`` does with ``data.toy_world``), so that the runs only read it."""
from __future__ import annotations

import json
from pathlib import Path

from recipes.tables.run_config import read_yaml
from recipes.tables.scales import Scale


def world_settings(scale: Scale) -> tuple[int, int, str]:
    """(number of clips, seed, extractor preset) of the toy world the scale's recipe builds."""
    config = read_yaml(scale.recipe).get("data", {})
    world = config.get("toy_world") or {}
    return scale.world_clips or world.get("num_clips", 120), world.get("seed", 0), config.get("preset", "tiny")


def planned_world(scale: Scale) -> dict:
    """The world.json the recipe's toy world will have (a plan: nothing is rendered)."""
    from toy_world.world import plan_world

    num_clips, seed, _ = world_settings(scale)
    return json.loads(json.dumps(plan_world(num_clips, seed)))


def build_toy_data(scale: Scale, cache: Path, videos: Path) -> None:
    """Build the toy world into ``videos`` and extract it into ``cache`` (resumable; no-op if the cache exists)."""
    from mapper.training.data import MapperDataModule, ToyWorld

    num_clips, seed, preset = world_settings(scale)
    data = MapperDataModule(cache=str(cache), preset=preset, toy_world=ToyWorld(str(videos), num_clips, seed))
    data.prepare_data()
