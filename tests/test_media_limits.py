"""Bounded work for untrusted media (issue 24): a video's frame size and the seconds a generation request
renders are checked from the container's header and frame index, before anything is decoded, and a
refusal is one line "{path}: {reason}" that names the limit and how to raise it.

The hostile files are tiny and cheap to make: one 4608x2592 frame in a 36 KB mp4 (read_clip used to pad
it to 40 full-resolution frames: 1.4 GB; a 12000x12000 one, 16 GiB), two frames ten hours apart in a
1.4 KB mp4 (4,800 long-form windows), a 1x1 video (refused as "truncated or corrupt" by decord).
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pickle  # noqa: E402
import tracemalloc  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import decord  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from test_generation import tiny_mapper_dir, tiny_pipeline, write_video  # noqa: E402, F401 (fixtures)

import mapper  # noqa: E402
from extractors import video as video_module  # noqa: E402
from extractors.clip import ClipConfig  # noqa: E402
from extractors.extraction import DecodeDataset, square_frames  # noqa: E402
from extractors.manifest import ClipItem  # noqa: E402
from extractors.video import VideoReadError, probe_duration, read_clip  # noqa: E402
from mapper.generation import VideoToAudioPipeline, loading  # noqa: E402
from recipes import generate  # noqa: E402

CLIP = ClipConfig()  # 40 frames at 4 fps
FAST = ["--preset", "fast", "--steps", "2", "--no-progress"]


# ---------------------------------------------------------------- the hostile files


def one_big_frame(path: Path, width: int = 4608, height: int = 2592) -> Path:
    """One flat grey frame, larger than DCI 4K: 36 KB of h264, 36 MB decoded."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=1, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        grey = av.VideoFrame.from_ndarray(np.full((height, width, 3), 128, np.uint8), format="rgb24")
        out.mux(stream.encode(grey))
        out.mux(stream.encode())
    return path


def hours_apart(path: Path, hours: float = 10.0) -> Path:
    """Two 32x32 frames whose timestamps are ``hours`` apart: a 1.4 KB file that lasts ten hours."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for pts in (0, round(hours * 3600 * 25)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 100, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def tiny_frames(path: Path, width: int = 1, height: int = 1, codec: str = "ffv1") -> Path:
    """Eight frames of ``width`` x ``height`` pixels (ffv1 in .mkv, or mpeg4 / mjpeg in .avi)."""
    pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=4)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(8):
            image = np.full((height, width, 3), 30 * i, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_mapper_dir):
    root = tmp_path_factory.mktemp("media_limits")
    return {
        "root": root,
        "big": one_big_frame(root / "big.mp4"),
        "long": hours_apart(root / "long.mp4"),
        "dot": tiny_frames(root / "dot.mkv"),
        "good": write_video(root / "good.mp4", 2.5),  # 32x32, 10 frames: the rest of a clip is padding
        "mapper": tiny_mapper_dir,
    }


@pytest.fixture
def no_decoding(monkeypatch):
    """Opening a video with decord (the frame index, any decoding) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("decord opened the video")

    monkeypatch.setattr(decord, "VideoReader", refuse)


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("model loaded")

    monkeypatch.setattr(loading, "load_pipeline", refuse)
    monkeypatch.setattr(mapper.generation, "load_pipeline", refuse)


def one_line_refusal(call, path: Path) -> str:
    """The reason of the VideoReadError ``call()`` raises, after checking it is one line about ``path``."""
    with pytest.raises(VideoReadError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    assert str(pickle.loads(pickle.dumps(info.value))) == message  # crosses process boundaries
    return info.value.reason


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    try:
        code = generate.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ---------------------------------------------------------------- frame size


@pytest.mark.parametrize("read", ["read_clip", "probe_duration", "check_media_limits"])
def test_a_huge_frame_is_refused_from_the_header_before_decord_opens_it(files, no_decoding, read):
    path = files["big"]
    call = {"read_clip": lambda: read_clip(path, CLIP, with_audio=False),
            "probe_duration": lambda: probe_duration(path),
            "check_media_limits": lambda: video_module.check_media_limits(path)}[read]
    reason = one_line_refusal(call, path)
    assert reason.startswith("too large: 4608x2592 pixels"), reason
    assert "MAX_FRAME_PIXELS" in reason  # the limit, and where to raise it


@pytest.mark.parametrize("codec, suffix", [("ffv1", "mkv"), ("mpeg4", "avi"), ("mjpeg", "avi")])
def test_a_1x1_video_is_too_small_not_corrupt(files, no_decoding, codec, suffix):
    path = tiny_frames(files["root"] / f"dot_{codec}.{suffix}", codec=codec)
    reason = one_line_refusal(lambda: read_clip(path, CLIP, with_audio=False), path)
    assert reason.startswith("too small: 1x1 pixels, need at least "), reason
    assert "MIN_SIDE" in reason


def test_extraction_skips_and_reports_such_files_without_decoding_them(files):
    items = [ClipItem(name, files[name], 0.0, "", "train") for name in ("big", "dot", "good")]
    decoded = DecodeDataset(items, CLIP, frame_size=56)
    tracemalloc.start()
    try:
        big, dot, good = (decoded[i] for i in range(3))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert big.clip is None and "too large: 4608x2592 pixels" in big.error
    assert dot.clip is None and "too small: 1x1 pixels" in dot.error
    assert good.error is None and tuple(good.clip.frames.shape) == (40, 56, 56, 3)
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated"  # one big frame alone is 36 MB


def test_the_generate_command_refuses_a_huge_frame_before_loading_a_model(files, no_model, capsys):
    out = files["root"] / "big.wav"
    code, lines = run_cli([files["big"], "--out", out, "--mapper", files["mapper"], *FAST], capsys)
    assert code == 1  # the command line was right, the video was not
    assert len(lines) == 1 and lines[0].startswith(f"error: {files['big']}: too large"), lines
    assert not out.exists()


# ---------------------------------------------------------------- resizing before padding


@pytest.mark.parametrize("start", [0.0, 0.75])
def test_frames_read_at_the_models_size_are_those_resized_after_reading(files, start):
    """read_clip(size=S) resizes the real frames (in chunks) and pads after: the frames the models
    got before, byte for byte, without 40 full-resolution frames ever existing."""
    path = write_video(files["root"] / "wide.mp4", 3.0, size=64)  # 12 frames: more than one chunk
    resized = read_clip(path, CLIP, start=start, with_audio=False, size=56)
    full = read_clip(path, CLIP, start=start, with_audio=False)
    assert resized.frames.shape == (40, 56, 56, 3) and resized.num_valid_frames == full.num_valid_frames
    np.testing.assert_array_equal(resized.frames, square_frames(full.frames, 56))


def test_a_large_frame_is_not_padded_at_full_resolution(files):
    path = one_big_frame(files["root"] / "hd.mp4", 1280, 720)  # allowed; 2.8 MB a frame
    tracemalloc.start()
    try:
        clip = read_clip(path, CLIP, with_audio=False, size=224)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert clip.frames.shape == (40, 224, 224, 3) and clip.num_valid_frames == 4
    assert peak < 40 * 1280 * 720 * 3 / 4, f"{peak / 1e6:.0f} MB allocated"  # padded full frames: 110 MB


# ---------------------------------------------------------------- seconds per request


def test_a_video_of_ten_hours_is_refused_naming_max_seconds(files):
    from extractors.media_limits import MAX_SECONDS

    path = files["long"]
    reason = one_line_refusal(lambda: video_module.check_media_limits(path), path)
    assert reason.startswith("too long: 36000.04 s to render, at most "), reason
    assert f"{MAX_SECONDS:g} s" in reason and "max_seconds" in reason and "--max-seconds" in reason
    assert video_module.check_media_limits(path, duration=5.0) == 5.0  # a part of it is bounded work
    assert video_module.check_media_limits(path, max_seconds=40_000) == pytest.approx(36000.04, abs=0.01)
    assert video_module.check_media_limits(files["good"]) == pytest.approx(2.5)


def test_the_generate_command_refuses_ten_hours_before_loading_a_model(files, no_model, capsys):
    out = files["root"] / "long.wav"
    code, lines = run_cli([files["long"], "--out", out, "--mapper", files["mapper"], *FAST], capsys)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(f"error: {files['long']}: too long"), lines
    assert "--max-seconds" in lines[0]


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "long"])
def test_a_bad_max_seconds_is_one_error_line_naming_it_before_any_model(files, no_model, capsys, value):
    argv = [files["good"], "--out", files["root"] / "x.wav", "--mapper", files["mapper"], *FAST, "--max-seconds", value]
    code, lines = run_cli(argv, capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: --max-seconds must be a finite number > 0"), lines


def test_the_api_takes_and_checks_max_seconds(files, no_model):
    call = VideoToAudioPipeline.check_call(files["good"], None, max_seconds=40_000)
    assert call.long_form.max_seconds == 40_000
    with pytest.raises(ValueError, match=r"^max_seconds must be a finite number > 0"):
        VideoToAudioPipeline.check_call(files["good"], None, max_seconds=0)
    with pytest.raises(ValueError, match=r"^max_seconds must be a finite number > 0"):
        mapper.generate(files["good"], max_seconds=float("inf"))  # before any model loads


def test_the_pipeline_refuses_ten_hours_before_rendering_a_window(files, tiny_pipeline, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a window was rendered")

    monkeypatch.setattr(VideoToAudioPipeline, "visual_features", refuse)
    path = files["long"]
    reason = one_line_refusal(lambda: tiny_pipeline(path, preset="fast", num_inference_steps=2), path)
    assert reason.startswith("too long: 36000.04 s to render") and "max_seconds" in reason
    results = tiny_pipeline([path], preset="fast", num_inference_steps=2)  # in a list: its error comes back
    assert isinstance(results[0], VideoReadError) and "too long" in str(results[0])
