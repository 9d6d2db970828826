"""The toy benchmarks over several sampling seeds: the offsets they accept (benchmarks.common.seed_offsets) and the
mean benchmarks.sync_guidance reports."""
import pytest

from benchmarks import sampling
from benchmarks import sync_guidance as bench
from benchmarks.common import seed_offsets


def test_seed_offsets_are_distinct_integers_at_least_zero(capsys):
    assert seed_offsets("0") == [0] and seed_offsets("0,100,200") == [0, 100, 200]
    for bad in ("1,1", "-1", "0,x", ""):
        # refused by either benchmark's command line, before any model loads
        for main, flag in ((bench.main, "--seed-offset"), (sampling.main, "--offsets")):
            with pytest.raises(SystemExit) as stop:
                main(["--seed-check", flag, bad] if flag == "--offsets" else [flag, bad])
            assert stop.value.code == 2
            assert f"{flag}: expected distinct integers >= 0" in capsys.readouterr().err


def test_the_mean_over_seed_offsets_is_per_row_and_metric_and_keeps_each_offset():
    per_seed = {
        0: {"unguided": {"class_accuracy": 0.9, "event_sync_error_s": 0.5, "fd": 6.0},
            "video 0.045:0.3": {"class_accuracy": 0.8, "event_sync_error_s": 0.2, "fd": 9.0}},
        100: {"unguided": {"class_accuracy": 1.0, "event_sync_error_s": 0.7, "fd": 8.0},
              "video 0.045:0.3": {"class_accuracy": 0.9, "event_sync_error_s": 0.4, "fd": 7.0}},
    }
    rows = bench.mean_rows(per_seed)
    assert rows["unguided"] == pytest.approx({"class_accuracy": 0.95, "event_sync_error_s": 0.6, "fd": 7.0})
    assert rows["video 0.045:0.3"] == pytest.approx({"class_accuracy": 0.85, "event_sync_error_s": 0.3, "fd": 8.0})
    # a world the toy classifier does not know has no class accuracy at any seed: it stays None
    per_seed[0]["unguided"]["class_accuracy"] = per_seed[100]["unguided"]["class_accuracy"] = None
    assert bench.mean_rows(per_seed)["unguided"]["class_accuracy"] is None
    saved = bench._seed_rows(per_seed, rows)
    assert saved["seed_offsets"] == [0, 100] and saved["rows"] is rows
    assert saved["per_seed_offset"]["100"]["video 0.045:0.3"]["fd"] == 7.0
