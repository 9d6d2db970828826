"""Video and audio decoding: one clip window in, fixed-shape arrays out.

Every downstream stage expects exactly ``clip.num_frames`` frames sampled at ``clip.fps`` and
exactly ``clip.num_samples`` audio samples at ``clip.sample_rate``, whatever the file's own frame
rate, length or audio format. This module is where real files are forced into that shape:
frames are picked by timestamp, short videos are zero-padded (and say how many frames are real),
long ones are cropped to the window that starts at ``start``.

Decoding uses decord (seek-based random access: 40 frames out of a long video cost decoding
from the keyframes before them, not the whole file). Before decord sees a file, PyAV opens its
header: that turns "not a video" into a precise one-line reason instead of decord's generic
failure and C++ log, and refuses frames too small or too large (``extractors/media_limits.py``)
before any is decoded. Given the models' ``size``, frames are resized as they are decoded, a few
at a time, and padded after: a clip never holds 40 frames of the video's own size.

Bad input is a data problem, not a bug: every failure is a ``VideoReadError`` whose message
is a single line ``"{path}: {reason}"``, so batch jobs can log it, skip the file and go on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import av
import decord
import numpy as np
import soundfile as sf

from extractors import media_limits
from extractors.clip import ENVELOPE_FRAME_SECONDS, ClipConfig
from extractors.motion import MOTION_SIZE, motion_energy

# Our errors carry ffmpeg's reason; decord's own ffmpeg log would only repeat it on stderr.
decord.logging.set_level(decord.logging.QUIET)

AudioMode = Union[bool, Literal["optional"]]


class MediaReadError(ValueError):
    """A media file that cannot be used; str() is one line: ``"{path}: {reason}"``."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), _one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # survives pickling, e.g. from a multiprocessing worker
        return type(self), (self.path, self.reason)


class VideoReadError(MediaReadError):
    """A video that is missing, not a video, truncated, or lacks a required audio track."""


class AudioReadError(MediaReadError):
    """An audio file (e.g. a reference wav) that is missing or unreadable."""


@dataclass
class DecodedClip:
    """One clip window of a video, in the fixed shapes every later stage relies on."""

    frames: np.ndarray  # (clip.num_frames, H, W, 3) uint8 RGB; rows >= num_valid_frames are 0
    num_valid_frames: int  # frames that come from the video (the rest is padding)
    audio: np.ndarray | None  # (clip.num_samples,) float32 mono at clip.sample_rate, 0-padded
    duration: float  # seconds of video in the file (end of its last frame)
    path: str
    start: float = 0.0  # seconds into the file where the window begins
    motion: np.ndarray | None = None  # (clip.envelope_frames, MOTION_CHANNELS) float32 (extractors.motion), if asked


def read_clip(path, clip: ClipConfig, start: float = 0.0,
              with_audio: AudioMode = True, size: int | None = None, motion: bool = False) -> DecodedClip:
    """Decode the window [start, start + clip.seconds) of a video.

    Frame i is the decoded frame nearest to ``start + i / clip.fps`` (ties go to the earlier
    frame, the one on screen at that instant). Times at or past the end of the video give zero
    frames and zero audio. ``with_audio``: True requires an audio track (else VideoReadError),
    "optional" returns ``audio=None`` when there is none, False never decodes audio. ``size``:
    frames come out (T, size, size, 3), resized by the models' own kernel (``resize_frames``, so
    the same as resizing the full frames later) before the padding is added. ``motion``: also the
    window's motion-energy stream (``extractors.motion``), from every video frame of the window.
    """
    if with_audio not in (True, False, "optional"):
        raise ValueError(f"with_audio must be True, False or 'optional', not {with_audio!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0 seconds, not {start}")
    path = Path(path)
    has_audio = _probe(path)
    if with_audio is True and not has_audio:
        raise VideoReadError(path, "no audio stream (pass with_audio='optional' to allow it)")
    vr = _open_decord(path)
    frame_starts, duration = _timeline(path, vr)  # (N,) seconds each frame appears; seconds
    if start >= duration:
        raise VideoReadError(path, f"start {start:g} s is past the end of the video "
                                   f"({duration:.2f} s)")
    times = start + np.arange(clip.num_frames) / clip.fps  # (T,) wanted instants
    num_valid = int(np.count_nonzero(times < duration))
    frames = _decode_frames(path, vr, _nearest(frame_starts, times[:num_valid]), size)  # (V, H, W, 3)
    padded = np.zeros((clip.num_frames, *frames.shape[1:]), np.uint8)  # (T, H, W, 3), resized if `size`
    padded[:num_valid] = frames

    audio = _read_audio_window(path, clip, start, duration) if with_audio and has_audio else None
    energy = _read_motion(path, clip, start, frame_starts, duration) if motion else None
    return DecodedClip(padded, num_valid, audio, duration, str(path), float(start), energy)


def _read_motion(path: Path, clip: ClipConfig, start: float, frame_starts: np.ndarray, duration: float) -> np.ndarray:
    """(clip.envelope_frames, MOTION_CHANNELS): ``extractors.motion.motion_energy`` of the window from ``start``,
    over every frame on screen in it and the one after (the change into it still falls in the window)."""
    times = np.append(frame_starts, duration)  # (N + 1,): frame j is on screen over [times[j], times[j + 1])
    end = start + clip.envelope_frames * ENVELOPE_FRAME_SECONDS
    shown = np.flatnonzero((times[:-1] < end) & (times[1:] > start))  # frames on screen in the window
    indices = np.arange(shown[0], min(shown[-1] + 2, len(frame_starts)))  # and the next one, if any
    frames = _decode_frames(path, _open_decord(path, MOTION_SIZE), indices)  # (n, S, S, 3), decord's resize
    return motion_energy(frames, times[indices[0]: indices[-1] + 2], start, ENVELOPE_FRAME_SECONDS,
                         clip.envelope_frames)


def probe_duration(path) -> float:
    """Seconds of video in the file, by the same definition read_clip reports."""
    path = Path(path)
    _probe(path)
    return _timeline(path, _open_decord(path))[1]


def check_media_limits(path, max_seconds: float = media_limits.MAX_SECONDS, *, start: float = 0.0,
                       duration: float | None = None, hint: str = media_limits.MAX_SECONDS_HINT) -> float:
    """Seconds of ``path`` a request renders from ``start`` for ``duration`` (None: to the end), once
    the video is checked against the limits: its frame size (from the header) and those seconds
    against ``max_seconds`` (from the frame index). Nothing is decoded. VideoReadError of one line
    otherwise; ``hint`` (in the "too long" reason) says how the caller raises ``max_seconds``.
    """
    return seconds_to_render(path, probe_duration(path), max_seconds, start=start, duration=duration, hint=hint)


def seconds_to_render(path, video_seconds: float, max_seconds: float = media_limits.MAX_SECONDS, *,
                      start: float = 0.0, duration: float | None = None,
                      hint: str = media_limits.MAX_SECONDS_HINT) -> float:
    """``check_media_limits``'s seconds for a video of ``video_seconds`` (``probe_duration``'s)."""
    available = video_seconds - start
    if available <= 0:
        raise VideoReadError(path, f"start {start:g} s is at or past the end of the video")
    seconds = available if duration is None else min(duration, available)
    problem = media_limits.seconds_problem(seconds, max_seconds, hint)
    if problem:
        raise VideoReadError(path, problem)
    return seconds


def read_audio_file(path, sample_rate: int) -> np.ndarray:
    """A whole audio file (e.g. a reference wav) as (S,) float32 mono at `sample_rate`.

    Channels are averaged; other rates are resampled with ffmpeg's resampler (via PyAV).
    """
    data, rate = read_audio_samples(path)  # (S, C)
    mono = data.mean(axis=1)  # (S,)
    return mono if rate == sample_rate else _resample(mono, rate, sample_rate)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def read_audio_samples(path) -> tuple[np.ndarray, int]:
    """(S, C) float32 samples of an audio file as soundfile decodes them, and its rate;
    AudioReadError (one line) for a missing, unreadable or empty file or non-finite samples."""
    path = Path(path)
    if not path.is_file():
        raise AudioReadError(path, "no such file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (S, C)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioReadError(path, f"not a readable audio file (soundfile: {e})") from None
    if data.size == 0:
        raise AudioReadError(path, "holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioReadError(path, "holds NaN or infinite samples")
    return data, rate


def _one_line(text: str) -> str:
    """First meaningful line of a message, without decord's '[time] /src/file.cc:123: ' prefix."""
    for line in str(text).splitlines():
        line = re.sub(r"^\[[\d:]+\] \S+?:\d+: ", "", line.strip())
        if line:
            return line
    return "unknown error"


def read_frames(path, choose) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames that ``choose(frame_starts (N,), end_time) -> indices`` picks
    from the whole video (e.g. what ffmpeg's fps filter would output); VideoReadError in one line."""
    path = Path(path)
    _probe(path)
    vr = _open_decord(path)
    starts, end = _timeline(path, vr)
    return _decode_frames(path, vr, np.asarray(choose(starts, end), dtype=np.int64))


def _probe(path: Path) -> bool:
    """Check the file is a readable video with PyAV, whose frames are within the size limits (from
    the header: nothing is decoded); return whether it has an audio track."""
    if not path.is_file():
        raise VideoReadError(path, "no such file")
    try:
        with av.open(str(path)) as container:
            kinds = {s.type for s in container.streams}
            # the stream decord decodes: both ask ffmpeg for the best one (av_find_best_stream)
            video = container.streams.best("video")
            width, height = (video.codec_context.width, video.codec_context.height) if video else (0, 0)
    except av.FFmpegError as e:
        raise VideoReadError(path, f"not a readable video (ffmpeg: {e.strerror})") from None
    if "video" not in kinds:
        raise VideoReadError(path, "no video stream")
    problem = media_limits.frame_size_problem(width, height)
    if problem:
        raise VideoReadError(path, problem)
    return "audio" in kinds


def _open_decord(path: Path, size: int | None = None) -> decord.VideoReader:
    """A reader of the file's frames, at their own size or decoded straight to ``size`` squared (ffmpeg's scaler)."""
    try:
        return decord.VideoReader(str(path)) if size is None else decord.VideoReader(str(path), width=size, height=size)
    except (decord.DECORDError, RuntimeError, AssertionError) as e:
        raise VideoReadError(path, f"not a readable video (decord: {_one_line(e)})") from None


def _timeline(path: Path, vr: decord.VideoReader) -> tuple[np.ndarray, float]:
    """(N,) start time of every frame, and the video's duration = end of its last frame.

    The end, not the start, of the last frame: a 250-frame 25-fps video lasts 10.0 s, not 9.96.
    """
    try:
        spans = _to_numpy(vr.get_frame_timestamp(np.arange(len(vr)))).reshape(-1, 2)  # (N, 2)
    except decord.DECORDError as e:
        raise VideoReadError(path, f"cannot read frame times (decord: {_one_line(e)})") from None
    return spans[:, 0], round(float(spans[-1, 1]), 6)  # decord keeps float32 times


def _nearest(frame_starts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the frame whose start is nearest to each time; ties go to the earlier frame."""
    if len(frame_starts) == 1:
        return np.zeros(len(times), np.int64)
    later = np.clip(np.searchsorted(frame_starts, times), 1, len(frame_starts) - 1)
    earlier = later - 1
    take_later = frame_starts[later] - times < times - frame_starts[earlier] - 1e-6
    return np.where(take_later, later, earlier)


# Frames decoded at the video's own size at once when they are resized as they are read: at the
# largest frames allowed (media_limits.MAX_FRAME_PIXELS) 212 MB, instead of a clip's 40 frames.
RESIZE_CHUNK = 8


def _decode_frames(path: Path, vr: decord.VideoReader, indices: np.ndarray,
                   size: int | None = None) -> np.ndarray:
    """(V, H, W, 3) uint8 frames at ``indices``, or (V, size, size, 3) resized a chunk at a time."""
    if size is not None:
        from extractors.frames import square_frames  # torch: only where frames are resized

        chunks = [square_frames(_decode_frames(path, vr, indices[i : i + RESIZE_CHUNK]), size)
                  for i in range(0, len(indices), RESIZE_CHUNK)]  # fmt: skip
        return np.concatenate(chunks) if chunks else np.zeros((0, size, size, 3), np.uint8)
    if len(indices) == 0:
        h, w, _ = vr[0].shape
        return np.zeros((0, h, w, 3), np.uint8)
    try:
        return _to_numpy(vr.get_batch(indices.tolist()))
    except decord.DECORDError as e:
        raise VideoReadError(path, f"truncated or corrupt video data "
                                   f"(decord: {_one_line(e)})") from None


def _read_audio_window(path: Path, clip: ClipConfig, start: float, end: float) -> np.ndarray:
    """(clip.num_samples,) float32 mono from `start`; sample 0 of the track is time 0.

    Audio past `end` (the video's end) is dropped like the frames there: AAC pads its last
    packet, and a sound with no picture would teach a model nothing. Frames and audio are
    zero over the same stretch.
    """
    try:
        reader = decord.AudioReader(str(path), sample_rate=clip.sample_rate, mono=True)
        track = _to_numpy(reader[:]).reshape(-1)  # (S,) all samples of the track
        # A track that starts late goes onto the file's timeline. add_padding() only reports
        # the count here: its padded array is not what reader[:] returns (decord 0.6).
        track = np.pad(track, (max(0, reader.add_padding()), 0))
    except (decord.DECORDError, RuntimeError) as e:
        raise VideoReadError(path, f"unreadable audio (decord: {_one_line(e)})") from None
    first, last = round(start * clip.sample_rate), round(end * clip.sample_rate)
    window = track[first : min(first + clip.num_samples, last)].astype(np.float32)
    return np.pad(window, (0, clip.num_samples - len(window)))


def _resample(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """(S,) float32 at `rate` -> (S * new_rate / rate,) float32 at `new_rate` (swresample)."""
    frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=new_rate)
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    out = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return out[: round(len(x) * new_rate / rate)].astype(np.float32)


def _to_numpy(x) -> np.ndarray:
    """decord returns its own NDArray, or a torch tensor if someone set decord's torch bridge."""
    if hasattr(x, "asnumpy"):
        return x.asnumpy()
    return np.asarray(x.cpu() if hasattr(x, "cpu") else x)
