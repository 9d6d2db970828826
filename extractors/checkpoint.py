"""Reading a checkpoint: nothing from it but tensors and plain data, and every key checked.

The one reader of weight files in the toolkit: the frozen encoders' released checkpoints
(``extractors/``), the evaluation embedders' (``evaluation/weights.py``), saved mappers
(``mapper/loading.py``) and training checkpoints (``mapper/training/checkpointing.py``). It lives in
the lowest layer so that every package can use it.

Reading: a ``.safetensors`` file holds tensors only; anything else goes through
``torch.load(weights_only=True)``, passed explicitly: torch honours it in every version we allow
(2.4+) and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot override it. A pickled object that would run
code is refused in one line naming the file (:class:`UnsafeCheckpointError`); a file that is no
checkpoint at all is one line too.

Checking: a state dict must hold exactly the model's keys with the model's shapes, or one line names
the file, what it should have been, and the first missing / unexpected / wrongly shaped keys
(:class:`StateDictMismatchError`), before any weight is copied.

Checking before building: ``read_checkpoint(path, map_location="meta")`` gives the contents with every
tensor on the meta device (shape and dtype, no data): a pickle is still unpickled weights-only (so it is
refused the same way) but no tensor is read, and a safetensors file is read from its header alone. A
loader can so refuse a file before it allocates the model the weights are for.

Every refusal is a :class:`CheckpointError` (a ValueError): a command line prints it as one line.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch

SAFETENSORS_SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A weight file that is refused: unreadable, unsafe, or not the model's (one line naming the file)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that holds more than tensors and plain data (or, in training, is remote without opt-in)."""


class StateDictMismatchError(CheckpointError):
    """A state dict whose keys or shapes are not those of the model it is loaded into."""


def read_checkpoint(source: str | os.PathLike | IO[bytes], *, name: str | None = None,
                    map_location: Any = "cpu") -> dict:
    """A checkpoint's contents: a path (safetensors by its suffix, else torch weights-only) or an open
    binary file (torch weights-only). ``name`` is what errors call it (default: the path); a
    safetensors file is read to the CPU, or with ``map_location="meta"`` from its header alone (meta
    tensors). One-line errors: FileNotFoundError, :class:`UnsafeCheckpointError` for pickled objects,
    :class:`CheckpointError` for anything else unreadable."""
    is_path = isinstance(source, (str, os.PathLike))
    name = name or str(source)
    if is_path and not os.path.isfile(source):
        raise FileNotFoundError(f"{name}: no such file")
    if is_path and str(source).endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import load_file

        try:
            if _is_meta(map_location):
                return _safetensors_on_meta(source)
            return load_file(str(source))
        except Exception as error:  # a truncated or foreign file: safetensors' SafetensorError
            raise CheckpointError(f"{name}: cannot be read as safetensors ({first_line(error)})") from None
    try:
        contents = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as error:
        pickled = re.search(r"GLOBAL ([\w.]+)", str(error))  # the object torch's weights-only unpickler met
        if pickled:
            raise UnsafeCheckpointError(f"{name}: refused: it holds pickled objects beyond tensors and plain data "
                                        f"(e.g. {pickled.group(1)}), which are never unpickled") from None
        raise CheckpointError(f"{name}: cannot be read weights-only ({first_line(error)})") from None
    if not isinstance(contents, dict):
        raise CheckpointError(f"{name}: holds a {type(contents).__name__}, not a dict of tensors")
    return contents


def _is_meta(map_location) -> bool:
    return (isinstance(map_location, str) and map_location == "meta") or (
        isinstance(map_location, torch.device) and map_location.type == "meta")


def _safetensors_on_meta(path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file as a meta tensor of its shape and dtype, from the header alone."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        out = {}
        for key in f.keys():
            piece = f.get_slice(key)
            dtype = _SAFETENSORS_DTYPES.get(piece.get_dtype())
            if dtype is None:
                raise ValueError(f"tensor {key} has dtype {piece.get_dtype()}, which is not read here")
            out[key] = torch.empty(tuple(piece.get_shape()), dtype=dtype, device="meta")
        return out


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip


def read_safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in a safetensors file, from its header alone (no tensor is read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}


def read_config_json(path: str | os.PathLike, max_bytes: int) -> dict:
    """An untrusted JSON config as a dict: at most ``max_bytes``, valid JSON, an object; else one line
    naming the file (read before anything is built from it)."""
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path}: {size / 2**20:.1f} MiB; a config may hold at most {max_bytes / 2**20:g} MiB")
    try:
        config = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as error:  # includes ints of more than 4300 digits
        raise ValueError(f"{path}: not valid JSON ({first_line(error)})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a JSON {type(config).__name__}, not an object")
    return config


def read_header_shapes(path: str | os.PathLike, max_header_bytes: int) -> dict[str, tuple[int, ...]]:
    """:func:`read_safetensors_shapes` of an untrusted file, after checking its header's length (the first
    8 bytes) against ``max_header_bytes``; every failure is one line naming the file."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
    if length > max_header_bytes:
        raise ValueError(f"{path}: a safetensors header of {length} bytes; at most {max_header_bytes / 2**20:g} MiB "
                         "allowed")
    try:
        return read_safetensors_shapes(path)
    except Exception as error:  # safetensors' own errors (SafetensorError) are no ValueError
        raise ValueError(f"{path}: not a readable safetensors file ({first_line(error)})") from None


def check_keys(expected: Mapping[str, Any], found: Mapping[str, Any], source, what: str) -> None:
    """``found`` holds exactly ``expected``'s keys with their shapes, or a one-line
    :class:`StateDictMismatchError`: ``"{source}: not {what}: missing N (e.g. key); unexpected N (e.g. key);
    wrong shape N (e.g. key)"`` (the first key of each kind, sorted). Values are tensors or shapes."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if _shape(expected[k]) != _shape(found[k]))
    parts = [f"{kind} {len(keys)} (e.g. {keys[0]})" for kind, keys in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if parts:
        raise StateDictMismatchError(f"{source}: not {what}: {'; '.join(parts)}")


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source, what: str) -> None:
    """Load ``state`` into ``model`` after :func:`check_keys` (every key, every shape). A model built on
    the meta device has no memory to copy into: it is assigned ``state``'s tensors instead (no second
    copy of the weights); any other model keeps its tensors' dtype and device and copies the values in."""
    ours = model.state_dict()
    check_keys(ours, state, source, what)
    on_meta = any(tensor.is_meta for tensor in ours.values())
    model.load_state_dict(state, strict=True, assign=on_meta)


def load_safetensors_model(build: Callable[[], torch.nn.Module], weights: Path, kind: str,
                           what: str) -> torch.nn.Module:
    """A small model saved as one safetensors file beside its config: ``build()`` makes the architecture the
    config describes; it is built on the meta device first and every key and shape of ``weights`` checked
    against it from the file's header (no weight read), then built for real and loaded strictly; returned
    frozen, in eval mode. ``kind`` names the model in the missing-file error (plural), ``what`` the source of
    the expected keys. Every failure is one line naming the file."""
    if not weights.is_file():
        raise FileNotFoundError(f"{weights.parent}: no {weights.name} ({kind} are read from safetensors only)")
    with torch.device("meta"):  # the described architecture, no memory: checked against the file's header
        described = build()
    try:
        stored = read_safetensors_shapes(weights)
    except Exception as error:  # a truncated or foreign file: safetensors' own error, made one line
        raise ValueError(f"{weights}: cannot be read as safetensors ({first_line(error)})") from None
    check_keys(described.state_dict(), stored, weights, what)
    model = build()
    load_strict(model, read_checkpoint(weights), weights, what)
    return model.eval().requires_grad_(False)


def save_safetensors_model(model: torch.nn.Module, config: dict, config_path: Path, weights: Path) -> None:
    """What ``load_safetensors_model`` reads: ``config`` as JSON at ``config_path`` and the model's tensors as
    safetensors at ``weights`` (folders created), each file written to a temporary name and renamed."""
    from safetensors.torch import save_file

    from extractors.atomic import atomic_path, atomic_write_text

    atomic_write_text(config_path, json.dumps(config, indent=1) + "\n")
    with atomic_path(weights) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))


def _shape(value) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def first_line(error: Exception) -> str:
    """What went wrong, in one line: the weights-only unpickler's own reason when it gave one (its
    message starts with paragraphs of advice), else the message's first line, else the error's type."""
    text = str(error).strip()
    reason = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if reason:
        return reason.group(1).strip()
    return text.splitlines()[0] if text else type(error).__name__
