"""An extraction killed with SIGKILL mid-way, then rerun, ends with exactly one row per good clip.

The job runs as a real subprocess (its own process group, so its decoding workers die with it,
like a node that disappears), with one clip per shard so the first shard appears long before the
end. A half-written shard left by a kill is simulated too: the rerun must clean it up.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from extractors.cache import FeatureCache
from extractors.manifest import list_clips
from extractors.presets import get_preset
from recipes import extract_features

pytestmark = [pytest.mark.slow]

BAD = ("not_a_video", "truncated", "missing_file")


@pytest.fixture(scope="module")
def kill_world(world_with_bad_files, tmp_path_factory):
    """10 toy clips with the three bad entries early, so the first (killed) run meets them."""
    assert world_with_bad_files.bad_clips == BAD
    return world_with_bad_files(tmp_path_factory.mktemp("kill_world"), num_good=10, insert_at=3)


def _finished_shards(cache_dir) -> list:
    shards = cache_dir / "shards"
    return [p for p in shards.iterdir() if not p.name.startswith(".")] if shards.is_dir() else []


def test_rerun_after_kill_9_has_exactly_one_row_per_good_clip(kill_world, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    argv = ["--videos", str(kill_world), "--out", str(cache_dir), "--preset", "tiny",
            "--shard-size", "1", "--batch-size", "1", "--num-workers", "1", "--no-progress"]
    job = subprocess.Popen([sys.executable, "-m", "recipes.extract_features", *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not _finished_shards(cache_dir) and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert job.poll() is None, f"the job ended before it could be killed:\n{job.stderr.read().decode()[-2000:]}"
        os.killpg(job.pid, signal.SIGKILL)  # the job and its decoding workers
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        job.stderr.close()
    assert job.returncode == -signal.SIGKILL

    good_ids = sorted(item.id for item in list_clips(kill_world) if item.id not in BAD)
    cache = FeatureCache(cache_dir)
    done_before = cache.completed_ids()
    assert 0 < len(done_before) < len(good_ids)  # killed mid-way
    half_written = cache_dir / "shards" / ".rank000-0123456789ab.deadbeef.tmp"
    half_written.mkdir()
    (half_written / "data-00000-of-00001.arrow").write_bytes(b"partial")

    assert extract_features.main([*argv, "--batch-size", "4", "--num-workers", "0"]) == 0  # faster; any settings resume
    report = capsys.readouterr().out
    remaining = len(good_ids) - len(done_before)
    assert f"extracted {remaining} clips, {len(done_before)} already cached, 3 failed" in report
    for name in BAD:
        assert sum(name in line for line in report.splitlines() if line.strip().startswith("failed:")) == 1
    rows = cache.load(get_preset("tiny"), require_audio=True)
    assert list(rows["id"]) == good_ids  # exactly one row per good clip, no duplicates, sorted by id
    assert not half_written.exists()
    assert [f["id"] for f in cache.failures()] == sorted(BAD)
