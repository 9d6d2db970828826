"""Two CPU processes (DDP over gloo, through Lightning Fabric) produce the rows of one process.

Each rank extracts its share of the clips into its own shards; the cache merges them. The merged
cache must hold the same ids and (allclose) features as a one-process extraction, every clip once,
and rank 0 must report the failures of both ranks, once.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from extractors.cache import FeatureCache
from extractors.presets import get_preset
from recipes import extract_features

pytestmark = [pytest.mark.ddp, pytest.mark.slow]

BAD = ("not_a_video", "missing_file")


def test_two_process_extraction_equals_one_process(toy_world, tmp_path, capsys):
    root, metadata = toy_world
    (tmp_path / "videos").mkdir()
    rows = metadata.read_text().splitlines()[:8]
    for row in rows:
        shutil.copy(root / "videos" / f"{row.split(',')[0]}.mp4", tmp_path / "videos")
    (tmp_path / "videos" / "not_a_video.mp4").write_text("not a video\n")
    rows[1:1] = [f"{name},0,bell ringing,test" for name in BAD]  # clips 1 and 2: one failure on each rank
    rows[5:5] = ["toy_00000,0,drum hitting,train"]  # a repeated id is ignored, never extracted twice
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    common = ["--videos", str(tmp_path / "metadata.csv"), "--preset", "tiny", "--accelerator", "cpu",
              "--batch-size", "2", "--shard-size", "2", "--num-workers", "1", "--no-progress"]

    ddp = subprocess.run([sys.executable, "-m", "recipes.extract_features", *common, "--out", str(tmp_path / "ddp"),
                          "--devices", "2"], capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    summary = [line for line in ddp.stdout.splitlines() if line.startswith("extracted ")]
    assert len(summary) == 1 and summary[0].startswith("extracted 8 clips, 0 already cached, 2 failed (2 processes")
    failed_lines = [line for line in ddp.stdout.splitlines() if line.strip().startswith("failed:")]
    assert sorted(name for name in BAD for line in failed_lines if name in line) == sorted(BAD)
    assert len(failed_lines) == 2
    assert "ignored 1 input rows whose id repeats" in ddp.stdout

    assert extract_features.main([*common, "--out", str(tmp_path / "one")]) == 0
    assert "extracted 8 clips, 0 already cached, 2 failed (1 process" in capsys.readouterr().out

    preset = get_preset("tiny")
    two, one = FeatureCache(tmp_path / "ddp"), FeatureCache(tmp_path / "one")
    assert {p.name[:7] for p in two.shard_paths()} == {"rank000", "rank001"}
    a, b = two.load(preset).with_format("numpy"), one.load(preset).with_format("numpy")
    assert list(a["id"]) == list(b["id"]) == sorted({row.split(",")[0] for row in rows} - set(BAD))
    for name in ("cavp", "timechat", "audiomae", "num_valid_frames", "start", "duration"):
        np.testing.assert_allclose(np.stack(a[name]).astype(np.float32), np.stack(b[name]).astype(np.float32),
                                   atol=2e-3, err_msg=name)
    assert [f["id"] for f in two.failures()] == [f["id"] for f in one.failures()] == sorted(BAD)
    with two.lock():  # rank 0 released the cache when both ranks were done
        pass


def test_two_process_extraction_into_a_held_cache_is_refused_by_rank_0_alone(toy_world, tmp_path):
    """Rank 0 alone takes the lock; when another job holds it, every rank stops (none waits forever)
    and one line says who holds the cache."""
    import os

    cache = FeatureCache(tmp_path / "cache")
    with cache.lock():  # this test process is "the other extraction"
        run = subprocess.run([sys.executable, "-m", "recipes.extract_features", "--videos", str(toy_world[1]),
                              "--out", str(cache.root), "--accelerator", "cpu", "--devices", "2", "--num-workers", "0",
                              "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-3000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"another extraction (pid {os.getpid()} " in errors[0], run.stderr[-3000:]
    assert not cache.exists() and not cache.shard_dir.exists()
    with cache.lock():  # and nobody holds it now
        pass
