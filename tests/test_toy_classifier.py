"""The toy-world audio classifier (PANNs at its ``toy`` preset): the shipped file is the one its
provenance describes and loads strictly; it recognises clips of a world it never saw; ``recipes.evaluate
--preset toy`` scores with it; training is deterministic; the recipe refuses a bad command line at once."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from evaluation import panns, passt, vggish
from evaluation.embedders import embedder_preset
from evaluation.toy_classifier import (PROVENANCE_FILE, TOY_LABELS, WEIGHTS_FILE, TrainConfig, classify,
                                       load_toy_classifier, render_toy_audio, save_classifier, train_toy_classifier)
from evaluation.weights import load_shipped
from extractors.checkpoint import read_checkpoint
from extractors.file_hash import file_sha256
from toy_world import CLASSES
from recipes import evaluate, pretrain_toy_classifier

UNSEEN_SEED = 7  # a plan the classifier was not trained on (it was trained on seed 2's)
RATE = 16000


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on shared cores: a second thread mostly waits for the first (OpenMP barriers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def unseen():
    """20 clips (4 per class) of another toy world, sound only: (audio (20, 160000), labels (20,))."""
    data = render_toy_audio(20, UNSEEN_SEED)
    return data.audio, data.labels


def test_shipped_file_is_the_one_its_provenance_describes():
    provenance = json.loads(PROVENANCE_FILE.read_text())
    assert file_sha256(WEIGHTS_FILE) == provenance["sha256"]
    assert provenance["labels"] == list(TOY_LABELS) == [c.label for c in CLASSES]
    assert provenance["seed"] == 2 and provenance["command"].startswith("python -m recipes.pretrain_toy_classifier")
    assert WEIGHTS_FILE.stat().st_size < 2 * 2**20


def test_build_toy_loads_the_shipped_file_strictly(tmp_path):
    model = panns.build("toy")
    assert not model.training and model.config == panns.PRESETS["toy"] and model.config.classes_num == len(TOY_LABELS)
    stored = read_checkpoint(WEIGHTS_FILE)
    ours = model.state_dict()
    assert set(ours) == set(stored) and all(torch.equal(ours[k], stored[k]) for k in stored)
    del stored["fc1.bias"]
    partial = tmp_path / "partial.safetensors"
    from safetensors.torch import save_file

    save_file(stored, str(partial))
    with torch.device("meta"):
        empty = panns.PannsModel(panns.PRESETS["toy"])
    with pytest.raises(ValueError, match="missing 1 .e.g. fc1.bias"):
        load_shipped(empty, partial, "the PANNs 'toy' state dict")
    with pytest.raises(FileNotFoundError, match="ships with the package"):
        load_shipped(empty, tmp_path / "absent.safetensors", "the PANNs 'toy' state dict")


def test_it_recognises_clips_of_a_world_it_never_saw(unseen):
    audio, labels = unseen
    model = load_toy_classifier()
    first_8s = audio[:, : 8 * RATE]  # what recipes.evaluate reads by default
    assert np.mean(classify(model, first_8s) == labels) >= 0.9
    assert np.mean(classify(model, torch.from_numpy(first_8s * 0.05)) == labels) >= 0.9  # -26 dB: not loudness


def test_toy_preset_is_panns_toy_and_the_rest_tiny():
    assert embedder_preset("toy", panns.PRESETS) == "toy"
    assert embedder_preset("toy", vggish.PRESETS) == embedder_preset("toy", passt.PRESETS) == "tiny"
    assert embedder_preset("paper", panns.PRESETS) == "paper" and embedder_preset("tiny", panns.PRESETS) == "tiny"
    with pytest.raises(ValueError, match="suite preset"):
        embedder_preset("huge", panns.PRESETS)


def test_evaluate_with_the_toy_preset_scores_with_the_classifier(unseen, tmp_path, capsys):
    """Reference: the clean clips. 'right': each clip degraded (quieter, noisy); 'wrong': under each
    name, a clip of the next class. Every number is finite, and KL tells the two apart."""
    audio, labels = unseen
    noise = np.random.default_rng(0).standard_normal(audio.shape).astype(np.float32)
    other = [int(np.flatnonzero(labels == (label + 1) % len(TOY_LABELS))[0]) for label in labels]
    sets = {"reference": audio, "right": 0.5 * audio + 0.003 * noise, "wrong": audio[other]}
    for name, clips in sets.items():
        (tmp_path / name).mkdir()
        for i, clip in enumerate(clips):
            sf.write(tmp_path / name / f"clip_{i:02d}.wav", clip, RATE)
    reports = {}
    for name in ("right", "wrong"):
        out = tmp_path / f"out_{name}"
        code = evaluate.main(["--generated", str(tmp_path / name), "--reference", str(tmp_path / "reference"),
                              "--out", str(out), "--preset", "toy", "--metrics", "fd_panns,kl_panns,is_panns",
                              "--cache", str(tmp_path / "cache")])
        assert code == 0, capsys.readouterr().err
        reports[name] = json.loads((out / "metrics.json").read_text())
    for report in reports.values():
        assert report["protocol"]["embedder_presets"] == {"panns": "toy"}
        keys = {"FD-PANN", "KL-PANNS-softmax", "ISC-PANNS-mean", "ISC-PANNS-std"}
        assert set(report["metrics"]) == keys and all(math.isfinite(report["metrics"][k]) for k in keys)
    assert reports["right"]["metrics"]["KL-PANNS-softmax"] < reports["wrong"]["metrics"]["KL-PANNS-softmax"]


def test_training_is_deterministic_and_saves_what_it_trained(tmp_path):
    small = TrainConfig(num_clips=20, epochs=1, batch_size=4, crop_seconds=(1.0, 1.5))
    first, second = (train_toy_classifier(small, log=lambda line: None) for _ in range(2))
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train_toy_classifier(TrainConfig(seed=3, num_clips=20, epochs=1, batch_size=4, crop_seconds=(1.0, 1.5)),
                                 log=lambda line: None).model.state_dict()
    assert not torch.equal(a["fc1.weight"], other["fc1.weight"])
    assert torch.equal(a["logmel_extractor.melW"], panns.PannsModel(panns.PRESETS["toy"]).logmel_extractor.melW)

    weights, provenance = save_classifier(first, tmp_path / "weights", "a test")
    facts = json.loads(provenance.read_text())
    assert facts["sha256"] == file_sha256(weights) and facts["command"] == "a test" and facts["epochs"] == 1
    with torch.device("meta"):
        model = panns.PannsModel(panns.PRESETS["toy"])
    load_shipped(model, weights, "the PANNs 'toy' state dict")
    assert all(torch.equal(model.state_dict()[k], a[k]) for k in a)


def test_the_recipe_refuses_a_bad_command_line_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        pretrain_toy_classifier.main(["--num-clips", "5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --num-clips") and err.count("\n") == 1
    (tmp_path / "a_file").write_text("")
    assert pretrain_toy_classifier.main(["--out", str(tmp_path / "a_file" / "weights")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written
