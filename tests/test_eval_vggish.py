"""VGGish for FD-VGG: faithful to av-benchmark's (``tests/fixtures/eval/vggish.md``).

* ``vggish_keys.json``: the released ``vggish-10086976.pth`` layout; our paper-size model has exactly it;
* ``vggish_golden``: av-benchmark's numpy front end (mel matrix, float64 log-mel, patches) and its
  ``VGGish.forward`` on a tiny model with seeded weights; we match both.
"""
import json

import pytest
import torch

from evaluation import vggish
from evaluation.vggish import PRESETS, RELEASED, VGGishConfig, VGGishModel, build, load_released
from evaluation.vggish_frontend import VGGishFrontendConfig, log_mel, mel_matrix, waveform_to_patches

from golden import EVAL_FIXTURES, assert_close, load_golden  # tests/golden.py

FIXTURES = EVAL_FIXTURES


@pytest.fixture(scope="module")
def golden():
    return load_golden("vggish")


@pytest.fixture(scope="module")
def tiny(golden):
    model = VGGishModel(PRESETS["tiny"]).eval()
    model.load_state_dict(golden[0], strict=True)
    return model


_close = assert_close


def test_paper_keys_match_the_released_file():
    with torch.device("meta"):
        model = VGGishModel(PRESETS["paper"])
    reference = json.loads((FIXTURES / "vggish_keys.json").read_text())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == reference
    assert sum(v.numel() for v in model.state_dict().values()) == 72_141_184


def test_tiny_preset_is_the_golden_config():
    info = json.loads((FIXTURES / "vggish_golden.json").read_text())
    cfg = PRESETS["tiny"]
    assert [v for v in cfg.layers if v != vggish.POOL] == info["tiny"]["conv_channels"]
    assert (cfg.hidden, cfg.embedding_size) == (info["tiny"]["hidden"], info["tiny"]["embedding_size"])
    assert PRESETS["paper"] == VGGishConfig() and PRESETS["paper"].flat_features == 512 * 6 * 4


def test_front_end_matches_numpy_reference(golden):
    _, inputs, outputs = golden
    _close(mel_matrix().float(), outputs["mel_matrix"], atol=1e-6)
    _close(log_mel(inputs["waveform"]).float(), outputs["log_mel"], atol=1e-5)
    patches = waveform_to_patches(inputs["waveform"])
    assert patches.dtype == torch.float32
    _close(patches, outputs["examples"], atol=1e-5)


def test_tiny_model_matches_reference_forward(tiny, golden):
    _, inputs, outputs = golden
    out = tiny.embed(inputs["waveform"])
    assert set(out) == {"embedding"} and out["embedding"].dtype == torch.float32
    _close(out["embedding"], outputs["embedding"], atol=1e-5)
    assert (out["embedding"] < 0).any(), "pre-ReLU embeddings must keep negative values"


def test_patch_count_follows_av_benchmark():
    cfg = VGGishFrontendConfig()
    assert cfg.fft_size == 512
    assert cfg.num_patches(8 * 16_000) == 8  # 798 frames: 8 patches, the last 30 frames unseen
    assert cfg.num_patches(15_600) == 1 and cfg.num_patches(15_599) == 0
    with pytest.raises(ValueError, match="shorter than one VGGish patch"):
        waveform_to_patches(torch.zeros(1, 15_599))


def test_embed_is_batched_per_clip(tiny):
    gen = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(3, 16_000 * 2, generator=gen)
    batch = tiny.embed(wave)["embedding"]
    assert batch.shape == (3, 2, 128)
    single = torch.cat([tiny.embed(w[None])["embedding"] for w in wave])
    _close(batch, single, atol=1e-6)


def test_build_tiny_is_seeded_and_in_eval_mode():
    a, b = build("tiny", seed=3), build("tiny", seed=3)
    assert not a.training
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="unknown VGGish preset"):
        build("huge")


def test_load_released_is_strict(tmp_path, golden):
    state = golden[0]
    model = VGGishModel(PRESETS["tiny"])
    torch.save(state, tmp_path / RELEASED.name)
    load_released(model, tmp_path)
    assert torch.equal(model.state_dict()["embeddings.4.weight"], state["embeddings.4.weight"])
    torch.save({k: v for k, v in state.items() if k != "features.0.bias"}, tmp_path / RELEASED.name)
    with pytest.raises(ValueError, match=r"vggish-10086976\.pth: not VGGish's released layout.*features\.0\.bias"):
        load_released(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="vggish-10086976.pth"):
        build("paper", weights_dir=tmp_path / "empty")
