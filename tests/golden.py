"""Reading the evaluation embedders' golden fixtures (tests/fixtures/eval/<name>_golden.safetensors):
``state.*`` the original-layout weights, ``input.*`` the inputs, ``output.*`` the reference outputs."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

EVAL_FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def load_golden(name: str) -> tuple[dict, dict, dict]:
    """(state, inputs, outputs) of ``<name>_golden.safetensors``, prefixes removed."""
    tensors = load_file(EVAL_FIXTURES / f"{name}_golden.safetensors")
    groups = {p: {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)} for p in ("state.", "input.", "output.")}
    return groups["state."], groups["input."], groups["output."]


# Float32 FFTs sum in an order set by the CPU's vector width (AVX2 vs AVX-512 builds of pocketfft/MKL),
# so a spectrogram front end matches its golden to ~2e-5 relative per value, never bit for bit. 3e-4
# relative still fails on any real front-end mistake (window, mel scale, padding, log floor move values
# by >1e-2), and on anything downstream of one.
FFT_RTOL, FFT_ATOL = 3e-4, 1e-5


def assert_spectrogram_close(actual: torch.Tensor, expected: torch.Tensor, summed: int = 1) -> None:
    """Values computed through a float32 FFT against their golden, within the FFT's summation-order
    tolerance; ``summed`` values added into each compared one add their errors."""
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    torch.testing.assert_close(actual.float(), expected.float(), rtol=FFT_RTOL, atol=FFT_ATOL * summed)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)
