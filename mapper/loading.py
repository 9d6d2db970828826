"""Building and loading a mapper of either kind from its config (`mapper_type`)."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from extractors.checkpoint import check_keys, read_safetensors_shapes
from mapper.config import MapperConfig
from mapper.diffusion_mapper import DiffusionMapperModel
from mapper.model import MapperBase, MapperModel

MAPPER_CLASSES = {"autoregressive": MapperModel, "diffusion": DiffusionMapperModel}
WEIGHTS_FILE = "model.safetensors"


def build_mapper(config: MapperConfig) -> MapperBase:
    return MAPPER_CLASSES[config.mapper_type](config)


def load_mapper(path: str | os.PathLike, **kwargs) -> MapperBase:
    """A mapper saved with `save_pretrained` (safetensors + config.json), of whichever kind; its
    weights must match its config exactly."""
    config = check_weights_match_folder(path)
    return MAPPER_CLASSES[config.mapper_type].from_pretrained(path, use_safetensors=True, **kwargs)


def check_weights_match_folder(path: str | os.PathLike) -> MapperConfig:
    """A saved mapper's config, after checking that its weights are exactly what it describes."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a saved mapper (no config.json)")
    if not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path}: no {WEIGHTS_FILE} (mappers are read from safetensors only)")
    config = MapperConfig.from_pretrained(path)
    if config.mapper_type not in MAPPER_CLASSES:
        raise ValueError(f"{path / 'config.json'}: mapper_type {config.mapper_type!r} is not one of {', '.join(MAPPER_CLASSES)}")
    with torch.device("meta"):  # the config's architecture, no memory: checked before anything loads
        check_weights_match(build_mapper(config), path / WEIGHTS_FILE)
    return config


def check_weights_match(model: torch.nn.Module, weights_file: str | os.PathLike) -> None:
    """Every weight of ``model`` is in ``weights_file`` with its shape, and nothing else is (read from the
    file's header: no weight is loaded): otherwise a config that disagrees with its weights would load
    with random layers and generate silently. A mismatch is one line naming the file and the first keys."""
    stored = read_safetensors_shapes(weights_file)
    check_keys(model.state_dict(), stored, weights_file, "the weights config.json describes")
