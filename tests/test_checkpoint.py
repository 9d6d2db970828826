"""The one checkpoint reader (extractors/checkpoint.py): nothing but tensors comes out of a file, every
refusal is one line naming it, and a state dict loads only with exactly the model's keys and shapes."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from extractors.checkpoint import (StateDictMismatchError, UnsafeCheckpointError, check_keys, load_strict,
                                   read_checkpoint, read_safetensors_shapes)


class _RunsCode:
    """Unpickling this creates `marker`: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_torch_and_safetensors_files_give_their_tensors(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    torch.save({"model": state, "epoch": 3}, tmp_path / "a.pth")
    save_file(state, str(tmp_path / "a.safetensors"))
    loaded = read_checkpoint(tmp_path / "a.pth")
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], state["w"])
    assert all(torch.equal(read_checkpoint(tmp_path / "a.safetensors")[k], v) for k, v in state.items())
    assert read_safetensors_shapes(tmp_path / "a.safetensors") == {"w": (2, 3), "b": (2,)}
    with open(tmp_path / "a.pth", "rb") as stream:  # an open file (a remote checkpoint) reads the same way
        assert read_checkpoint(stream, name="remote")["epoch"] == 3


def test_pickled_code_is_refused_in_one_line_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # cannot override an explicit weights_only=True
    marker = tmp_path / "ran"
    torch.save({"w": torch.ones(1), "payload": _RunsCode(marker)}, tmp_path / "bad.pth")
    with pytest.raises(UnsafeCheckpointError) as error:
        read_checkpoint(tmp_path / "bad.pth")
    assert _one_line(error).startswith(f"{tmp_path / 'bad.pth'}: refused: it holds pickled objects")
    assert f"(e.g. {os.mkdir.__module__}.mkdir)" in str(error.value) and not marker.exists()  # what it would call


@pytest.mark.parametrize("name, content", [("junk.pth", b"not a checkpoint" * 4), ("empty.pth", b""),
                                           ("junk.safetensors", b"not a checkpoint" * 4)])
def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError) as error:
        read_checkpoint(tmp_path / name)
    assert _one_line(error).startswith(f"{tmp_path / name}: cannot be read")
    with pytest.raises(FileNotFoundError, match="absent.pth: no such file"):
        read_checkpoint(tmp_path / "absent.pth")
    torch.save(torch.ones(2), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="holds a Tensor, not a dict of tensors"):
        read_checkpoint(tmp_path / "tensor.pth")


def test_a_mismatch_names_the_file_and_the_first_key_of_each_kind():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    state = dict(model.state_dict())
    del state["0.bias"]
    state["9.weight"] = torch.zeros(1)
    state["1.weight"] = torch.zeros(5)
    with pytest.raises(StateDictMismatchError) as error:
        load_strict(model, state, "x.pth", "this model's layout")
    assert _one_line(error) == ("x.pth: not this model's layout: missing 1 (e.g. 0.bias); unexpected 1 (e.g. 9.weight); "
                                "wrong shape 1 (e.g. 1.weight)")
    check_keys(model.state_dict(), {k: tuple(v.shape) for k, v in model.state_dict().items()}, "x", "y")  # shapes do


def test_a_meta_model_is_assigned_the_tensors_and_any_other_copies_them():
    source = torch.nn.Linear(3, 2)
    with torch.device("meta"):
        empty = torch.nn.Linear(3, 2)
    load_strict(empty, source.state_dict(), "src", "a Linear")
    assert empty.weight.data_ptr() == source.weight.data_ptr()  # no second copy of the weights
    half = torch.nn.Linear(3, 2).half()
    load_strict(half, source.state_dict(), "src", "a Linear")
    assert half.weight.dtype == torch.float16 and torch.equal(half.weight, source.weight.half())
