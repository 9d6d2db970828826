"""AudioLDM-2's GPT-2 (``language_model``), the paper's initialisation of the mapper's backbone."""
from __future__ import annotations

from pathlib import Path


def load_language_model(name_or_path: str):
    """AudioLDM-2's GPT-2 from a local folder (the `language_model` subfolder or the pipeline
    folder containing it) or, when named, the hub id of an AudioLDM-2 repository."""
    from transformers import GPT2Model

    path = Path(name_or_path)
    if path.is_dir():
        folder = path / "language_model" if (path / "language_model").is_dir() else path
        return GPT2Model.from_pretrained(folder, local_files_only=True)
    if path.suffix or name_or_path.startswith((".", "/")):
        raise FileNotFoundError(f"{name_or_path}: no such folder (expected AudioLDM-2's language_model)")
    return GPT2Model.from_pretrained(name_or_path, subfolder="language_model")
