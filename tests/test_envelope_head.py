"""The latent envelope head: its folder round-trips, bad configs and weights are refused in one line before
any weight is read, the shipped toy head is what its recipe recorded, and the recipe refuses a bad command
line in one line before any work."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from extractors.checkpoint import StateDictMismatchError
from extractors.file_hash import file_sha256
from mapper.decoders.audioldm2 import EnvelopeHeadConfig, build_envelope_head, load_envelope_head
from mapper.decoders.audioldm2.envelope_head import CONFIG_FILE, TOY_ENVELOPE_HEAD, WEIGHTS_FILE
from mapper.decoders.audioldm2.toy import checksums

SHIPPED_HEAD_VAE = "d14dcc3a99a9d679593b59037944e3a955a78a2f66951756d8a8ccec250699e6"  # sha256 of the toy VAE
TINY = EnvelopeHeadConfig(hidden=16, dilations=(1, 2), time_features=8)


def test_the_head_maps_a_noisy_latent_and_a_timestep_to_one_number_per_frame():
    head = build_envelope_head(TINY, seed=0)
    latents = torch.randn(2, 8, 40, 16)
    out = head(latents, torch.tensor(500))
    assert out.shape == (2, 40) and torch.isfinite(out).all()
    assert not torch.equal(out, head(latents, torch.tensor([10, 900])))  # the timestep matters
    assert torch.equal(build_envelope_head(TINY, seed=0)(latents, 500), out)  # seeded
    with pytest.raises(ValueError, match="8 channels x 4 bins"):
        head(torch.randn(1, 8, 40, 4), 500)


def test_save_and_load_round_trip(tmp_path):
    head = build_envelope_head(TINY, seed=3)
    head.save_pretrained(tmp_path / "head")
    loaded = load_envelope_head(tmp_path / "head")
    assert loaded.config == TINY and not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    latents = torch.randn(1, 8, 24, 16)
    torch.testing.assert_close(loaded(latents, 200), head(latents, 200), rtol=0, atol=0)
    assert json.loads((tmp_path / "head" / CONFIG_FILE).read_text())["kind"] == "latent_envelope_head"


def _one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("change, message", [
    ({"kernel": 4}, "kernel must be odd"),
    ({"hidden": 0}, "hidden must be a positive integer"),
    ({"dilations": []}, "dilations"),
    ({"surprise": 1}, "unknown surprise"),
    ({"kind": "mapper"}, "not a latent envelope head config"),
])
def test_a_bad_config_is_refused_in_one_line(tmp_path, change, message):
    build_envelope_head(TINY).save_pretrained(tmp_path)
    config = {**json.loads((tmp_path / CONFIG_FILE).read_text()), **change}
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message) as error:
        load_envelope_head(tmp_path)
    assert str(tmp_path / CONFIG_FILE) in _one_line(error)


def test_a_missing_field_and_bad_weights_are_refused_before_any_weight_is_read(tmp_path):
    build_envelope_head(TINY).save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    (tmp_path / CONFIG_FILE).write_text(json.dumps({k: v for k, v in config.items() if k != "hidden"}))
    with pytest.raises(ValueError, match="missing hidden") as error:
        load_envelope_head(tmp_path)
    _one_line(error)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    weights = tmp_path / WEIGHTS_FILE
    state = build_envelope_head(TINY).state_dict()
    save_file({**state, "extra.weight": torch.zeros(1)}, str(weights))
    with pytest.raises(StateDictMismatchError, match="unexpected 1 \\(e.g. extra.weight\\)") as error:
        load_envelope_head(tmp_path)
    _one_line(error)
    save_file({**state, "frame_out.weight": torch.zeros(1, 16, 3)}, str(weights))
    with pytest.raises(StateDictMismatchError, match="wrong shape 1 \\(e.g. frame_out.weight\\)"):
        load_envelope_head(tmp_path)
    weights.write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError, match="cannot be read as safetensors") as error:
        load_envelope_head(tmp_path)
    _one_line(error)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="safetensors only"):
        load_envelope_head(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_envelope_head(tmp_path / "nowhere")


def test_the_shipped_toy_head_is_what_its_recipe_recorded():
    provenance = json.loads((TOY_ENVELOPE_HEAD / "provenance.json").read_text())
    assert provenance["command"].startswith("python -m recipes.train_envelope_head --decoder toy")
    assert provenance["sha256"] == {WEIGHTS_FILE: file_sha256(TOY_ENVELOPE_HEAD / WEIGHTS_FILE)}
    assert sum(p.stat().st_size for p in TOY_ENVELOPE_HEAD.iterdir()) < 2 * 2**20
    assert sorted(p.name for p in TOY_ENVELOPE_HEAD.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE, "provenance.json"]
    head = load_envelope_head("toy")
    assert head.config.frame_samples == 640  # the toy AudioLDM-2's latent frame: 4 mel frames of 160 samples
    # it reads the latents of the toy decoder's VAE as it was when the head was trained (the UNet may change)
    assert checksums()["vae/diffusion_pytorch_model.safetensors"] == SHIPPED_HEAD_VAE, "retrain the toy envelope head"
    low_noise = provenance["held_out"]["t 0-249"]
    assert low_noise["correlation"] > 0.8 and low_noise["mse"] < 0.4  # it reads the envelope from the latent


# ---------------------------------------------------------------- the recipe


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("argv, option", [
    (["--decoder", "toy"], "--out"),
    (["--decoder", "/nonexistent/decoder", "--out", "x"], "--decoder"),
    (["--decoder", "toy", "--out", "x", "--steps", "0"], "--steps"),
    (["--decoder", "toy", "--out", "x", "--lr", "-1"], "--lr"),
    (["--decoder", "toy", "--out", "x", "--lr", "nan"], "--lr"),
    (["--decoder", "toy", "--out", "x", "--corpus", "/nonexistent/wavs"], "--corpus"),
])
def test_the_recipe_refuses_a_bad_argument_in_one_line(argv, option, capsys):
    from recipes import train_envelope_head

    with pytest.raises(SystemExit) as exit_info:
        train_envelope_head.main(argv)
    assert exit_info.value.code == 2 and option in _error_line(capsys)


def test_the_recipe_refuses_an_empty_corpus_and_an_out_that_is_a_file_before_any_work(tmp_path, capsys, monkeypatch):
    from recipes import train_envelope_head

    monkeypatch.setattr(train_envelope_head, "load_decoder_parts", lambda *a: pytest.fail("work started"))
    (tmp_path / "wavs").mkdir()
    (tmp_path / "wavs" / "notes.txt").write_text("no audio here")
    with pytest.raises(SystemExit) as exit_info:
        train_envelope_head.main(["--decoder", "tiny", "--out", str(tmp_path / "o"),
                                  "--corpus", str(tmp_path / "wavs")])
    assert exit_info.value.code == 2 and "fewer than 2 audio files" in _error_line(capsys)
    (tmp_path / "file").write_text("not a folder")
    assert train_envelope_head.main(["--decoder", "tiny", "--out", str(tmp_path / "file")]) == 2
    assert "--out" in _error_line(capsys)


def test_the_recipe_trains_a_head_on_a_folder_of_audio_files(tmp_path):
    """The path a real corpus takes: a folder of wavs, here rendered into a random tiny decoder's latents."""
    import soundfile as sf

    from recipes import train_envelope_head

    rng = np.random.default_rng(0)
    (tmp_path / "wavs").mkdir()
    for i in range(3):
        sf.write(tmp_path / "wavs" / f"clip{i}.wav", (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32), 16000)
    out = tmp_path / "head"
    assert train_envelope_head.main(["--decoder", "tiny", "--corpus", str(tmp_path / "wavs"), "--out", str(out),
                                     "--steps", "2", "--batch", "2"]) == 0
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["train_clips"] == 2 and provenance["held_out_clips"] == 1 and provenance["steps"] == 2
    assert provenance["sha256"][WEIGHTS_FILE] == file_sha256(out / WEIGHTS_FILE)
    assert set(provenance["held_out"]) == {"t 0-249", "t 250-499", "t 500-749", "t 750-999"}
    assert load_envelope_head(out).config.latent_bins == 16
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
