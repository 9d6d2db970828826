"""Training vs inference extraction, short/long/silent clips, and batching through the models.

Training extraction needs the AudioMAE target, so a clip without an audio track is skipped and
reported; inference extraction keeps it with a null target. A long clip's window is the one the
CSV's `start` picks; a short clip is zero-padded and says how many frames are real. Batching clips
(frames of the same resolution stacked, other resolutions in their own call) must give the features
of extracting them one by one, and resizing frames in the decoding workers must give the models'
own features.
"""
from __future__ import annotations

import csv
import math
import shutil
from dataclasses import replace

import av
import numpy as np
import pytest
import torch

from extractors.cache import CacheMismatchError, FeatureCache
from extractors.manifest import list_clips
from extractors.extraction import extract_to_cache, shared_frame_size
from extractors.frozen import FrozenExtractors
from extractors.presets import get_preset
from extractors.video import read_clip

PRESET = get_preset("tiny")


def _write_mp4(path, frames: list[np.ndarray], audio: np.ndarray | None, sample_rate: int = 16_000) -> None:
    """h264 video at 25 fps (+ AAC mono if `audio` is given)."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        for img in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
        out.mux(video.encode())
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = sample_rate, 0
            out.mux(sound.encode(samples))
            out.mux(sound.encode())


def _frames_and_audio(path) -> tuple[list[np.ndarray], np.ndarray]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    clip = read_clip(path, PRESET.clip)
    return frames, clip.audio


@pytest.fixture(scope="module")
def mixed_world(toy_world, tmp_path_factory):
    """A short and a long (start > 0) toy clip + a silent clip + a clip of another resolution."""
    root, metadata = toy_world
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "videos").mkdir()
    rows = [r for r in csv.reader(metadata.open()) if r[0] in ("toy_00000", "toy_00003")]
    for row in rows:
        shutil.copy(root / "videos" / f"{row[0]}.mp4", folder / "videos")
    frames, audio = _frames_and_audio(root / "videos" / "toy_00002.mp4")
    _write_mp4(folder / "videos" / "silent.mp4", frames, None)
    _write_mp4(folder / "videos" / "small.mp4", [f[8:72, :80] for f in frames], audio)  # 64 x 80
    rows += [["silent", "0", "lamp beeping", "train"], ["small", "0", "bell ringing", "val"]]
    with open(folder / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return folder / "metadata.csv"


@pytest.fixture(scope="module")
def extractors():
    return FrozenExtractors.from_preset(PRESET)


@pytest.fixture(scope="module")
def training_rows(mixed_world, extractors, tmp_path_factory):
    cache = FeatureCache(tmp_path_factory.mktemp("training") / "cache")
    report = extract_to_cache(list_clips(mixed_world), cache, extractors, batch_size=4, dtype="float32", progress=False)
    return cache, report


def test_training_extraction_skips_and_reports_clips_without_audio(training_rows):
    cache, report = training_rows
    assert report.extracted == 3 and len(report.failed) == 1
    path, reason = report.failed[0]
    assert path.endswith("silent.mp4") and "no audio track" in reason and "--inference" in reason
    assert "\n" not in reason and reason in report.summary()
    assert sorted(cache.load(PRESET, require_audio=True)["id"]) == ["small", "toy_00000", "toy_00003"]
    assert [f["id"] for f in cache.failures()] == ["silent"]


def test_long_clip_uses_the_csv_start_and_short_clip_is_padded(training_rows, mixed_world, extractors):
    rows = {row["id"]: row for row in training_rows[0].load(PRESET).with_format("numpy")}
    long_row, short_row = rows["toy_00003"], rows["toy_00000"]
    long_path = mixed_world.parent / "videos" / "toy_00003.mp4"
    assert long_row["start"] == 2.0 and long_row["duration"] > PRESET.clip.seconds + 2
    assert long_row["num_valid_frames"] == PRESET.clip.num_frames

    def cavp_at(start: float) -> np.ndarray:
        frames = torch.from_numpy(read_clip(long_path, PRESET.clip, start=start, with_audio=False).frames)[None]
        return extractors.encode_video(frames)["cavp"][0].numpy()

    np.testing.assert_allclose(long_row["cavp"], cavp_at(2.0), atol=1e-4)
    assert not np.allclose(long_row["cavp"], cavp_at(0.0), atol=1e-2)  # the window really moved
    assert short_row["num_valid_frames"] == math.ceil(short_row["duration"] * PRESET.clip.fps) < PRESET.clip.num_frames


def test_batched_extraction_equals_clip_by_clip(training_rows, mixed_world, extractors, tmp_path):
    single = FeatureCache(tmp_path / "single")
    extract_to_cache(list_clips(mixed_world), single, extractors, batch_size=1, dtype="float32", progress=False)
    batched, one_by_one = training_rows[0].load(PRESET).with_format("numpy"), single.load(PRESET).with_format("numpy")
    assert list(batched["id"]) == list(one_by_one["id"])
    for name in ("cavp", "timechat", "audiomae", "num_valid_frames"):
        np.testing.assert_allclose(np.stack(batched[name]), np.stack(one_by_one[name]), atol=1e-4, err_msg=name)


def test_inference_extraction_keeps_silent_clips_without_a_target(mixed_world, extractors, tmp_path):
    cache = FeatureCache(tmp_path / "inference")
    report = extract_to_cache(list_clips(mixed_world), cache, extractors, batch_size=4, require_audio=False, progress=False)
    assert report.extracted == 4 and report.failed == []
    rows = {row["id"]: row for row in cache.load(PRESET)}
    assert rows["silent"]["audiomae"] is None and rows["silent"]["cavp"] is not None
    assert all(np.asarray(row["audiomae"]).shape == (8, PRESET.dims.audio_token_dim)
               for clip_id, row in rows.items() if clip_id != "silent")
    with pytest.raises(CacheMismatchError, match="1 clips have no AudioMAE target"):
        cache.load(PRESET, require_audio=True)
    with pytest.raises(CacheMismatchError, match="inference .* cannot be resumed by a training"):
        extract_to_cache(list_clips(mixed_world), cache, extractors, progress=False)
    with pytest.raises(CacheMismatchError, match="stores float16, not float32"):
        extract_to_cache(list_clips(mixed_world), cache, extractors, require_audio=False, dtype="float32", progress=False)


def test_resizing_in_the_workers_gives_the_models_own_features(mixed_world, tmp_path):
    """Both video models at one size (as in the paper preset): workers resize once, features unchanged."""
    preset = replace(PRESET, name="tiny-56", visual={**PRESET.visual, "cavp": replace(PRESET.visual["cavp"], image_size=56)})
    assert shared_frame_size(preset) == 56 and shared_frame_size(PRESET) is None
    models = FrozenExtractors.from_preset(preset)
    items = [item for item in list_clips(mixed_world) if item.id in ("toy_00003", "small")]  # 96x96 and 64x80
    cache = FeatureCache(tmp_path / "cache")
    extract_to_cache(items, cache, models, batch_size=2, num_workers=1, dtype="float32", progress=False)
    rows = {row["id"]: row for row in cache.load(preset).with_format("numpy")}
    for item in items:
        frames = torch.from_numpy(read_clip(item.path, preset.clip, start=item.start, with_audio=False).frames)[None]
        direct = models.encode_video(frames)  # the models resize the decoded frames themselves
        np.testing.assert_allclose(rows[item.id]["cavp"], direct["cavp"][0].numpy(), atol=1e-5)
        np.testing.assert_allclose(rows[item.id]["timechat"], direct["timechat"][0].numpy(), atol=1e-5)
