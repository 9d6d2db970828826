"""The contract every frozen encoder follows, and the registry that builds and loads them.

A visual encoder turns a clip's frames into one named *feature stream*; the mapper fuses streams by
name, so adding an encoder touches three places: its module (architecture + released-file loading),
an entry in a preset's ``visual`` mapping, and a name in the mapper config's ``encoders``.

Each encoder module (``cavp.py``, ``timechat.py``, ``audiomae.py``, ...) provides, timm-style:

* a frozen config dataclass; a visual one has ``stream(num_frames) -> StreamSpec`` (its tokens' shape
  and place in time, known without building the model);
* the model, built as ``Model(config)``; a visual one has ``encode(frames_uint8, clip) -> (B, N, D)``
  for (B, T, H, W, 3) uint8 frames and the ``ClipConfig`` they were sampled with;
* ``RELEASED_FILES`` (the files it reads from a weights folder; ``"a|b"``: either) and ``load_released(model, weights_dir)``
  (reads them weights-only and loads them with every key checked, both with ``extractors.checkpoint``);

and registers the three with ``register_encoder``. ``MFM_WEIGHTS`` is read here, when weights load.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

WEIGHTS_ENV = "MFM_WEIGHTS"  # folder holding the released checkpoints of every frozen model


@dataclass(frozen=True)
class StreamSpec:
    """Shape and timing of one visual feature stream: ``queries`` tokens per window, window w
    covering frames ``spans[w]`` = [start, end). A per-frame encoder (CAVP) is one window over all T
    frames with T queries; TimeChat is W windows of 32 frames with 32 queries each."""

    dim: int
    spans: tuple[tuple[int, int], ...]
    queries: int

    @property
    def num_tokens(self) -> int:
        return len(self.spans) * self.queries

    @property
    def shape(self) -> tuple[int, int]:
        """(tokens, dim) of one clip's features."""
        return self.num_tokens, self.dim

    def to_dict(self) -> dict:
        return {"dim": self.dim, "spans": [list(span) for span in self.spans], "queries": self.queries}

    @classmethod
    def from_dict(cls, data: dict) -> "StreamSpec":
        return cls(int(data["dim"]), tuple((int(a), int(b)) for a, b in data["spans"]), int(data["queries"]))

    @classmethod
    def per_frame(cls, dim: int, num_frames: int) -> "StreamSpec":
        """One token per frame."""
        return cls(dim, ((0, num_frames),), num_frames)


@dataclass(frozen=True)
class EncoderEntry:
    model: type[nn.Module]  # built as model(config)
    released_files: tuple[str, ...]  # what load_released reads from a weights folder
    load_released: Callable[[nn.Module, str], None]


_ENCODERS: dict[type, EncoderEntry] = {}


def register_encoder(config_type: type, model: type[nn.Module], released_files: tuple[str, ...],
                     load_released: Callable[[nn.Module, str], None]) -> None:
    """Make configs of ``config_type`` buildable (``build_encoder``) and loadable (``load_encoder_weights``)."""
    _ENCODERS[config_type] = EncoderEntry(model, tuple(released_files), load_released)


def encoder_entry(config) -> EncoderEntry:
    entry = _ENCODERS.get(type(config))
    if entry is None:
        known = ", ".join(sorted(t.__name__ for t in _ENCODERS))
        raise KeyError(f"no encoder registered for {type(config).__name__} (registered: {known}); "
                       "call extractors.encoders.register_encoder")
    return entry


def build_encoder(config) -> nn.Module:
    return encoder_entry(config).model(config)


def load_encoder_weights(model: nn.Module, config, weights_dir: str) -> None:
    """The encoder's released files from ``weights_dir``, strictly checked (see the module docstring)."""
    encoder_entry(config).load_released(model, weights_dir)


def missing_released_files(config, weights_dir: str) -> list[str]:
    """The encoder's ``RELEASED_FILES`` that ``weights_dir`` lacks (checked before any model is built)."""
    missing = []
    for name in encoder_entry(config).released_files:
        options = name.split("|")
        if not any(os.path.exists(os.path.join(weights_dir, option)) for option in options):
            missing.append(" or ".join(options))
    return missing


def released_weights_dir(explicit: str | None, released: bool) -> str | None:
    """Where released weights are read: ``explicit`` if given, else ``$MFM_WEIGHTS`` for a preset of
    released models, else None (random initialisation from the preset's seed)."""
    if explicit is not None:
        return explicit
    return (os.environ.get(WEIGHTS_ENV) or None) if released else None
