"""PaSST-S for FD / KL / IS-PaSST: faithful to hear21passt as av-benchmark runs it
(``tests/fixtures/eval/passt.md``).

* ``passt_keys.json``: ``get_basic_model(mode="all").net``'s keys, which the released checkpoint loads
  into strictly; our paper-size model has exactly them;
* ``passt_golden``: ``AugmentMelSTFT`` (real configuration, eval) and the tiny seeded PaSST through
  ``PasstBasicWrapper.forward``; we match the log-mel, the CLS / DIST tokens, logits and embedding.
"""
import json

import pytest
import torch

from evaluation.passt import PRESETS, RELEASED, PasstConfig, PasstModel, build, load_released
from evaluation.passt_frontend import PasstFrontendConfig, log_mel, pad_or_cut

from golden import EVAL_FIXTURES, assert_close, assert_spectrogram_close, load_golden  # tests/golden.py

FIXTURES = EVAL_FIXTURES


@pytest.fixture(scope="module")
def golden():
    return load_golden("passt")


@pytest.fixture(scope="module")
def tiny(golden):
    model = PasstModel(PRESETS["tiny"]).eval()
    model.load_state_dict(golden[0], strict=True)
    return model


_close = assert_close


def test_paper_keys_match_the_released_file():
    with torch.device("meta"):
        model = PasstModel(PRESETS["paper"])
    reference = json.loads((FIXTURES / "passt_keys.json").read_text())
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == reference
    assert sum(v.numel() for v in model.state_dict().values()) == 86_153_758


def test_tiny_preset_is_the_golden_config():
    info = json.loads((FIXTURES / "passt_golden.json").read_text())["tiny"]
    cfg = PRESETS["tiny"]
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.input_tdim, cfg.frontend.clip_samples) == (
        info["embed_dim"], info["depth"], info["num_heads"], info["input_tdim"], info["clip_samples"])
    assert PRESETS["paper"] == PasstConfig()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_clip_fills_the_time_position_table(preset):
    # av-benchmark pads to 10 s: 1000 frames -> (1000 - 16) // 10 + 1 = 99 patches = 998 // 10
    cfg = PRESETS[preset]
    frames = cfg.frontend.num_frames(cfg.frontend.clip_samples)
    assert (frames - cfg.patch_size) // cfg.stride + 1 == cfg.grid[1]
    assert (cfg.frontend.n_mels - cfg.patch_size) // cfg.stride + 1 == cfg.grid[0]
    if preset == "paper":
        assert frames == 1000 and cfg.grid == (12, 99) and cfg.sample_rate == 32_000


def test_front_end_matches_augment_mel_stft(golden):
    _, inputs, outputs = golden
    mel = log_mel(inputs["waveform"])
    assert mel.shape[-1] == PasstFrontendConfig().num_frames(inputs["waveform"].shape[-1])
    assert_spectrogram_close(mel, outputs["mel"])


def test_tiny_model_matches_reference(tiny, golden):
    _, inputs, outputs = golden
    with torch.no_grad():
        cls, dist = tiny.forward_features(outputs["mel"])
    _close(cls, outputs["cls_token"])
    _close(dist, outputs["dist_token"])
    out = tiny.embed(inputs["waveform"])
    assert set(out) == {"logits", "embedding"} and all(v.dtype == torch.float32 for v in out.values())
    _close(out["logits"], outputs["logits"])
    _close(out["embedding"], outputs["embedding"])


def test_head_dist_is_not_used(tiny, golden):
    _, inputs, _ = golden
    before = tiny.embed(inputs["waveform"])["logits"]
    saved = tiny.head_dist.weight.detach().clone()
    try:
        with torch.no_grad():
            tiny.head_dist.weight.add_(1.0)
        assert torch.equal(tiny.embed(inputs["waveform"])["logits"], before)
    finally:
        with torch.no_grad():
            tiny.head_dist.weight.copy_(saved)


def test_embed_pads_and_cuts_to_the_clip_length(tiny):
    clip = PRESETS["tiny"].frontend.clip_samples
    gen = torch.Generator().manual_seed(0)
    wave = 0.1 * torch.randn(2, clip + 4_000, generator=gen)
    short = wave[:, : clip * 8 // 10]  # 8 s in a 10 s model, scaled down
    for given, expected in ((short, torch.cat([short, torch.zeros(2, clip - short.shape[1])], 1)),
                            (wave, wave[:, :clip])):
        assert torch.equal(pad_or_cut(given, clip), expected)
        got, want = tiny.embed(given), tiny.embed(expected)
        assert all(torch.equal(got[k], want[k]) for k in got)
    batch = tiny.embed(wave)["embedding"]
    single = torch.cat([tiny.embed(w[None])["embedding"] for w in wave])
    _close(batch, single, atol=1e-6)


def test_time_table_is_cut_for_shorter_input_and_refuses_longer(tiny, golden):
    mel = golden[2]["mel"]
    with torch.no_grad():
        logits, embedding = tiny(mel[..., :60])  # 5 time patches of 9: the reference's CUT path
    assert logits.shape == (2, 527) and embedding.shape == (2, 32)
    with pytest.raises(ValueError, match="position tables allow 12x9"):
        tiny(torch.cat([mel, mel], -1))


def test_build_tiny_is_seeded_and_in_eval_mode():
    a, b = build("tiny", seed=5), build("tiny", seed=5)
    assert not a.training
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="unknown PaSST preset"):
        build("passt_l")


@pytest.mark.parametrize("wrapped", [False, True])
def test_load_released_is_strict(tmp_path, golden, wrapped):
    state = golden[0]
    model = PasstModel(PRESETS["tiny"])
    torch.save({"model": state} if wrapped else state, tmp_path / RELEASED.name)
    load_released(model, tmp_path)
    assert torch.equal(model.state_dict()["time_new_pos_embed"], state["time_new_pos_embed"])
    torch.save({**state, "pos_embed": torch.zeros(1)}, tmp_path / RELEASED.name)
    with pytest.raises(ValueError, match=r"ap\.476-swa\.pt: not PaSST-S's released layout.*pos_embed"):
        load_released(model, tmp_path)
    with pytest.raises(FileNotFoundError, match="passt-s-f128-p16-s10-ap.476-swa.pt"):
        build("paper", weights_dir=tmp_path / "empty")
