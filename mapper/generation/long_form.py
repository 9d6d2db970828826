"""Videos of any length: overlapping windows on one latent timeline, joined into one soundtrack.

The mapper sees a fixed clip window (10 s), so a long video is cut into windows that overlap by
``overlap_seconds``; every window gets its own mapper tokens (from its own stretch of video) and its
own latent. Two ways to make the windows one soundtrack:

    inpaint    (default) window k is sampled with its overlap region fixed to window k-1's latent
               (:func:`mapper.decoders.audioldm2.denoise`'s known region), so AudioLDM-2 itself continues the
               sound across the join; window 0 may likewise continue a reference sound.
    crossfade  the naive baseline: windows are sampled independently and only the waveforms are
               cross-faded over the overlap.

Both join the decoded waveforms the same way, a linear crossfade over the overlap; in inpaint mode
the two sides agree there (same latent), so the crossfade only hides the decoders' edge effects.

Everything is counted in latent frames on the video's timeline (frame f starts at
``f * frame_samples`` samples; AudioLDM-2: 4 mel frames of 10 ms = 640 samples = 40 ms). The
windows are planned up front, processed one after the other, and the :class:`Stitcher` emits audio
as soon as no later window can touch it, so memory stays at one window whatever the length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from extractors.media_limits import MAX_SECONDS
from mapper.generation.arguments import check_choice, check_max_seconds, check_number, check_overlap

JoinMode = Literal["inpaint", "crossfade"]
JOIN_MODES = ("inpaint", "crossfade")


@dataclass(frozen=True)
class LongFormConfig:
    mode: JoinMode = "inpaint"
    overlap_seconds: float = 2.5  # shared by consecutive windows: context for the continuation
    max_reference_seconds: float = 5.0  # the last this-many seconds of a reference sound are kept
    reference_fade_seconds: float = 0.5  # the reference's own render fades into the generation
    max_seconds: float = MAX_SECONDS  # the most seconds of video one request renders (its windows: the work)

    def __post_init__(self):  # the overlap's upper bound, the clip window, is checked by the pipeline
        check_choice("mode", self.mode, JOIN_MODES)
        check_overlap(self.overlap_seconds)
        check_max_seconds(self.max_seconds)
        check_number("max_reference_seconds", self.max_reference_seconds, low=0.0)
        check_number("reference_fade_seconds", self.reference_fade_seconds, low=0.0)


@dataclass(frozen=True)
class Window:
    """One UNet sample on the timeline, in latent frames; [start, end) may begin before 0 (reference)."""

    start: int
    end: int
    known: int  # leading frames shared with the previous window (or the reference)
    video_start: int  # frame where the mapper's clip of video begins (>= 0)

    @property
    def length(self) -> int:
        return self.end - self.start


def round_up(value: int, multiple: int) -> int:
    return math.ceil(value / multiple) * multiple


def plan_windows(num_frames: int, window: int, overlap: int, multiple: int = 1, reference: int = 0) -> list[Window]:
    """Windows covering frames [0, num_frames) (and [-reference, 0) when a reference leads).

    Every window has ``window`` frames, starting every ``window - overlap`` frames; the last one is
    pulled back to end at the video's end, so the mapper always sees real video (its overlap with
    the previous window grows instead). A video shorter than a window gets one window of its own
    length rounded up to ``multiple`` (the UNet's size granularity). A reference (``reference``
    frames, a multiple of ``multiple``) extends window 0 backwards and is its known region.
    """
    if num_frames < 1:
        raise ValueError(f"need at least one frame, got {num_frames}")
    if window % multiple or reference % multiple:
        raise ValueError(f"window ({window}) and reference ({reference}) must be multiples of {multiple}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, {window}) frames, got {overlap}")
    if num_frames <= window:
        starts, length = [0], min(window, round_up(num_frames, multiple))
    else:
        hop = window - overlap
        starts, length = list(range(0, num_frames - window, hop)) + [num_frames - window], window
    windows = []
    for k, start in enumerate(starts):
        if k == 0:
            windows.append(Window(start - reference, start + length, reference, start))
        else:
            windows.append(Window(start, start + length, windows[-1].end - start, start))
    return windows


class Stitcher:
    """Joins decoded windows into one track, emitting finished samples as early as possible.

    Samples are addressed on the timeline; the track is [begin, end). Each new window is
    cross-faded (linearly) with what is still pending over their common samples; everything before
    ``final_until`` (where the next window will start) is final and handed back.
    """

    def __init__(self, begin: int, end: int):
        if end <= begin:
            raise ValueError(f"empty track [{begin}, {end})")
        self.begin, self.end = begin, end
        self.emitted: int | None = None  # timeline sample up to which everything was handed out
        self.pending = np.zeros(0, np.float32)  # samples [emitted, emitted + len(pending))

    def add(self, audio: np.ndarray, at: int, final_until: int, fade: int | None = None) -> np.ndarray:
        """Add ``audio`` (S,) starting at sample ``at``; return the samples that became final.

        Over the samples it shares with what is pending, the old audio is kept and then
        cross-faded into the new over the last ``fade`` shared samples (default: all of them).
        """
        if self.emitted is None:
            self.emitted = at
        if at > self.emitted + len(self.pending):
            end = self.emitted + len(self.pending)
            raise ValueError(f"gap in the track: window starts at {at}, track ends at {end}")
        if at < self.emitted:
            raise ValueError(f"window at {at} reaches into samples already emitted (up to {self.emitted})")
        audio = np.asarray(audio, np.float32)
        offset = at - self.emitted  # where the new window begins inside pending
        overlap = min(len(self.pending) - offset, len(audio))
        merged = np.concatenate([self.pending[:offset], audio])
        if overlap > 0:
            fade = overlap if fade is None else int(np.clip(fade, 0, overlap))
            keep = overlap - fade  # shared samples that stay as they were
            merged[offset : offset + keep] = self.pending[offset : offset + keep]
            fade_in = (np.arange(fade, dtype=np.float32) + 0.5) / max(fade, 1)  # (fade,) 0 -> 1
            old = self.pending[offset + keep : offset + overlap]
            merged[offset + keep : offset + overlap] = old * (1 - fade_in) + audio[keep:overlap] * fade_in
        if len(self.pending) > offset + len(audio):  # the new window ends inside pending
            merged = np.concatenate([merged, self.pending[offset + len(audio) :]])
        self.pending = merged
        return self._emit(final_until)

    def finish(self) -> np.ndarray:
        """The rest of the track, zero-padded if the windows fell short of ``end``."""
        if self.emitted is None:
            self.emitted = self.begin
        rest = self._emit(self.end)
        missing = self.end - max(self.emitted, self.begin)
        self.emitted, self.pending = self.end, np.zeros(0, np.float32)
        return np.concatenate([rest, np.zeros(missing, np.float32)]) if missing > 0 else rest

    def _emit(self, until: int) -> np.ndarray:
        """Hand out pending samples before ``until``, keeping only those inside [begin, end)."""
        count = int(np.clip(until - self.emitted, 0, len(self.pending)))
        final, self.pending = self.pending[:count], self.pending[count:]
        first, self.emitted = self.emitted, self.emitted + count
        lo, hi = max(self.begin - first, 0), min(self.end - first, count)
        return final[lo:hi].copy() if hi > lo else np.zeros(0, np.float32)
