"""Building and loading a mapper of either kind from its config (`mapper_type`)."""
from __future__ import annotations

import os
from pathlib import Path

from mapper.config import MapperConfig
from mapper.diffusion_mapper import DiffusionMapperModel
from mapper.model import MapperBase, MapperModel

MAPPER_CLASSES = {"autoregressive": MapperModel, "diffusion": DiffusionMapperModel}


def build_mapper(config: MapperConfig) -> MapperBase:
    return MAPPER_CLASSES[config.mapper_type](config)


def load_mapper(path: str | os.PathLike, **kwargs) -> MapperBase:
    """A mapper saved with `save_pretrained` (safetensors + config.json), of whichever kind."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a saved mapper (no config.json)")
    config = MapperConfig.from_pretrained(path)
    return MAPPER_CLASSES[config.mapper_type].from_pretrained(path, **kwargs)
