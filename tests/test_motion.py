"""The motion-energy stream (extractors.motion): where in time and in the picture a change lands, whatever
the video's frame rate, and the stream extraction stores per clip."""
from __future__ import annotations

import av
import numpy as np
import pytest

from extractors.clip import ClipConfig
from extractors.motion import MOTION_CHANNELS, MOTION_FLOOR, frame_changes, motion_energy
from extractors.video import read_clip

CLIP = ClipConfig()
FRAME = 0.04  # seconds per envelope frame


def _still(count: int, size: int = 8) -> np.ndarray:
    return np.full((count, size, size, 3), 100, np.uint8)


def test_a_change_is_measured_in_its_own_cell_of_the_grid():
    frames = _still(3)
    frames[2, :2, 6:] = 200  # the top-right 2 x 2 pixels of an 8 x 8 picture: cell (0, 3) of the 4 x 4 grid
    changes = frame_changes(frames)
    assert changes.shape == (2, MOTION_CHANNELS)
    assert np.array_equal(changes[0], np.zeros(MOTION_CHANNELS))  # frames 0 -> 1: nothing moved
    assert changes[1, 3] == pytest.approx(100 / 255) and np.count_nonzero(changes[1]) == 1
    with pytest.raises(ValueError, match="4 x 4 grid"):
        frame_changes(_still(2, size=6))


@pytest.mark.parametrize("fps", [25.0, 50.0, 24.0])
def test_a_cut_lands_in_the_envelope_frame_where_it_happens_at_any_frame_rate(fps):
    """A picture that changes at 2.0 s: its envelope frame (50) holds the change; at 24 fps, where 40 ms frames
    and the video's frames do not line up, it is shared with a neighbour but all of it is counted; and a still
    picture is the floor everywhere else, never an empty frame between repeated pictures."""
    count = round(3 * fps)
    frames = _still(count)
    cut = round(2.0 * fps)
    frames[cut:] = 200
    starts = np.arange(count + 1) / fps  # the last entry: when the last picture leaves the screen
    energy = motion_energy(frames, starts, 0.0, FRAME, envelope_frames=100)  # (100, C), log
    raw = np.exp(energy) - MOTION_FLOOR
    assert raw.sum(axis=0) == pytest.approx(np.full(MOTION_CHANNELS, 100 / 255), rel=1e-5)  # all of it, once
    assert np.flatnonzero(raw[:, 0] > 1e-6).tolist() in ([49], [49, 50], [48, 49])  # the frame before 2.0 s
    assert np.allclose(energy[:45], np.log(MOTION_FLOOR)) and np.allclose(energy[52:], np.log(MOTION_FLOOR))


def test_the_window_starts_where_the_clip_starts():
    frames = _still(75)  # 3 s at 25 fps
    frames[50:] = 200  # the cut into frame 50: 2.0 s into the file
    energy = motion_energy(frames, np.arange(76) / 25.0, 1.0, FRAME, envelope_frames=50)
    assert np.argmax(energy[:, 0]) == 24  # 1.0 s into the window: the change from frame 49 to 50


def _video(path, fps: int, seconds: float, moves_at: float) -> None:
    """A grey video with a white square that appears in its top-left corner at `moves_at` seconds."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = 96
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        for i in range(round(fps * seconds)):
            image = np.full((96, 96, 3), 60, np.uint8)
            if i / fps >= moves_at:
                image[:24, :24] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


@pytest.mark.parametrize("fps, start", [(25, 0.0), (30, 1.0)])
def test_read_clip_gives_the_stream_of_its_window(tmp_path, fps, start):
    """From a real file: (envelope_frames, C) for the clip window from `start`, the square's appearance in the
    top-left cell at its time in the window, and past the video's end (a 4 s video) the floor."""
    path = tmp_path / "square.mp4"
    _video(path, fps, seconds=4.0, moves_at=2.5)
    clip = read_clip(path, CLIP, start=start, with_audio=False, motion=True)
    assert clip.motion.shape == (CLIP.envelope_frames, MOTION_CHANNELS) and clip.motion.dtype == np.float32
    frame = int(np.argmax(clip.motion[:, 0]))
    assert abs((frame + 1) * FRAME - (2.5 - start)) <= FRAME  # the square shows at 2.5 s of the file
    assert clip.motion[frame, 0] > clip.motion[frame, 15] + 3  # in its own corner, not the opposite one
    past_end = round((4.0 - start) / FRAME) + 1
    assert np.allclose(clip.motion[past_end:], np.log(MOTION_FLOOR))
    assert read_clip(path, CLIP, with_audio=False).motion is None  # only when asked
