"""evaluation.resample against torchaudio 2.9.1's own resampling (tests/fixtures/eval/resample.md)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evaluation.resample import resample

EVAL = Path(__file__).parent / "fixtures" / "eval"
GOLDEN = load_file(EVAL / "resample_golden.safetensors")
CASES = json.loads((EVAL / "resample_golden.json").read_text())["cases"]
ATOL = 1e-6  # the outputs are bit-identical here; this leaves room for other CPUs' conv1d rounding
KERNEL_DTYPE = {"transform": torch.float64, "functional": None}  # torchaudio entry point -> our argument


@pytest.mark.parametrize("entry_point", sorted(KERNEL_DTYPE))
@pytest.mark.parametrize("case", sorted(CASES))
def test_resample_matches_torchaudio(case, entry_point):
    orig, new = CASES[case]["orig_sr"], CASES[case]["new_sr"]
    expected = GOLDEN[f"output.{entry_point}.{case}"]
    actual = resample(GOLDEN[f"input.{case}"], orig, new, kernel_dtype=KERNEL_DTYPE[entry_point])
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)


def test_torchaudios_two_entry_points_differ_by_more_than_the_tolerance():
    # so each test above really tells which one we reproduce
    differ = [c for c in CASES if CASES[c]["functional_vs_transform_max_abs"] > 2 * ATOL]
    assert {"44100_32000", "22050_16000"} <= set(differ)


def test_equal_rates_return_the_waveform_itself():
    x = torch.randn(2, 100)
    assert resample(x, 16000, 16000) is x


def test_leading_dimensions_are_batch_dimensions():
    x = torch.randn(3, 2, 4410, generator=torch.Generator().manual_seed(0))
    y = resample(x, 44100, 16000)
    assert y.shape == (3, 2, 1600)
    # conv1d may block a batch differently from a single row: float32 rounding, not an error
    torch.testing.assert_close(y[1, 0], resample(x[1, 0], 44100, 16000), rtol=0, atol=ATOL)
    torch.testing.assert_close(resample(x.transpose(0, 1), 44100, 16000), y.transpose(0, 1), rtol=0, atol=ATOL)


@pytest.mark.parametrize("length", [0, 1, 2, 440, 441, 442, 10_007])
def test_output_length_is_the_ceiling_of_the_rate_ratio(length):
    assert resample(torch.zeros(length), 44100, 16000).shape == (math.ceil(length * 16000 / 44100),)


def test_a_constant_keeps_its_level_away_from_the_edges_and_float64_stays_float64():
    y = resample(torch.ones(48000, dtype=torch.float64), 48000, 16000)
    assert y.dtype == torch.float64
    assert (y[100:-100] - 1).abs().max() < 2e-3  # rolloff 0.99 windowed sinc: unit DC gain up to ripple


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="floating-point"):
        resample(torch.zeros(10, dtype=torch.int16), 44100, 16000)
    with pytest.raises(ValueError, match="orig_sr must be a positive whole number"):
        resample(torch.zeros(10), 44100.5, 16000)
    with pytest.raises(ValueError, match="new_sr must be a positive whole number"):
        resample(torch.zeros(10), 44100, 0)
    with pytest.raises(ValueError, match="time axis"):
        resample(torch.tensor(1.0), 44100, 16000)
