"""Frozen extractors: Kaldi fbank, CAVP, TimeChat visual side, AudioMAE, presets, FrozenExtractors.

Tiny random models only, fully offline. Paper-size shapes are checked on the meta device.
"""
import json
import math
import os
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from extractors.audiomae import (AudioMAEConfig, AudioMAEEncoder, convert_audiomae_checkpoint, pool_tokens,
                                 sincos_pos_embed_2d)
from extractors.cavp import CAVPConfig, CAVPEncoder, convert_cavp_checkpoint, load_cavp
from extractors.checkpoint import StateDictMismatchError
from extractors.audiomae import waveform_to_audiomae_input
from extractors.fbank import LOG_FLOOR_EPS, kaldi_fbank, mel_scale, num_frames
from extractors.frozen import FrozenExtractors
from extractors.presets import PRESETS, ExtractorPreset, feature_dims, get_preset, register_preset
from extractors.timechat import (TIMECHAT_FILES, TimeChatConfig, TimeChatVisual, build_tokenizer,
                                 load_released)

TINY = get_preset("tiny")


def _frames(seed=0, b=1, t=40, h=36, w=48):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=g)


@pytest.fixture(scope="module")
def tiny_extractors():
    return FrozenExtractors.from_preset("tiny")


# --------------------------------------------------------------------------- Kaldi fbank
# Golden spectra written by Kaldi's compute-fbank-feats (--dither=0) for a 20-sample 16 kHz int16 file:
# torchaudio's compliance test assets (pytorch/audio, commit ed17513: test/assets/kaldi_file.wav and
# test/assets/kaldi/fbank-*.ark; file names encode the options). Kept: every case with
# snip_edges, power spectrum and no VTLN (what kaldi_fbank implements); energy columns are dropped,
# linear (use_log_fbank=false) outputs are compared after log, mean-subtracted ones in the linear domain.
KALDI_WAVE = [8192, 5681, 457, -2677, -840, 4279, 7974, 6847, 1936, -2246,
              -1852, 2754, 7339, 7686, 3477, -1419, -2500, 1227, 6336, 8130]
# (kaldi_fbank kwargs, Kaldi option use_log_fbank, subtract_mean, expected mel columns)
KALDI_CASES = [
    (dict(num_mel_bins=5, frame_length_ms=1.0, frame_shift_ms=0.5625, preemphasis=0.81, remove_dc_offset=False,
         round_to_power_of_two=True, window_type='rectangular', low_freq=2385.0, high_freq=7671.0),
     False, False, [[639400130.0, 96801936.0, 42896928.0, 20285366.0, 12146301.0]]),
    (dict(num_mel_bins=5, frame_length_ms=1.0, frame_shift_ms=0.5625, preemphasis=0.93, remove_dc_offset=False,
         round_to_power_of_two=True, window_type='hanning', low_freq=1017.0, high_freq=7657.0),
     False, False, [[72457528.0, 208315890.0, 263572190.0, 18172832.0, 148141.55]]),
    (dict(num_mel_bins=7, frame_length_ms=1.0625, frame_shift_ms=0.8125, preemphasis=0.08,
         remove_dc_offset=False, round_to_power_of_two=True, window_type='rectangular', low_freq=184.0,
         high_freq=7384.0),
     False, False, [[614245120.0, 88086504.0, 88627320.0, 1229595500.0, 2190115800.0, 304007200.0,
      83474568.0]]),
    (dict(num_mel_bins=6, frame_length_ms=1.0, frame_shift_ms=0.375, preemphasis=0.21, remove_dc_offset=False,
         round_to_power_of_two=False, window_type='hamming', low_freq=740.0, high_freq=6123.0),
     True, False, [[17.924768, 17.603115, 19.178545, 19.255573, 18.234602, 15.12282]]),
    (dict(num_mel_bins=8, frame_length_ms=1.0625, frame_shift_ms=0.6875, preemphasis=0.27,
         remove_dc_offset=True, round_to_power_of_two=True, window_type='blackman', low_freq=1628.0,
         high_freq=7818.0, blackman_coeff=2.0479),
     False, False, [[2839896800.0, 5022465500.0, 4148695600.0, 1030297000.0, 903238020.0, 736842240.0,
      58410944.0, 3364774.0]]),
    (dict(num_mel_bins=7, frame_length_ms=1.0625, frame_shift_ms=0.875, preemphasis=1.0, remove_dc_offset=False,
         round_to_power_of_two=True, window_type='povey', low_freq=4707.0, high_freq=7615.0),
     True, False, [[12.772402, 8.561202, 8.851182, 10.852233, 7.1930609, 8.9746771, 9.1924782]]),
    (dict(num_mel_bins=5, frame_length_ms=1.0625, frame_shift_ms=0.625, preemphasis=0.27, remove_dc_offset=True,
         round_to_power_of_two=True, window_type='blackman', low_freq=367.0, high_freq=2275.0,
         blackman_coeff=2.6192),
     False, False, [[1148194400.0, 465950080.0, 1231229400.0, 16052417.0, 2640913400.0]]),
    (dict(num_mel_bins=4, frame_length_ms=0.75, frame_shift_ms=0.9375, preemphasis=0.9, remove_dc_offset=False,
         round_to_power_of_two=True, window_type='rectangular', low_freq=3759.0, high_freq=6605.0),
     False, False, [[2606923.2, 12731271.0, 12089860.0, 16751882.0]]),
    (dict(num_mel_bins=5, frame_length_ms=1.0625, frame_shift_ms=1.0625, preemphasis=0.65,
         remove_dc_offset=True, round_to_power_of_two=True, window_type='povey', low_freq=3649.0,
         high_freq=7407.0),
     True, False, [[15.674416, 12.239862, 12.093767, 10.536715, 9.5292826]]),
    (dict(num_mel_bins=7, frame_length_ms=0.8125, frame_shift_ms=0.3125, preemphasis=0.46,
         remove_dc_offset=False, round_to_power_of_two=True, window_type='rectangular', low_freq=2830.0,
         high_freq=7876.0),
     False, True, [[39519456.0, 7449953.0, 10284646.0, -2397087.5, -2007913.5, -3062149.5, 6712390.0],
      [-39519440.0, -7449954.0, -10284646.0, 2397087.5, 2007913.5, 3062150.0, -6712390.0]]),
]


@pytest.mark.parametrize("kwargs,use_log,subtract_mean,expected", KALDI_CASES)
def test_fbank_matches_kaldi_golden_spectra(kwargs, use_log, subtract_mean, expected):
    ours = kaldi_fbank(torch.tensor(KALDI_WAVE, dtype=torch.float32), sample_rate=16000, **kwargs).double()
    expected = torch.tensor(expected, dtype=torch.float64)
    assert ours.shape == expected.shape
    if subtract_mean:  # Kaldi subtracted the column mean of the linear energies
        linear = ours.exp()
        torch.testing.assert_close(linear - linear.mean(0), expected, rtol=1e-4, atol=1e-4 * expected.abs().max())
    else:
        torch.testing.assert_close(ours, expected if use_log else expected.log(), rtol=1e-5, atol=1e-4)


def test_fbank_frame_count_follows_snip_edges():
    assert num_frames(160_000) == 998  # 1 + (160000 - 400) // 160: a 10 s clip
    for n in (400, 559, 560, 16_000):
        assert kaldi_fbank(torch.randn(n)).shape == (num_frames(n), 128)
    assert num_frames(399) == 0
    with pytest.raises(ValueError):
        kaldi_fbank(torch.randn(399))


def test_fbank_silence_is_the_log_floor():
    out = kaldi_fbank(torch.zeros(2, 4000))
    assert out.shape == (2, 23, 128)  # 1 + (4000 - 400) // 160
    assert torch.all(out == math.log(LOG_FLOOR_EPS))


def test_fbank_sinusoid_lands_in_the_mel_bin_centred_on_it():
    sr, bins = 16000, 128
    delta = (mel_scale(sr / 2) - mel_scale(20.0)) / (bins + 1)
    centres = [700.0 * (math.exp((mel_scale(20.0) + (m + 1) * delta) / 1127.0) - 1.0) for m in range(bins)]
    t = torch.arange(sr) / sr
    for freq in (250.0, 1000.0, 3000.0, 6500.0):
        out = kaldi_fbank(torch.sin(2 * math.pi * freq * t))  # (98, 128)
        peak = out[10:-10].mean(0).argmax().item()
        nearest = min(range(bins), key=lambda m: abs(centres[m] - freq))
        assert abs(peak - nearest) <= 1, (freq, peak, nearest)


def test_fbank_is_batched_and_dc_invariant():
    cfg = AudioMAEConfig()
    wave = 0.1 * torch.randn(3, 16_000, generator=torch.Generator().manual_seed(0))
    batched = waveform_to_audiomae_input(wave, cfg)
    assert batched.shape == (3, 1024, 128)
    torch.testing.assert_close(batched[1], waveform_to_audiomae_input(wave[1], cfg))
    torch.testing.assert_close(waveform_to_audiomae_input(wave + 0.3, cfg), batched, atol=1e-4, rtol=1e-4)


def test_peak_normalisation_removes_the_level():
    cfg = AudioMAEConfig()  # AudioLDM-2's loader: peak 0.5
    wave = torch.randn(16_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(waveform_to_audiomae_input(3.0 * wave, cfg), waveform_to_audiomae_input(wave, cfg),
                               atol=1e-4, rtol=1e-4)
    raw_level = replace(cfg, peak_normalize=None)  # without it the log-mel shifts with loudness
    plain = waveform_to_audiomae_input(wave, raw_level)  # 1 s: 98 real frames
    louder = waveform_to_audiomae_input(3.0 * wave, raw_level)
    # (mel filter 3 covers no FFT bin at 512 points and stays at the log floor)
    torch.testing.assert_close(louder[:98, 4:] - plain[:98, 4:], torch.full((98, 124), math.log(9) / (2 * 4.5689974)),
                               atol=1e-4, rtol=0)


def test_audiomae_input_pads_waveform_then_rows_and_normalises():
    cfg = replace(AudioMAEConfig(), peak_normalize=None)  # the level step is tested above
    norm = lambda fb: (fb - cfg.fbank_mean) / (2 * cfg.fbank_std)  # noqa: E731
    wave = 0.1 * torch.randn(160_000, generator=torch.Generator().manual_seed(0))  # a 10 s clip
    x = waveform_to_audiomae_input(wave, cfg)
    padded = F.pad(wave - wave.mean(), (0, 3_840))  # AudioLDM-2's pad_wav: zeros up to 10.24 s
    fbank = kaldi_fbank(padded - padded.mean())
    assert x.shape == (1024, 128) and fbank.shape == (1022, 128)
    torch.testing.assert_close(x[:1022], norm(fbank), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(x[1000:1022], torch.full((22, 128), norm(math.log(LOG_FLOOR_EPS))))  # silence
    torch.testing.assert_close(x[1022:], torch.full((2, 128), norm(0.0)))  # zero rows added after the log
    bare = waveform_to_audiomae_input(wave, replace(cfg, pad_waveform=False))  # fbank rows padded instead
    torch.testing.assert_close(bare[:998], norm(kaldi_fbank(wave - wave.mean())))
    torch.testing.assert_close(bare[998:], torch.full((26, 128), norm(0.0)))
    # longer clips are cut to 10.24 s *before* the level is normalised (AudioLDM-2 crops, then normalises)
    long = 0.1 * torch.randn(20 * 16_000, generator=torch.Generator().manual_seed(1))
    crop = long[:163_840]
    torch.testing.assert_close(waveform_to_audiomae_input(long, cfg)[:1022], norm(kaldi_fbank(crop - crop.mean())),
                               atol=1e-4, rtol=1e-4)
    spiked = long.clone()
    spiked[200_000] = 50.0  # beyond the segment: must not change the peak normalisation
    torch.testing.assert_close(waveform_to_audiomae_input(spiked, AudioMAEConfig()),
                               waveform_to_audiomae_input(long, AudioMAEConfig()))


# --------------------------------------------------------------------------- CAVP

def test_cavp_tiny_is_l2_normalised_per_step():
    model = CAVPEncoder(TINY.visual["cavp"]).eval()
    with torch.inference_mode():
        out = model(model.preprocess(_frames()))
    assert out.shape == (1, 40, 32)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(1, 40))


def test_cavp_preprocess_squashes_to_unit_range_without_normalisation():
    frames = torch.full((1, 2, 30, 50, 3), 255, dtype=torch.uint8)
    x = CAVPEncoder(TINY.visual["cavp"]).preprocess(frames)
    assert x.shape == (1, 2, 3, 64, 64)
    torch.testing.assert_close(x, torch.ones_like(x))


def test_cavp_temporal_mixing_only_in_inflated_stages():
    """1 inflated block in stages 3 and 4 each: a frame influences exactly its +-2 neighbours."""
    torch.manual_seed(0)
    model = CAVPEncoder(TINY.visual["cavp"]).eval()
    x = torch.rand(1, 12, 3, 64, 64)
    y = x.clone()
    y[:, 5] = torch.rand(3, 64, 64)
    with torch.inference_mode():
        changed = (model(x) - model(y)).abs().amax(-1)[0]  # (T,)
    assert torch.all(changed[3:8] > 1e-6) and torch.all(changed[:3] == 0) and torch.all(changed[8:] == 0)


def test_cavp_paper_shapes_on_meta():
    with torch.device("meta"):
        model = CAVPEncoder(CAVPConfig())
        out = model(torch.zeros(1, 40, 3, 224, 224))
    assert out.shape == (1, 40, 512)
    sd = model.state_dict()
    assert sd["video_encoder.layer3.0.conv1.conv.weight"].shape == (256, 512, 3, 1, 1)  # (3,1,1) inflated
    assert sd["video_encoder.layer2.0.conv1.conv.weight"].shape == (128, 256, 1, 1, 1)
    assert sd["video_encoder.conv1.conv.weight"].shape == (64, 3, 1, 7, 7)
    assert sd["video_project_head.weight"].shape == (512, 2048)
    assert 32.0e6 < sum(p.numel() for p in model.parameters()) < 33.5e6  # SlowOnly R50 + head


def _as_released_cavp(model):
    """Our state dict in the layout of cavp_epoch66.ckpt: DDP prefix, audio tower, logit scale."""
    sd = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    sd["module.spec_encoder.conv_block1.conv1.weight"] = torch.zeros(64, 1, 3, 3)
    sd["module.spec_encoder.fc1.weight"] = torch.zeros(4, 4)
    sd["module.logit_scale"] = torch.tensor(2.659)
    return {"state_dict": sd}


def test_cavp_converter_round_trip_and_load(tmp_path):
    torch.manual_seed(1)
    source = CAVPEncoder(TINY.visual["cavp"]).eval()
    released = _as_released_cavp(source)
    for k in ("module.video_encoder.conv1.conv.weight", "module.video_encoder.layer1.0.downsample.conv.weight",
              "module.video_encoder.layer3.0.conv1.bn.running_mean", "module.video_project_head.weight"):
        assert k in released["state_dict"]
    converted = convert_cavp_checkpoint(released, TINY.visual["cavp"])
    assert converted.keys() == source.state_dict().keys()
    path = tmp_path / "cavp_epoch66.ckpt"
    torch.save(released, path)
    loaded = load_cavp(str(path), TINY.visual["cavp"])
    x = torch.rand(1, 6, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training


def test_cavp_converter_names_missing_and_unexpected_keys():
    released = _as_released_cavp(CAVPEncoder(TINY.visual["cavp"]))
    del released["state_dict"]["module.video_encoder.layer2.0.conv2.bn.weight"]
    with pytest.raises(StateDictMismatchError, match=r"missing 1 \(e\.g\. video_encoder\.layer2\.0\.conv2\.bn\.weight"):
        convert_cavp_checkpoint(released, TINY.visual["cavp"])
    released = _as_released_cavp(CAVPEncoder(TINY.visual["cavp"]))
    released["state_dict"]["module.video_encoder.layer9.weight"] = torch.zeros(1)
    with pytest.raises(StateDictMismatchError, match=r"unexpected 1 \(e\.g\. video_encoder\.layer9\.weight\)"):
        convert_cavp_checkpoint(released, TINY.visual["cavp"])
    with pytest.raises(StateDictMismatchError, match="wrong shape"):
        convert_cavp_checkpoint(_as_released_cavp(CAVPEncoder(TINY.visual["cavp"])), CAVPConfig())


def test_cavp_missing_file_error_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cavp_epoch66.ckpt.*SimianLuo/Diff-Foley.*diff_foley_ckpt"):
        load_cavp(str(tmp_path / "cavp_epoch66.ckpt"))


# --------------------------------------------------------------------------- TimeChat

def test_timestamps_and_builtin_tokenizer_match_bert_pieces():
    model = TimeChatVisual(TINY.visual["timechat"])
    sentences = model.timestamps(40, 4.0)
    assert sentences[0] == "This frame is sampled at 0.0 second."
    assert sentences[1] == "This frame is sampled at 0.2 second."  # round(0.25, 1), as TimeChat's load_video
    assert sentences[39] == "This frame is sampled at 9.8 second."
    tok = build_tokenizer("builtin")
    pieces = tok.convert_ids_to_tokens(tok(sentences[39])["input_ids"])
    assert pieces == ["[CLS]", "this", "frame", "is", "sampled", "at", "9", ".", "8", "second", ".", "[SEP]"]
    assert tok.convert_ids_to_tokens(tok("This frame is sampled at 57.5 second.")["input_ids"])[6:9] == ["57", ".", "5"]


def test_timechat_tiny_windows_are_independent():
    torch.manual_seed(0)
    model = TimeChatVisual(TINY.visual["timechat"]).eval()
    frames = model.preprocess(_frames())
    assert frames.shape == (1, 40, 3, 56, 56)
    changed = frames.clone()
    changed[:, 35] = 0.0
    with torch.inference_mode():
        tokens, spans = model(frames, fps=4.0)
        tokens2, _ = model(changed, fps=4.0)
    assert tokens.shape == (1, 16, 32) and spans.tolist() == [[0, 32], [32, 40]]
    torch.testing.assert_close(tokens2[:, :8], tokens[:, :8], rtol=0, atol=0)  # window [0, 32) untouched
    assert (tokens2[:, 8:] - tokens[:, 8:]).abs().max() > 1e-4


def test_timechat_paper_shapes_on_meta():
    cfg = TimeChatConfig()
    assert cfg.window_spans(40) == [(0, 32), (32, 40)] and cfg.num_tokens(40) == 64
    with torch.device("meta"):
        model = TimeChatVisual(cfg, tokenizer=build_tokenizer("builtin"))  # same word pieces as bert-base-uncased
        tokens, spans = model(torch.zeros(1, 40, 3, 224, 224), fps=4.0)
    assert tokens.shape == (1, 64, 768) and spans.tolist() == [[0, 32], [32, 40]]
    sd = model.state_dict()
    assert sd["visual_encoder.pos_embed"].shape == (1, 257, 1408)
    assert sd["visual_encoder.blocks.38.mlp.fc1.weight"].shape == (6144, 1408)
    assert "visual_encoder.blocks.39.norm1.weight" not in sd and "visual_encoder.norm.weight" not in sd
    assert sd["frame_qformer.embeddings.word_embeddings.weight"].shape == (30523, 768)
    assert sd["frame_qformer.encoder.layer.10.crossattention.attention.key.weight"].shape == (768, 1408)
    assert "frame_qformer.encoder.layer.11.crossattention.attention.key.weight" not in sd  # every 2nd layer
    assert sd["video_qformer.encoder.layer.1.crossattention.attention.key.weight"].shape == (768, 768)
    assert sd["frame_position_embedding.weight"].shape == (96, 768)


def _to_lavis(key):
    """Inverse of the documented renames, written independently of the converter."""
    if key.startswith("frame_qformer."):
        key = "Qformer.bert." + key[len("frame_qformer."):].replace("embeddings.layernorm.", "embeddings.LayerNorm.")
    elif key.startswith("video_qformer."):
        key = "video_Qformer.bert." + key[len("video_qformer."):].replace("layernorm.", "embeddings.LayerNorm.", 1)
    elif key == "frame_position_embedding.weight":
        return "video_frame_position_embedding.weight"
    return key.replace(".attention.attention.", ".attention.self.").replace(".crossattention.attention.",
                                                                            ".crossattention.self.")


def _write_released_timechat(model, folder):
    sd = model.state_dict()
    eva = {k[len("visual_encoder."):]: v for k, v in sd.items() if k.startswith("visual_encoder.")}
    eva[f"blocks.{model.cfg.vit_depth}.norm1.weight"] = torch.zeros(model.cfg.vit_width)  # EVA-CLIP's 40th block
    eva["norm.weight"] = torch.zeros(model.cfg.vit_width)
    lavis = {_to_lavis(k): v for k, v in sd.items() if not k.startswith("visual_encoder.")}
    instruct = {k: v for k, v in lavis.items() if k.startswith(("ln_vision.", "Qformer.", "query_tokens"))}
    # wrong Q-Former values in the earlier file: timechat_7b.pth must override them
    instruct = {k: (torch.zeros_like(v) if k.startswith("Qformer.") else v) for k, v in instruct.items()}
    instruct["Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]
    instruct["t5_proj.weight"] = torch.zeros(2, 2)
    timechat = {k: v for k, v in lavis.items() if k.startswith(("Qformer.", "video_", "query_tokens"))}
    timechat["llama_proj.weight"] = torch.zeros(4096, 2)
    torch.save(eva, os.path.join(folder, "eva_vit_g.pth"))
    torch.save({"model": instruct}, os.path.join(folder, "instruct_blip_vicuna7b_trimmed.pth"))
    torch.save({"model": timechat}, os.path.join(folder, "timechat_7b.pth"))


def test_timechat_released_checkpoints_load_in_order(tmp_path):
    torch.manual_seed(3)
    source = TimeChatVisual(TINY.visual["timechat"]).eval()
    _write_released_timechat(source, tmp_path)
    torch.manual_seed(4)
    target = TimeChatVisual(TINY.visual["timechat"]).eval()
    load_released(target, str(tmp_path))
    frames = torch.randn(1, 40, 3, 56, 56)
    with torch.inference_mode():
        torch.testing.assert_close(target(frames, 4.0)[0], source(frames, 4.0)[0], rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/bert-base-uncased"):  # the paper's tokenizer folder
        load_released(TimeChatVisual(replace(TINY.visual["timechat"], tokenizer="bert-base-uncased")), str(tmp_path))


def test_timechat_missing_checkpoint_is_named(tmp_path):
    torch.save({}, tmp_path / "eva_vit_g.pth")
    with pytest.raises(FileNotFoundError, match="instruct_blip_vicuna7b_trimmed.pth.*storage.googleapis.com"):
        load_released(TimeChatVisual(TINY.visual["timechat"]), str(tmp_path))
    assert list(TIMECHAT_FILES) == ["eva_vit_g.pth", "instruct_blip_vicuna7b_trimmed.pth", "timechat_7b.pth"]


def test_timechat_incomplete_checkpoint_names_the_key(tmp_path):
    source = TimeChatVisual(TINY.visual["timechat"])
    _write_released_timechat(source, tmp_path)
    ckpt = torch.load(tmp_path / "timechat_7b.pth", weights_only=True)
    del ckpt["model"]["video_Qformer.bert.encoder.layer.1.output_query.dense.weight"]
    torch.save(ckpt, tmp_path / "timechat_7b.pth")
    with pytest.raises(StateDictMismatchError,
                       match=r"timechat_7b.pth.*missing 1 .*video_qformer.encoder.layer.1.output_query.dense.weight"):
        load_released(TimeChatVisual(TINY.visual["timechat"]), str(tmp_path))


# --------------------------------------------------------------------------- AudioMAE

def test_sincos_table_matches_mae_layout():
    d = 16
    table = sincos_pos_embed_2d(d, (64, 8))
    assert table.shape == (513, d) and torch.all(table[0] == 0)
    omega = [1.0 / 10000 ** (k / (d / 4)) for k in range(d // 4)]
    for t, f in ((0, 0), (1, 0), (0, 1), (63, 7), (10, 3)):
        row = table[1 + t * 8 + f]  # time-major token order
        expected = ([math.sin(f * w) for w in omega] + [math.cos(f * w) for w in omega]
                    + [math.sin(t * w) for w in omega] + [math.cos(t * w) for w in omega])
        torch.testing.assert_close(row, torch.tensor(expected, dtype=torch.float32))


def test_pooling_is_time_major_mean_of_avg_and_max():
    hidden = torch.arange(64.0).repeat_interleave(8)[None, :, None].expand(2, 512, 3)  # value = time index
    pooled = pool_tokens(hidden, (64, 8), 8)
    assert pooled.shape == (2, 8, 3)
    expected = torch.tensor([((8 * i + 3.5) + (8 * i + 7)) / 2 for i in range(8)])
    torch.testing.assert_close(pooled[0, :, 0], expected)


def test_audiomae_tiny_and_paper_shapes():
    torch.manual_seed(0)
    model = AudioMAEEncoder(TINY.audiomae).eval()
    assert TINY.audiomae.num_tokens == 8 and not model.vit.pos_embed.requires_grad
    with torch.inference_mode():
        out = model(torch.randn(2, 1024, 128))
    assert out.shape == (2, 8, 32)
    with torch.device("meta"):
        paper = AudioMAEEncoder(AudioMAEConfig())
        assert paper(torch.zeros(1, 1024, 128)).shape == (1, 8, 768)
    assert sum(p.numel() for p in paper.parameters()) == pytest.approx(85.6e6, rel=0.01)  # ViT-B/16, 1 channel


def test_audiomae_converter_accepts_mae_and_audioldm2_layouts():
    torch.manual_seed(5)
    source = AudioMAEEncoder(TINY.audiomae).eval()
    encoder = {k[len("vit."):]: v for k, v in source.state_dict().items()}
    mae = {"model": {**encoder, "decoder_embed.weight": torch.zeros(2, 2), "mask_token": torch.zeros(1, 1, 2)}}
    nested = {"state_dict": {f"cond_stage_models.0.cond_stage_models.0.audiomae.model.{k}": v for k, v in
                             mae["model"].items()} | {"model.diffusion_model.out.weight": torch.zeros(1)}}
    fbank = torch.randn(1, 1024, 128)
    for ckpt in (mae, nested, encoder):
        target = AudioMAEEncoder(TINY.audiomae).eval()
        target.load_state_dict(convert_audiomae_checkpoint(ckpt, TINY.audiomae))
        with torch.inference_mode():
            torch.testing.assert_close(target(fbank), source(fbank), rtol=0, atol=0)
    del encoder["blocks.3.attn.qkv.weight"]
    with pytest.raises(StateDictMismatchError, match="vit.blocks.3.attn.qkv.weight"):
        convert_audiomae_checkpoint(encoder, TINY.audiomae)


# --------------------------------------------------------------------------- presets

def test_presets_dims_without_building_models():
    assert feature_dims("paper") == get_preset("paper").dims
    paper = get_preset("paper").dims
    cavp, timechat = paper.streams["cavp"], paper.streams["timechat"]
    assert (paper.num_frames, cavp.dim, timechat.dim, len(timechat.spans), timechat.num_tokens,
            paper.num_audio_tokens, paper.audio_token_dim) == (40, 512, 768, 2, 64, 8, 768)
    assert list(paper.streams) == ["cavp", "timechat"] and cavp.shape == (40, 512)  # fusion order
    tiny = TINY.dims
    assert (tiny.num_frames, len(tiny.streams["timechat"].spans), tiny.num_audio_tokens) == (40, 2, 8)
    assert TINY.clip == get_preset("paper").clip and TINY.audioldm2 == "tiny"


def test_preset_dict_and_fingerprint(monkeypatch):
    json.dumps(TINY.to_dict())
    assert TINY.fingerprint() == get_preset("tiny").fingerprint() and len(TINY.fingerprint()) == 12
    assert TINY.fingerprint() != get_preset("paper").fingerprint()
    assert replace(TINY, seed=1).fingerprint() != TINY.fingerprint()
    assert replace(TINY, weights_dir="/a").fingerprint() == replace(TINY, weights_dir="/b").fingerprint()
    monkeypatch.setenv("MFM_WEIGHTS", "/somewhere/weights")  # read when weights load, not at import
    assert get_preset("paper").resolved_weights_dir() == "/somewhere/weights"
    assert TINY.resolved_weights_dir() is None  # random presets never read it
    released = get_preset("paper").fingerprint()
    monkeypatch.delenv("MFM_WEIGHTS")
    assert get_preset("paper").resolved_weights_dir() is None and get_preset("paper").fingerprint() != released
    with pytest.raises(KeyError, match="unknown extractor preset"):
        get_preset("nope")
    with pytest.raises(KeyError, match="already registered"):
        register_preset(ExtractorPreset(name="tiny"))
    assert set(PRESETS) >= {"paper", "tiny"}


# --------------------------------------------------------------------------- FrozenExtractors

def test_frozen_tiny_encode_shapes(tiny_extractors):
    fx = tiny_extractors
    assert not fx.training and not any(p.requires_grad for p in fx.parameters())
    video = fx.encode_video(_frames(b=2))
    streams = fx.dims.streams
    assert list(video) == ["cavp", "timechat"]
    assert video["cavp"].shape == (2, 40, streams["cavp"].dim) and video["cavp"].dtype == torch.float32
    assert video["timechat"].shape == (2, *streams["timechat"].shape)
    assert streams["timechat"].spans == ((0, 32), (32, 40))
    audio = fx.encode_audio(0.1 * torch.randn(2, 160_000))
    assert audio.shape == (2, fx.dims.num_audio_tokens, fx.dims.audio_token_dim) == (2, 8, 32)
    with pytest.raises(ValueError, match="expected 40 frames"):
        fx.encode_video(_frames(t=39))


def test_frozen_builds_identical_weights_without_touching_global_rng(tiny_extractors):
    state = torch.random.get_rng_state()
    again = FrozenExtractors.from_preset(TINY)
    assert torch.equal(torch.random.get_rng_state(), state)
    frames, wave = _frames(seed=7), 0.1 * torch.randn(1, 160_000)
    a, b = tiny_extractors.encode_video(frames), again.encode_video(frames)
    for key in ("cavp", "timechat"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    torch.testing.assert_close(tiny_extractors.encode_audio(wave), again.encode_audio(wave), rtol=0, atol=0)
    other = FrozenExtractors.from_preset(replace(TINY, seed=1))
    assert not torch.equal(other.encode_video(frames)["cavp"], a["cavp"])


def test_frozen_paper_preset_shapes_on_meta():
    paper = get_preset("paper")
    paper = replace(paper, released=False,
                    visual={**paper.visual, "timechat": replace(paper.visual["timechat"], tokenizer="builtin")})
    with torch.device("meta"):
        fx = FrozenExtractors.from_preset(paper)
        video = fx.encode_video(torch.zeros(1, 40, 360, 640, 3, dtype=torch.uint8))
        audio = fx.encode_audio(torch.zeros(1, 160_000))
    assert video["cavp"].shape == (1, 40, 512)
    assert video["timechat"].shape == (1, 64, 768)
    assert audio.shape == (1, 8, 768)


def test_frozen_missing_weights_error_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="cavp_epoch66.ckpt"):
        FrozenExtractors.from_preset(replace(TINY, weights_dir=str(tmp_path)))
    torch.save({}, tmp_path / "cavp_epoch66.ckpt")
    # checked before any model is built: the full-size paper models are never allocated here
    with pytest.raises(FileNotFoundError, match="eva_vit_g.pth.*audiomae.safetensors or audiomae.pth"):
        FrozenExtractors.from_preset(replace(get_preset("paper"), weights_dir=str(tmp_path)))
