"""Done markers: ``RUN/<step>.done.json``, written atomically once a step's outputs are complete.

A rerun skips every step whose marker exists, so an interrupted grid redoes only the step that was
cut (which resumes on its own where it can: training from ``last.ckpt``, generation with
``--skip-existing``). A marker holds what the step measured and how long it took.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from extractors.atomic import atomic_write_text


def marker_path(folder: Path, step: str) -> Path:
    return folder / f"{step}.done.json"


def read_marker(folder: Path, step: str) -> dict | None:
    path = marker_path(folder, step)
    return json.loads(path.read_text()) if path.is_file() else None


def write_marker(folder: Path, step: str, seconds: float, **content) -> dict:
    record = {"step": step, "seconds": round(seconds, 3),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **content}
    atomic_write_text(marker_path(folder, step), json.dumps(record, indent=1, default=float) + "\n")
    return record
