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


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)
