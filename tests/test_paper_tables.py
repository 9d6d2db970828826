"""recipes.paper_tables: argument checks, --print-plan, the tables from markers, and the quick toy grid end
to end, killed after its first run and resumed without retraining that run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recipes import paper_tables

QUICK_VARIANTS = ("full", "cavp_only", "timechat_only", "fusion_add", "fusion_time_cat", "diff_mapper")


def run_main(argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of paper_tables.main, argparse's own exits included."""
    try:
        code = paper_tables.main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------------
# the command line: one line, exit 2, nothing written


@pytest.fixture
def grid_args(toy_world, toy_cache, tmp_path):
    """A valid quick-grid command line into tmp_path/out (tiny decoder: no dependence on the toy weights)."""
    return ["--quick", "--cache", str(toy_cache), "--videos", str(toy_world[0]), "--out", str(tmp_path / "out"),
            "--audioldm2", "tiny"]


BAD = [
    (["--seeds", "0"], "--seeds"),
    (["--seeds", "two"], "--seeds"),
    (["--tables", "encoders,bogus"], "--tables"),
    (["--tables", ","], "--tables"),
    (["--tables", "mapper,mapper"], "--tables"),
    (["--seeds", "2", "--seed", "2"], "--seed"),
    (["--only", "nothing"], "--only"),
    (["--tables", "fusion", "--only", "diff_mapper"], "--only"),
    (["--curve-every", "-1"], "--curve-every"),
    (["--num-nodes", "2"], "--num-nodes"),
    (["--device", "cuda:7"], "--device"),
    (["--audioldm2", "/no/such/decoder/folder"], "--audioldm2"),
    (["--scale", "paper"], "--quick"),
    (["--devices", "0"], "--devices"),
    (["--unknown-option"], "unrecognized"),
]


@pytest.mark.parametrize("extra, named", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_argument_is_one_line_exit_2_and_writes_nothing(grid_args, tmp_path, capsys, extra, named):
    code, out, err = run_main(grid_args + extra, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "out").exists()


def test_bad_paths_are_refused_before_any_work(toy_world, toy_cache, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    one_clip = tmp_path / "one_clip"
    one_clip.mkdir()
    (one_clip / "only.mp4").write_bytes((toy_world[0] / "videos" / "toy_00012.mp4").read_bytes())
    cases = [
        (["--out", str(a_file)], "--out"),
        (["--out", str(a_file / "sub")], "--out"),
        (["--videos", str(tmp_path / "missing")], "--videos"),
        (["--videos", str(one_clip)], "--videos"),  # a folder of one video: too few test clips
        (["--cache", str(a_file)], "--cache"),
        (["--scale", "paper", "--videos", str(toy_world[0]), "--cache", str(tmp_path / "no_cache")], "--cache"),
    ]
    for extra, named in cases:
        argv = ["--cache", str(toy_cache), "--videos", str(toy_world[0]), "--out", str(tmp_path / "out"),
                "--audioldm2", "tiny", *extra]
        if "--scale" not in extra:
            argv.append("--quick")
        code, _, err = run_main(argv, capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and named in err, (extra, err)
        assert not (tmp_path / "out").exists()
    # the paper grid has no default test videos
    code, _, err = run_main(["--scale", "paper", "--cache", str(toy_cache), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "--videos" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "one_clip"]


def test_a_command_started_as_several_tasks_must_pick_one_run(grid_args, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLURM_NTASKS", "4")  # srun --ntasks-per-node=4: every task runs the command
    code, _, err = run_main(grid_args, capsys)
    assert code == 2 and "--only" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_an_output_folder_of_another_grid_is_refused(grid_args, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    plan = {"grid": {"scale": "toy", "quick": False}}
    (out / "plan.json").write_text(json.dumps(plan))
    code, _, err = run_main(grid_args, capsys)
    assert code == 2 and "quick" in err and err.count("\n") == 1
    assert json.loads((out / "plan.json").read_text()) == plan


# ------------------------------------------------------------------------------------------------
# --print-plan


def test_paper_print_plan_lists_every_run_with_configs_and_gpu_hours(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["--scale", "paper", "--print-plan"], capsys)
    assert code == 0, err
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[1], int(r[2])) for r in rows] == [(v, s) for v in (*QUICK_VARIANTS, "full_sync") for s in range(3)]
    guided = [row for row in rows if row[1] == "full_sync"]  # renders full's mapper: no training, no GPU hours
    assert all("(no training: full's mapper, sync guidance)" in " ".join(row) for row in guided)
    rows = [row for row in rows if row[1] != "full_sync"]
    for row in rows:
        assert row[3] == "recipes/configs/paper.yaml"
        if row[1] != "full":
            assert f"recipes/configs/ablations/{row[1]}.yaml" in row
        assert float(row[-1]) > 0  # GPU hours
    hours = {r[1]: float(r[-1]) for r in rows}
    assert hours["fusion_time_cat"] > hours["full"]  # a longer GPT-2 sequence costs more
    total = float(out.split("total: ")[1].split()[0])
    assert total == pytest.approx(sum(float(r[-1]) for r in rows), abs=0.02)
    assert "assumed" in out and "GPU_TRAIN_GOAL" in out  # the throughput is an assumption, and says so
    assert "77,000" in out
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_quick_grid_keeps_its_data_inside_out(tmp_path, monkeypatch):
    """--quick without --cache/--videos builds its small world under --out, never under the current folder."""
    from recipes.paper_tables import parse_args
    from recipes.tables.options import options_from

    monkeypatch.chdir(tmp_path)
    options = options_from(parse_args(["--quick", "--out", str(tmp_path / "grid"), "--device", "cpu"]))
    assert options.cache == tmp_path / "grid" / "toy_data" / "cache"
    assert options.videos == tmp_path / "grid" / "toy_data" / "world"
    toy = options_from(parse_args(["--out", str(tmp_path / "grid"), "--device", "cpu"]))
    assert toy.cache == Path("data/toy/cache")  # the toy grid shares the recipe's own data


def test_print_plan_follows_tables_seeds_and_devices(capsys):
    code, out, _ = run_main(["--scale", "paper", "--print-plan", "--tables", "mapper", "--seeds", "2",
                             "--devices", "4"], capsys)
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[1], int(r[2])) for r in rows] == [("full", 0), ("full", 1), ("diff_mapper", 0), ("diff_mapper", 1)]
    assert "trainer.devices 4" in out and "every 10 epochs" in out


# ------------------------------------------------------------------------------------------------
# tables from markers (no training)


def test_tables_show_mean_and_std_over_seeds_and_share_the_full_variant(tmp_path):
    from recipes.tables.markers import write_marker
    from recipes.tables.report import collect, markdown

    folders = {}
    for variant in QUICK_VARIANTS:
        for seed in range(3):
            folder = folders[(variant, seed)] = tmp_path / variant / f"seed{seed}"
            value = {"full": 10.0, "cavp_only": 20.0}.get(variant, 30.0) + seed  # 10, 11, 12: mean 11, std 1
            write_marker(folder, "evaluate", 1.0, metrics={"FD-PANN": value, "ISC-PANNS-mean": None,
                                                           "event_sync_error_s": 0.1, "class_accuracy": 0.5})
    tables = collect(folders, "toy", ["encoders", "fusion", "mapper"])
    text = markdown(tables, "toy", ["a note"])
    for title, label in (("Visual encoders", "CAVP + TimeChat"),
                         ("Fusion of the two streams", "Channel concat + projection"),
                         ("Mapper", "Autoregressive (GPT-2)")):
        section = text.split(f"### {title}")[1].split("###")[0]
        assert f"| {label} | 11.00 ± 1.00 | n/a | 0.100 ± 0.000 | 0.50 ± 0.00 |" in section
    assert "| CAVP | 21.00 ± 1.00 |" in text
    assert "FD (toy PANNs) ↓" in text and "Class accuracy ↑" in text
    paper = markdown(tables, "toy", [], paper={"encoders": {"CAVP": {"FD-PANN": 1.5}}})
    assert "| CAVP | 21.00 ± 1.00 | 1.50 |" in paper  # the paper's number beside ours


@pytest.mark.parametrize("damage, reason", [
    (lambda marker, wav: marker.write_text(marker.read_text()[:40]), "not a readable marker"),
    (lambda marker, wav: marker.write_text("[1, 2]"), "expected an object"),
    (lambda marker, wav: marker.write_text(marker.read_text().replace('"metrics"', '"metricz"')), "'metrics' missing"),
    (lambda marker, wav: wav.unlink(), "missing: generated/a.wav"),
    (lambda marker, wav: wav.write_bytes(wav.read_bytes()[:10]), "changed since: generated/a.wav"),
])  # fmt: skip
def test_a_bad_marker_is_named_set_aside_and_its_step_redone(tmp_path, capsys, damage, reason):
    from recipes.tables.markers import read_marker, write_marker

    wav = tmp_path / "generated" / "a.wav"
    wav.parent.mkdir()
    wav.write_bytes(b"RIFF" + bytes(100))
    write_marker(tmp_path, "evaluate", 1.0, metrics={"FD-PANN": 1.0}, files=[wav])
    assert read_marker(tmp_path, "evaluate")["metrics"] == {"FD-PANN": 1.0}  # intact: trusted
    damage(tmp_path / "evaluate.done.json", wav)
    capsys.readouterr()

    assert read_marker(tmp_path, "evaluate") is None  # the runner redoes a step without a valid marker
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "evaluate.done.json") in err and reason in err
    assert (tmp_path / "evaluate.done.json.rejected").is_file()  # kept aside, not lost
    assert not wav.exists() or wav.read_bytes().startswith(b"RIFF" + bytes(10))  # a changed file is set aside too


# ------------------------------------------------------------------------------------------------
# the quick grid: killed after its first run, resumed, complete


def _quick_command(toy_world, toy_cache, out: Path) -> list[str]:
    return [sys.executable, "-m", "recipes.paper_tables", "--quick", "--cache", str(toy_cache),
            "--videos", str(toy_world[0]), "--out", str(out)]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def resumed_grid(toy_world, toy_cache, tmp_path_factory):
    """Start the quick grid, kill it (SIGKILL, its whole process group) once the first run is done, rerun it.

    Returns (out folder, the first run's files' mtimes at the kill, the rerun's output, its exit status,
    seconds the two invocations took)."""
    out = tmp_path_factory.mktemp("quick_grid") / "out"
    command = _quick_command(toy_world, toy_cache, out)
    first_run = out / "runs" / "full" / "seed0"
    started = time.perf_counter()
    process = subprocess.Popen(command, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while not (first_run / "curve.done.json").exists():  # the first run's last step
            assert process.poll() is None, f"the grid stopped before its first run was done ({process.returncode})"
            assert time.perf_counter() - started < 600, "the first run took over 10 minutes"
            time.sleep(0.2)
        before = _mtimes(first_run)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the grid and its training subprocess, if one is running
        process.wait()
    killed_after = time.perf_counter() - started
    rerun = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=900)
    return out, before, rerun.stdout + rerun.stderr, rerun.returncode, (killed_after, time.perf_counter() - started)


@pytest.mark.slow
def test_killed_grid_resumes_without_retraining_finished_runs(resumed_grid):
    out, before, output, code, _ = resumed_grid
    assert code == 0, output[-3000:]
    first_run = out / "runs" / "full" / "seed0"
    after = _mtimes(first_run)
    assert {name: after[name] for name in before} == before  # not one file of the finished run rewritten
    assert "mapper/model.safetensors" in before and "train.done.json" in before
    assert "run 1/7 full seed 0" not in output  # nothing of it was redone
    assert "run 6/7 diff_mapper seed 0: step curve" in output
    assert "run 7/7 full_sync seed 0: step evaluate" in output  # full's mapper, rendered with sync guidance
    for variant in QUICK_VARIANTS:
        for step in ("train", "generate", "evaluate"):
            assert (out / "runs" / variant / "seed0" / f"{step}.done.json").is_file(), (variant, step)
    guided = json.loads((out / "runs" / "full_sync" / "seed0" / "generate.done.json").read_text())
    assert guided["mapper"] == str(first_run / "mapper") and guided["sync_guidance"] > 0
    assert not (out / "runs" / "full_sync" / "seed0" / "train.done.json").exists()
    # a rerun of a complete grid trains nothing and only rewrites the tables
    again = subprocess.run(_quick_command_from(out), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "step" not in again.stdout, again.stdout[-2000:]


def _quick_command_from(out: Path) -> list[str]:
    grid = json.loads((out / "plan.json").read_text())["grid"]
    return [sys.executable, "-m", "recipes.paper_tables", "--quick", "--cache", grid["cache"], "--videos",
            grid["videos"], "--out", str(out)]


@pytest.mark.slow
def test_quick_grid_writes_the_tables_and_the_figure(resumed_grid):
    out, _, output, code, seconds = resumed_grid
    assert code == 0, output[-3000:]
    text = (out / "tables.md").read_text()
    for title in ("### Visual encoders", "### Fusion of the two streams", "### Mapper",
                  "### Timing control (beyond the paper)"):
        assert title in text
    for label in ("CAVP + TimeChat", "CAVP", "TimeChat", "Channel concat + projection", "Add", "Time concat",
                  "Autoregressive (GPT-2)", "Diff-Mapper", "Paper decoding", "+ sync guidance"):
        assert f"| {label} |" in text
    assert "IB-score and DeSync are not reported at toy scale" in text
    record = json.loads((out / "tables.json").read_text())
    assert record["scale"] == "toy" and record["quick"] and record["seeds"] == [0]
    for table in record["tables"].values():
        for row in table["rows"]:
            assert row["seeds"] == [0]
            accuracy = row["metrics"]["class_accuracy"]["mean"]
            assert 0.0 <= accuracy <= 1.0
            assert row["metrics"]["event_sync_error_s"]["mean"] >= 0.0
            assert row["metrics"]["FD-PANN"]["n"] in (0, 1)
    # the shared row is one run: the same numbers in all four tables
    full = [row["metrics"] for t in record["tables"].values() for row in t["rows"] if row["variant"] == "full"]
    assert len(full) == 4 and full[0] == full[1] == full[2] == full[3]
    curves = record["convergence"]
    assert set(curves) == {"full", "diff_mapper"}
    assert set(curves["full"]["class_accuracy"]) == {"1", "2"}  # every epoch of the quick grid
    png = (out / "convergence.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    print(f"quick grid: killed after {seconds[0]:.0f} s, complete after {seconds[1]:.0f} s")
