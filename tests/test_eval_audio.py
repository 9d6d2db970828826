"""evaluation.audio: av-benchmark's AudioDataset reading, and one-line errors for unusable files."""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from evaluation.audio import AudioReadError, load_audio
from evaluation.resample import resample

EVAL = Path(__file__).parent / "fixtures" / "eval"
GOLDEN = load_file(EVAL / "resample_golden.safetensors")
AUDIO_CASES = json.loads((EVAL / "resample_golden.json").read_text())["audio_dataset"]["cases"]


def _write(path: Path, data: np.ndarray, rate: int, subtype: str = "FLOAT") -> Path:
    sf.write(path, data, rate, subtype=subtype)
    return path


@pytest.mark.parametrize("case", sorted(AUDIO_CASES))
def test_load_audio_matches_av_benchmarks_audio_dataset(case, tmp_path):
    info = AUDIO_CASES[case]
    wave = GOLDEN[f"input.audio.{case}"]  # (C, S), the float32 samples of the reference's wav
    path = _write(tmp_path / f"{case}.wav", wave.T.numpy(), info["file_rate"])
    audio = load_audio(path, info["sample_rate"], info["audio_length"])
    expected = GOLDEN[f"output.audio.{case}"]
    assert audio.shape == expected.shape == (info["output_samples"],) and audio.dtype == torch.float32
    torch.testing.assert_close(audio, expected, rtol=0, atol=1e-6)


def test_channels_are_averaged_then_the_mean_is_removed(tmp_path):
    rng = np.random.default_rng(0)
    stereo = np.stack([0.2 * rng.standard_normal(1600) + 0.3, 0.2 * rng.standard_normal(1600) - 0.1], axis=1)
    audio = load_audio(_write(tmp_path / "s.wav", stereo.astype(np.float32), 16000), 16000, None)
    mono = torch.from_numpy(stereo.astype(np.float32).T.copy()).mean(dim=0)
    torch.testing.assert_close(audio, mono - mono.mean(), rtol=0, atol=0)
    assert abs(float(audio.mean())) < 1e-7


def test_other_rates_are_resampled_before_the_cut_and_short_clips_are_not_padded(tmp_path):
    rng = np.random.default_rng(1)
    pcm = (0.25 * rng.standard_normal((22050, 2))).astype(np.float32)
    path = _write(tmp_path / "c.wav", pcm, 22050, subtype="PCM_16")
    whole = load_audio(path, 16000, None)
    assert whole.shape == (16000,)
    assert torch.equal(load_audio(path, 16000, 0.5), whole[:8000])
    assert load_audio(path, 16000, 8.0).shape == (16000,)  # 1 s file, 8 s asked: not padded
    # the same numbers as mixing, removing the mean and resampling by hand; PCM_16 reads as int/32768
    ints, _ = sf.read(path, dtype="int16")
    mono = torch.from_numpy(ints.T.astype(np.float32) / 32768).mean(dim=0)
    torch.testing.assert_close(whole, resample(mono - mono.mean(), 22050, 16000), rtol=0, atol=1e-7)


def test_the_cut_truncates_the_float_product_like_av_benchmark(tmp_path):
    path = _write(tmp_path / "l.wav", np.zeros(40000, np.float32), 16000)
    assert 16000 * 2.01 < 32160  # 32159.999999999996
    assert load_audio(path, 16000, 2.01).shape == (32159,)


def test_flac_reads_like_wav(tmp_path):
    # integer samples: soundfile's float -> int rounding differs between its WAV and FLAC writers
    data = (3000 * np.random.default_rng(2).standard_normal(4800)).astype(np.int16)
    wav = load_audio(_write(tmp_path / "a.wav", data, 48000, "PCM_16"), 16000, None)
    flac = load_audio(_write(tmp_path / "a.flac", data, 48000, "PCM_16"), 16000, None)
    assert torch.equal(wav, flac) and wav.shape == (1600,)


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_text("this is not audio\n" * 20), "not a readable audio file (soundfile: "),
    (lambda p: p.write_bytes(b""), "not a readable audio file (soundfile: "),
    (lambda p: sf.write(p, np.zeros((0, 2), np.float32), 16000), "holds no audio samples"),
    (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2], np.float32), 16000, subtype="FLOAT"), "NaN or infinite"),
    (lambda p: None, "no such file"),
], ids=["text_renamed_wav", "empty_file", "zero_frames", "nan_samples", "missing"])  # fmt: skip
def test_unusable_files_raise_one_line_errors_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioReadError) as info:
        load_audio(path, 16000, 8.0)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message
    assert isinstance(info.value, ValueError)
    copy = pickle.loads(pickle.dumps(info.value))  # survives a DataLoader worker
    assert type(copy) is AudioReadError and str(copy) == message


def test_bad_arguments_are_refused(tmp_path):
    path = _write(tmp_path / "a.wav", np.zeros(160, np.float32), 16000)
    for length in (0, -1.0, math.nan):
        with pytest.raises(ValueError, match="length_s must be a positive number"):
            load_audio(path, 16000, length)
    with pytest.raises(ValueError, match="new_sr must be a positive whole number"):
        load_audio(path, 0, None)
