"""PANNs Cnn14 (16 kHz) against av-benchmark's own code, through fixtures made by running it.

``tests/fixtures/eval/panns.md`` says how: ``panns_keys.json`` holds every key and shape of
av-benchmark's full-size ``Cnn14``; ``panns_golden.safetensors`` a tiny ``Cnn14`` (the reference
front end and forward, narrow ConvBlocks) with its inputs, outputs and front-end intermediates,
plus ``librosa.filters.mel`` matrices for ``evaluation/mel.py``.
"""
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from evaluation.mel import mel_filterbank
from evaluation.panns import (PRESETS, RELEASED, PannsModel, build, embed, load_checked, load_released,
                              read_checkpoint)
from evaluation.panns_frontend import stft_kernels

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
ATOL = 1e-5
STFT_KEYS = ("spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight")


@pytest.fixture(scope="module")
def golden():
    info = json.loads((FIXTURES / "panns_golden.json").read_text())
    groups = {"state.": {}, "input.": {}, "output.": {}}
    for key, value in load_file(FIXTURES / "panns_golden.safetensors").items():
        prefix = next(p for p in groups if key.startswith(p))
        groups[prefix][key[len(prefix):]] = value
    return info, groups["state."], groups["input."], groups["output."]


def _run_with_intermediates(model: PannsModel, waveform: torch.Tensor) -> dict:
    captured = {}
    names = ["spectrogram_extractor", "logmel_extractor", "bn0"] + [f"conv_block{i}" for i in range(1, 7)]
    hooks = [getattr(model, name).register_forward_hook(
        lambda module, inputs, output, name=name: captured.__setitem__(name, output)) for name in names]
    try:
        with torch.no_grad():
            out = model(waveform)
    finally:
        for hook in hooks:
            hook.remove()
    captured["bn0"] = captured["bn0"].transpose(1, 3)  # the fixture stores it as (B, 1, frames, mel)
    return {**out, **captured}


def _close(actual, expected, atol=ATOL, relative=False):
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    scale = expected.abs().max() if relative else 1.0
    error = ((actual - expected).abs().max() / scale).item()
    assert error <= atol, error
    return error


def test_paper_model_has_the_released_keys_and_shapes():
    keys = json.loads((FIXTURES / "panns_keys.json").read_text())
    with torch.device("meta"):
        model = PannsModel(PRESETS["paper"])
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == keys
    assert len(keys) == 84
    assert sum(p.numel() for p in model.parameters()) == 81_033_231  # 80.75 M + STFT kernels + melW


def test_tiny_model_reproduces_the_reference(golden):
    info, state, inputs, outputs = golden
    config = PRESETS["tiny"]
    assert list(config.channels) == info["channels"]
    args = info["extraction_args"]
    assert (config.sample_rate, config.window_size, config.hop_size, config.mel_bins, config.fmin, config.fmax,
            config.classes_num) == tuple(args[k] for k in ("sample_rate", "window_size", "hop_size", "mel_bins",
                                                          "fmin", "fmax", "classes_num"))
    model = PannsModel(config)
    # the fixture leaves out the two 0.5 MB STFT kernels: ours (computed) go in, checked below
    assert sorted(info["omitted_state"]) == sorted(STFT_KEYS)
    own = model.state_dict()
    load_checked(model, {**state, **{k: own[k] for k in STFT_KEYS}}, "panns_golden")
    out = _run_with_intermediates(model, inputs["waveform"])
    _close(out["spectrogram_extractor"], outputs["spectrogram"],
           atol=1e-6, relative=True)
    _close(out["logmel_extractor"], outputs["logmel"])
    _close(out["bn0"], outputs["bn0"])
    for i in range(1, 7):
        _close(out[f"conv_block{i}"], outputs[f"conv_block{i}"])
    _close(out["embedding"], outputs["embedding_2048"])
    _close(out["logits"], outputs["logits"])
    _close(torch.sigmoid(out["logits"]), outputs["clipwise_output"])


def test_tiny_build_computes_the_reference_front_end(golden):
    info, state, inputs, outputs = golden
    model = build("tiny")
    # melW: librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50, fmax=8000).T, bit for bit
    assert torch.equal(model.logmel_extractor.melW, state["logmel_extractor.melW"])
    rows = info["kernel_rows"]
    stft = model.spectrogram_extractor.stft
    _close(stft.conv_real.weight[rows], outputs["stft_conv_real_rows"], atol=1e-6)
    _close(stft.conv_imag.weight[rows], outputs["stft_conv_imag_rows"], atol=1e-6)  # sign: exp(-i...)
    with torch.no_grad():
        power = model.spectrogram_extractor(inputs["waveform"])
        _close(power, outputs["spectrogram"], atol=1e-6, relative=True)
        _close(model.logmel_extractor(power), outputs["logmel"])


def test_mel_filterbank_matches_librosa(golden):
    info, _, _, outputs = golden
    for name, case in info["librosa_mel_cases"].items():
        ours = mel_filterbank(case["sr"], case["n_fft"], case["n_mels"], case["fmin"], case["fmax"],
                              htk=case["htk"], norm=case["norm"])
        expected = outputs[f"librosa_mel.{name}"].numpy()
        assert ours.dtype == np.float32 and ours.shape == expected.shape, name
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-7, err_msg=name)
    with pytest.raises(ValueError, match="norm"):
        mel_filterbank(16000, 512, 64, norm="l2")


def test_stft_kernels_are_the_windowed_dft():
    real, imag = stft_kernels(16)
    frame = torch.randn(16, dtype=torch.float64)
    window = torch.hann_window(16, periodic=True, dtype=torch.float64)
    expected = torch.fft.rfft(frame * window)
    torch.testing.assert_close(real[:, 0].double() @ frame, expected.real, rtol=0, atol=1e-6)
    torch.testing.assert_close(imag[:, 0].double() @ frame, expected.imag, rtol=0, atol=1e-6)


def test_embed_is_batched_and_checks_its_input():
    model = build("tiny")
    waveform = 0.1 * torch.randn(3, 8 * 16000, generator=torch.Generator().manual_seed(3))  # 8 s: av-benchmark's clip
    out = embed(model, waveform)
    assert set(out) == {"embedding", "logits"}
    assert out["embedding"].shape == (3, 32) and out["logits"].shape == (3, 527)
    assert all(v.dtype == torch.float32 for v in out.values())
    assert (out["embedding"] >= 0).all()  # after the ReLU
    single = embed(model, waveform[1:2])
    torch.testing.assert_close(single["logits"], out["logits"][1:2], rtol=0, atol=1e-5)
    model.train()
    assert not model.training and not model.bn0.training  # a frozen embedder stays in eval mode
    shortest = PRESETS["tiny"].min_samples
    assert shortest == 4960
    embed(model, waveform[:, :shortest])
    with pytest.raises(ValueError, match="at least 4960"):
        embed(model, waveform[:, :shortest - 1])
    with pytest.raises(ValueError, match="batch, samples"):
        embed(model, waveform[0])


def test_build_seeds_and_presets():
    a, b, c = build("tiny", seed=0), build("tiny", seed=0), build("tiny", seed=1)
    assert torch.equal(a.fc1.weight, b.fc1.weight) and not torch.equal(a.fc1.weight, c.fc1.weight)
    assert torch.equal(a.logmel_extractor.melW, c.logmel_extractor.melW)  # the front end is not random
    with pytest.raises(ValueError, match="unknown"):
        build("huge")


def test_paper_build_needs_the_released_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Cnn14_16k_mAP=0.438.pth"):
        build("paper", weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="zenodo"):
        load_released(build("tiny"), tmp_path)
    (tmp_path / RELEASED.name).write_bytes(b"not the file")
    with pytest.raises(ValueError, match="md5"):
        build("paper", weights_dir=tmp_path)


def _training_checkpoint(path: Path, model_state: dict) -> Path:
    """A file laid out like the released one: audioset_tagging_cnn's ``{"iteration", "model", "sampler"}``
    with a BalancedTrainSampler state (numpy int64 arrays), pickled under numpy 1.x's module names."""
    sampler = {"indexes_per_class": [np.array([3, 1, 2]), np.array([0])], "queue": [1, 0],
               "pointers_of_classes": [0, 2]}
    torch.save({"iteration": 540000, "model": model_state, "sampler": sampler}, path)
    with zipfile.ZipFile(path) as archive:
        members = [(info, archive.read(info.filename)) for info in archive.infolist()]
    legacy = path.with_name("legacy_" + path.name)
    with zipfile.ZipFile(legacy, "w", zipfile.ZIP_STORED) as archive:
        for info, data in members:
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            archive.writestr(info, data)
    os.replace(legacy, path)
    return path


def test_released_layout_is_read_weights_only(tmp_path):
    tiny = build("tiny", seed=5)
    path = _training_checkpoint(tmp_path / "ckpt.pth", tiny.state_dict())
    assert "numpy.core.multiarray._reconstruct" in torch.serialization.get_unsafe_globals_in_checkpoint(path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)  # what a plain weights-only read does with this layout
    target = build("tiny", seed=0)
    load_checked(target, read_checkpoint(path), path)
    assert torch.equal(target.fc1.weight, tiny.fc1.weight)


def test_load_checked_names_the_mismatch():
    model = build("tiny")
    state = dict(model.state_dict())
    state.pop("fc1.bias")
    state["fc_audioset.weight"] = torch.zeros(10, 32)
    with pytest.raises(ValueError) as error:
        load_checked(model, state, "some.pth")
    message = str(error.value)
    assert "\n" not in message and message.startswith("some.pth:")
    assert "missing 1 (e.g. fc1.bias)" in message and "wrong shape 1 (e.g. fc_audioset.weight)" in message
