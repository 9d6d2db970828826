"""`python -m recipes.evaluate` end to end on toy clips (tiny embedders): metrics.json and the table,
a rerun that embeds nothing, bad and unpaired files named and skipped, bad options refused."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from recipes import evaluate

AV_KEYS = {"FD-PASST", "FD-PANN", "FD-VGG", "KL-PANNS-softmax", "KL-PASST-softmax", "ISC-PANNS-mean",
           "ISC-PANNS-std", "ISC-PASST-mean", "ISC-PASST-std", "IB-Score", "IB-Score-x100", "DeSync"}


@pytest.fixture(scope="module")
def toy_sets(toy_world, tmp_path_factory):
    """(generated, reference, videos): the first 10 toy clips' true audio as reference; as
    'generated', the same audio delayed by 0.3 s (what a late generator would give)."""
    from extractors.clip import ClipConfig
    from extractors.manifest import list_clips
    from extractors.video import read_clip

    root = tmp_path_factory.mktemp("eval")
    generated, reference, videos = root / "generated", root / "reference", root / "world" / "videos"
    for folder in (generated, reference, videos):
        folder.mkdir(parents=True)
    shutil.copy(toy_world[0] / "world.json", root / "world" / "world.json")
    clip = ClipConfig()
    for item in list_clips(toy_world[1])[:10]:  # IS needs >= 10 clips (10 splits)
        audio = read_clip(item.path, clip, start=item.start).audio
        sf.write(reference / f"{item.id}.wav", audio, clip.sample_rate)
        sf.write(generated / f"{item.id}.wav", np.roll(audio, int(0.3 * clip.sample_rate)), clip.sample_rate)
        shutil.copy(item.path, videos / item.path.name)
    return generated, reference, videos


def _args(generated, reference, out, *extra):
    return ["--generated", str(generated), "--reference", str(reference), "--out", str(out),
            "--preset", "tiny", "--cache", str(out.parent / "cache"), *extra]


def test_scores_toy_clips_then_a_rerun_embeds_nothing(toy_sets, tmp_path, capsys):
    generated, reference, videos = toy_sets
    args = _args(generated, reference, tmp_path / "out", "--videos", str(videos))
    assert evaluate.main(args) == 0
    first = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(report["metrics"]) == AV_KEYS
    assert report["metrics"]["IB-Score-x100"] == pytest.approx(100 * report["metrics"]["IB-Score"])
    assert report["counts"] == {"generated": 10, "reference": 10, "paired": 10}
    # the paper's column order: FD-PaSST, IS, IB-score, DeSync first
    assert first.index("FD-PASST") < first.index("ISC-PANNS-mean") < first.index("IB-Score-x100") < first.index("DeSync")
    toy = report["toy_world"]
    assert toy["clips"] == 10 and toy["event_sync_error_s"] == pytest.approx(0.3, abs=0.02)  # the delay we put in
    lines = [line for line in first.splitlines() if "in the cache" in line]
    assert len(lines) == 5 and all("embedded 20 files, found 0" in line for line in lines), lines

    assert evaluate.main(args) == 0
    again = capsys.readouterr().out
    lines = [line for line in again.splitlines() if "in the cache" in line]
    assert len(lines) == 5 and all("embedded 0 files, found 20" in line for line in lines), lines
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"] == report["metrics"]


def test_broken_unpaired_and_short_files_are_named_and_skipped(toy_sets, tmp_path, capsys):
    generated, reference, _ = toy_sets
    gen = tmp_path / "gen"
    shutil.copytree(generated, gen)
    (gen / "broken.wav").write_text("not audio")
    shutil.copy(reference / "toy_00000.wav", tmp_path / "tmp.wav")
    sf.write(gen / "short.wav", np.zeros(800, np.float32), 16000)  # 50 ms: too short for PANNs / VGGish
    ref = tmp_path / "ref"
    shutil.copytree(reference, ref)
    (ref / "broken.wav").write_text("not audio either")
    sf.write(ref / "short.wav", np.zeros(800, np.float32), 16000)
    sf.write(ref / "only_reference.wav", np.zeros(16000, np.float32), 16000)
    code = evaluate.main(_args(gen, ref, tmp_path / "out", "--metrics", "fd_panns,fd_vggish,kl_panns"))
    err = capsys.readouterr().err
    assert code == 1
    assert "only_reference.wav" in err and "broken.wav" in err and "short.wav" in err
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(report["metrics"]) == {"FD-PANN", "FD-VGG", "KL-PANNS-softmax"}
    assert all(np.isfinite(v) for v in report["metrics"].values())
    assert any("broken.wav" in name for name in report["skipped"]["failed"])


@pytest.mark.parametrize("bad, named", [
    (["--audio-length", "0"], "--audio-length"),
    (["--audio-length", "nan"], "--audio-length"),
    (["--audio-length", "inf"], "--audio-length"),
    (["--metrics", "fd_mert"], "--metrics"),
    (["--metrics", ""], "--metrics"),
    (["--metrics", "desync"], "--videos"),
    (["--batch-size", "0"], "--batch-size"),
    (["--preset", "huge"], "--preset"),
    (["--name-rule", "fuzzy"], "--name-rule"),
    (["--device", "cuda:7"], "--device"),
    (["--device", "toaster"], "--device"),
    (["--videos", "/no/such/folder"], "--videos"),
])  # fmt: skip
def test_bad_options_are_one_line_before_anything_is_embedded(toy_sets, bad, named, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("evaluation.suite.run_suite", pytest.fail)
    generated, reference, _ = toy_sets
    code = None
    try:
        code = evaluate.main(_args(generated, reference, tmp_path / "out") + bad)
    except SystemExit as exit_info:  # argparse's own errors (choices, types)
        code = exit_info.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and named in err[0], err


def test_missing_folders_and_paper_weights_are_named(toy_sets, tmp_path, capsys, monkeypatch):
    generated, reference, _ = toy_sets
    assert evaluate.main(_args(tmp_path / "nowhere", reference, tmp_path / "out")) == 2
    assert "--generated" in capsys.readouterr().err
    monkeypatch.setenv("MFM_WEIGHTS", str(tmp_path / "weights"))
    args = _args(generated, reference, tmp_path / "out") + ["--preset", "paper", "--metrics", "fd_passt"]
    assert evaluate.main(args) == 2
    err = capsys.readouterr().err
    assert "passt-s-f128-p16-s10-ap.476-swa.pt: missing" in err and len(err.strip().splitlines()) == 1


@pytest.mark.ddp
@pytest.mark.slow
def test_two_processes_share_the_embedding_and_give_the_same_metrics(toy_sets, tmp_path):
    import os
    import subprocess
    import sys

    generated, reference, videos = toy_sets
    assert evaluate.main(_args(generated, reference, tmp_path / "one", "--videos", str(videos))) == 0
    args = _args(generated, reference, tmp_path / "two", "--videos", str(videos), "--devices", "2")
    args[args.index("--cache") + 1] = str(tmp_path / "cache_two")  # a fresh cache: both ranks really embed
    done = subprocess.run([sys.executable, "-m", "recipes.evaluate", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["metrics"]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())["metrics"]
    assert two.keys() == one.keys()
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key  # batches differ: float round-off
    shards = [p for p in (tmp_path / "cache_two").rglob("shard-*") if p.is_dir()]
    assert len(shards) >= 10  # 5 embedders x 2 ranks wrote their shares


def test_a_dangling_symlink_among_the_videos_skips_its_pair_and_scores_the_rest(toy_sets, tmp_path, capsys):
    generated, reference, videos = toy_sets
    linked = tmp_path / "world" / "videos"  # the world beside it (world.json) is left out: no toy sync
    shutil.copytree(videos, linked)
    broken = sorted(linked.iterdir())[0]
    broken.unlink()
    os.symlink(tmp_path / "deleted.mp4", broken)
    code = evaluate.main(_args(generated, reference, tmp_path / "out", "--videos", str(linked), "--metrics", "ib_score"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err  # the run went on; a skipped pair makes the status 1
    lines = [line for line in err.splitlines() if broken.name in line]
    assert len(lines) == 1 and "dangling symlink" in lines[0] and str(broken) in lines[0], err
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "IB-Score" in report["metrics"] and str(broken) in report["skipped"]["failed"]
