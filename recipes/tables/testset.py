"""The test clips every run generates, and what every evaluation compares against, made once per grid.

``--videos`` is a toy world, a VGGSound-style CSV or a folder of videos (``extractors.manifest``): its
``test`` split if it has one, else every clip. In ``DIR/testset/``:

    test.csv            name,start,label,split of the chosen clips: ``recipes.generate``'s input for every run
    reference/NAME.wav  the clip window's true audio (the video's own track), 16 kHz: the FD / IS reference
    testset.json        the clip names and the scored audio length

A clip's NAME is its video file's stem (its id, or ``{id}_{start:06d}`` for a file already cut at its
start), so generated wavs, reference wavs and videos pair by exact name.

The scored length is av-benchmark's 8 s (``evaluation.protocol.SCORED_SECONDS``), or less when a test
clip is shorter: generation renders a clip from its start to the end of its file (at most one window),
and evaluation never pads a file.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from evaluation.protocol import SCORED_SECONDS
from extractors.atomic import atomic_write_text
from extractors.clip import ClipConfig
from extractors.manifest import ClipItem, list_clips


@dataclass(frozen=True)
class TestSet:
    clips: list[ClipItem]
    csv: Path
    video_dir: Path  # where test.csv's videos are (generate's --video-dir; evaluate's --videos)
    reference: Path
    audio_length: float  # seconds of each file scored
    clip: ClipConfig  # the recipe's clip window the reference audio was cut to


def select_test_clips(videos: str | Path, limit: int | None = None) -> list[ClipItem]:
    """The test clips of ``videos`` in id order (at most ``limit``); ValueError of one line if unusable."""
    clips = list_clips(videos)
    test = [c for c in clips if c.split == "test"] or clips
    test = sorted(test, key=lambda c: c.id)[:limit]
    if len(test) < 2:
        raise ValueError(f"--videos {videos}: {len(test)} test clip(s); the tables need at least 2")
    folders = {c.path.parent for c in test}
    if len(folders) > 1:  # one --video-dir for generation, one --videos for evaluation
        raise ValueError(f"--videos {videos}: the test videos are in {len(folders)} folders; put them in one")
    return test


def prepare_test_set(clips: list[ClipItem], folder: Path, clip: ClipConfig = ClipConfig()) -> TestSet:
    """Write (or reuse) test.csv, the reference wavs and testset.json in ``folder``."""
    from extractors.video import read_clip
    from mapper.generation.wav import write_wav

    reference = folder / "reference"
    record = folder / "testset.json"
    ids = [c.path.stem for c in clips]
    known = json.loads(record.read_text()) if record.is_file() else {}
    if known.get("ids") != ids:
        shortest = clip.seconds
        for item in clips:
            decoded = read_clip(item.path, clip, start=item.start, with_audio=True)
            wav = reference / f"{item.path.stem}.wav"
            if not wav.is_file():
                write_wav(wav, decoded.audio, clip.sample_rate)
            shortest = min(shortest, decoded.duration - item.start)
        # whole hundredths, rounded down: a generated file is never shorter than what is scored
        length = min(SCORED_SECONDS, math.floor(shortest * 100) / 100)
        known = {"ids": ids, "audio_length": length, "sample_rate": clip.sample_rate}
        atomic_write_text(folder / "test.csv", _csv(clips))
        atomic_write_text(record, json.dumps(known, indent=1) + "\n")  # last: the set is complete
    return TestSet(clips, folder / "test.csv", clips[0].path.parent, reference, known["audio_length"], clip)


def _csv(clips: list[ClipItem]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for c in clips:
        writer.writerow([c.path.stem, c.start, c.label, "test"])
    return buffer.getvalue()
