"""AudioLDM-2's GPT-2 (``language_model``), the paper's initialisation of the mapper's backbone."""
from __future__ import annotations

from pathlib import Path


def language_model_folder(name_or_path: str) -> Path | None:
    """The local folder ``name_or_path`` names (its `language_model` subfolder if it has one), or
    None for a hub id; FileNotFoundError for a path that is not a folder. Reads no weights."""
    path = Path(name_or_path)
    if path.is_dir():
        return path / "language_model" if (path / "language_model").is_dir() else path
    if path.suffix or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise FileNotFoundError(f"model.init_language_model={name_or_path!r}: no such folder "
                                "(expected AudioLDM-2's folder, its language_model folder, or a hub id)")
    return None


def load_language_model(name_or_path: str):
    """AudioLDM-2's GPT-2 from a local folder or, when named, the hub id of an AudioLDM-2 repository
    (the only case that goes online); safetensors only."""
    from transformers import GPT2Model

    folder = language_model_folder(name_or_path)
    if folder is not None:
        return GPT2Model.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    return GPT2Model.from_pretrained(name_or_path, subfolder="language_model", use_safetensors=True)
