"""Argument checks shared by the API and the entry points: one line naming the argument and what
is allowed, raised as ValueError before any work starts."""
from __future__ import annotations

import math
import numbers


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(str, choices))}")


def check_number(
    name: str,
    value,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> None:
    """``value`` is a finite number (an int if ``integer``) within [low, high] (ends as flagged)."""
    kind = "an integer" if integer else "a finite number"
    is_number = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if not is_number or (not integer and not math.isfinite(value)):
        raise ValueError(f"{name}={value!r} must be {kind}{_range(low, high, low_inclusive, high_inclusive)}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise ValueError(f"{name}={value!r} must be {kind}{_range(low, high, low_inclusive, high_inclusive)}")


def _range(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low}")
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high}")
    return (" " + " and ".join(parts)) if parts else ""
