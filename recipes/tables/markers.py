"""Done markers: ``RUN/<step>.done.json``, written atomically once a step's outputs are complete.

A rerun skips every step whose marker is valid, so an interrupted grid redoes only the step that was
cut (which resumes on its own where it can: training from ``last.ckpt``, generation with
``--skip-existing``). A marker holds what the step measured, how long it took, and the sha256 of
every file it vouches for (the exported mapper, the generated wavs, metrics.json). A marker that is
not valid JSON, does not have its step's shape, or vouches for a file that is gone or changed is
named in one line, set aside (``<step>.done.json.rejected``, and a changed file beside it as
``<file>.rejected``, so ``--skip-existing`` does not keep it) and its step is done again: tables are
only ever made from outputs that are still there as they were measured.
"""
from __future__ import annotations

import json
import sys
import time
from functools import lru_cache
from numbers import Real
from pathlib import Path

from extractors.atomic import atomic_write_text
from extractors.file_hash import file_sha256

# step -> {key: type} the marker must hold besides step/seconds/finished/files ("curve_epoch" covers curve_epochNNNN)
SCHEMA: dict[str, dict[str, type | tuple]] = {
    "train": {"mapper": str},
    "generate": {"clips": int},
    "evaluate": {"metrics": dict},
    "curve": {"points": dict},
    "curve_epoch": {"epoch": int, "metrics": dict},
}
COMMON: dict[str, type | tuple] = {"step": str, "seconds": Real, "finished": str, "files": dict}


def marker_path(folder: Path, step: str) -> Path:
    return folder / f"{step}.done.json"


def read_marker(folder: Path, step: str) -> dict | None:
    """The step's marker if it is valid and its files are as it found them; else None (a bad one is
    reported and set aside, so the step runs again)."""
    path = marker_path(folder, step)
    if not path.is_file():
        return None
    problem, changed = marker_problem(path, step)
    if problem is None:
        return json.loads(path.read_text())
    for bad in (path, changed):
        if bad is not None:
            bad.replace(bad.with_name(bad.name + ".rejected"))
    print(f"{path}: {problem}; set aside, the step will run again", file=sys.stderr, flush=True)
    return None


def write_marker(folder: Path, step: str, seconds: float, files: list[Path] = (), **content) -> dict:
    """Record a finished step; `files` (under `folder`) are those the marker vouches for."""
    record = {"step": step, "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              **content, "files": {str(Path(f).relative_to(folder)): file_sha256(f) for f in sorted(files)}}
    atomic_write_text(marker_path(folder, step), json.dumps(record, indent=1, default=float) + "\n")
    return record


def marker_problem(path: Path, step: str) -> tuple[str | None, Path | None]:
    """Why the marker at `path` cannot be trusted (one phrase, or None), and the vouched file that changed."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"not a readable marker ({' '.join(str(error).split())})", None
    if not isinstance(record, dict):
        return f"not a marker (a JSON {type(record).__name__}, expected an object)", None
    schema = {**COMMON, **SCHEMA["curve_epoch" if step.startswith("curve_epoch") else step]}
    for key, kind in schema.items():
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool) and kind is int:
            return f"not a {step} marker ({key!r} missing or not {getattr(kind, '__name__', kind)})", None
    if record["step"] != step:
        return f"a marker of step {record['step']!r}, expected {step!r}", None
    for name, digest in record["files"].items():
        file = path.parent / name
        if not file.is_file() or path.parent.resolve() not in file.resolve().parents:
            return f"the file it vouches for is missing: {name}", None
        if _sha256(file, file.stat().st_mtime_ns, file.stat().st_size) != digest:
            return f"the file it vouches for changed since: {name}", file
    return None, None


@lru_cache(maxsize=None)
def _sha256(file: Path, mtime_ns: int, size: int) -> str:
    """A file's sha256, computed once per version of it in this process (markers are read often)."""
    return file_sha256(file)
