"""What one video may cost, each limit in one place; ``extractors/video.py`` enforces them.

Untrusted media is cheap to make and dear to read: a 35 KB mp4 can hold one 12000x12000 frame
(432 MB decoded, 16 GiB once a clip's 40 frames are filled), and a 1.4 KB mp4 two frames ten hours
apart (4,800 long-form windows of generation). So every reader checks the frame size from the
container's header before decord opens the file, and generation checks the seconds one request
renders, from the frame index, before any frame is decoded. Each refusal is a reason for a one-line
``VideoReadError`` that names the limit and how to raise it.

The frame limits are read when a video is checked, so a program that must read larger (or smaller)
frames can change them here, e.g. ``extractors.media_limits.MAX_FRAME_PIXELS = 8192 * 4320``;
``MAX_SECONDS`` is only the default of a per-request argument.
"""
from __future__ import annotations

# Frames narrower or lower than this are refused: the models see 56 to 224 pixels a side, so there is
# no picture to describe below it, and decord fails to convert frames of several widths below it (1,
# 2, 4, 8, 16, 24 pixels, ...) with the wrong reason, "truncated or corrupt video data".
MIN_SIDE = 32
# Pixels of one frame (DCI 4K, either orientation). A clip decodes up to 40 frames of the video's own
# size before they are resized (8 at a time when the models share one size): 1 GB of uint8 at this
# bound, 16 GiB for one 12000x12000 frame.
MAX_FRAME_PIXELS = 4096 * 2160
# Seconds of video one generation request renders by default (about 80 windows of 10 s with a 2.5 s
# overlap); raise it per request with ``max_seconds`` / ``--max-seconds``, or render part of a
# video with ``duration``.
MAX_SECONDS = 600.0
MAX_SECONDS_HINT = "raise max_seconds / --max-seconds, or render part of it with duration / --duration"


def frame_size_problem(width: int, height: int) -> str | None:
    """Why frames of ``width`` x ``height`` pixels (the container's header) are refused, or None."""
    if width <= 0 or height <= 0:
        return "its header gives no frame size"
    if min(width, height) < MIN_SIDE:
        return (f"too small: {width}x{height} pixels, need at least {MIN_SIDE}x{MIN_SIDE} "
                f"(extractors.media_limits.MIN_SIDE)")  # fmt: skip
    if width * height > MAX_FRAME_PIXELS:
        return (f"too large: {width}x{height} pixels, at most {MAX_FRAME_PIXELS} a frame "
                f"(raise extractors.media_limits.MAX_FRAME_PIXELS)")  # fmt: skip
    return None


def seconds_problem(seconds: float, max_seconds: float, hint: str = MAX_SECONDS_HINT) -> str | None:
    """Why rendering ``seconds`` of video in one request is refused, or None; ``hint``: how to raise it."""
    if seconds > max_seconds:
        return f"too long: {seconds:.2f} s to render, at most {max_seconds:g} s per request ({hint})"
    return None
