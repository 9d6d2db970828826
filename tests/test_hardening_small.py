"""Issue 24 (hardening), smaller items: a bad file or a too-small world ends in one clear line naming
the file and the reason, and nothing else is aborted for it.

1. ``python -m recipes.evaluate``: a dangling symlink or a folder named ``x.wav`` among the generated /
   reference audio is skipped and reported (one line each, in metrics.json too); the rest is scored and
   the exit status is 1 (some files were skipped), as for any other unreadable file.
2. CAVP's loader and ``python -m recipes.extract_features``: a refused checkpoint (pickled objects, wrong
   keys) is one line naming the file and the reason, before any model is built.
3. ``python -m recipes.train_mapper`` on a toy world with one test clip: trains, exports, skips the
   held-out metrics that need two clips with one line, and reports the toy rows that one clip can give
   (the shuffled rows, which need another clip, are skipped with a note).
"""
from __future__ import annotations

import collections
import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from recipes import evaluate, extract_features

# ------------------------------------------------------------------ 1. evaluate: dangling links, folders


def _noise_wavs(folder: Path, names, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        sf.write(folder / f"{name}.wav", (0.1 * rng.standard_normal(32000)).astype(np.float32), 16000)


def _eval_args(generated, reference, out):
    return ["--generated", str(generated), "--reference", str(reference), "--out", str(out), "--preset", "tiny",
            "--metrics", "fd_panns,kl_panns", "--no-cache"]


@pytest.mark.parametrize("side", ["generated", "reference"])
@pytest.mark.parametrize("bad", ["dangling_symlink", "folder"])
def test_evaluate_skips_and_reports_a_dangling_symlink_or_a_folder_named_wav(tmp_path, capsys, bad, side):
    names = [f"clip{i}" for i in range(4)]
    _noise_wavs(tmp_path / "generated", names, 0)
    _noise_wavs(tmp_path / "reference", names, 1)
    target = tmp_path / side / "x.wav"
    if bad == "dangling_symlink":
        os.symlink(tmp_path / "deleted.wav", target)
    else:
        target.mkdir()
    code = evaluate.main(_eval_args(tmp_path / "generated", tmp_path / "reference", tmp_path / "out"))
    err = capsys.readouterr().err
    assert "Traceback" not in err and not err.startswith("error:"), err
    assert code == 1, err  # the run went on; a skipped file makes the status 1, as for an unreadable file
    lines = [line for line in err.splitlines() if "x.wav" in line]
    assert len(lines) == 1, err
    reason = "dangling symlink" if bad == "dangling_symlink" else "folder"
    assert str(target) in lines[0] and reason in lines[0], lines[0]
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(report["metrics"]) == {"FD-PANN", "KL-PANNS-softmax"}
    assert report["counts"]["paired"] == 4
    assert any(reason in why for name, why in report["skipped"]["failed"].items() if name == str(target))


def test_evaluate_reports_every_bad_file_and_scores_the_rest(tmp_path, capsys):
    names = [f"clip{i}" for i in range(4)]
    _noise_wavs(tmp_path / "generated", names, 0)
    _noise_wavs(tmp_path / "reference", names, 1)
    os.symlink(tmp_path / "gone.wav", tmp_path / "generated" / "link.wav")
    (tmp_path / "reference" / "dir.flac").mkdir()
    os.symlink(tmp_path / "gone.wav", tmp_path / "reference" / "clip0.flac")  # beside a good clip0.wav
    code = evaluate.main(_eval_args(tmp_path / "generated", tmp_path / "reference", tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    for name in ("link.wav", "dir.flac", "clip0.flac"):
        assert sum(name in line for line in err.splitlines()) == 1, (name, err)
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["counts"]["paired"] == 4 and len(report["skipped"]["failed"]) == 3


# ------------------------------------------------------------------ 2. CAVP: a refused checkpoint in one line


class _NotATensor:
    """Any object a weights-only unpickler refuses."""


def _tiny_cavp_config():
    from extractors.presets import get_preset

    return get_preset("tiny").visual["cavp"]


def _released_layout(cfg) -> dict:
    from extractors.cavp import CAVPEncoder

    state = {f"module.{k}": v for k, v in CAVPEncoder(cfg).state_dict().items()}
    state["module.logit_scale"] = torch.tensor(1.0)
    return {"state_dict": state}


def _bad_checkpoints(folder: Path, cfg) -> dict[str, tuple[Path, str]]:
    """{case: (path, what the line says)}"""
    folder.mkdir(parents=True, exist_ok=True)
    pickled = folder / "pickled" / "cavp_epoch66.ckpt"
    pickled.parent.mkdir()
    torch.save({"state_dict": {}, "callbacks": _NotATensor()}, pickled)
    wrong = folder / "wrong_keys" / "cavp_epoch66.ckpt"
    wrong.parent.mkdir()
    state = _released_layout(cfg)
    state["state_dict"]["module.extra.weight"] = torch.zeros(2)
    del state["state_dict"]["module.video_project_head.bias"]
    torch.save(state, wrong)
    text = folder / "text" / "cavp_epoch66.ckpt"
    text.parent.mkdir()
    text.write_text("not a checkpoint\n")
    return {"pickled": (pickled, r"refused.*pickled objects"), "wrong_keys": (wrong, r"missing 1.*unexpected 1"),
            "text": (text, r"cannot be read")}


@pytest.fixture
def count_real_cavp_builds(monkeypatch):
    """Counts CAVPEncoders built with memory (not on the meta device)."""
    from extractors import cavp

    built = collections.Counter()
    original = cavp.CAVPEncoder._init_weights

    def counting(self):
        built["real" if not next(self.parameters()).is_meta else "meta"] += 1
        original(self)

    monkeypatch.setattr(cavp.CAVPEncoder, "_init_weights", counting)
    return built


@pytest.mark.parametrize("case", ["pickled", "wrong_keys", "text"])
def test_load_cavp_refuses_in_one_line_before_building_the_model(tmp_path, case, count_real_cavp_builds):
    from extractors.cavp import load_cavp

    cfg = _tiny_cavp_config()
    path, says = _bad_checkpoints(tmp_path, cfg)[case]
    count_real_cavp_builds.clear()
    with pytest.raises(ValueError) as info:
        load_cavp(str(path), cfg)
    line = str(info.value)
    assert "\n" not in line and str(path) in line and re.search(says, line), line
    assert count_real_cavp_builds["real"] == 0, "the model was built before the checkpoint was refused"


def test_load_cavp_still_loads_a_good_checkpoint_built_once(tmp_path, count_real_cavp_builds):
    from extractors.cavp import CAVPEncoder, load_cavp

    cfg = _tiny_cavp_config()
    torch.manual_seed(0)
    source = CAVPEncoder(cfg).eval()
    state = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}
    torch.save(state, tmp_path / "cavp_epoch66.ckpt")
    count_real_cavp_builds.clear()
    loaded = load_cavp(str(tmp_path / "cavp_epoch66.ckpt"), cfg)
    assert count_real_cavp_builds["real"] == 0  # filled by assignment: the weights are not held twice
    assert not any(p.is_meta for p in loaded.state_dict().values()) and not loaded.training
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    frames = torch.rand(1, 8, 3, cfg.image_size, cfg.image_size)
    assert torch.allclose(loaded(frames), source(frames))


def test_checking_a_checkpoint_reads_no_weights(tmp_path):
    from safetensors.torch import save_file

    from extractors.cavp import check_cavp_checkpoint
    from extractors.checkpoint import read_checkpoint

    cfg = _tiny_cavp_config()
    torch.save(_released_layout(cfg), tmp_path / "cavp_epoch66.ckpt")
    check_cavp_checkpoint(str(tmp_path / "cavp_epoch66.ckpt"), cfg)  # a good file passes
    on_meta = read_checkpoint(tmp_path / "cavp_epoch66.ckpt", map_location="meta")["state_dict"]
    assert all(t.is_meta for t in on_meta.values())
    save_file({"a": torch.zeros(3, 4, dtype=torch.float16), "b": torch.zeros(2, dtype=torch.int64)},
              tmp_path / "w.safetensors")
    header = read_checkpoint(tmp_path / "w.safetensors", map_location="meta")
    assert {k: (tuple(t.shape), t.dtype, t.is_meta) for k, t in header.items()} == {
        "a": ((3, 4), torch.float16, True), "b": ((2,), torch.int64, True)}


def _preset_with_weights(folder: Path, monkeypatch):
    """`tiny` reading released weights from `folder` (registered, for this test only, under a name the
    CLI accepts), and placeholder files for the encoders other than CAVP."""
    from extractors.audiomae import AUDIOMAE_FILES
    from extractors.presets import PRESETS, get_preset
    from extractors.timechat import TIMECHAT_FILES

    for name in (*TIMECHAT_FILES, AUDIOMAE_FILES[0]):
        (folder / name).write_bytes(b"placeholder")
    preset = replace(get_preset("tiny"), name="hardening-cavp", released=True, weights_dir=str(folder))
    monkeypatch.setitem(PRESETS, preset.name, preset)
    return preset


@pytest.mark.parametrize("case", ["pickled", "wrong_keys", "text", "missing"])
def test_extract_features_refuses_a_bad_cavp_checkpoint_in_one_line_before_building(tmp_path, case, capsys,
                                                                                     monkeypatch, toy_world):
    import lightning

    from extractors.frozen import FrozenExtractors

    def refuse(*_, **__):
        raise AssertionError("a model was built or a process launched for a refused checkpoint")

    monkeypatch.setattr(FrozenExtractors, "__init__", refuse)
    monkeypatch.setattr(lightning.Fabric, "launch", refuse)
    if case == "missing":
        path, says = tmp_path / "bad" / "missing" / "cavp_epoch66.ckpt", r"released weights missing: cavp_epoch66.ckpt"
        path.parent.mkdir(parents=True)
    else:
        path, says = _bad_checkpoints(tmp_path / "bad", _tiny_cavp_config())[case]
    _preset_with_weights(path.parent, monkeypatch)
    code = extract_features.main(["--videos", str(toy_world[1]), "--out", str(tmp_path / "cache"),
                                  "--preset", "hardening-cavp", "--no-progress", "--num-workers", "0"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and str(path.parent) in lines[0] and re.search(says, lines[0]), lines[0]


# ------------------------------------------------------------------ 3. train_mapper: one test clip


class _StandInPipeline:
    """What the toy report asks of a pipeline, without the toy AudioLDM-2 (rendering is seconds per row on a
    CPU): the `toy` extractors' clip timing and AudioMAE, tokens and envelopes from nowhere, noise for audio."""

    sample_rate = 16000

    def __init__(self):
        from types import SimpleNamespace

        from extractors.clip import ClipConfig

        self.clip = ClipConfig()
        self.mapper = SimpleNamespace(config=SimpleNamespace(extractor_preset="toy"))
        self.generation_defaults = SimpleNamespace(sync_guidance=0.05)
        self.rendered, self.guided = [], []

    def visual_features(self, video, start):
        return {}

    def map_features(self, features):
        return torch.zeros(len(features), 8, 32)

    def predict_envelopes(self, features):
        return np.random.default_rng(0).standard_normal((len(features), self.clip.envelope_frames)).astype(np.float32)

    def missing_for_sync_guidance(self):
        return None

    def render_tokens(self, tokens, labels, sampling, seed, envelope=None, sync_guidance=None):
        self.rendered.append(list(labels))
        if envelope is not None:
            self.guided.append((envelope.shape, sync_guidance))
        rng = np.random.default_rng(seed)
        return (0.1 * rng.standard_normal((len(tokens), self.clip.num_samples))).astype(np.float32)


def test_toy_report_over_one_held_out_clip_gives_the_rows_one_clip_can(toy_world, monkeypatch):
    from evaluation import toy_report as toy_report_module
    from evaluation.toy_report import format_toy_report, toy_report

    monkeypatch.setattr(toy_report_module, "vocode_true_audio", lambda pipeline, clips: clips.audio.astype(np.float32))
    pipe = _StandInPipeline()
    report = toy_report(pipe, toy_world[0], limit=1)
    # oracle, video, zeros; with and without the label; video guided by its own and by the true envelope
    assert report["clips"] == 1 and len(pipe.rendered) == 8
    assert pipe.guided == [((1, 250), 0.05)] * 2 and report["sync_guidance"] == 0.05  # the folder's default scale
    rows = {"real", "vocoder", "oracle", "video", "zeros", "oracle_no_label", "video_no_label", "zeros_no_label",
            "guided", "guided_true"}
    assert rows <= report.keys() and not {"shuffled", "shuffled_no_label", "guided_shuffled"} & report.keys()
    assert set(report["envelope"]) == {"mse", "corr"}  # no shuffled baseline with one clip
    assert "shuffled" in report["note"] and "at least 2" in report["note"]
    for name in rows:
        assert report[name]["class_accuracy"] in (0.0, 1.0) and report[name]["fd"] is None  # FD needs 2 clips
    table = format_toy_report(report).splitlines()
    assert table[0] == "held-out toy clips: 1" and len(table) == 2 + len(rows) + 2 and table[-1] == report["note"]
    assert all(line.split()[-1] == "n/a" for line in table[2:-2])
    assert table[-2].startswith("guided rows: video tokens + label, sync guidance 0.05; envelope predicted")
    json.dumps(report, allow_nan=True)  # what the recipe stores beside the mapper


@pytest.mark.slow  # builds a world, extracts it and trains (a minute of CPU); the report itself is tested above
def test_train_mapper_on_a_world_with_one_test_clip(tmp_path, capsys, monkeypatch):
    from recipes import train_mapper
    from toy_world import make_toy_world, read_world

    monkeypatch.setenv("MFM_HOME", str(tmp_path / "home"))
    world = tmp_path / "world"
    make_toy_world(world, num_clips=6, seed=0)  # the smallest world training takes: 4 train, 1 val, 1 test
    assert len(read_world(world).clips("test")) == 1
    args = ["--data.toy_world.root", str(world), "--data.toy_world.num_clips", "6",
            "--data.cache", str(tmp_path / "cache"), "--trainer.max_epochs", "1",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
            "--export_dir", str(tmp_path / "mapper"), "--sample_steps", "1", "--toy_report_clips", "4"]
    metrics = train_mapper.main(args)
    out = capsys.readouterr().out
    assert isinstance(metrics, dict), metrics
    assert (tmp_path / "mapper" / "model.safetensors").is_file() and (tmp_path / "mapper" / "sample.wav").is_file()
    held_out = [line for line in out.splitlines() if "held-out metrics skipped" in line]
    assert len(held_out) == 1 and "1 clip" in held_out[0], out
    report = metrics["toy_report"]
    assert report["clips"] == 1
    assert {"real", "vocoder", "oracle", "video", "zeros", "oracle_no_label", "video_no_label",
            "zeros_no_label"} <= report.keys()
    assert "shuffled" not in report and "shuffled_no_label" not in report  # another clip's video: none here
    assert "shuffled" in report["note"] and "2" in report["note"]
    assert [line for line in out.splitlines() if "shuffled" in line and "skipped" in line], out
    for name in ("real", "video", "zeros_no_label"):
        assert 0.0 <= report[name]["class_accuracy"] <= 1.0 and report[name]["fd"] is None  # FD needs 2 clips
    stored = json.loads((tmp_path / "mapper" / "toy_report.json").read_text())
    assert stored.keys() == report.keys()
