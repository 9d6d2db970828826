"""The target envelope of one sampling window, from the envelope predicted for its clip of video.

The video envelope predictor (``mapper.envelope_predictor``) gives one number per ``frame_seconds`` of
the clip window the mapper saw, starting where that clip starts (``Window.video_start``). A sampling
window is counted in the decoder's latent frames on the timeline, and may begin before its clip (a
reference sound, or the overlap with the previous window when the last window is pulled back), so its
target is the predicted envelope read at the centre of each latent frame: NaN (no target, guidance
leaves the frame free) where the frame lies outside the clip.
"""
from __future__ import annotations

import numpy as np

from mapper.generation.long_form import Window


def window_envelope(envelope: np.ndarray, frame_seconds: float, window: Window, latent_seconds: float) -> np.ndarray:
    """(E,) envelope of a clip at ``frame_seconds`` per frame -> (window.length,) target per latent frame of
    ``latent_seconds``, NaN outside the clip. Equal frame lengths copy frames one for one."""
    offset = np.arange(window.start, window.end) - window.video_start  # latent frames after the clip's start
    if np.isclose(frame_seconds, latent_seconds):
        index = offset
        inside = (index >= 0) & (index < len(envelope))
        return np.where(inside, envelope[np.clip(index, 0, len(envelope) - 1)], np.nan).astype(np.float32)
    centres = (offset + 0.5) * latent_seconds  # seconds after the clip's start
    position = centres / frame_seconds - 0.5  # in envelope frames (frame k's centre is k + 0.5 frame lengths)
    values = np.interp(position, np.arange(len(envelope)), envelope)
    inside = (centres >= 0) & (centres < len(envelope) * frame_seconds)
    return np.where(inside, values, np.nan).astype(np.float32)
