"""benchmarks.gpu: its CPU dry run exercises every section (so the one-command GPU run cannot rot), and a
failing section fails the run loudly."""
import json
import math

import pytest
import torch

from benchmarks import gpu


@pytest.mark.slow  # about a minute on 2 cores: every section at tiny size
def test_dry_run_measures_every_section(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OUT", raising=False)
    out = tmp_path / "figures.json"
    assert gpu.main(["--device", "cpu", "--dry-run", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out

    report = json.loads(out.read_text())
    assert report["ok"] and report["dry_run"] and report["device"] == "cpu"
    assert list(report["sections"]) == list(gpu.SECTIONS)
    assert all(s["error"] is None and s["seconds"] > 0 for s in report["sections"].values())
    by_section = {name: [r for r in report["rows"] if r["section"] == name] for name in gpu.SECTIONS}
    assert len(by_section["extraction"]) == 2  # model-only and end-to-end
    assert len(by_section["training"]) == 4  # Lightning and bare loop, eager and compiled
    figures = " ".join(r["figure"] for r in by_section["generation"])
    assert "fast preset" in figures and "paper preset" in figures and "s video" in figures
    from benchmarks.evaluation import EMBEDDERS

    evaluated = " ".join(r["figure"] for r in by_section["evaluation"])
    assert all(name in evaluated for name in EMBEDDERS)
    for r in report["rows"]:
        assert math.isfinite(r["value"]) and r["value"] > 0, r
        assert r["peak_gpu_bytes"] is None  # CPU: no GPU peak

    # One markdown table on stdout: every row, then the section times.
    assert "| section | figure | measured | peak GPU memory |" in stdout
    assert report["table"] in stdout
    for r in report["rows"]:
        assert f"| {r['section']} | {r['figure']} |" in stdout
    for name in gpu.SECTIONS:
        assert f"| {name} | section wall time (budget) |" in stdout


@pytest.mark.slow
def test_a_failing_section_fails_the_run_and_is_recorded(tmp_path, monkeypatch, capsys):
    def broken(plan, device, workdir):
        raise RuntimeError("the section broke")

    monkeypatch.setitem(gpu.RUNNERS, "training", broken)
    monkeypatch.setenv("OUT", str(tmp_path))  # the device tool's output folder
    assert gpu.main(["--device", "cpu", "--dry-run", "--sections", "training"]) == 1
    err = capsys.readouterr().err
    assert "the section broke" in err and "sections failed: training" in err
    report = json.loads((tmp_path / gpu.JSON_NAME).read_text())
    assert not report["ok"] and "the section broke" in report["sections"]["training"]["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_is_an_error(capsys):
    assert gpu.main(["--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
