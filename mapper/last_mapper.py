"""Remembers where the last `train_mapper` run saved its mapper, so `mapper.generate(video)`
works without being told. The record lives in `$MFM_HOME` (default `~/.cache/mfm-mapper`)."""
from __future__ import annotations

import os
from pathlib import Path

from extractors.atomic import atomic_write_text


def home() -> Path:
    return Path(os.environ.get("MFM_HOME", Path.home() / ".cache" / "mfm-mapper"))


def remember_last_mapper(mapper_dir: str | os.PathLike) -> None:
    home().mkdir(parents=True, exist_ok=True)
    atomic_write_text(home() / "last_mapper", str(Path(mapper_dir).resolve()))


def last_mapper() -> Path:
    record = home() / "last_mapper"
    if not record.is_file():
        raise FileNotFoundError(
            f"no trained mapper recorded in {record}; run `python -m recipes.train_mapper` "
            "or pass load_pipeline(mapper=DIR)"
        )
    path = Path(record.read_text().strip())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: the last trained mapper is gone (no config.json); retrain or name one")
    return path
