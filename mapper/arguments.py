"""Argument checks shared by the API and every entry point: a ``ValueError`` of one line that names
the argument (as the caller spells it: ``--steps`` on a command line, ``num_inference_steps`` in
Python) and says what is allowed, raised before any work starts."""
from __future__ import annotations

import math
import numbers
from typing import Mapping


class ArgumentError(ValueError):
    """A refused argument: one line that starts with the argument's name (``argument``, as the check
    was told it) followed by ``rest``. An entry point that spells its arguments otherwise (a command
    line's ``--steps`` for the API's ``num_inference_steps``) runs the API's own checks and rewords
    only the name, with :meth:`spelled`: one set of rules, each caller's own words."""

    def __init__(self, argument: str, rest: str):
        super().__init__(argument + rest)
        self.argument, self.rest = argument, rest

    def spelled(self, names: Mapping[str, str]) -> "ArgumentError":
        """The same error naming the argument as ``names`` ({name: spelling}) spells it, if it is there."""
        return ArgumentError(names.get(self.argument, self.argument), self.rest)


def _allowed(kind: str, low=None, high=None, above=None, below=None) -> str:
    """ "an integer >= 1", "a finite number >= 0 and < 10": what a bounded argument may be."""
    bounds = [(">=", low), (">", above), ("<=", high), ("<", below)]
    parts = [f"{op} {bound:g}" if isinstance(bound, float) else f"{op} {bound}" for op, bound in bounds if bound is not None]
    return " ".join([kind, " and ".join(parts)]) if parts else kind


def shown(value) -> str:
    """``repr(value)``, cut short: an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; bools and floats (even 2.0) are refused."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not (ok and (low is None or value >= low) and (high is None or value <= high)):
        raise ArgumentError(name, f" must be {_allowed('an integer', low, high)}, got {shown(value)}")
    return int(value)


def check_number(name: str, value, low=None, high=None, *, above=None, below=None, unit: str = "") -> float:
    """``value`` as a finite float within the given bounds (NaN and infinities are refused)."""
    try:
        number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an int beyond float range
        number = math.nan
    ok = math.isfinite(number) and (low is None or number >= low) and (high is None or number <= high)
    if not (ok and (above is None or number > above) and (below is None or number < below)):
        raise ArgumentError(name, f" must be {_allowed('a finite number', low, high, above, below)}{unit}, got {shown(value)}")
    return number


def check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(name, f" must be one of {', '.join(choices)}, got {shown(value)}")
    return value
