"""Untrusted sizes in the config.json files of a mapper folder, a saved pipeline and an AudioLDM-2 folder:
every size is bounded (an integer in a sane range, not a bool, a float or a string) and checked against
the shapes in the weights' safetensors header before any model is built, so a crafted or mistaken
config is refused in milliseconds with one line that names the file, the field, the value and what is
allowed, instead of building for minutes, filling the memory or failing mid-generation.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from deadline import deadline  # noqa: E402 (tests/deadline.py)

from mapper.config import MapperConfig  # noqa: E402
from mapper.decoders.audioldm2.loading import load_audioldm2  # noqa: E402
from mapper.decoders.audioldm2.toy import TOY_FOLDER  # noqa: E402
from mapper.generation.loading import load_pipeline  # noqa: E402
from mapper.loading import build_mapper, load_mapper  # noqa: E402

FAST = 1.0  # seconds a refusal may take (it reads two small files)


def refused(call, *words: str, seconds: int = 10) -> str:
    """``call()`` raises a ValueError of one line holding every one of ``words``, within FAST seconds."""
    start = time.perf_counter()
    with deadline(seconds), pytest.raises(ValueError) as info:
        call()
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    assert elapsed < FAST, f"refused after {elapsed:.2f} s: {message}"
    return message


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """A tiny mapper of each kind, saved (config.json + model.safetensors)."""
    folders = {}
    for kind in ("autoregressive", "diffusion"):
        folders[kind] = tmp_path_factory.mktemp(kind) / "mapper"
        config = MapperConfig.from_preset("tiny", n_layer=2, n_head=2, mapper_type=kind)
        build_mapper(config).save_pretrained(folders[kind])
    return folders


def edited(source: Path, target: Path, file: str = "config.json", **changes) -> Path:
    """A copy of the folder ``source`` whose JSON ``file`` has ``changes``."""
    shutil.copytree(source, target)
    config = json.loads((target / file).read_text())
    config.update(changes)
    (target / file).write_text(json.dumps(config))
    return target


# --- the probes of issue 24 ---------------------------------------------------------------------------

@pytest.mark.parametrize("load", [load_mapper, load_pipeline], ids=["load_mapper", "load_pipeline"])
def test_n_layer_100000_is_refused_before_any_model(saved, tmp_path, load):
    folder = edited(saved["autoregressive"], tmp_path / "mapper", n_layer=100000)
    refused(lambda: load(folder), str(folder / "config.json"), "n_layer", "100000", "<= ")


@pytest.mark.parametrize("value", [10**10, 1e10], ids=["int", "float"])
def test_diffusion_train_timesteps_1e10_is_refused_at_load_not_in_generation(saved, tmp_path, value):
    folder = edited(saved["diffusion"], tmp_path / "mapper", diffusion_train_timesteps=value)
    refused(lambda: load_pipeline(folder), str(folder / "config.json"), "diffusion_train_timesteps", str(value))


def test_audio_token_dim_2_to_the_40_is_one_line_not_a_traceback(saved, tmp_path):
    folder = edited(saved["autoregressive"], tmp_path / "mapper", audio_token_dim=2**40)
    refused(lambda: load_pipeline(folder), str(folder / "config.json"), "audio_token_dim", str(2**40))


# (changes, the words the refusal must hold): sizes within the bounds that disagree with the weights
MISMATCHES = {
    "n_layer": ("autoregressive", {"n_layer": 100}, ["n_layer=100", "2 GPT-2 blocks", "missing"]),
    "fewer layers": ("autoregressive", {"n_layer": 1}, ["n_layer=1", "2 GPT-2 blocks", "unexpected"]),
    "audio_token_dim": ("autoregressive", {"audio_token_dim": 64}, ["audio_token_dim=64", "wrong shape"]),
    "n_positions": ("autoregressive", {"n_positions": 512}, ["n_positions=512", "wrong shape"]),
    "num_audio_tokens": ("diffusion", {"num_audio_tokens": 4}, ["num_audio_tokens=4", "wrong shape"]),
    "mapper_type": ("autoregressive", {"mapper_type": "diffusion"}, ["mapper_type='diffusion'", "missing"]),
    "stream dim": ("autoregressive", {"streams": {
        "cavp": {"dim": 16, "queries": 40, "spans": [[0, 40]]},
        "timechat": {"dim": 32, "queries": 8, "spans": [[0, 32], [32, 40]]}}}, ["streams", "dim", "wrong shape"]),
}  # fmt: skip


def no_model(*args, **kwargs):
    raise AssertionError("a model was built")


@pytest.mark.parametrize("name", MISMATCHES)
def test_sizes_in_bounds_that_disagree_with_the_weights_header_name_the_field(saved, tmp_path, name, monkeypatch):
    kind, changes, words = MISMATCHES[name]
    folder = edited(saved[kind], tmp_path / "mapper", **changes)
    monkeypatch.setattr("mapper.loading.build_mapper", no_model)  # checked from the header alone
    refused(lambda: load_mapper(folder), str(folder / "model.safetensors"),
            "not the weights config.json describes", *words)


# --- each size: a positive integer in its range, never a bool, a float or a string --------------------

HOSTILE = {
    "n_layer bool": ({"n_layer": True}, "n_layer"),
    "n_layer negative": ({"n_layer": -2}, "n_layer"),
    "n_layer float": ({"n_layer": 2.5}, "n_layer"),
    "n_head zero": ({"n_head": 0}, "n_head"),
    "n_head string": ({"n_head": "2"}, "n_head"),
    "n_positions huge": ({"n_positions": 2**40}, "n_positions"),
    "audio_token_dim string": ({"audio_token_dim": "32"}, "audio_token_dim"),
    "audio_token_dim float": ({"audio_token_dim": 32.0}, "audio_token_dim"),
    "audio_token_dim negative": ({"audio_token_dim": -32}, "audio_token_dim"),
    "num_frames bool": ({"num_frames": True}, "num_frames"),
    "num_frames huge": ({"num_frames": 10**9}, "num_frames"),
    "num_audio_tokens zero": ({"num_audio_tokens": 0}, "num_audio_tokens"),
    "num_audio_tokens huge": ({"num_audio_tokens": 10**7}, "num_audio_tokens"),
    "diffusion_inference_steps huge": ({"diffusion_inference_steps": 5000, "diffusion_train_timesteps": 5000},
                                       "diffusion_inference_steps"),
    "dropout string": ({"dropout": "0.1"}, "dropout"),
    "streams not a dict": ({"streams": [1, 2]}, "streams"),
    "stream dim float": ({"streams": {"cavp": {"dim": 32.5, "queries": 40, "spans": [[0, 40]]},
                                      "timechat": {"dim": 32, "queries": 8, "spans": [[0, 32], [32, 40]]}}},
                         "streams.cavp.dim"),
    "stream queries huge": ({"streams": {"cavp": {"dim": 32, "queries": 10**8, "spans": [[0, 40]]},
                                         "timechat": {"dim": 32, "queries": 8, "spans": [[0, 32], [32, 40]]}}},
                            "streams.cavp.queries"),
    "stream spans huge": ({"streams": {"cavp": {"dim": 32, "queries": 40, "spans": [[0, 10**9]]},
                                       "timechat": {"dim": 32, "queries": 8, "spans": [[0, 32], [32, 40]]}}},
                          "streams.cavp.spans"),
    "stream spans not pairs": ({"streams": {"cavp": {"dim": 32, "queries": 40, "spans": [0, 40]},
                                            "timechat": {"dim": 32, "queries": 8, "spans": [[0, 32], [32, 40]]}}},
                               "streams.cavp.spans"),
    "stream_order not a list": ({"stream_order": "cavp"}, "stream_order"),
    "num_labels huge": ({"num_labels": 10**7}, "num_labels"),
}  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE)
def test_a_bad_size_is_one_line_naming_the_file_and_field(saved, tmp_path, name):
    changes, field = HOSTILE[name]
    folder = edited(saved["diffusion"], tmp_path / "mapper", **changes)
    refused(lambda: load_mapper(folder), str(folder / "config.json"), field)


def test_an_oversized_config_json_is_refused_unread(saved, tmp_path):
    folder = edited(saved["autoregressive"], tmp_path / "mapper", padding="x" * (2 << 20))
    refused(lambda: load_mapper(folder), str(folder / "config.json"), "MiB")


def test_the_bounds_hold_for_configs_made_in_python_too():
    with pytest.raises(ValueError, match="n_layer must be an integer >= 1 and <= "):
        MapperConfig.from_preset("tiny", n_layer=100000, n_head=2)
    with pytest.raises(ValueError, match="num_frames must be an integer"):
        MapperConfig(num_frames=40.0)


def test_good_folders_still_load(saved):
    for folder in saved.values():
        load_mapper(folder)
    assert load_pipeline(saved["diffusion"]).mapper.config.mapper_type == "diffusion"


# --- the AudioLDM-2 folders we hand to diffusers ----------------------------------------------------

@pytest.fixture(scope="module")
def toy_copy(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("decoder") / "toy"
    shutil.copytree(TOY_FOLDER, folder)
    return folder


def test_scheduler_timesteps_of_a_decoder_folder_are_bounded(toy_copy, tmp_path):
    folder = edited(toy_copy, tmp_path / "decoder", "scheduler/scheduler_config.json", num_train_timesteps=10**8)
    refused(lambda: load_audioldm2(str(folder)), str(folder / "scheduler" / "scheduler_config.json"),
            "num_train_timesteps", str(10**8))


def test_a_decoder_layer_count_beyond_its_weights_is_refused_before_diffusers_builds_it(toy_copy, tmp_path):
    folder = edited(toy_copy, tmp_path / "decoder", "unet/config.json", layers_per_block=100000)
    refused(lambda: load_audioldm2(str(folder)), str(folder / "unet" / "config.json"), "layers_per_block", "100000")


def test_the_toy_decoder_still_loads(toy_copy):
    load_audioldm2(str(toy_copy))


@pytest.fixture(scope="module")
def saved_pipeline(saved, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pipeline") / "pipeline"
    load_pipeline(saved["autoregressive"]).save_pretrained(folder)
    return folder


def test_a_saved_pipeline_is_checked_too(saved_pipeline, tmp_path):
    mapper = edited(saved_pipeline, tmp_path / "one", "mapper/config.json", n_layer=100000)
    refused(lambda: load_pipeline(mapper), str(mapper / "mapper" / "config.json"), "n_layer", "100000")
    scheduler = edited(saved_pipeline, tmp_path / "two", "scheduler/scheduler_config.json", num_train_timesteps=10**8)
    refused(lambda: load_pipeline(scheduler), "scheduler_config.json", "num_train_timesteps")
    assert load_pipeline(saved_pipeline).mapper.config.n_layer == 2
