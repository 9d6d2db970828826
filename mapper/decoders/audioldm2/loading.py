"""Loading AudioLDM-2: "tiny" (random, offline), "toy" (pretrained on the toy world, shipped), a
local diffusers folder (offline), or a hub id.

Only a hub id may reach the network. Whatever is loaded, the caller must not use the pipeline's own
prompt path (see :mod:`mapper.decoders.audioldm2`); :mod:`~mapper.decoders.audioldm2.conditions`
computes every condition itself.
"""
from __future__ import annotations

import os

import torch
from diffusers import AudioLDM2Pipeline

from mapper.decoders.audioldm2.tiny import build_tiny_audioldm2, freeze
from mapper.decoders.audioldm2.toy import TOY_FOLDER

BUILT_IN = ("tiny", "toy")


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else is meant as a local folder."""
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or name.endswith("/")
        or (os.sep != "/" and os.sep in name)
    )


def _from_hub(repo_id: str, dtype: torch.dtype, download: bool) -> AudioLDM2Pipeline:
    """From the local Hugging Face cache, or downloaded when ``download``; a failure (offline,
    unknown id, not cached) becomes one line naming both readings."""
    if not download:
        try:
            return AudioLDM2Pipeline.from_pretrained(repo_id, dtype=dtype, local_files_only=True, use_safetensors=True)
        except OSError:
            raise FileNotFoundError(
                f"AudioLDM-2 '{repo_id}' (named by the mapper's config) is not in the local Hugging Face cache, "
                f"and nothing is downloaded unless you name it: pass audioldm2='{repo_id}' (--audioldm2 {repo_id}) "
                "or a local folder"
            ) from None
    try:
        return AudioLDM2Pipeline.from_pretrained(repo_id, dtype=dtype, use_safetensors=True)
    except OSError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OSError(
            f"AudioLDM-2 '{repo_id}' is no local folder and could not be loaded from the hub ({reason})"
        ) from error


def check_audioldm2_name(option: str, name: str) -> None:
    """ValueError of one line naming `option` unless `name` can be loaded: a built-in name, a diffusers
    folder, or something shaped like a hub id. Reads nothing but the folder listing."""
    if name in BUILT_IN:
        return
    path = os.path.expanduser(name)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "model_index.json")):
        raise ValueError(f"{option} {path}: not a diffusers AudioLDM-2 folder (no model_index.json)")
    if not os.path.isdir(path) and (os.path.exists(path) or _looks_like_path(name)):
        raise ValueError(f"{option} {path}: no such folder; give {' or '.join(map(repr, BUILT_IN))}, "
                         "a diffusers folder or a hub id")


def load_audioldm2(
    name_or_path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, download: bool = True
) -> AudioLDM2Pipeline:
    """``"tiny"`` -> random tiny pipeline; ``"toy"`` -> the shipped toy pipeline; a local folder -> offline
    load; else a hub id.

    Only a hub id may reach the network, and only with ``download`` (the user named it); without,
    a hub id is read from the local Hugging Face cache or refused. Weights are read as safetensors.
    """
    if name_or_path == "tiny":
        return _placed(build_tiny_audioldm2(), device, dtype)
    path = str(TOY_FOLDER) if name_or_path == "toy" else os.path.expanduser(name_or_path)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise FileNotFoundError(f"{path} is not a diffusers AudioLDM-2 folder: model_index.json is missing")
        pipe = AudioLDM2Pipeline.from_pretrained(path, local_files_only=True, dtype=dtype, use_safetensors=True)
    elif os.path.exists(path) or _looks_like_path(name_or_path):
        raise FileNotFoundError(
            f"AudioLDM-2 folder not found: {path} (expected a diffusers save_pretrained folder, "
            "'tiny', or a hub id such as cvssp/audioldm2)"
        )
    else:
        pipe = _from_hub(name_or_path, dtype, download)
    return _placed(freeze(pipe), device, dtype)  # dtype again: older diffusers ignore the kwarg


def _placed(pipe: AudioLDM2Pipeline, device, dtype: torch.dtype) -> AudioLDM2Pipeline:
    """Move to ``device``; cast only modules not already in ``dtype`` (diffusers warns on every cast)."""
    pipe.to(device)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module) and any(p.dtype != dtype for p in component.parameters()):
            component.to(dtype=dtype)
    return pipe
