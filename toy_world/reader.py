"""Reading a toy world back from its folder: the only code that parses a world's world.json.

The writer (``toy_world.world``) records its whole plan in world.json; everything that later needs
a world's clips, splits, event times or sample rate (the demo's examples, the evaluation's event-sync
error, the toy report, the paper tables' checks) reads the folder through ``read_world``. It checks
the file once, so a missing, damaged or foreign world.json is one line naming the file and what is
wrong with it, not a KeyError deep inside a metric.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extractors.manifest import SPLITS, check_clip_id
import toy_world.layout as layout  # as a module: ToyWorld's methods share its function names


@dataclass(frozen=True)
class ToyWorld:
    """A toy world as read from ``root``: ``plan`` is its world.json, the dict ``plan_world`` returned
    (checked by ``read_world``; not to be changed)."""

    root: Path
    plan: dict

    @property
    def seed(self) -> int:
        return self.plan["seed"]

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) every clip's sound track was rendered and encoded at."""
        return self.plan["audio"]["sample_rate"]

    @property
    def is_complete(self) -> bool:
        """Whether every clip's video is on disk (``layout.is_complete``)."""
        return layout.is_complete(self.root)

    @property
    def videos_dir(self) -> Path:
        return layout.videos_dir(self.root)

    def clips(self, split: str | None = None) -> list[dict]:
        """The clips' plans (id, label, split, duration, start, events, ...) in id order; ``split``'s only if given."""
        chosen = (c for c in self.plan["clips"] if split is None or c["split"] == split)
        return sorted(chosen, key=lambda c: c["id"])

    def video_path(self, clip_id: str) -> Path:
        return layout.video_path(self.root, clip_id)

    def event_times(self) -> dict[str, np.ndarray]:
        """Clip id -> its event times in seconds from the clip's ``start`` (``window_event_times``)."""
        return {c["id"]: window_event_times(c) for c in self.clips()}


def window_event_times(spec: dict) -> np.ndarray:
    """(events,) float64: a planned clip's event times in seconds from its ``start``. world.json counts
    them from the beginning of the file; extraction, generation and scoring hear the window that
    begins at ``start``."""
    return np.asarray(spec["events"]["times"], dtype=np.float64) - spec["start"]


def read_world(root: str | Path) -> ToyWorld:
    """The toy world in ``root``; ValueError of one line naming its world.json and what is wrong."""
    root = Path(root)
    plan = read_plan(root)
    problem = _plan_problem(plan)
    if problem is not None:
        raise ValueError(f"{layout.world_json(root)}: not a toy world's plan ({problem})")
    return ToyWorld(root, plan)


def read_plan(root: str | Path) -> object:
    """``root``'s world.json as written, unchecked (the writer compares it with the plan it would write);
    ValueError of one line naming the file if it is missing, unreadable or not JSON."""
    path = layout.world_json(root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (not a toy world)") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None


def world_root_of(folder: str | Path) -> Path | None:
    """The toy world ``folder`` is, or whose videos folder it is (world.json in it or beside it); None if
    neither. Only finds the file: ``read_world`` checks what is in it."""
    folder = Path(folder)
    return next((root for root in (folder, folder.parent) if layout.world_json(root).is_file()), None)


# ---------------------------------------------------------------------------- checks


def _plan_problem(plan: object) -> str | None:
    """What makes ``plan`` unusable as a world (None: nothing): the fields its readers rely on."""
    if not isinstance(plan, dict):
        return f"a JSON {type(plan).__name__}, not an object"
    if not _is_int(plan.get("seed"), 0):
        return "no 'seed' (a whole number >= 0)"
    audio = plan.get("audio")
    if not isinstance(audio, dict) or not _is_int(audio.get("sample_rate"), 1):
        return "no 'audio.sample_rate' (a whole number of Hz > 0)"
    clips = plan.get("clips")
    if not isinstance(clips, list):
        return "no 'clips' list"
    seen = set()
    for number, clip in enumerate(clips):
        problem = _clip_problem(clip)
        if problem is None and clip["id"] in seen:
            problem = "its id is used twice"
        if problem is not None:
            name = clip["id"] if isinstance(clip, dict) and isinstance(clip.get("id"), str) else f"number {number}"
            return f"clip {name}: {problem}"
        seen.add(clip["id"])
    return None


def _clip_problem(clip: object) -> str | None:
    if not isinstance(clip, dict):
        return "not an object"
    if not isinstance(clip.get("id"), str):
        return "no 'id' string"
    try:
        check_clip_id(clip["id"], "id")  # ids name video files: none may point outside videos/
    except ValueError:
        return "its id is not a plain file name"
    if not isinstance(clip.get("label"), str):
        return "no 'label' string"
    if clip.get("split") not in SPLITS:
        return f"'split' is not one of {', '.join(SPLITS)}"
    for key in ("duration", "start"):
        if not _is_number(clip.get(key)) or clip[key] < 0:
            return f"no '{key}' (seconds >= 0)"
    events = clip.get("events")
    if not isinstance(events, dict) or not all(
            isinstance(events.get(key), list) and all(map(_is_number, events[key])) for key in ("times", "lengths")):
        return "no 'events' with lists 'times' and 'lengths' of seconds"
    if len(events["times"]) != len(events["lengths"]):
        return "'events.times' and 'events.lengths' differ in length"
    return None


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
