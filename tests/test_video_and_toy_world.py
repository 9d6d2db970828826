"""The toy world (toy_world: writer and reader) and the decoder (extractors.video) checked together.

The toy world is the data every offline test and demo trains on, so it has to be what it claims:
standard files, a deterministic function of the seed, and sounds caused by visible events at the
recorded times; read back, it is the plan it was written from, and a damaged world.json is one
line naming the file. read_clip is the only way frames and audio enter the pipeline, so its shapes,
padding, start offset and one-line errors are pinned here on those same files.
"""
from __future__ import annotations

import csv
import json
import pickle
import re
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from extractors.clip import ClipConfig
from extractors.video import (AudioReadError, VideoReadError, probe_duration, read_audio_file,
                              read_clip)
from recipes.make_toy_data import main
from toy_world import CLASSES, SIZE, VIDEO_FPS, make_toy_world, plan_world, read_world, world_root_of

CLIP = ClipConfig()
NUM_CLIPS, SEED = 8, 7


def _load(metadata: Path) -> tuple[list[list[str]], dict]:
    rows = list(csv.reader(metadata.open()))
    return rows, read_world(metadata.parent).plan


def _video(metadata: Path, spec: dict) -> Path:
    return read_world(metadata.parent).video_path(spec["id"])


def _full(path: Path, spec: dict, fps: float = VIDEO_FPS):
    """The whole file at `fps`: every frame of the video when fps is the file's own rate."""
    return read_clip(path, ClipConfig(fps=fps, seconds=spec["duration"],
                                      sample_rate=CLIP.sample_rate))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_toy_world(tmp_path_factory.mktemp("world_a"), NUM_CLIPS, SEED)


@pytest.fixture(scope="module")
def same_seed_world(tmp_path_factory) -> Path:
    return make_toy_world(tmp_path_factory.mktemp("world_b"), NUM_CLIPS, SEED)


@pytest.fixture(scope="module")
def other_seed_world(tmp_path_factory) -> Path:
    return make_toy_world(tmp_path_factory.mktemp("world_c"), NUM_CLIPS, SEED + 1)


def _clip_of(world_json: dict, kind: str) -> dict:
    """The first short (< clip.seconds) or long (> clip.seconds) clip of a world."""
    pick = {"short": lambda d: d < CLIP.seconds, "long": lambda d: d > CLIP.seconds}[kind]
    return next(c for c in world_json["clips"] if pick(c["duration"]))


# ---------------------------------------------------------------------------- metadata


def test_metadata_is_vggsound_style(world):
    rows, wj = _load(world)
    assert len(rows) == NUM_CLIPS and all(len(r) == 4 for r in rows)  # id,start,label,split
    assert rows[0][0] != "id", "no header row"
    labels = {c.label for c in CLASSES}
    assert len(labels) >= 4
    for (vid, start, label, split), spec in zip(rows, wj["clips"]):
        assert (vid, int(start), label, split) == (spec["id"], spec["start"], spec["label"],
                                                   spec["split"])
        assert label in labels and split in {"train", "val", "test"}
        assert (world.parent / "videos" / f"{vid}.mp4").is_file()
        if spec["duration"] > CLIP.seconds:  # long clips: a whole-second window inside the clip
            assert 1 <= spec["start"] and spec["start"] + CLIP.seconds <= spec["duration"]
        else:
            assert spec["start"] == 0
    assert Counter(r[3] for r in rows) == {"train": 6, "val": 1, "test": 1}
    durations = [c["duration"] for c in wj["clips"]]
    assert sum(d < CLIP.seconds for d in durations) == 2  # a quarter short
    assert sum(d > CLIP.seconds for d in durations) == 1  # ~15 % long
    assert all(5 <= d <= 15 for d in durations)
    assert wj["seed"] == SEED and [c["label"] for c in wj["classes"]] == [c.label for c in CLASSES]
    assert not list(world.parent.rglob(".*")), "no temporary files left behind"


def test_splits_are_stratified_by_class():
    plan = plan_world(100, seed=0)  # planning only: no rendering
    per_class = Counter((c["label"], c["split"]) for c in plan["clips"])
    for cls in CLASSES:
        assert per_class[cls.label, "train"] == 14
        assert per_class[cls.label, "val"] == per_class[cls.label, "test"] == 3


# ---------------------------------------------------------------------------- reading a world back


def test_a_world_read_back_is_its_plan(world, tmp_path):
    toy = read_world(world.parent)
    assert toy.plan == json.loads(json.dumps(plan_world(NUM_CLIPS, SEED)))  # everything, as JSON reads it
    assert (toy.root, toy.seed, toy.sample_rate, toy.is_complete) == (world.parent, SEED, CLIP.sample_rate, True)
    rows, _ = _load(world)
    assert [c["id"] for c in toy.clips()] == [r[0] for r in rows]  # metadata.csv's ids, in its order
    assert [c["id"] for c in toy.clips("test")] == [r[0] for r in rows if r[3] == "test"]
    assert all(toy.video_path(c["id"]).is_file() and toy.video_path(c["id"]).parent == toy.videos_dir
               for c in toy.clips())
    for spec in toy.clips():  # from the clip's start, which is what its window hears
        expected = np.asarray(spec["events"]["times"]) - spec["start"]
        np.testing.assert_array_equal(toy.event_times()[spec["id"]], expected)
    # the world of a videos folder, or of the world's own folder; none elsewhere
    assert world_root_of(toy.videos_dir) == world_root_of(toy.root) == toy.root
    assert world_root_of(tmp_path) is None
    (tmp_path / "world.json").write_bytes((toy.root / "world.json").read_bytes())  # the plan, no videos yet
    assert not read_world(tmp_path).is_complete and read_world(tmp_path).plan == toy.plan


def _without(plan: dict, *keys: str | int) -> dict:
    """A copy of ``plan`` without the entry at the path ``keys`` (``"audio", "sample_rate"``; an int indexes a list)."""
    plan = json.loads(json.dumps(plan))
    parent = plan
    for key in keys[:-1]:
        parent = parent[key]
    del parent[keys[-1]]
    return plan


PLAN = plan_world(3, seed=0)


@pytest.mark.parametrize("content, reason", [
    (None, r"no such file \(not a toy world\)"),
    ("{not json", r"not valid JSON \(.* at line 1, column 2\)"),
    ("[1, 2]", r"not a toy world's plan \(a JSON list, not an object\)"),
    (_without(PLAN, "seed"), r"\(no 'seed'"),
    (_without(PLAN, "audio", "sample_rate"), r"\(no 'audio.sample_rate'"),
    (_without(PLAN, "clips"), r"\(no 'clips' list\)"),
    (_without(PLAN, "clips", 1, "events"), r"\(clip toy_00001: no 'events'"),
    ({**PLAN, "clips": [PLAN["clips"][0], PLAN["clips"][0]]}, r"\(clip toy_00000: its id is used twice\)"),
    ({**PLAN, "clips": [{**PLAN["clips"][0], "id": "../escape"}]}, r"\(clip \.\./escape: its id is not a plain"),
    ({**PLAN, "clips": [{**PLAN["clips"][0], "split": "holdout"}]}, r"\(clip toy_00000: 'split' is not one of"),
])
def test_a_bad_world_json_is_one_line_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "world.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError) as info:
        read_world(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert re.search(reason, message), message


def test_the_writer_names_a_damaged_world_json_instead_of_overwriting_it(tmp_path):
    (tmp_path / "world.json").write_text("{not json")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'world.json'))}: not valid JSON"):
        make_toy_world(tmp_path, 3, seed=0)
    assert (tmp_path / "world.json").read_text() == "{not json" and not list((tmp_path / "videos").iterdir())


# ---------------------------------------------------------------------------- files


def test_files_are_h264_25fps_and_aac_16k_mono(world):
    _, wj = _load(world)
    for spec in wj["clips"]:
        with av.open(str(_video(world, spec))) as f:
            v, a = f.streams.video[0], f.streams.audio[0]
            assert v.codec_context.name == "h264" and v.average_rate == VIDEO_FPS
            assert (v.codec_context.pix_fmt, v.width, v.height) == ("yuv420p", SIZE, SIZE)
            assert v.frames == round(spec["duration"] * VIDEO_FPS)
            assert a.codec_context.name == "aac" and a.sample_rate == CLIP.sample_rate
            assert a.layout.nb_channels == 1
        assert probe_duration(_video(world, spec)) == pytest.approx(spec["duration"])


def test_same_seed_same_world_other_seed_other_world(world, same_seed_world, other_seed_world):
    assert world.read_bytes() == same_seed_world.read_bytes()
    rows_a, wj_a = _load(world)
    _, wj_b = _load(same_seed_world)
    assert wj_a == wj_b
    for spec in wj_a["clips"]:
        a, b = _full(_video(world, spec), spec), _full(_video(same_seed_world, spec), spec)
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.audio, b.audio)
    rows_c, wj_c = _load(other_seed_world)
    assert rows_a != rows_c and wj_a["clips"] != wj_c["clips"]
    first = wj_a["clips"][0]
    a, c = read_clip(_video(world, first), CLIP), read_clip(_video(other_seed_world, first), CLIP)
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.audio, c.audio)


def test_rerun_keeps_existing_clips_and_refuses_another_world(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--num-clips", "3", "--seed", "1"]) == 0
    assert "3 clips written" in capsys.readouterr().out
    victim = tmp_path / "videos" / "toy_00001.mp4"
    kept = tmp_path / "videos" / "toy_00000.mp4"
    before = read_clip(victim, CLIP)
    kept_mtime = kept.stat().st_mtime_ns
    victim.unlink()
    make_toy_world(tmp_path, 3, seed=1)  # rerun: only the missing clip is rendered again
    assert kept.stat().st_mtime_ns == kept_mtime
    after = read_clip(victim, CLIP)
    np.testing.assert_array_equal(before.frames, after.frames)
    np.testing.assert_array_equal(before.audio, after.audio)
    with pytest.raises(ValueError, match="different toy world"):
        make_toy_world(tmp_path, 3, seed=2)
    assert main(["--out", str(tmp_path), "--num-clips", "3", "--seed", "2"]) == 2  # a usage error
    assert re.match(r"^error: .*different toy world", capsys.readouterr().err)


# ---------------------------------------------------------------------------- causality


def _rms(audio: np.ndarray, t0: float, t1: float) -> float:
    sr = CLIP.sample_rate
    return float(np.sqrt(np.mean(audio[max(0, round(t0 * sr)) : round(t1 * sr)] ** 2)))


def test_sound_starts_exactly_when_the_event_is_seen(world):
    """Each event is heard at its time (energy jumps) and seen at its time (the contact pose).

    The contact pose (ball on the floor, stick on the drum, hands together, lamp just lit,
    hammer on the bell) is the same picture at every event and differs from the picture well
    away from events: the sound is tied to a visible change, not to the class alone.
    """
    _, wj = _load(world)
    for spec in wj["clips"]:
        clip = _full(_video(world, spec), spec)
        times = np.asarray(spec["events"]["times"])  # (E,) seconds, on the frame grid
        for t in times:  # 50 ms after the onset vs. 100 ms well before it
            assert _rms(clip.audio, t, t + 0.05) > 4 * _rms(clip.audio, t - 0.2, t - 0.1), (
                spec["id"], spec["label"], t)

        frames = clip.frames.astype(np.float32)  # (T, H, W, 3) every frame of the file
        at_events = frames[np.round(times * VIDEO_FPS).astype(int)]  # (E, H, W, 3)
        frame_times = np.arange(len(frames)) / VIDEO_FPS
        since, until = frame_times[:, None] - times[None], times[None] - frame_times[:, None]
        quiet = np.all((since >= 0.6) | (until >= 0.25), axis=1)  # far from every event
        assert quiet.sum() > 10, spec["id"]
        pose_spread = max(np.abs(e - at_events[0]).mean() for e in at_events)
        quiet_gap = min(np.abs(f - at_events[0]).mean() for f in frames[quiet])
        assert pose_spread < 0.25 * quiet_gap, (spec["id"], spec["label"], pose_spread,
                                                quiet_gap)


# ---------------------------------------------------------------------------- read_clip


def test_read_clip_pads_a_short_clip(world):
    _, wj = _load(world)
    spec = _clip_of(wj, "short")
    clip = read_clip(_video(world, spec), CLIP)
    expected_valid = int(np.sum(np.arange(CLIP.num_frames) / CLIP.fps < spec["duration"]))
    assert clip.frames.shape == (CLIP.num_frames, SIZE, SIZE, 3) and clip.frames.dtype == np.uint8
    assert clip.num_valid_frames == expected_valid < CLIP.num_frames
    assert not clip.frames[expected_valid:].any()
    assert all(f.any() for f in clip.frames[:expected_valid])  # background is never black
    assert clip.audio.shape == (CLIP.num_samples,) and clip.audio.dtype == np.float32
    end = round(spec["duration"] * CLIP.sample_rate)
    assert not clip.audio[end:].any() and np.abs(clip.audio[:end]).max() > 0.01
    assert clip.duration == pytest.approx(spec["duration"]) and clip.path.endswith(".mp4")


def test_read_clip_starts_a_long_clip_at_start(world):
    _, wj = _load(world)
    spec = _clip_of(wj, "long")
    path, start = _video(world, spec), spec["start"]
    whole = _full(path, spec, fps=CLIP.fps)  # the whole file at 4 fps, from 0
    clip = read_clip(path, CLIP, start=start)
    offset = round(start * CLIP.fps)
    assert clip.num_valid_frames == CLIP.num_frames and clip.start == start
    np.testing.assert_array_equal(clip.frames, whole.frames[offset : offset + CLIP.num_frames])
    first = start * CLIP.sample_rate
    assert clip.audio.shape == (CLIP.num_samples,)
    np.testing.assert_array_equal(clip.audio, whole.audio[first : first + CLIP.num_samples])
    assert not np.array_equal(clip.frames, read_clip(path, CLIP).frames)
    with pytest.raises(VideoReadError, match="past the end"):
        read_clip(path, CLIP, start=spec["duration"] + 1)


def test_audio_is_always_clip_num_samples(world):
    _, wj = _load(world)
    for spec in wj["clips"]:
        clip = read_clip(_video(world, spec), CLIP, start=spec["start"])
        assert clip.audio.shape == (CLIP.num_samples,)
        assert clip.frames.shape[0] == CLIP.num_frames
    assert read_clip(_video(world, spec), CLIP, with_audio=False).audio is None


def test_audio_track_required_optional_or_skipped(tmp_path):
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:  # video only, 2 s
        v = out.add_stream("libx264", rate=VIDEO_FPS)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        for i in range(2 * VIDEO_FPS):
            frame = np.full((32, 32, 3), 4 * i, np.uint8)
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode())
    with pytest.raises(VideoReadError, match="no audio stream"):
        read_clip(path, CLIP)
    clip = read_clip(path, CLIP, with_audio="optional")
    assert clip.audio is None and clip.num_valid_frames == 2 * CLIP.fps
    assert read_clip(path, CLIP, with_audio=False).audio is None


def test_audio_track_that_starts_late_stays_on_the_video_timeline(tmp_path):
    """A click 1.5 s into the file is at sample 1.5 * sample_rate, even if audio starts at 1 s."""
    path, sr = tmp_path / "late.mp4", CLIP.sample_rate
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=VIDEO_FPS)
        v.width = v.height = 32
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=sr, layout="mono")
        for i in range(3 * VIDEO_FPS):
            frame = np.full((32, 32, 3), i, np.uint8)
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode())
        track = np.zeros(2 * sr, np.float32)  # (S,) 2 s starting at 1 s, click at 0.5 s
        track[sr // 2 : sr // 2 + 400] = 0.5
        samples = av.AudioFrame.from_ndarray(track[None], format="fltp", layout="mono")
        samples.sample_rate, samples.pts = sr, sr  # pts in 1/sr units: starts at 1 s
        out.mux(a.encode(samples))
        out.mux(a.encode())
    audio = read_clip(path, CLIP).audio
    assert np.argmax(np.abs(audio) > 0.2) == pytest.approx(1.5 * sr, abs=0.005 * sr)


# ---------------------------------------------------------------------------- bad input


def _truncate(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _faststart_truncated(src: Path, dst: Path) -> Path:
    """Index at the front, data cut off: opens fine, fails while decoding."""
    full = dst.with_suffix(".full.mp4")
    faststart = {"movflags": "+faststart"}
    with av.open(str(src)) as inp, av.open(str(full), "w", options=faststart) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    data = full.read_bytes()
    dst.write_bytes(data[: len(data) // 3])
    return dst


@pytest.mark.parametrize("case, reason", [
    ("missing", "no such file"),
    ("text", "not a readable video"),
    ("truncated", "not a readable video"),
    ("truncated_faststart", "not a readable video|truncated or corrupt"),
])
def test_bad_files_raise_one_line_video_read_error(world, tmp_path, case, reason):
    _, wj = _load(world)
    good = _video(world, wj["clips"][0])
    path = tmp_path / f"{case}.mp4"
    if case == "text":
        path.write_text("this is not a video\nat all\n")
    elif case == "truncated":
        _truncate(good, path)
    elif case == "truncated_faststart":
        _faststart_truncated(good, path)
    with pytest.raises(VideoReadError) as info:
        read_clip(path, CLIP)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and message.startswith(f"{path}: ")
    assert len(message) < 300 and "workspace/src" not in message
    assert info.value.path == str(path)
    assert str(pickle.loads(pickle.dumps(info.value))) == message  # crosses process boundaries
    assert re.search(reason, message), message
    with pytest.raises(VideoReadError):
        probe_duration(path)


def test_read_audio_file_mono_and_resampled(tmp_path):
    stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (44_100, 2)).astype(np.float32)
    sf.write(tmp_path / "ref.wav", stereo, 44_100)
    out = read_audio_file(tmp_path / "ref.wav", CLIP.sample_rate)
    assert out.dtype == np.float32 and out.shape == (CLIP.sample_rate,)
    sf.write(tmp_path / "same.wav", stereo, CLIP.sample_rate)
    np.testing.assert_allclose(read_audio_file(tmp_path / "same.wav", CLIP.sample_rate),
                               stereo.mean(axis=1), atol=1e-4)  # 16-bit wav
    with pytest.raises(AudioReadError, match="no such file"):
        read_audio_file(tmp_path / "missing.wav", CLIP.sample_rate)
    (tmp_path / "bad.wav").write_text("not audio")
    with pytest.raises(AudioReadError) as info:
        read_audio_file(tmp_path / "bad.wav", CLIP.sample_rate)
    assert "\n" not in str(info.value)
