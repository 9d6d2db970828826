"""Listing the clips to process: a folder of videos or a VGGSound-style CSV.

VGGSound's CSV has no header and four columns: YouTube id, start second, label, split. Videos
live beside it in `videos/` (or a folder given explicitly), named `{id}.mp4` or, as VGGSound
downloaders name them, `{id}_{start:06d}.mp4`. A folder without a CSV yields every video file in
it, with an empty label and split "train" (or the folder's metadata.csv if it has one).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ClipItem:
    id: str
    path: Path
    start: float = 0.0
    label: str = ""
    split: str = "train"


def list_clips(videos: str | Path, video_dir: str | Path | None = None) -> list[ClipItem]:
    """Clips from a CSV file or a folder (see module docstring)."""
    videos = Path(videos)
    if videos.is_file():
        return read_metadata_csv(videos, video_dir)
    if not videos.is_dir():
        raise FileNotFoundError(f"{videos}: no such file or folder")
    if (videos / "metadata.csv").is_file():
        return read_metadata_csv(videos / "metadata.csv", video_dir)
    return [ClipItem(id=p.stem, path=p) for p in sorted(videos.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]


def read_metadata_csv(csv_path: Path, video_dir: str | Path | None = None) -> list[ClipItem]:
    video_dir = Path(video_dir) if video_dir else csv_path.parent / "videos"
    items = []
    with open(csv_path, newline="") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row or (line_number == 1 and row[0].strip().lower() in ("id", "ytid", "youtube_id")):
                continue  # blank line or an optional header
            if len(row) < 4:
                raise ValueError(f"{csv_path}:{line_number}: expected id,start,label,split, got {row}")
            clip_id, start, label, split = (cell.strip() for cell in row[:4])
            where = f"{csv_path}:{line_number}"
            check_clip_id(clip_id, where)
            try:
                start_s = float(start)
            except ValueError:
                raise ValueError(f"{where}: start {start!r} is not a number") from None
            if not math.isfinite(start_s) or start_s < 0:
                raise ValueError(f"{where}: start {start!r} must be a finite number of seconds >= 0")
            path, offset = _video_path(video_dir, clip_id, start_s)
            items.append(ClipItem(id=clip_id, path=path, start=offset, label=label, split=split))
    return items


def check_clip_id(clip_id: str, where: str) -> None:
    """Ids name files inside the video, cache and output folders, so they must be plain names: an id
    such as ``../../x`` or ``/abs/x`` would read or write outside them."""
    unsafe = (
        not clip_id
        or clip_id in (".", "..")
        or any(sep in clip_id for sep in ("/", "\\", "\0"))
        or clip_id.startswith(".")  # also hidden names, which temporaries use
    )
    if unsafe:
        raise ValueError(f"{where}: id {clip_id!r} is not a plain file name (no '/', '\\', leading '.'); "
                         "ids must name files inside their folders")


def _video_path(video_dir: Path, clip_id: str, start: float) -> tuple[Path, float]:
    """The clip's file and where its window starts inside that file."""
    for suffix in VIDEO_SUFFIXES:
        full = video_dir / f"{clip_id}{suffix}"
        if full.is_file():
            return full, start  # the whole video: `start` picks the window
        trimmed = video_dir / f"{clip_id}_{int(start):06d}{suffix}"
        if trimmed.is_file():
            return trimmed, 0.0  # already cut at `start` by the downloader
    return video_dir / f"{clip_id}.mp4", start  # missing: reported when extraction reads it
