"""Hostile input for training and loading: untrusted checkpoints, manifests and mapper folders, caches
that cannot be trained on, and every training option with a bad value — each refused with one line
(exit status 2 on the command line) before any model is built or any weights are read.

The extraction and generation entry points have their own walks: test_hostile_extraction.py and
test_hostile_generation.py.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from recipes import train_mapper
from test_training import CONFIGS, run_args


def _one_error_line(stderr: str) -> str:
    """The single `error:` line of stderr (Lightning's "Seed set" info line aside), no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture
def no_model_built(monkeypatch):
    """Building the mapper or any extractor fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr("mapper.training.module.build_mapper", refuse)
    monkeypatch.setattr("extractors.frozen.FrozenExtractors.from_preset", refuse)


# --- every training option with a bad value --------------------------------------------------------

BAD_TRAINING_OPTIONS = [
    (["--data.batch_size", "0"], "data.batch_size"),
    (["--data.batch_size", "abc"], "data.batch_size"),
    (["--data.max_device_batch", "0"], "data.max_device_batch"),
    (["--data.num_workers", "-1"], "data.num_workers"),
    (["--data.preset", "nope"], "nope"),
    (["--data.toy_world.num_clips", "2"], "data.toy_world.num_clips"),
    (["--data.toy_world.seed", "-1"], "data.toy_world.seed"),
    (["--model.lr", "0"], "model.lr"),
    (["--model.lr", "-1e-3"], "model.lr"),
    (["--model.lr", "inf"], "model.lr"),
    (["--model.lr", "nan"], "model.lr"),
    (["--model.weight_decay", "-0.1"], "model.weight_decay"),
    (["--model.warmup_steps", "-1"], "model.warmup_steps"),
    (["--model.lr_schedule", "linear"], "model.lr_schedule"),
    (["--model.init_language_model", "/no/such/audioldm2"], "model.init_language_model"),
    (["--model.mapper.mapper_type", "transformer"], "mapper_type"),
    (["--model.mapper.fusion", "sum"], "fusion"),
    (["--model.mapper.loss", "huber"], "loss"),
    (["--model.mapper.encoders", "motion"], "encoders"),
    (["--model.mapper.n_layer", "0"], "n_layer"),
    (["--model.mapper.n_head", "5"], "n_head"),
    (["--model.mapper.dropout", "1.0"], "dropout"),
    (["--model.mapper.dropout", "-0.5"], "dropout"),
    (["--model.mapper.n_positions", "0"], "n_positions"),
    (["--model.mapper.diffusion_inference_steps", "0"], "diffusion_inference_steps"),
    (["--model.mapper.diffusion_inference_steps", "2000"], "diffusion_inference_steps"),
    (["--sample_steps", "0"], "--sample_steps"),
    (["--sample_video", "/no/such/video.mp4"], "--sample_video"),
    (["--ckpt_path", "/no/such/last.ckpt"], "--ckpt_path"),
    (["--ckpt_path", "https://example.com/evil.ckpt"], "--allow_remote_checkpoint"),
    (["--ckpt_path", "s3://bucket/evil.ckpt"], "--allow_remote_checkpoint"),
    (["--resume", "true", "--ckpt_path", "x.ckpt"], "--resume"),
    (["--resume", "maybe"], "resume"),
    (["--config", "/no/such/config.yaml"], "config"),
    (["--unknown_option", "1"], "unknown_option"),
]


@pytest.mark.parametrize("bad, named", BAD_TRAINING_OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_every_bad_training_option_is_one_line_before_any_model(bad, named, tmp_path, capsys, no_model_built):
    assert train_mapper.main(run_args(tmp_path / "cache", tmp_path) + bad) == 2  # the last value counts
    assert named in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "mapper").exists()


@pytest.mark.parametrize("bad, named", [
    (["--trainer.accelerator", "quantum"], "quantum"),
    (["--trainer.devices", "0"], "devices"),
    (["--trainer.max_epochs", "-5"], "max_epochs"),
    (["--trainer.precision", "7"], "precision"),
])  # fmt: skip
def test_bad_trainer_options_are_one_line_before_any_weights_or_data(bad, named, tmp_path, capsys, monkeypatch):
    """The Trainer checks its own options; it is built after the (random, unloaded) mapper, but before
    any weights are read, any data is touched or any extractor is built."""
    monkeypatch.setattr("extractors.frozen.FrozenExtractors.from_preset", pytest.fail)
    monkeypatch.setattr("mapper.training.module.load_language_model", pytest.fail)
    assert train_mapper.main(run_args(tmp_path / "cache", tmp_path) + bad) == 2
    assert named in _one_error_line(capsys.readouterr().err)


def test_export_dir_that_is_a_file_is_refused(tmp_path, capsys, no_model_built):
    (tmp_path / "mapper").write_text("a file")
    assert train_mapper.main(run_args(tmp_path / "cache", tmp_path)) == 2
    assert "--export_dir" in _one_error_line(capsys.readouterr().err)


def test_cache_that_is_a_file_is_refused(tmp_path, capsys, no_model_built):
    (tmp_path / "cache").write_text("a file")
    assert train_mapper.main(run_args(tmp_path / "cache", tmp_path)) == 2
    assert "data.cache" in _one_error_line(capsys.readouterr().err)


# --- checkpoints: nothing but tensors --------------------------------------------------------------

class _RunsCode:
    """Unpickling this creates `marker`: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _crafted_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker, ckpt = tmp_path / "code_ran", tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode(marker)}, ckpt)
    return ckpt, marker


def test_a_crafted_checkpoint_never_runs_code_even_when_torch_is_told_to_unpickle(toy_cache, tmp_path, capsys, monkeypatch):
    """`TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1` turns torch's default to full unpickling (as torch < 2.6 does
    by default); Lightning's own read of --ckpt_path must still be weights-only."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ckpt, marker = _crafted_checkpoint(tmp_path)
    assert train_mapper.main(run_args(toy_cache, tmp_path, "--ckpt_path", str(ckpt), "--trainer.max_epochs", "1")) == 2
    assert not marker.exists()
    line = _one_error_line(capsys.readouterr().err)
    assert str(ckpt) in line and "refused" in line
    assert not (tmp_path / "mapper").exists()


def test_an_allowed_remote_checkpoint_is_still_read_weights_only(tmp_path, monkeypatch):
    from mapper.training.checkpointing import SafeCheckpointIO, UnsafeCheckpointError

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ckpt, marker = _crafted_checkpoint(tmp_path)
    url = ckpt.as_uri()  # file://... goes the remote (fsspec) way
    with pytest.raises(UnsafeCheckpointError, match="is remote"):
        SafeCheckpointIO().load_checkpoint(url)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        SafeCheckpointIO(allow_remote=True).load_checkpoint(url)
    assert not marker.exists()
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, plain)
    assert SafeCheckpointIO(allow_remote=True).load_checkpoint(plain.as_uri())["epoch"] == 3


# --- caches that cannot be trained on --------------------------------------------------------------

@pytest.fixture(scope="module")
def split_caches(toy_world, tmp_path_factory):
    """Two small caches of the toy world: one without val clips, one without test clips."""
    from extractors.cache import FeatureCache
    from extractors.extraction import extract_to_cache
    from extractors.frozen import FrozenExtractors
    from extractors.manifest import list_clips

    clips = list_clips(toy_world[1])[:6]
    extractors = FrozenExtractors.from_preset("toy")  # the toy recipe's preset
    caches = {}
    for name, splits in {"no_val": ["train"] * 4 + ["test"] * 2, "no_test": ["train"] * 4 + ["val"] * 2}.items():
        items = [dataclasses.replace(clip, split=split) for clip, split in zip(clips, splits)]
        caches[name] = tmp_path_factory.mktemp(name) / "cache"
        extract_to_cache(items, FeatureCache(caches[name]), extractors, progress=False)
    return caches


def test_a_cache_without_val_clips_is_refused_before_training(split_caches, tmp_path, capsys):
    assert train_mapper.main(run_args(split_caches["no_val"], tmp_path, "--trainer.max_epochs", "1")) == 2
    assert "no clips in the 'val' split" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "checkpoints").exists()  # not one step trained


def test_a_cache_without_test_clips_trains_exports_and_skips_the_held_out_metrics(split_caches, tmp_path, capsys):
    assert train_mapper.main(run_args(split_caches["no_test"], tmp_path, "--trainer.max_epochs", "1")) == {}
    assert (tmp_path / "mapper" / "model.safetensors").is_file()
    assert "no clips in the 'test' split; held-out metrics skipped" in capsys.readouterr().out


def test_a_folder_with_data_but_no_cache_json_never_gets_the_toy_world(tmp_path, capsys):
    cache = tmp_path / "cache"
    (cache / "shard-00000").mkdir(parents=True)
    (cache / "shard-00000" / "data-00000-of-00001.arrow").write_bytes(b"someone's features")
    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    # The toy world *is* configured here, and must not be built into `cache`.
    args = [
        "--config", str(CONFIGS / "toy.yaml"), "--data.cache", str(cache),
        "--data.toy_world.root", str(tmp_path / "world"), "--data.toy_world.num_clips", "6",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--export_dir", str(tmp_path / "mapper"),
    ]  # fmt: skip
    assert train_mapper.main(args) == 2
    assert str(cache) in _one_error_line(capsys.readouterr().err)
    assert sorted(p.relative_to(cache) for p in cache.rglob("*")) == before
    assert not (tmp_path / "world").exists()


# --- manifests: ids stay inside their folders -------------------------------------------------------

@pytest.mark.parametrize("clip_id", ["../../escaped", "/tmp/absolute", "sub/dir", "..", ".hidden", "a\\b"])
def test_manifest_ids_that_are_paths_are_refused_naming_the_row(clip_id, tmp_path, capsys):
    from recipes import extract_features, generate

    csv_path = tmp_path / "metadata.csv"
    csv_path.write_text(f"good_id,0,dog barking,train\n{clip_id},0,dog barking,test\n")
    (tmp_path / "videos").mkdir()
    for entry_point, args in (
        (extract_features.main, ["--videos", str(csv_path), "--out", str(tmp_path / "cache")]),
        (generate.main, [str(csv_path), "--out", str(tmp_path / "out")]),
    ):
        assert entry_point(args) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"{csv_path}:2" in line and repr(clip_id) in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


# --- mapper folders: offline, and weights that match their config ----------------------------------

@pytest.fixture(scope="module")
def saved_tiny_mapper(tmp_path_factory) -> Path:
    from mapper.config import MapperConfig
    from mapper.loading import build_mapper

    folder = tmp_path_factory.mktemp("mapper")
    build_mapper(MapperConfig.from_preset("tiny", n_layer=2, n_head=2)).save_pretrained(folder)
    return folder


def _copy_with_config(source: Path, target: Path, **changes) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **changes}))
    return target


@pytest.mark.parametrize("changes, problem", [
    ({"n_layer": 3}, "missing"),
    ({"n_layer": 1}, "unexpected"),
    ({"n_positions": 512}, "wrong shape"),
])  # fmt: skip
def test_a_config_that_disagrees_with_its_weights_is_an_error(saved_tiny_mapper, tmp_path, changes, problem):
    from mapper.loading import load_mapper

    folder = _copy_with_config(saved_tiny_mapper, tmp_path / "mapper", **changes)
    with pytest.raises(ValueError, match=f"model.safetensors: not the weights config.json describes: .*{problem}"):
        load_mapper(folder)


def test_a_hub_audioldm2_named_only_by_the_config_is_never_downloaded(saved_tiny_mapper, tmp_path, monkeypatch):
    from diffusers import AudioLDM2Pipeline

    from mapper.generation.loading import load_pipeline

    calls = []

    def record(*args, **kwargs):
        calls.append(kwargs)
        raise OSError("not cached")

    monkeypatch.setattr(AudioLDM2Pipeline, "from_pretrained", record)
    folder = _copy_with_config(saved_tiny_mapper, tmp_path / "mapper", audioldm2="someone/audioldm2-evil")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded unless you name it"):
        load_pipeline(mapper=folder)
    assert calls and all(call.get("local_files_only") for call in calls)


def test_an_extractor_override_must_give_the_features_the_mapper_was_trained_on(saved_tiny_mapper, monkeypatch):
    from mapper.generation.loading import load_pipeline

    monkeypatch.setattr("mapper.generation.extractors_component.VisualExtractors.from_preset", pytest.fail)
    with pytest.raises(ValueError, match="extractors='paper' gives other features than"):
        load_pipeline(mapper=saved_tiny_mapper, extractors="paper")


def test_a_saved_pipeline_may_only_name_known_component_libraries(tmp_path):
    from mapper.generation.loading import load_pipeline

    folder = tmp_path / "pipeline"
    folder.mkdir()
    index = {"_class_name": "VideoToAudioPipeline", "vae": ["diffusers", "AutoencoderKL"], "mapper": ["os", "system"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="component 'mapper' comes from \\['os', 'system'\\]"):
        load_pipeline(mapper=folder)
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ValueError, match="not a saved VideoToAudioPipeline"):
        load_pipeline(mapper=folder)
