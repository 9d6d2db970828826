"""What every entry point does with a bad command line: one line on stderr, and one exit code.

    0  done
    1  the job ran, and some items (videos, clips) failed; each was reported, the rest was written
    2  the command line is wrong (a bad value, a missing input, an unknown preset): nothing was done,
       no model was loaded; argparse's own usage errors exit with 2 as well
"""
from __future__ import annotations

import sys

ITEMS_FAILED = 1
USAGE_ERROR = 2


def usage_error(error: BaseException | str) -> int:
    """Print ``error: <one line>`` to stderr and return the exit code for a wrong command line."""
    print(f"error: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}", file=sys.stderr)
    return USAGE_ERROR
