"""The names of a toy world's files, in one place for its writer (``world``) and its reader (``reader``).

    ROOT/world.json        the plan: every random choice, the sample rate, every clip (written first)
    ROOT/videos/{id}.mp4   one video per clip
    ROOT/metadata.csv      VGGSound style, so ``extractors.manifest`` lists the clips (written last)

What each file holds is ``toy_world.world``'s docstring.
"""
from __future__ import annotations

from pathlib import Path

WORLD_JSON = "world.json"
VIDEOS = "videos"
METADATA_CSV = "metadata.csv"


def world_json(root: str | Path) -> Path:
    return Path(root) / WORLD_JSON


def videos_dir(root: str | Path) -> Path:
    return Path(root) / VIDEOS


def video_path(root: str | Path, clip_id: str) -> Path:
    return videos_dir(root) / f"{clip_id}.mp4"


def metadata_csv(root: str | Path) -> Path:
    return Path(root) / METADATA_CSV


def is_complete(root: str | Path) -> bool:
    """Whether every video of the world in ``root`` is on disk: the writer writes metadata.csv after the last."""
    return metadata_csv(root).is_file()
