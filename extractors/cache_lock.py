"""One writer at a time: the lock a job holds on a feature cache while it writes it.

``CACHE/extraction.lock`` is held (flock) by the one job writing the cache: an extraction (all its
ranks) or a repair; a second one is refused, naming the holder. An flock, not a pid file: the kernel
releases it when the holder dies (even ``kill -9``), so a crashed job never leaves the cache locked.
The file stays; it only says who holds it.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
from pathlib import Path

LOCK_FILE = "extraction.lock"
LOCK_GRACE_S = 10.0  # how long a dead holder's exiting workers may keep the lock


class CacheBusyError(RuntimeError):
    """Another extraction or repair holds the cache's lock."""


@contextlib.contextmanager
def hold_lock(folder: Path, job: str):
    """Hold ``folder``'s lock for one writing ``job`` until the block ends; CacheBusyError, naming the
    holder, if another job holds it. ``folder`` must exist."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_flock(fd):
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "job (pid unknown)"
            # A holder that has died on this host may leave forked workers (decoders) that still
            # share the locked file for a moment while the kernel kills them: wait for them.
            if not (_died_here(holder) and _try_flock(fd, wait_s=LOCK_GRACE_S)):
                raise CacheBusyError(f"{folder}: another {holder} holds this cache ({LOCK_FILE}); wait for "
                                     f"it to end, or use another --out")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{job} (pid {os.getpid()} on {socket.gethostname()})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # still locked here: nobody reads a stale holder
    finally:
        os.close(fd)  # releases the lock


def _try_flock(fd: int, wait_s: float = 0.0) -> bool:
    """Take the exclusive lock on `fd`, polling for up to `wait_s` seconds; False if still held."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _died_here(holder: str) -> bool:
    """Whether the lock file's `holder` line names a process on this host that no longer runs."""
    match = re.search(r"\(pid (\d+) on (.+)\)$", holder)
    if match is None or match.group(2) != socket.gethostname():
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
