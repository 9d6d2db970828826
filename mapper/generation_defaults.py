"""A trained mapper's generation defaults, saved beside its weights (as transformers' models carry a
``generation_config.json``): what ``recipes.generate VIDEO``, ``mapper.generate`` and the pipeline use
where the caller gives no value.

Today one setting: ``sync_guidance``, the scale of timing control (``mapper.decoders.audioldm2.
envelope_guidance``; 0 = off, the paper's decoding bit for bit). The recipe that trained the mapper
writes it: the paper recipe 0 (fidelity to the paper), the toy recipe the scale measured best on held-out
toy clips. A folder without the file gets the defaults below. The file is untrusted input: bounded in
size, every field known and checked, one line naming the file otherwise.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from extractors.atomic import atomic_write_text
from extractors.checkpoint import read_config_json
from mapper.arguments import check_number

GENERATION_CONFIG_FILE = "generation_config.json"
MAX_BYTES = 1 << 16
MAX_SYNC_GUIDANCE = 10.0  # in units of the noise's std: far above any useful scale (0.02-0.1)


def check_sync_guidance(value, name: str = "sync_guidance") -> float:
    """A sync-guidance scale: a finite number in [0, MAX_SYNC_GUIDANCE] (``ArgumentError`` of one line naming ``name``)."""
    return check_number(name, value, 0.0, MAX_SYNC_GUIDANCE, unit=" (0: off)")


@dataclass(frozen=True)
class GenerationDefaults:
    sync_guidance: float = 0.0  # timing control's scale (0: off)

    def __post_init__(self):
        check_sync_guidance(self.sync_guidance)


def write_generation_defaults(folder: str | os.PathLike, defaults: GenerationDefaults) -> None:
    atomic_write_text(Path(folder) / GENERATION_CONFIG_FILE, json.dumps(asdict(defaults), indent=1) + "\n")


def read_generation_defaults(folder: str | os.PathLike) -> GenerationDefaults:
    """The defaults saved in ``folder`` (those of :class:`GenerationDefaults` if it has no file)."""
    path = Path(folder) / GENERATION_CONFIG_FILE
    if not path.is_file():
        return GenerationDefaults()
    data = read_config_json(path, MAX_BYTES)
    unknown = sorted(set(data) - {f.name for f in fields(GenerationDefaults)})
    if unknown:
        raise ValueError(f"{path}: unknown setting {', '.join(unknown)}")
    try:
        return GenerationDefaults(**data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
