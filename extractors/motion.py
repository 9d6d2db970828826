"""The motion-energy stream: how much the picture changes, region by region, at the loudness envelope's rate.

Timing control's video envelope predictor (``mapper.envelope_predictor``) has to say *when* a sound
starts, to the 40 ms of one envelope frame. The encoders' streams are sampled at the paper's 4 fps (a
frame every 250 ms) and miss most onsets; on the toy world the predictor's held-out correlation on the
events (high-passed envelopes) is 0.46 from CAVP alone and 0.95 with this stream (docs/generation.md). It
costs no model: one more decode of the clip window at a small size (about as long as the clip's own
decode: docs/performance.md).

Definition, for the clip window ``[start, start + clip.seconds)`` and envelope frames of
``ENVELOPE_FRAME_SECONDS`` (``extractors.clip``; 40 ms, AudioLDM-2's latent frame):

1. every video frame of the window, decoded at ``MOTION_SIZE`` squared (RGB, /255);
2. the change between consecutive frames j and j+1: the mean absolute difference over the channels and
   the pixels of each cell of a ``MOTION_GRID`` x ``MOTION_GRID`` grid -> ``MOTION_CHANNELS`` numbers;
3. change j is spread evenly over frame j's time on screen ``[s_j, s_{j+1})`` and each envelope frame
   sums what falls in it: at 25 fps envelope frame k holds exactly the change from frame k to k+1; at
   50 fps the two changes within it; at 24 fps no frame is empty because a picture was repeated;
4. ``log(change + MOTION_FLOOR)``: a still picture, and the window past the video's end, read
   ``log(MOTION_FLOOR)``.

The cache stores it per clip as the ``motion`` column, (clip.envelope_frames, MOTION_CHANNELS) (cache
format 5); generation computes it for a window the same way (``extractors.video.read_clip(motion=True)``).
"""
from __future__ import annotations

import numpy as np

MOTION_FEATURE = "motion"  # its cache column and the envelope predictor's input name
MOTION_SIZE = 64  # frames decoded at 64 x 64: a grid cell is 16 x 16 pixels
MOTION_GRID = 4
MOTION_CHANNELS = MOTION_GRID * MOTION_GRID
MOTION_FLOOR = 1e-4  # 1/40 of one grey level per pixel: log of a still picture stays finite


def frame_changes(frames: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 frames -> (N - 1, MOTION_CHANNELS) float32: mean |frame j+1 - frame j| / 255 in each
    cell of the grid (row-major)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) frames, got shape {frames.shape}")
    n, height, width, _ = frames.shape
    if height % MOTION_GRID or width % MOTION_GRID:
        raise ValueError(f"frames of {height} x {width} do not split into a {MOTION_GRID} x {MOTION_GRID} grid")
    x = frames.astype(np.float32) / 255.0
    change = np.abs(np.diff(x, axis=0)).mean(axis=-1)  # (N-1, H, W)
    cells = change.reshape(n - 1, MOTION_GRID, height // MOTION_GRID, MOTION_GRID, width // MOTION_GRID)
    return cells.mean(axis=(2, 4)).reshape(n - 1, MOTION_CHANNELS)


def motion_energy(frames: np.ndarray, frame_starts: np.ndarray, window_start: float, frame_seconds: float,
                  envelope_frames: int) -> np.ndarray:
    """The window's motion stream (envelope_frames, MOTION_CHANNELS), float32, log.

    ``frames`` (N, S, S, 3) uint8: consecutive video frames covering the window; ``frame_starts`` (N + 1,):
    when each appears, in seconds of the file, and as last entry when the last one leaves the screen (the
    video's end, or the next frame's start). Change j (frames j -> j+1) is spread over ``[s_j, s_{j+1})``.
    """
    frame_starts = np.asarray(frame_starts, np.float64)
    if len(frame_starts) != len(frames) + 1:
        raise ValueError(f"{len(frames)} frames need {len(frames) + 1} times, got {len(frame_starts)}")
    energy = np.zeros((envelope_frames, MOTION_CHANNELS), np.float64)
    if len(frames) >= 2:
        changes = frame_changes(frames)  # (N-1, C)
        begin, end = frame_starts[:-2] - window_start, frame_starts[1:-1] - window_start  # (N-1,) on screen
        edges = np.arange(envelope_frames + 1) * frame_seconds  # (E+1,)
        # overlap[k, j]: the share of change j's interval inside envelope frame k
        overlap = (np.minimum(edges[1:, None], end[None]) - np.maximum(edges[:-1, None], begin[None])).clip(min=0)
        energy = overlap / np.maximum(end - begin, 1e-9)[None] @ changes  # (E, C)
    return np.log(energy + MOTION_FLOOR).astype(np.float32)
