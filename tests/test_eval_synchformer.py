"""Synchformer (DeSync) against av-benchmark's own code: key layout, tiny goldens, front end, windows.

Fixtures (``tests/fixtures/eval/synchformer.md``): ``synchformer_keys.json`` (the full model
av-benchmark strict-loads ``synchformer_state_dict.pth`` into), ``synchformer_golden`` (a tiny
reference Synchformer with seeded weights: video / audio features, intermediates and the two window
logits evaluate.py computes) and ``synchformer_frontend_golden`` (torchvision's frame transform and
torchaudio's MelSpectrogram as av-benchmark calls them).
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from evaluation import synchformer as S
from golden import assert_spectrogram_close  # tests/golden.py
from evaluation import synchformer_inputs as I

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
ATOL = 1e-5


def _golden(name: str) -> tuple[dict, dict, dict]:
    groups = {"state.": {}, "input.": {}, "output.": {}}
    for key, value in load_file(FIXTURES / f"{name}.safetensors").items():
        prefix = next(p for p in groups if key.startswith(p))
        groups[prefix][key[len(prefix):]] = value
    return groups["state."], groups["input."], groups["output."]


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def golden_model():
    info = json.loads((FIXTURES / "synchformer_golden.json").read_text())
    config = S.SynchformerConfig(**info["tiny"])
    assert config.sync_tokens == info["sync_tokens"] and config.num_offsets == info["num_offsets"]
    model = S.SynchformerModel(config)
    state, inputs, outputs = _golden("synchformer_golden")
    S.load_checked(model, state, "synchformer_golden")  # every key and shape of the reference's state dict
    return model, inputs, outputs


def test_paper_model_has_exactly_the_released_keys():
    keys = json.loads((FIXTURES / "synchformer_keys.json").read_text())
    with torch.device("meta"):
        model = S.SynchformerModel(S.PRESETS["paper"])
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == keys and len(ours) == 513
    assert sum(torch.Size(s).numel() for s in keys.values()) == 237_460_245
    assert S.PRESETS["paper"].sync_tokens == keys["transformer.pos_emb_cfg.pos_emb"][1] == 198


def test_load_checked_names_the_file_and_the_mismatch(tmp_path):
    model = S.build("tiny")
    state = dict(model.state_dict())
    state.pop("vproj.bias")
    state["transformer.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"^bad\.pth: .*missing 1 \(e\.g\. vproj\.bias\); unexpected 1") as error:
        S.load_checked(S.build("tiny"), state, "bad.pth")
    assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match="synchformer_state_dict.pth"):
        S.build("paper", weights_dir=tmp_path)


def test_paper_build_reads_the_released_layout_weights_only(tmp_path, monkeypatch):
    # a file in the released layout (a flat state dict, torch.save), here at tiny size without a checksum
    source = S.build("tiny", seed=3)
    torch.save(source.state_dict(), tmp_path / S.RELEASED.name)
    monkeypatch.setattr(S, "RELEASED", S.ReleasedFile(S.RELEASED.name, S.RELEASED.source, md5=None))
    monkeypatch.setitem(S.PRESETS, "paper", S.PRESETS["tiny"])
    model = S.build("paper", weights_dir=tmp_path)  # built on meta, filled by assignment
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())


def test_golden_video_extractor(golden_model):
    model, inputs, outputs = golden_model
    segments = I.video_segments(inputs["video_pixels"], model.config)  # what encode_video_with_sync cuts
    with torch.inference_mode():
        _close(model.vfeat_extractor.forward_tokens(segments), outputs["video_tokens"])
    _close(S.video_features(model, segments), outputs["video_features"])


def test_golden_audio_extractor(golden_model):
    model, inputs, outputs = golden_model
    spec = inputs["audio_spec"][:, :, 0]  # (B, S, 1, F, T) as extract_afeats takes it -> (B, S, F, T)
    with torch.inference_mode():
        _close(model.afeat_extractor.ast(spec.flatten(0, 1)), outputs["ast_hidden"])
    _close(S.audio_features(model, spec), outputs["audio_features"])


def test_golden_sync_head_and_windows(golden_model):
    model, inputs, outputs = golden_model
    # the head alone, on the reference's features
    logits = S.window_logits(model, outputs["video_features"], outputs["audio_features"])
    _close(logits["first"], outputs["logits_first"])
    _close(logits["last"], outputs["logits_last"])
    # end to end from the model inputs
    video = I.video_segments(inputs["video_pixels"], model.config)
    logits = S.desync_logits(model, video, inputs["audio_spec"][:, :, 0])
    _close(logits["first"], outputs["logits_first"])
    _close(logits["last"], outputs["logits_last"])
    assert torch.equal(model.config.offsets(), outputs["offsets"])


def test_frontend_matches_torchvision_and_torchaudio():
    _, inputs, outputs = _golden("synchformer_frontend_golden")
    config = S.SynchformerConfig(**json.loads((FIXTURES / "synchformer_golden.json").read_text())["tiny"])
    frames = inputs["frames"].permute(0, 1, 3, 4, 2)  # torio's (T, 3, H, W) per clip -> our (B, T, H, W, 3)
    assert torch.equal(I.video_frames(frames, config), outputs["video_pixels"])  # resize 20x27 -> 16x21, crop
    mel = I.mel_spectrogram(I.audio_segments(inputs["wav"], config), config)
    assert_spectrogram_close(mel, outputs["mel"])
    _close(I.audio_input(inputs["wav"], config), outputs["audio_spec"][:, :, 0])


def test_segments_and_padding_follow_av_benchmark():
    config = S.PRESETS["tiny"]
    pixels = torch.randn(1, 200, 3, 4, 4)  # 8 s at 25 fps
    segments = I.video_segments(pixels, config)
    assert segments.shape == (1, 24, 16, 3, 4, 4)
    assert all(torch.equal(segments[:, i], pixels[:, 8 * i:8 * i + 16]) for i in range(24))
    wav = torch.randn(1, 128000)  # 8 s at 16 kHz
    cut = I.audio_segments(wav, config)
    assert cut.shape == (1, 24, 10240) and torch.equal(cut[0, 23], wav[0, 23 * 5120:23 * 5120 + 10240])
    spec = I.log_mel(cut[:, :2], config)
    assert spec.shape == (1, 2, 128, 66)  # 65 mel frames + one zero log frame, then normalised
    assert torch.all(spec[..., -1] == (0 - config.spec_mean) / (2 * config.spec_std))
    assert I.resized_size(360, 640, 224) == (224, 398) and I.resized_size(640, 360, 224) == (398, 224)
    with pytest.raises(ValueError, match="at least 10240"):
        I.audio_segments(torch.zeros(1, 10239), config)
    with pytest.raises(ValueError, match="at least 16"):
        I.video_segments(torch.zeros(1, 15, 3, 4, 4), config)


def test_tiny_clip_windows_are_batched_slices():
    model = S.build("tiny")
    config = model.config
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 200, 36, 48, 3), generator=gen, dtype=torch.uint8)
    video = I.video_input(frames, config)  # (2, 24, 16, 3, 32, 32)
    audio = I.audio_input(0.1 * torch.randn(2, 128000, generator=gen), config)  # (2, 24, 128, 66)
    logits = S.desync_logits(model, video, audio)
    assert set(logits) == {"first", "last"} and logits["first"].shape == (2, config.num_offsets)
    assert logits["first"].dtype == torch.float32 and torch.isfinite(logits["last"]).all()
    w = config.window_segments
    _close(S.offset_logits(model, video[1:, :w], audio[1:, :w]), logits["first"][1:])  # batch and window slices
    _close(S.offset_logits(model, video[:1, -w:], audio[:1, -w:]), logits["last"][:1])
    with pytest.raises(ValueError, match="at least 14 segments"):
        S.window_logits(model, torch.zeros(1, 13, 8, 32), torch.zeros(1, 13, 6, 32))
    with pytest.raises(ValueError, match="one window is 14 segments"):
        S.offset_logits(model, video[:, :13], audio[:, :13])
