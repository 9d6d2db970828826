"""Progress lines and the ETA: ``run i/N variant seed k: step S (j/M), ETA ...``.

The ETA is the steps still to do, each at the mean time of the steps of its kind finished in this
invocation (skipped steps, done by an earlier invocation, count as done and cost nothing); a kind not
timed yet counts as the mean of all timed steps. Before the first step finishes there is no ETA.
"""
from __future__ import annotations

import statistics
from collections import defaultdict


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    def __init__(self, remaining: list[str]):
        """``remaining``: the kind of every step still to do, in any order."""
        self.remaining = list(remaining)
        self.timed: dict[str, list[float]] = defaultdict(list)

    def finished(self, step: str, seconds: float | None) -> None:
        """A step is done (``seconds`` None: it failed or was skipped, and is not timed)."""
        self.remaining.remove(step)
        if seconds is not None:
            self.timed[step].append(seconds)

    def eta(self) -> str:
        every = [s for times in self.timed.values() for s in times]
        if not every:
            return "ETA after the first step"
        overall = statistics.mean(every)
        left = sum(statistics.mean(self.timed[s]) if self.timed[s] else overall for s in self.remaining)
        return f"ETA {format_seconds(left)}"

    @staticmethod
    def line(index: int, total: int, variant: str, seed: int, step: str, position: int, steps: int, eta: str) -> str:
        return f"run {index}/{total} {variant} seed {seed}: step {step} ({position}/{steps}) ... {eta}"
