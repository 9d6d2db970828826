"""Atomic file writes: write to a temporary name in the same folder, then rename into place.

A reader (or a resumed job) therefore sees either the old file or the complete new one, never a
half-written file, even after `kill -9`.

A kill does leave the temporary behind, so its name says who wrote it:
``.{stem}.{pid}@{host}.{random}.tmp{suffix}``. :func:`remove_stale_temporaries` removes the ones
whose process is gone and leaves those of a live process (a concurrent job writing to the same
folder) and those written on another machine (a shared folder: that process cannot be checked).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Iterator

_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
_TEMPORARY = re.compile(r"\.(?P<stem>.*)\.(?P<pid>\d+)@(?P<host>[0-9a-f]{8})\.[0-9a-f]{8}\.tmp(?P<suffix>(\.[^.]*)?)")


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``path`` (same suffix) that records this process and machine."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}@{_HOST}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, targets: Iterable[str] | None = None) -> list[Path]:
    """Remove the temporaries in ``folder`` that a process on this machine, now dead, left behind.

    ``targets``: only temporaries of these file names (e.g. ``{"clip.wav"}``); None: any.
    Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    targets = None if targets is None else set(targets)
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or match["host"] != _HOST or _alive(int(match["pid"])):
            continue
        if targets is not None and match["stem"] + match["suffix"] not in targets:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); rename it to `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside the folder ``path`` (readable by all, as a package folder is);
    on success it replaces ``path`` (an older one is moved aside first, then removed), so ``path`` is
    never half written. On failure ``path`` is left as it was."""
    out = Path(path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private
        yield staging
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
