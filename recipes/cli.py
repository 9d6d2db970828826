"""What every entry point does with a bad command line: one line on stderr, and one exit code.

    0  done
    1  the job ran, and some items (videos, clips) failed; each was reported, the rest was written
    2  the command line is wrong (a bad value, a missing input, an unknown preset): nothing was done,
       no model was loaded; argparse's own usage errors exit with 2 as well
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

ITEMS_FAILED = 1
USAGE_ERROR = 2


def usage_error(error: BaseException | str) -> int:
    """Print ``error: <one line>`` to stderr and return the exit code for a wrong command line."""
    print(f"error: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}", file=sys.stderr)
    return USAGE_ERROR


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose own errors (unknown option, bad int, missing argument) are one line too:
    ``error: argument --x: ...`` on stderr and exit status 2, without the usage block (``--help`` has it)."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {' '.join(message.split())} (see --help)\n")


def int_in_range(minimum: int, maximum: int | None = None):
    """An argparse `type`: an integer in [minimum, maximum]; the error names the option and what is allowed."""
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value

    parse.__name__ = allowed
    return parse


def float_in_range(minimum: float, maximum: float | None = None, *, above: bool = False):
    """An argparse `type`: a finite number >= minimum (> with `above`), and <= maximum when given; the error
    names the option and what is allowed."""
    if maximum is None:
        allowed = f"a finite number {'>' if above else '>='} {minimum:g}"
    else:
        allowed = f"a number from {minimum:g}{' (excluded)' if above else ''} to {maximum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        low_ok = value > minimum if above else value >= minimum
        if not (low_ok and math.isfinite(value) and (maximum is None or value <= maximum)):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
        return value

    return parse


def check_folder_option(option: str, path: str | os.PathLike) -> None:
    """ValueError naming `option` if folder `path` cannot be a folder: it, or what would be its parent, is a file."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == path else f"is inside {existing}, a file"
        raise ValueError(f"{option} {path}: {where}; give a folder (created if absent)")
