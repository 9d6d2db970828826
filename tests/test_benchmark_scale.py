"""benchmarks/scale.py runs end to end at tiny sizes, prints its table and ratios, and leaves nothing behind
(or keeps its caches with --keep)."""
import pytest

from benchmarks import scale as bench
from extractors.cache import FeatureCache


def test_scale_benchmark_prints_every_figure_and_cleans_up(capsys, tmp_path):
    argv = ["--sizes", "40,80", "--rounds", "1", "--in-process", "--preset", "tiny", "--train-batch", "4",
            "--steps", "1", "--n-layer", "2", "--n-head", "2", "--threads", "1", "--loader-seconds", "0", "--dir", str(tmp_path)]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "cpu:" in out and "torch" in out  # the machine line
    header = next(line for line in out.splitlines() if line.startswith("| figure |"))
    assert "40 clips" in header and "80 clips" in header
    for figure in ("FeatureCache.load", "MapperDataModule.setup", "resume: what is left to extract",
                   "loader samples/s, batch 48", "RSS after one epoch", "training s/step, batch 4"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {figure}"))
        assert row.count("|") == 4, row
    for ratio in ("FeatureCache.load per clip", "resume per clip", "loader time per sample, later epochs",
                  "training time per step (best step)"):
        assert any(line.startswith(ratio) for line in out.splitlines()), ratio
    assert "goal:" in out and "caches deleted" in out
    assert list(tmp_path.iterdir()) == []  # the temporary caches are gone


def test_keep_leaves_loadable_caches(capsys, tmp_path):
    keep = tmp_path / "kept"
    assert bench.main(["--sizes", "30", "--rounds", "1", "--in-process", "--preset", "tiny", "--steps", "0",
                       "--loader-seconds", "0", "--keep", str(keep)]) == 0
    assert f"caches kept in {keep}" in capsys.readouterr().out
    rows = FeatureCache(keep / "n30").load()
    assert len(rows) == 30 and list(rows["id"]) == sorted(rows["id"])  # merged from 8 ranks' shards, sorted
    with pytest.raises(SystemExit):  # never builds over a kept cache
        bench.main(["--sizes", "30", "--preset", "tiny", "--keep", str(keep)])
    assert "n30 already there" in capsys.readouterr().err


def test_sizes_that_do_not_fit_are_replaced_by_the_largest_that_does():
    per_clip = 150_000
    free = bench.DISK_MARGIN + 3 * 64 * 2**20 + int(41_500 * per_clip * 1.02)  # room for 1k + 10k + 30.5k
    sizes, notes = bench.fitting_sizes([1000, 10000, 77000], free, per_clip)
    assert sizes == [1000, 10000, 30000]
    assert len(notes) == 1 and "not enough free disk for 77,000 clips" in notes[0]
    assert bench.fitting_sizes([1000], bench.DISK_MARGIN, per_clip)[0] == []
