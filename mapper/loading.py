"""Building and loading a mapper of either kind from its config (`mapper_type`).

A mapper folder is untrusted: before any model is built from it, its config.json (at most
``MAX_CONFIG_BYTES``) must give sizes within ``mapper.config.LIMITS``, and those sizes must be the
shapes in the safetensors header of its weights (read alone, no tensor): a refusal costs
milliseconds and is one line naming the file, the field, its value and what is allowed.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from extractors.checkpoint import (StateDictMismatchError, check_keys, first_line, read_config_json,
                                  read_header_shapes, read_safetensors_shapes)
from mapper.config import MapperConfig
from mapper.diffusion_mapper import DiffusionMapperModel
from mapper.model import MapperBase, MapperModel

MAPPER_CLASSES = {"autoregressive": MapperModel, "diffusion": DiffusionMapperModel}
WEIGHTS_FILE = "model.safetensors"
MAX_CONFIG_BYTES = 1 << 20  # a mapper's config.json is about 1 KiB
MAX_HEADER_BYTES = 8 << 20  # a safetensors header: about 0.1 KiB per tensor, 14 tensors per GPT-2 block


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
    config_file, weights_file = path / "config.json", path / WEIGHTS_FILE
    read_config_json(config_file, MAX_CONFIG_BYTES)  # bounded in size, a JSON object: before transformers reads it
    try:
        config = MapperConfig.from_pretrained(path)  # every size bounded (MapperConfig checks them)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{config_file}: {first_line(error)}") from None
    if config.mapper_type not in MAPPER_CLASSES:
        raise ValueError(f"{config_file}: mapper_type {config.mapper_type!r} is not one of {', '.join(MAPPER_CLASSES)}")
    stored = read_header_shapes(weights_file, MAX_HEADER_BYTES)
    check_config_matches_header(config, stored, weights_file)  # the sizes, from the header alone
    try:
        with torch.device("meta"):  # the config's architecture, no memory: checked before anything loads
            model = build_mapper(config)
    except ValueError as error:  # a combination the model refuses (sequence longer than n_positions)
        raise ValueError(f"{config_file}: {first_line(error)}") from None
    check_keys(model.state_dict(), stored, weights_file, "the weights config.json describes")  # every key
    return config


def check_config_matches_header(config: MapperConfig, stored: dict[str, tuple[int, ...]], weights_file) -> None:
    """The config's sizes against the weights' shapes, without building the model: the mapper type, the
    GPT-2 depth, width and position table, the diffusion query tokens and the stream widths, each refused
    naming the field. Keys this does not look at are left to the full check (:func:`check_keys`)."""
    def refuse(problem: str):
        raise StateDictMismatchError(f"{weights_file}: not the weights config.json describes: {problem}")

    width = config.audio_token_dim
    diffusion = config.mapper_type == "diffusion"
    if diffusion and "query_tokens" not in stored:
        refuse("mapper_type='diffusion', but the weights have no query_tokens (missing 1: an autoregressive mapper's?)")
    if not diffusion and "query_tokens" in stored:
        refuse(f"mapper_type={config.mapper_type!r}, but the weights hold a diffusion mapper's query_tokens "
               "(unexpected)")
    blocks = {int(m.group(1)) for key in stored if (m := re.match(r"gpt2\.h\.(\d{1,9})\.", key))}
    if blocks == set(range(len(blocks))) and len(blocks) != config.n_layer:
        kind = "missing" if config.n_layer > len(blocks) else "unexpected"
        refuse(f"n_layer={config.n_layer}, but the weights hold {len(blocks)} GPT-2 blocks "
               f"({kind} gpt2.h.{min(config.n_layer, len(blocks))}.*)")
    positions = config.n_positions
    expected = {"gpt2.ln_f.weight": ((width,), f"audio_token_dim={width}"),
                "gpt2.wpe.weight": ((positions, width), f"n_positions={positions}, audio_token_dim={width}")}
    if diffusion:
        expected["query_tokens"] = ((config.num_audio_tokens, width), f"num_audio_tokens={config.num_audio_tokens}, "
                                                                      f"audio_token_dim={width}")
    streams = config.selected_streams
    if config.fusion == "concat_proj" and len(streams) > 1:
        dims = "+".join(str(spec.dim) for spec in streams.values())
        expected["fusion.proj.weight"] = ((width, sum(spec.dim for spec in streams.values())),
                                          f"streams {'+'.join(streams)} of dim {dims}, audio_token_dim={width}")
    else:
        for name, spec in streams.items():
            expected[f"fusion.projections.{name}.weight"] = ((width, spec.dim), f"streams.{name}.dim={spec.dim}, "
                                                                                f"audio_token_dim={width}")
    for key, (shape, fields) in expected.items():
        if key in stored and tuple(stored[key]) != shape:
            refuse(f"{fields}, but {key} is {tuple(stored[key])}, not {shape} (wrong shape)")



def check_weights_match(model: torch.nn.Module, weights_file: str | os.PathLike) -> None:
    """Every weight of ``model`` is in ``weights_file`` with its shape, and nothing else is (read from the
    file's header: no weight is loaded): otherwise a config that disagrees with its weights would load
    with random layers and generate silently. A mismatch is one line naming the file and the first keys."""
    stored = read_safetensors_shapes(weights_file)
    check_keys(model.state_dict(), stored, weights_file, "the weights config.json describes")
