"""Putting a feature cache right after a job that did not end well, without deleting anything it extracted.

What such a job leaves, and what is done about it:

    half-written shards      the temporary folders of a killed writer: removed (``clean_temporaries``)
    unreadable shards        moved to CACHE/corrupt/; the next extraction extracts their clips again
                             (``quarantine_corrupt``)
    repeated rows            a clip id in two rows (two writers without the lock): the shard is
                             written again without them, the original moved to CACHE/replaced/ (``repair``)

Only the holder of the cache's lock (``extractors.cache_lock``) may do any of it: a temporary of a
job still running would be deleted under it. An extraction cleans and quarantines before it writes;
``python -m recipes.extract_features --out CACHE --repair`` runs ``repair``.

Each function takes the ``extractors.cache.FeatureCache`` to mend (its methods of the same names call
them; this module does not import it, since the cache imports this module).
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from extractors.cache_shards import CORRUPT_DIR, CorruptShardError, open_shard, save_shard, shard_table

REPLACED_DIR = "replaced"  # CACHE/replaced/<shard>: shards that repair() rewrote without their repeated rows
REPAIR_COMMAND = "python -m recipes.extract_features --out {root} --repair"

log = logging.getLogger(__name__)


def clean_temporaries(cache) -> None:
    """Remove half-written shards left by a killed job. Only the lock holder may call this, before any of
    its processes writes: a temporary of a job still running would be deleted under it."""
    for tmp in cache.shard_dir.glob(".*.tmp") if cache.shard_dir.is_dir() else []:
        shutil.rmtree(tmp, ignore_errors=True)


def quarantine_corrupt(cache) -> list[Path]:
    """Move every unreadable shard to CACHE/corrupt/ (its clips are then not done, so an extraction
    extracts them again); returns where they went. Only the lock holder may call this."""
    moved = []
    for path in cache.shard_paths():
        try:
            shard_table(path)
        except CorruptShardError as error:
            moved.append(_move_aside(cache.root, path, CORRUPT_DIR))
            log.warning("%s; moved to %s", error, moved[-1])
    return moved


def repair(cache) -> list[str]:
    """Make the cache loadable again, holding its lock; returns one line per thing done (none: nothing to do).

    An unreadable shard goes to CACHE/corrupt/ (an extraction then extracts its clips again). A shard
    repeating clip ids of an earlier shard (`shard_paths` order) or of itself is written again
    without those rows, so each clip keeps its first row; the original goes to CACHE/replaced/
    (nothing is deleted: remove replaced/ once the cache loads). The new shard is complete before
    the old one moves, so an interrupted repair leaves repeated rows, never missing ones; run it again.
    """
    cache.meta()  # a cache, not a missing or orphaned folder (before the lock, which creates the folder)
    with cache.lock("repair"):
        clean_temporaries(cache)
        done = [f"moved unreadable shard {p.name} to {p.parent}/ (the next extraction extracts its clips again)"
                for p in quarantine_corrupt(cache)]
        seen: set[str] = set()
        for path in cache.shard_paths():
            shard = open_shard(path)
            keep = [i for i, clip_id in enumerate(shard.data.column("id").to_pylist())
                    if not (clip_id in seen or seen.add(clip_id))]
            if len(keep) == len(shard):
                continue
            rank_prefix = path.name.split("-")[0]
            new = f" into {save_shard(cache.shard_dir, shard.select(keep), rank_prefix).name}" if keep else ""
            aside = _move_aside(cache.root, path, REPLACED_DIR)
            done.append(f"dropped {len(shard) - len(keep)} repeated rows of shard {path.name}{new} "
                        f"(original in {aside.parent}/)")
        return done


def _move_aside(root: Path, shard: Path, folder: str) -> Path:
    """Rename `shard` into CACHE/<folder>/ (a rename: atomic, nothing copied or deleted)."""
    (root / folder).mkdir(exist_ok=True)
    target = root / folder / shard.name
    while target.exists():  # the same shard name moved aside before: keep both
        target = target.with_name(f"{shard.name}.{uuid.uuid4().hex[:6]}")
    os.replace(shard, target)
    return target
