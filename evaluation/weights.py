"""Finding an evaluation embedder's released checkpoint, offline, and building the embedder from it.

The files live in the same folder as the extractors' (``$MFM_WEIGHTS``, or an explicit
``weights_dir``). Nothing is ever downloaded: a missing file is one line naming it and where it is
published. A known checksum is verified before the file is read. Reading (weights-only) and the
strict key check are ``extractors.checkpoint``'s, as for every other checkpoint of the toolkit.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from extractors.checkpoint import load_strict, read_checkpoint
from extractors.encoders import WEIGHTS_ENV


@dataclass(frozen=True)
class ReleasedFile:
    name: str  # file name inside the weights folder
    source: str  # where its authors publish it (said in the error when it is missing)
    md5: str | None = None  # checksum of the published file, where known


def weights_folder(weights_dir: str | os.PathLike | None) -> Path:
    folder = weights_dir or os.environ.get(WEIGHTS_ENV)
    if not folder:
        raise FileNotFoundError(f"no weights folder: pass weights_dir or set {WEIGHTS_ENV} to the folder with the released files")
    return Path(folder)


def find_released_file(released: ReleasedFile, weights_dir: str | os.PathLike | None) -> Path:
    """The file's path, checked (exists, checksum); FileNotFoundError / ValueError in one line."""
    path = weights_folder(weights_dir) / released.name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; download {released.name} from {released.source} into {path.parent}")
    if released.md5 is not None:
        digest = hashlib.md5()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
        if digest.hexdigest() != released.md5:
            raise ValueError(f"{path}: md5 {digest.hexdigest()} is not the published {released.md5} "
                             f"(a partial download or another file); get it again from {released.source}")
    return path


def build_embedder(name: str, model_class, presets: dict, load_released, preset: str, weights_dir, seed: int,
                   shipped: dict[str, Path] | None = None):
    """An embedder at ``preset``, in eval mode. ``tiny``: seeded random weights. ``paper``: built on the
    meta device (no random init of weights that are overwritten anyway), then ``load_released`` assigns
    the released file's tensors; a missing file fails before anything is built. A preset in ``shipped``
    (preset -> a weights file that ships with the package, e.g. PANNs' ``toy``) is built on the meta
    device too and assigned that file's tensors, strictly; ``weights_dir`` plays no part."""
    if preset not in presets:
        raise ValueError(f"unknown {name} preset {preset!r}; expected one of {sorted(presets)}")
    shipped = shipped or {}
    if preset == "paper" or preset in shipped:
        with torch.device("meta"):
            model = model_class(presets[preset])
        if preset == "paper":
            load_released(model, weights_dir)
        else:
            load_shipped(model, shipped[preset], f"the {name} {preset!r} state dict")
    else:
        torch.manual_seed(seed)
        model = model_class(presets[preset])
    return model.eval()


def load_shipped(model: torch.nn.Module, path: str | os.PathLike, what: str) -> None:
    """A weights file that ships with the package (no checksum to compare: the package is the source),
    strictly into ``model``; a missing file is one line (a broken installation, nothing to download)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: missing; {what} ships with the package (reinstall it)")
    load_strict(model, read_checkpoint(path), path, what)
