"""The whole path a new user takes: train_mapper on the toy world, then generate from a held-out
video with the CLI and the Python API; bad input gives a one-line error naming the file."""
import json

import numpy as np
import pytest
import soundfile as sf
from huggingface_hub import ModelCard

import mapper
from extractors.manifest import list_clips
from recipes import generate, train_mapper

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(toy_world, tmp_path_factory, monkeypatch_module):
    root, metadata = toy_world
    work = tmp_path_factory.mktemp("train")
    home = tmp_path_factory.mktemp("home")
    monkeypatch_module.setenv("MFM_HOME", str(home))
    args = [
        "--data.toy_world.root", str(root), "--data.toy_world.num_clips", "16",
        "--data.cache", str(work / "cache"), "--trainer.max_epochs", "2",
        "--trainer.default_root_dir", str(work), "--trainer.logger.init_args.save_dir", str(work),
        "--export_dir", str(work / "mapper"), "--sample_steps", "3", "--toy_report_clips", "2",
    ]  # fmt: skip
    metrics = train_mapper.main(args)
    return work, metrics, list_clips(metadata), home


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_train_mapper_reports_exports_and_renders_a_sample(trained):
    work, metrics, _, home = trained
    report = metrics.pop("toy_report")  # rendered with the shipped toy decoder, the toy recipe's default
    assert {"mse", "mse_mean_baseline", "mse_shuffled_baseline"} <= metrics.keys()
    assert all(np.isfinite(v) for v in metrics.values())
    assert report["clips"] == 2 and {"real", "vocoder", "oracle", "video", "shuffled", "zeros", "oracle_no_label",
                                      "video_no_label", "shuffled_no_label", "zeros_no_label"} <= report.keys()
    assert json.loads((work / "mapper" / "toy_report.json").read_text()).keys() == report.keys()  # stored beside the mapper
    assert report["vocoder"]["event_sync_error_s"] <= 0.05  # the audio path keeps the events where they were
    assert {"guided", "guided_shuffled", "guided_true"} <= report.keys() and report["sync_guidance"] == 0.045
    assert {"mse", "corr", "shuffled_mse", "shuffled_corr"} <= report["envelope"].keys()  # the predictor's accuracy
    assert all(0.0 <= row["class_accuracy"] <= 1.0 and np.isfinite(row["fd"]) for row in report.values()
               if isinstance(row, dict) and "class_accuracy" in row)
    assert (work / "mapper" / "config.json").is_file() and (work / "mapper" / "model.safetensors").is_file()
    audio, rate = sf.read(work / "mapper" / "sample.wav")
    assert rate == 16000 and audio.ndim == 1 and len(audio) > 0
    assert (home / "last_mapper").read_text().strip() == str((work / "mapper").resolve())
    card = ModelCard.load(work / "mapper" / "README.md")  # the model card, with the run's own figures
    assert card.data.library_name == "mfm-mapper" and "toy-foley" in card.data.datasets[0]
    assert f"{metrics['mse']:10.4f}" in card.text and "zeros" in card.text and "max_epochs" in card.text


@pytest.mark.parametrize("which", ["short", "long"])
def test_generate_cli_writes_a_wav_of_the_clip_length(trained, tmp_path, which, monkeypatch_module):
    from extractors.video import probe_duration

    _, _, clips, _ = trained
    durations = {c.id: probe_duration(c.path) for c in clips if c.split != "train"}
    pick = min if which == "short" else max
    clip = next(c for c in clips if c.id == pick(durations, key=durations.get))
    out = tmp_path / "out.wav"
    assert generate.main([str(clip.path), "--label", clip.label, "--out", str(out), "--steps", "3"]) == 0
    audio, rate = sf.read(out)
    assert rate == 16000 and len(audio) == round(durations[clip.id] * 16000)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


def test_python_api_uses_the_last_trained_mapper(trained):
    _, _, clips, _ = trained
    clip = next(c for c in clips if c.split == "test")
    result = mapper.generate(clip.path, clip.label, num_inference_steps=2)
    assert result.sample_rate == 16000 and result.audio.dtype == np.float32 and result.audio.ndim == 1
    assert result.audio_tokens.shape[1:] == (8, 32)  # tiny preset: 8 AudioMAE tokens of width 32
    again = mapper.generate(clip.path, clip.label, num_inference_steps=2)
    np.testing.assert_array_equal(result.audio, again.audio)  # same seed, same audio


@pytest.mark.parametrize("content", [b"", b"not a video at all\n"])
def test_generate_on_a_broken_file_is_a_one_line_error_naming_it(trained, tmp_path, capsys, content):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    assert generate.main([str(bad), "--out", str(tmp_path / "x.wav"), "--steps", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err
    assert not (tmp_path / "x.wav").exists()
