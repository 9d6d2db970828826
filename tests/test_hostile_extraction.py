"""Every wrong command line of extract_features and make_toy_data: one line `error: ...` naming the
option, exit status 2, and nothing done: no model built, no process launched, no clip rendered."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from extractors.cache import FeatureCache, feature_shapes
from extractors.presets import get_preset
from recipes import extract_features, make_toy_data


def _refuse(*_, **__):
    raise AssertionError("work was done for a wrong command line")


@pytest.fixture
def nothing_may_run(monkeypatch):
    """Building a model, launching Fabric or rendering a toy clip fails the test."""
    import lightning

    import toy_world.world as toy_world_module
    from extractors.frozen import FrozenExtractors

    monkeypatch.setattr(FrozenExtractors, "from_preset", _refuse)
    monkeypatch.setattr(FrozenExtractors, "__init__", _refuse)
    monkeypatch.setattr(lightning.Fabric, "__init__", _refuse)
    monkeypatch.setattr(lightning.Fabric, "launch", _refuse)
    monkeypatch.setattr(toy_world_module, "render_clip", _refuse)
    monkeypatch.setattr(toy_world_module, "encode_mp4", _refuse)


def _exit_status(main, argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's own errors
        return exit_.code


def _assert_one_line_error(capsys, expected: str) -> str:
    """The only line on stderr is ``error: ...`` and matches `expected` (a regex naming the option)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and re.search(expected, lines[0]), lines[0]
    return lines[0]


def _row(clip_id: str, preset) -> dict:
    arrays = {name: np.zeros(shape, np.float32) for name, shape in feature_shapes(preset).items()}
    return {"id": clip_id, "label": "", "split": "train", "start": 0.0, "duration": 10.0, "num_valid_frames": 40,
            **arrays}


# Each case: argv (placeholders {csv}, {tmp}, {mp4}), what its error line says (a regex naming the
# option), then what to set up in {tmp} first. A valid --videos, --out ({tmp}/cache) and --num-workers
# are added unless given; `--option OMIT` leaves the option out.
OMIT = "<omit>"


def _float32_cache(tmp):
    FeatureCache(tmp / "cache").initialise(get_preset("tiny"), dtype="float32")


def _orphaned_cache(tmp):
    cache = FeatureCache(tmp / "cache")
    cache.initialise(get_preset("tiny"))
    cache.write_shard([_row("a", get_preset("tiny"))])
    cache.meta_path.unlink()


def _old_format_cache(tmp):
    _float32_cache(tmp)
    meta = json.loads((tmp / "cache" / "cache.json").read_text())
    (tmp / "cache" / "cache.json").write_text(json.dumps({**meta, "format": 1}))


def _a_file(tmp):
    (tmp / "cache").write_text("not a folder\n")


def _empty_folder(tmp):
    (tmp / "empty").mkdir()


def _bad_csv(tmp):
    (tmp / "bad.csv").write_text("toy_00000,0,drum hitting\n")


EXTRACT_CASES = {
    "videos missing": (["--videos", OMIT], "--videos is required"),
    "videos nonexistent": (["--videos", "{tmp}/nope.csv"], "--videos .*nope.csv: no such file"),
    "videos a video file": (["--videos", "{mp4}"], "--videos .*toy_00000.mp4: not a CSV"),
    "videos an empty folder": (["--videos", "{tmp}/empty"], "--videos .*empty: lists no clips", _empty_folder),
    "videos a csv of 3 columns": (["--videos", "{tmp}/bad.csv"], "--videos .*bad.csv:1: expected id,start", _bad_csv),
    "video-dir nonexistent": (["--video-dir", "{tmp}/nope"], "--video-dir .*nope: no such folder"),
    "out missing": (["--out", OMIT], "arguments are required: --out"),
    "out a file": ([], "--out .*cache: is a file", _a_file),
    "out inside a file": (["--out", "{tmp}/cache/sub"], "--out .*sub: is inside", _a_file),
    "out orphaned shards": ([], "--out .*cache: holds 1 feature shards but no cache.json", _orphaned_cache),
    "out of an old format": ([], "--out .*cache: cache format 1", _old_format_cache),
    "preset unknown": (["--preset", "huge"], "--preset 'huge': unknown; known presets: .*tiny"),
    "preset of another cache": (["--preset", "paper"], "--out .*extracted with preset 'tiny'.*--preset", _float32_cache),
    "dtype unknown": (["--dtype", "float64"], "argument --dtype: invalid choice"),
    "dtype of another cache": (["--dtype", "float16"], "--out .*stores float32, not float16.*--dtype", _float32_cache),
    "inference into a training cache": (["--inference"], "--out .*training .*cannot be resumed by an inference.*--inference",
                                        _float32_cache),
    "devices 0": (["--devices", "0"], "argument --devices: must be an integer >= 1, got 0"),
    "devices negative": (["--devices", "-2"], "argument --devices: must be an integer >= 1, got -2"),
    "devices nan": (["--devices", "nan"], "argument --devices: expected an integer >= 1, got 'nan'"),
    "devices in-process": (["--devices", "2", "--accelerator", "cpu"], "--devices.*must be started from the command line"),
    "num-nodes 0": (["--num-nodes", "0"], "argument --num-nodes: must be an integer >= 1"),
    "num-nodes negative": (["--num-nodes", "-1"], "argument --num-nodes: must be an integer >= 1"),
    "batch-size 0": (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    "batch-size float": (["--batch-size", "1.5"], "argument --batch-size: expected an integer >= 1"),
    "shard-size 0": (["--shard-size", "0"], "argument --shard-size: must be an integer >= 1"),
    "shard-size negative": (["--shard-size", "-64"], "argument --shard-size: must be an integer >= 1"),
    "num-workers negative": (["--num-workers", "-1"], "argument --num-workers: must be an integer >= 0"),
    "num-workers text": (["--num-workers", "many"], "argument --num-workers: expected an integer >= 0"),
    "limit 0": (["--limit", "0"], "argument --limit: must be an integer >= 1"),
    "limit negative": (["--limit", "-1"], "argument --limit: must be an integer >= 1"),
    "accelerator bogus": (["--accelerator", "bogus"], "argument --accelerator: invalid choice: 'bogus'"),
    "unknown option": (["--bogus", "1"], "unrecognized arguments: --bogus"),
    "repair with videos": (["--repair"], "--repair only repairs --out"),
    "repair of no cache": (["--repair", "--out", "{tmp}/nothing", "--videos", OMIT], "--out .*nothing: not a feature cache"),
}
if not torch.cuda.is_available():
    EXTRACT_CASES["accelerator cuda without cuda"] = (["--accelerator", "cuda"], "--accelerator cuda: no CUDA device")
else:
    EXTRACT_CASES["more devices than gpus"] = (["--accelerator", "cuda", "--devices", "4096"], "--devices 4096: this machine has")


@pytest.mark.parametrize("case", list(EXTRACT_CASES))
def test_extract_features_refuses_a_wrong_command_line_in_one_line(case, toy_world, tmp_path, capsys, nothing_may_run):
    argv, expected, *setup = EXTRACT_CASES[case]
    for prepare in setup:
        prepare(tmp_path)
    values = {"csv": str(toy_world[1]), "tmp": str(tmp_path), "mp4": str(toy_world[0] / "videos" / "toy_00000.mp4")}
    argv = [arg.format(**values) for arg in argv]
    defaults = {"--videos": values["csv"], "--out": f"{tmp_path}/cache", "--num-workers": "0"}
    argv += [item for name, value in defaults.items() if name not in argv for item in (name, value)]
    argv = [arg for i, arg in enumerate(argv) if OMIT not in argv[i : i + 2]]
    before = sorted(p.name for p in tmp_path.rglob("*"))

    assert _exit_status(extract_features.main, argv) == 2
    _assert_one_line_error(capsys, expected)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created, nothing moved


MAKE_TOY_CASES = {
    "num-clips 0": (["--num-clips", "0"], "argument --num-clips: must be an integer from 1 to 100000, got 0"),
    "num-clips negative": (["--num-clips", "-5"], "argument --num-clips: must be an integer from 1"),
    "num-clips nan": (["--num-clips", "nan"], "argument --num-clips: expected an integer from 1"),
    "num-clips too many": (["--num-clips", "100001"], "argument --num-clips: must be an integer from 1 to 100000"),
    "seed negative": (["--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
    "seed float": (["--seed", "0.5"], "argument --seed: expected an integer >= 0"),
    "out missing": (["--out", OMIT], "arguments are required: --out"),
    "out a file": (["--out", "{tmp}/cache"], "--out .*cache: is a file", _a_file),
    "out inside a file": (["--out", "{tmp}/cache/world"], "--out .*world: is inside", _a_file),
    "unknown option": (["--clips", "3"], "unrecognized arguments: --clips"),
}


@pytest.mark.parametrize("case", list(MAKE_TOY_CASES))
def test_make_toy_data_refuses_a_wrong_command_line_in_one_line(case, tmp_path, capsys, nothing_may_run):
    argv, expected, *setup = MAKE_TOY_CASES[case]
    for prepare in setup:
        prepare(tmp_path)
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "world")]
    argv = [arg for i, arg in enumerate(argv) if OMIT not in argv[i : i + 2]]
    before = sorted(p.name for p in tmp_path.rglob("*"))

    assert _exit_status(make_toy_data.main, argv) == 2
    _assert_one_line_error(capsys, expected)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_make_toy_data_refuses_a_folder_of_another_world_before_rendering(tmp_path, capsys, nothing_may_run):
    (tmp_path / "world.json").write_text(json.dumps({"seed": 7, "num_clips": 1, "version": 0}))
    assert make_toy_data.main(["--out", str(tmp_path), "--num-clips", "2"]) == 2
    _assert_one_line_error(capsys, "--out .*holds a different toy world")
    assert json.loads((tmp_path / "world.json").read_text())["seed"] == 7  # left as it was
