"""How audible the joins of a long-form soundtrack are: a seam score.

A soundtrack rendered window by window has joins (the overlaps where one window hands over to
the next). A join is seamless when the sound changes across it no more than it changes across an
equally long stretch inside a window. Two measures on AudioLDM-2's log-mel (``mapper.decoders.audioldm2.mel``),
each a ratio join / inside-window, so 1.0 means "the joins look like any other stretch" and
larger means audible seams:

    mel_jump  the mel path length across a join: L1 distance (mean over mel bins) from the mean
              log-mel of ``context`` seconds just before the join to that of ``context`` seconds
              in its middle, plus from there to ``context`` seconds just after it; against the
              same path over equally long stretches inside windows (every ``context`` seconds).
              It grows with a change of timbre or level across the join (>= the direct
              before -> after distance) and with a join that sounds unlike both sides (the level
              dip and blend of cross-fading two unrelated sounds), however gradual.
    flux      spectral flux (mean |Δ log-mel| between consecutive 10 ms frames) at the edges of
              the joins (the frames whose STFT window reaches an edge), against the flux
              everywhere else. Catches abrupt discontinuities (clicks, hard cuts) that a mean over
              ``context`` would smooth away.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mapper.decoders.audioldm2.mel import MelConfig, log_mel


@dataclass(frozen=True)
class SeamScore:
    mel_jump: float  # join / inside-window mel path length (1 = seamless)
    flux: float  # join / elsewhere spectral flux (1 = no discontinuity)
    joins: int

    def __str__(self) -> str:
        return f"mel-jump {self.mel_jump:.3f}, flux {self.flux:.3f} over {self.joins} joins"


def seam_score(
    audio: np.ndarray,
    joins: list[tuple[int, int]],
    config: MelConfig = MelConfig(),
    context_seconds: float = 0.5,
) -> SeamScore:
    """Score the ``joins`` ([start, end) sample ranges, e.g. ``GeneratedAudio.joins``) of ``audio``."""
    if not joins:
        raise ValueError("no joins to score (a single window has no seams)")
    mel = log_mel(audio, config).numpy()  # (T, mels)
    hop = config.hop_length
    context = max(1, round(context_seconds * config.sample_rate / hop))  # frames
    spans = [(start // hop, -(-end // hop)) for start, end in joins]  # join regions in frames
    # prefix sums make every "mean over [a, b)" O(1)
    cumulative = np.concatenate([np.zeros((1, mel.shape[1])), np.cumsum(mel, axis=0)])

    def mean(a: int, b: int) -> np.ndarray:
        return (cumulative[b] - cumulative[a]) / (b - a)

    def jump(before_end: int, after_start: int) -> float:
        """Mel path length pre-flank -> middle -> post-flank (>= the direct pre -> post distance)."""
        pre, post = mean(before_end - context, before_end), mean(after_start, after_start + context)
        middle_start = (before_end + after_start - context) // 2
        middle = mean(middle_start, middle_start + context)
        return float(np.abs(pre - middle).mean() + np.abs(middle - post).mean())

    def clear_of_joins(a: int, b: int) -> bool:
        return all(b <= lo or a >= hi for lo, hi in spans)

    at_joins, inside = [], []
    for lo, hi in spans:
        if lo - context < 0 or hi + context > len(mel):
            continue  # a join too close to the ends to have context on both sides
        at_joins.append(jump(lo, hi))
        gap = hi - lo
        baseline = [
            jump(p, p + gap)
            for p in range(context, len(mel) - gap - context + 1, context)
            if clear_of_joins(p - context, p + gap + context)
        ]
        inside.extend(baseline)
    if not at_joins or not inside:
        raise ValueError("track too short to compare joins with stretches inside windows")

    flux = np.abs(np.diff(mel, axis=0)).mean(axis=1)  # (T-1,) change into frame t+1
    near = np.zeros(len(flux), bool)
    reach = config.n_fft // hop // 2 + 1  # frames whose STFT window overlaps a join's edge
    for lo, hi in spans:
        for edge in (lo, hi):
            near[max(edge - reach, 0) : min(edge + reach, len(flux))] = True
    flux_ratio = float(flux[near].mean() / flux[~near].mean()) if (~near).any() else float("nan")
    return SeamScore(float(np.mean(at_joins) / np.mean(inside)), flux_ratio, len(at_joins))
