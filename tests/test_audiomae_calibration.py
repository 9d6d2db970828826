"""The `toy` AudioMAE: the tiny build whose output norm standardises the tokens of toy-world audio."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from extractors.audiomae_calibration import calibrated_norm, load_calibration, save_calibration
from extractors.clip import ClipConfig
from extractors.frozen import FrozenExtractors
from extractors.presets import get_preset
from toy_world import clip_window_audio, plan_world


def _toy_audio(num_clips: int, seed: int) -> torch.Tensor:
    clip = ClipConfig()
    return torch.from_numpy(np.stack([clip_window_audio(c, clip) for c in plan_world(num_clips, seed, clip)["clips"]]))


def test_the_calibrated_norm_standardises_every_channel_exactly(tmp_path):
    """Tokens are w * P + b channel-wise (mean over blocks and avg/max pooling commute with the norm's
    affine map for w > 0), so the calibration gives (token - mean) / std for every clip, not just on average."""
    tiny = FrozenExtractors.from_preset("tiny")
    audio = _toy_audio(12, seed=3)
    before = tiny.encode_audio(audio)  # (12, 8, 32)
    path = tmp_path / "norm.safetensors"
    save_calibration(calibrated_norm(tiny.audiomae.vit.norm, before), path)
    calibrated = FrozenExtractors(replace(get_preset("toy"), audiomae_norm=str(path)))
    after = calibrated.encode_audio(audio)
    rows = before.reshape(-1, before.shape[-1]).double()
    expected = (before.double() - rows.mean(0)) / rows.std(0)
    torch.testing.assert_close(after.double(), expected, atol=2e-4, rtol=1e-4)
    flat = after.reshape(-1, after.shape[-1])
    assert flat.mean(0).abs().max() < 1e-3 and (flat.std(0) - 1).abs().max() < 1e-3
    assert before.reshape(-1, 32).mean(0).norm() > 10 * before.reshape(-1, 32).std(0).mean()  # what it fixes


def test_the_toy_preset_is_tiny_with_the_shipped_calibration():
    tiny, toy = get_preset("tiny"), get_preset("toy")
    assert toy.visual == tiny.visual and toy.audiomae == tiny.audiomae and toy.clip == tiny.clip
    assert toy.fingerprint() != tiny.fingerprint()  # its features differ: a cache of one is not the other's
    extractors = FrozenExtractors.from_preset("toy")
    tokens = extractors.encode_audio(_toy_audio(20, seed=4)).reshape(-1, 32)
    assert tokens.mean(0).abs().mean() < 0.5 and 0.5 < tokens.std(0).mean() < 1.5  # roughly standard on new clips


def test_a_missing_calibration_is_one_line_naming_the_file(tmp_path):
    preset = replace(get_preset("toy"), audiomae_norm=str(tmp_path / "absent.safetensors"))
    with pytest.raises(FileNotFoundError, match="absent.safetensors.*calibration is missing"):
        FrozenExtractors(preset)


def test_a_calibration_of_other_shape_is_refused(tmp_path):
    path = tmp_path / "wide.safetensors"
    save_calibration({"weight": torch.ones(64), "bias": torch.zeros(64)}, path)
    with pytest.raises(ValueError, match="wide.safetensors"):
        load_calibration(FrozenExtractors.from_preset("tiny").audiomae.vit.norm, path)
