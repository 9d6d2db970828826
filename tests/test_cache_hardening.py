"""The cache against what happens to folders: two jobs at once, a lost cache.json, a damaged shard,
rows repeated by an older toolkit. Each is refused in one line or repaired, and nothing is lost."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time

import numpy as np
import pytest

from extractors.cache import (CacheBusyError, CacheMismatchError, CorruptShardError, DuplicateRowsError, FeatureCache,
                              feature_shapes)
from extractors.extraction import extract_to_cache
from extractors.manifest import list_clips
from extractors.presets import get_preset
from recipes import extract_features

TINY = get_preset("tiny")


def _row(clip_id: str, label: str = "") -> dict:
    rng = np.random.default_rng(sum(map(ord, clip_id)))
    arrays = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in feature_shapes(TINY).items()}
    return {"id": clip_id, "label": label, "split": "train", "start": 0.0, "duration": 10.0, "num_valid_frames": 40,
            **arrays}


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def no_models(monkeypatch):
    from extractors.frozen import FrozenExtractors

    def refuse(*_, **__):
        raise AssertionError("a model was built")

    monkeypatch.setattr(FrozenExtractors, "from_preset", refuse)


# ---------------------------------------------------------------------------------------- one job at a time


@contextlib.contextmanager
def _held_by_another_process(cache_dir):
    """Another process holds the cache's lock, as a running extraction does, until killed with -9; yields its pid."""
    ready, tell = os.pipe()
    pid = os.fork()
    if pid == 0:  # the other process: hold the lock until killed
        try:
            with FeatureCache(cache_dir).lock():
                os.write(tell, b"held")
                time.sleep(300)
        finally:
            os._exit(0)
    os.close(tell)
    try:
        assert os.read(ready, 4) == b"held"
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)  # its lock goes with it: no stale lock to clear by hand
        os.waitpid(pid, 0)
        os.close(ready)


def test_a_second_extraction_is_refused_while_another_holds_the_cache(toy_world, tmp_path, capsys, monkeypatch):
    from extractors.frozen import FrozenExtractors

    cache_dir = tmp_path / "cache"
    argv = ["--videos", str(toy_world[1]), "--out", str(cache_dir), "--limit", "2", "--num-workers", "0", "--no-progress"]
    in_flight = cache_dir / "shards" / ".rank000-0123456789ab.deadbeef.tmp"  # the holder's shard being written
    with _held_by_another_process(cache_dir) as holder, monkeypatch.context() as patch:
        in_flight.mkdir(parents=True)
        patch.setattr(FrozenExtractors, "from_preset", lambda *a: pytest.fail("a model was built"))
        assert extract_features.main(argv) == 2
        line = _one_error_line(capsys)
        assert str(cache_dir) in line and f"another extraction (pid {holder} " in line
        assert in_flight.is_dir() and not (cache_dir / "cache.json").exists()  # nothing touched
        with pytest.raises(CacheBusyError), FeatureCache(cache_dir).lock("repair"):  # a repair waits its turn too
            pass

    assert extract_features.main(argv) == 0  # the holder died (-9): its lock went with it
    assert "extracted 2 clips" in capsys.readouterr().out
    assert not in_flight.exists()  # the dead job's temporary, cleaned by the next holder
    assert len(FeatureCache(cache_dir).load(TINY)) == 2


def test_the_lock_names_its_holder_and_is_free_after_the_job(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    with cache.lock():
        assert f"extraction (pid {os.getpid()} on " in (cache.root / "extraction.lock").read_text()
        with pytest.raises(CacheBusyError, match=f"another extraction \\(pid {os.getpid()} "):
            with FeatureCache(tmp_path / "cache").lock():  # flock: a second open file conflicts even in one process
                pass
    with cache.lock("repair"):
        pass


def test_a_dead_holders_exiting_workers_are_waited_for_not_reported_as_a_running_job(tmp_path):
    """kill -9 of an extraction leaves its forked decoding workers holding the lock for a moment."""
    cache_dir = tmp_path / "cache"
    ready, tell = os.pipe()
    holder = os.fork()
    if holder == 0:  # the killed job: takes the lock, forks a worker that shares it, and dies at once
        try:
            with FeatureCache(cache_dir).lock():
                if os.fork() == 0:  # the worker outlives its parent by one second
                    time.sleep(1.0)
                    os._exit(0)
                os.write(tell, b"held")
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(0)
    os.close(tell)
    assert os.read(ready, 4) == b"held"
    os.close(ready)
    os.waitpid(holder, 0)
    probe = os.open(cache_dir / "extraction.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # the job is dead, yet its worker still holds the lock
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(probe)
    started = time.monotonic()
    with FeatureCache(cache_dir).lock():  # waits for the worker instead of naming a dead job as the holder
        waited = time.monotonic() - started
    assert 0.0 < waited < 5.0


# ---------------------------------------------------------------------------------------- shards without cache.json


def test_shards_without_cache_json_are_recognised_and_never_resumed_or_loaded(tmp_path, no_models):
    cache = FeatureCache(tmp_path / "cache")
    assert cache.orphaned_shards() == []  # no folder
    cache.initialise(TINY, dtype="float32")
    shard = cache.write_shard([_row("a")])
    assert cache.orphaned_shards() == []  # a cache
    cache.meta_path.unlink()
    assert cache.orphaned_shards() == [shard] and not cache.exists()

    for attempt in (lambda: cache.initialise(TINY, dtype="float16"), lambda: cache.load(TINY), cache.meta,
                    lambda: extract_to_cache([], cache, TINY, progress=False)):
        with pytest.raises(CacheMismatchError, match=f"^{tmp_path / 'cache'}: holds 1 feature shards but no cache.json"):
            attempt()
    assert not cache.meta_path.exists()  # never recreated over shards it may not describe
    assert cache.shard_paths() == [shard]


# ---------------------------------------------------------------------------------------- damaged shards


def _truncate_arrow(shard):
    arrow = next(shard.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])


CORRUPTIONS = {
    "truncated arrow": _truncate_arrow,
    "empty arrow": lambda shard: next(shard.glob("*.arrow")).write_bytes(b""),
    "no arrow": lambda shard: next(shard.glob("*.arrow")).unlink(),
    "no state.json": lambda shard: (shard / "state.json").unlink(),
    "bad state.json": lambda shard: (shard / "state.json").write_text("{"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_an_unreadable_shard_is_named_in_one_line_and_moved_aside_whole(corruption, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    cache.initialise(TINY)
    cache.write_shard([_row("a")])
    bad = cache.write_shard([_row("b"), _row("c")])
    CORRUPTIONS[corruption](bad)
    files = {p.name: p.read_bytes() for p in bad.iterdir()}
    for read in (lambda: cache.load(TINY), cache.completed_ids):
        with pytest.raises(CorruptShardError) as error:
            read()
        assert str(error.value).startswith(f"{bad}: unreadable cache shard") and "\n" not in str(error.value)
        assert "extract_features" in str(error.value)

    assert cache.quarantine_corrupt() == [cache.root / "corrupt" / bad.name]
    assert {p.name: p.read_bytes() for p in (cache.root / "corrupt" / bad.name).iterdir()} == files  # kept as it was
    assert list(cache.load(TINY)["id"]) == ["a"]


def test_resuming_re_extracts_the_clips_of_a_damaged_shard(toy_world, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    argv = ["--videos", str(toy_world[1]), "--out", str(cache_dir), "--limit", "3", "--shard-size", "1", "--batch-size", "1",
            "--num-workers", "0", "--no-progress"]
    assert extract_features.main(argv) == 0
    cache = FeatureCache(cache_dir)
    truncated, no_state, intact = cache.shard_paths()
    _truncate_arrow(truncated)
    (no_state / "state.json").unlink()
    capsys.readouterr()

    assert extract_features.main(argv) == 0
    report = capsys.readouterr().out
    assert "extracted 2 clips, 1 already cached, 0 failed" in report
    assert report.count("moved unreadable shard to") == 2
    assert sorted(p.name for p in (cache_dir / "corrupt").iterdir()) == sorted([truncated.name, no_state.name])
    expected = sorted(item.id for item in list_clips(toy_world[1])[:3])
    assert list(cache.load(TINY, require_audio=True)["id"]) == expected


# ---------------------------------------------------------------------------------------- repeated rows


def test_repeated_rows_refuse_load_and_resume_until_repaired_keeping_each_first_row(toy_world, tmp_path, capsys,
                                                                                    no_models):
    cache = FeatureCache(tmp_path / "cache")
    cache.initialise(TINY)
    for rows, rank in (([("a", "s0"), ("b", "s0")], 0), ([("b", "s1"), ("c", "s1")], 1), ([("c", "s2")], 1)):
        cache.write_shard([_row(clip_id, label) for clip_id, label in rows], rank=rank)  # as two unlocked jobs left it
    before = {path.name: _rows(path) for path in cache.shard_paths()}
    first: dict[str, str] = {}
    for rows in before.values():  # shard_paths order
        for clip_id, label in rows:
            first.setdefault(clip_id, label)

    repair_hint = f"python -m recipes.extract_features --out {cache.root} --repair"
    with pytest.raises(DuplicateRowsError, match="is in more than one row") as error:
        cache.load(TINY)
    assert repair_hint in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(DuplicateRowsError):  # a rerun must not report success over a cache that cannot load
        extract_to_cache([], cache, TINY, progress=False)
    assert extract_features.main(["--videos", str(toy_world[1]), "--out", str(cache.root), "--num-workers", "0"]) == 2
    assert repair_hint in _one_error_line(capsys)

    assert extract_features.main(["--out", str(cache.root), "--repair"]) == 0
    assert "repaired; 3 clips, one row each" in capsys.readouterr().out
    rows = cache.load(TINY)
    assert list(rows["id"]) == ["a", "b", "c"]
    assert dict(zip(rows["id"], rows["label"])) == first
    # Nothing lost: every original shard is still in shards/ or, unchanged, in replaced/.
    kept = {p.name: _rows(p) for p in cache.shard_paths() if p.name in before}
    replaced = {p.name: _rows(p) for p in (cache.root / "replaced").iterdir()}
    assert {**kept, **replaced} == before and len(replaced) >= 1

    assert extract_features.main(["--out", str(cache.root), "--repair"]) == 0
    assert "nothing to repair; 3 clips" in capsys.readouterr().out


def _rows(shard) -> list[tuple[str, str]]:
    import datasets

    rows = datasets.load_from_disk(str(shard))
    return list(zip(rows["id"], rows["label"]))


def test_repair_of_a_held_cache_is_refused(tmp_path, capsys):
    cache = FeatureCache(tmp_path / "cache")
    cache.initialise(TINY)
    with cache.lock():
        assert extract_features.main(["--out", str(cache.root), "--repair"]) == 2
    assert "another extraction" in _one_error_line(capsys)
    assert json.loads(cache.meta_path.read_text())["preset"] == "tiny"
