"""Faithfulness to the original implementations, proven on fixtures made by running them.

``tests/fixtures/`` (see its README) holds, for CAVP (Diff-Foley), EVA-ViT-g + ``ln_vision`` and the
two Q-Formers (TimeChat), AudioMAE (as AudioLDM-2 uses it) and Kaldi fbank (torchaudio):

* ``*_keys.json``: every key and shape of the full-size original state dicts. Our converters must
  turn them into exactly our paper-size models' state dicts (on the meta device, no weights), and
  drop only the keys they document as unused;
* ``*_golden.safetensors`` + ``.json``: a tiny original model's state dict (original layout), its
  inputs and outputs (with intermediates). We build our model from the recorded tiny config, load
  the state dict through our converter and must reproduce every output to 1e-4.

Also here: preprocessing against the originals' libraries (PIL resize, CLIP statistics, AudioLDM-2's
waveform handling) and TimeChat's mixed precision.
"""
import ast
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from extractors.audiomae import (AUDIOLDM2_AUDIOMAE_PREFIX, AudioMAEConfig, AudioMAEEncoder, audiomae_key_map,
                                 convert_audiomae_checkpoint)
from extractors.cavp import CAVPConfig, CAVPEncoder, cavp_key_map, convert_cavp_checkpoint
from extractors.audiomae import waveform_to_audiomae_input
from extractors.fbank import LOG_FLOOR_EPS, kaldi_fbank, num_frames
from extractors.frozen import FrozenExtractors
from extractors.presets import get_preset
from golden import assert_spectrogram_close  # tests/golden.py
from extractors.timechat import (CLIP_MEAN, CLIP_STD, TIMECHAT_FILES, Fp32LayerNorm, TimeChatConfig, TimeChatVisual,
                                 convert_timechat_state_dict, merge_timechat_checkpoints, timechat_key_map)

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent
ATOL = 1e-4
INSTRUCT, TIMECHAT_7B = "instruct_blip_vicuna7b_trimmed.pth", "timechat_7b.pth"


def _json(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _golden(name: str) -> tuple[dict, dict, dict]:
    """(original-layout state dict, inputs, outputs) of ``<name>_golden.safetensors``."""
    tensors = load_file(FIXTURES / f"{name}_golden.safetensors")
    groups = {"state.": {}, "input.": {}, "output.": {}}
    for key, value in tensors.items():
        prefix = next(p for p in groups if key.startswith(p))
        groups[prefix][key[len(prefix):]] = value
    return groups["state."], groups["input."], groups["output."]


def _fake_state(shapes: dict) -> dict:
    """Weightless original-layout state dict: meta tensors of the recorded shapes (int64 buffers as such)."""
    def dtype(key):
        return torch.int64 if key.endswith(("num_batches_tracked", "position_ids")) else torch.float32
    return {k: torch.empty(s, dtype=dtype(k), device="meta") for k, s in shapes.items()}


def _shapes(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    torch.testing.assert_close(actual, expected, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def paper_timechat():
    with torch.device("meta"):
        return TimeChatVisual(TimeChatConfig())


# =========================================================================== key layouts (full size)

def test_cavp_converter_maps_every_video_key_of_the_full_checkpoint():
    keys = _json("cavp_keys")
    released = {"state_dict": {f"module.{k}": v for k, v in _fake_state(keys).items()}}  # DDP layout
    converted = convert_cavp_checkpoint(released)  # strict-loads into a meta CAVPEncoder
    with torch.device("meta"):
        ours = CAVPEncoder(CAVPConfig()).state_dict()
    assert _shapes(converted) == _shapes(ours)
    video = {k for k in keys if k.startswith(("video_encoder.", "video_project_head."))}
    assert {cavp_key_map(k) for k in video} == set(ours) and len(video) == len(ours) == 320
    dropped = {k for k in keys if cavp_key_map(k) is None}
    assert dropped == {k for k in keys if k.startswith("spec_encoder.")} | {"logit_scale"}  # audio tower
    assert len(dropped) == len(keys) - len(ours) == 82


def test_eva_vit_g_converter_maps_every_key(paper_timechat):
    keys = _json("eva_vit_g_keys")
    converted = convert_timechat_state_dict(_fake_state(keys), source="eva")
    ours = {k: v for k, v in _shapes(paper_timechat.state_dict()).items() if k.startswith("visual_encoder.")}
    assert _shapes(converted) == ours and len(ours) == len(keys) == 511  # nothing dropped, nothing missing
    # EVA-CLIP-g extras that LAVIS' non-strict load ignores are dropped on purpose
    assert timechat_key_map("norm.weight", "eva") is None and timechat_key_map("head.weight", "eva") is None


def test_timechat_checkpoints_fill_the_whole_model(paper_timechat):
    eva = _fake_state(_json("eva_vit_g_keys"))
    keys = _json("timechat_qformer_keys")
    fake = _fake_state(keys)
    for name in ("ln_vision.weight", "query_tokens", "Qformer.bert.embeddings.word_embeddings.weight",
                 "video_query_tokens", "video_Qformer.bert.encoder.layer.1.crossattention.self.key.weight",
                 "video_frame_position_embedding.weight", "llama_proj.weight"):
        assert name in keys
    # the release split: InstructBLIP has ln_vision + frame Q-Former; TimeChat re-saves the Q-Former + video side
    instruct = {k: v for k, v in fake.items() if k.startswith(("ln_vision.", "Qformer.", "query_tokens"))}
    timechat = {k: v for k, v in fake.items() if not k.startswith("ln_vision.")}
    merged = merge_timechat_checkpoints({"eva_vit_g.pth": eva, INSTRUCT: {"model": instruct},
                                         TIMECHAT_7B: {"model": timechat}}, TimeChatConfig())
    assert _shapes(merged) == _shapes(paper_timechat.state_dict())
    dropped = {k for k in keys if timechat_key_map(k) is None}
    assert dropped == {"llama_proj.weight", "llama_proj.bias",  # LLaMA side: we keep the tokens before it
                       "Qformer.bert.embeddings.position_ids", "video_Qformer.bert.embeddings.position_ids"}
    assert len(keys) - len(dropped) + len(eva) == len(merged)


def test_timechat_merge_resizes_a_shorter_frame_position_table():
    cfg = get_preset("tiny").visual["timechat"]
    with torch.device("meta"):
        shapes = _shapes(TimeChatVisual(cfg).state_dict())
    lavis = {"video_frame_position_embedding.weight": torch.arange(4.0)[:, None].expand(4, cfg.qformer_hidden)}
    state = {k: torch.zeros(s) for k, s in shapes.items() if k != "frame_position_embedding.weight"}
    eva = {k[len("visual_encoder."):]: v for k, v in state.items() if k.startswith("visual_encoder.")}
    rest = {k: v for k, v in state.items() if not k.startswith("visual_encoder.")}
    merged = merge_timechat_checkpoints({"eva_vit_g.pth": eva, INSTRUCT: {"model": {}},
                                         TIMECHAT_7B: {"model": {**rest, **lavis}}}, cfg)
    rows = merged["frame_position_embedding.weight"][:, 0]  # 4 rows -> 96, nearest, as TimeChat
    assert rows.shape == (96,) and rows.tolist() == [i // 24 for i in range(96)]
    assert list(TIMECHAT_FILES) == ["eva_vit_g.pth", INSTRUCT, TIMECHAT_7B]


@pytest.mark.parametrize("fixture,prefix", [("audiomae_keys", ""),
                                            ("audiomae_audioldm2_keys", AUDIOLDM2_AUDIOMAE_PREFIX)])
def test_audiomae_converter_maps_every_encoder_key(fixture, prefix):
    keys = _json(fixture)
    assert all(k.startswith(prefix) for k in keys)
    state = _fake_state(keys)
    if prefix:  # the rest of an AudioLDM-2 checkpoint (UNet, CLAP, T5, ...) is ignored
        state["model.diffusion_model.out.2.weight"] = torch.empty(8, 320, 3, 3, device="meta")
        state["cond_stage_models.0.cond_stage_models.0.model.logit_scale_a"] = torch.empty((), device="meta")
        state = {"state_dict": state}
    converted = convert_audiomae_checkpoint(state)
    with torch.device("meta"):
        ours = AudioMAEEncoder(AudioMAEConfig()).state_dict()
    assert _shapes(converted) == _shapes(ours) and len(ours) == 150
    local = [k[len(prefix):] for k in keys]
    dropped = {k for k in local if audiomae_key_map(k) is None}
    assert dropped == {k for k in local if k.startswith("decoder_")} | {"mask_token"}  # the MAE decoder
    assert len(dropped) == len(keys) - len(ours) == 104


# =========================================================================== goldens (tiny originals)

def test_cavp_golden():
    info = _json("cavp_golden")
    state, inputs, outputs = _golden("cavp")
    cfg = CAVPConfig(image_size=info["input_shape"][-1], base_channels=info["base_channels"],
                     stage_blocks=tuple(info["stage_blocks"]), out_dim=info["embed_dim"])
    assert cfg.feat_dim == info["feat_dim"]
    model = CAVPEncoder(cfg).eval()
    model.load_state_dict(convert_cavp_checkpoint({"state_dict": {f"module.{k}": v for k, v in state.items()}}, cfg))
    video = inputs["video"]  # (B, T, 3, H, W) in [0, 1], as encode_video takes it
    with torch.inference_mode():
        _close(model.video_encoder(video.permute(0, 2, 1, 3, 4)), outputs["backbone"][..., 0, 0])  # T kept
        _close(model(video, normalize=False), outputs["features_unnormalized"])
        _close(model(video), outputs["features"])


def _tiny_timechat_config() -> TimeChatConfig:
    """Our config for the tiny originals of both TimeChat goldens (ViT from one, Q-Formers from the other)."""
    vit, qf = _json("eva_vit_g_golden"), _json("timechat_qformer_golden")
    bert = qf["frame_qformer_bert"]
    assert qf["encoder_width"] == vit["embed_dim"] and qf["video_encoder_width"] == bert["hidden_size"]
    assert bert["layer_norm_eps"] == 1e-12 and bert["hidden_act"] == "gelu" and qf["video_cross_attention_freq"] == 1
    return TimeChatConfig(
        image_size=vit["img_size"], vit_patch_size=vit["patch_size"], vit_width=vit["embed_dim"],
        vit_depth=vit["depth"], vit_heads=vit["num_heads"], vit_mlp_ratio=vit["mlp_ratio"],
        vit_layer_norm_eps=vit["layer_norm_eps"], ln_vision_eps=vit["ln_vision_eps"],
        num_query_tokens=qf["num_query_token"], qformer_hidden=bert["hidden_size"],
        qformer_layers=bert["num_hidden_layers"], qformer_heads=bert["num_attention_heads"],
        qformer_intermediate=bert["intermediate_size"], qformer_cross_attention_freq=qf["cross_attention_freq"],
        qformer_vocab_size=qf["frame_qformer_vocab_after_resize"],
        qformer_max_positions=bert["max_position_embeddings"],
        video_num_query_tokens=qf["num_video_query_token"], video_qformer_hidden=bert["hidden_size"],
        video_qformer_layers=qf["video_qformer_layers"], video_qformer_heads=bert["num_attention_heads"],
        video_qformer_intermediate=bert["intermediate_size"], window=qf["window_size"], stride=qf["stride"],
        max_frame_pos=qf["max_frame_pos"], tokenizer="builtin")


@pytest.fixture(scope="module")
def golden_timechat():
    """Our TimeChatVisual holding both goldens' weights, loaded the way released files are."""
    cfg = _tiny_timechat_config()
    vit_state, _, _ = _golden("eva_vit_g")
    qformer_state, _, _ = _golden("timechat_qformer")
    eva = {k: v for k, v in vit_state.items() if not k.startswith("ln_vision.")}  # eva_vit_g.pth layout
    instruct = {k: v for k, v in vit_state.items() if k.startswith("ln_vision.")}
    merged = merge_timechat_checkpoints({"eva_vit_g.pth": eva, INSTRUCT: {"model": instruct},
                                         TIMECHAT_7B: {"model": qformer_state}}, cfg)
    model = TimeChatVisual(cfg).eval()
    model.load_state_dict(merged, strict=True)
    return model


def test_eva_vit_g_and_ln_vision_golden(golden_timechat):
    info = _json("eva_vit_g_golden")
    model = golden_timechat
    _, inputs, outputs = _golden("eva_vit_g")
    assert model.visual_encoder.blocks[0].mlp.fc1.out_features == info["mlp_hidden"]  # int(48 * 4.3637)
    assert model.visual_encoder.blocks[0].norm1.eps == info["layer_norm_eps"] and model.ln_vision.eps == 1e-5
    with torch.inference_mode():
        _close(model.visual_encoder.forward_features(inputs["images"]), outputs["vit_tokens"])  # no final norm
        _close(model.encode_images(inputs["images"]), outputs["image_embeds"])


def test_frame_and_video_qformer_golden(golden_timechat):
    info = _json("timechat_qformer_golden")
    model = golden_timechat
    state, inputs, outputs = _golden("timechat_qformer")
    assert model.frame_qformer.embeddings.layernorm.eps == 1e-12 and model.video_qformer.layernorm.eps == 1e-12
    assert [list(s) for s in model.cfg.window_spans(info["frames"])] == info["windows"]
    mask = inputs["timestamps_attention_mask"]
    assert not mask.all()  # padded timestamps: the -10000 / all-ones mask findings are exercised
    seen = {"frame": [], "memory": [], "window": []}
    hooks = [
        model.frame_qformer.register_forward_hook(lambda m, a, out: seen["frame"].append(out.last_hidden_state)),
        model.video_qformer.register_forward_pre_hook(
            lambda m, a, kw: seen["memory"].append(kw["encoder_hidden_states"]), with_kwargs=True),
        model.video_qformer.register_forward_hook(lambda m, a, out: seen["window"].append(out.last_hidden_state)),
    ]
    try:
        with torch.inference_mode():
            tokens = model.encode_image_embeds(inputs["image_embeds"], inputs["timestamps_input_ids"], mask,
                                               batch_size=info["batch"])
    finally:
        for hook in hooks:
            hook.remove()
    _close(seen["frame"][0], outputs["frame_qformer_last_hidden_state"])  # queries + every text position
    assert len(seen["window"]) == len(info["windows"]) == 2
    for w in range(2):
        _close(seen["memory"][w], outputs[f"window{w}_encoder_hidden_states"])  # + frame position embedding
        _close(seen["window"][w], outputs[f"window{w}_video_qformer_last_hidden_state"])
    _close(tokens, outputs["video_hidden"])
    # our tokens are TimeChat's right before llama_proj (the one step we drop)
    _close(F.linear(tokens, state["llama_proj.weight"], state["llama_proj.bias"]), outputs["inputs_llama"])
    # the fixture is sensitive to the findings: masking the padded text tokens in the video Q-Former
    # (instead of TimeChat's all-ones mask) moves the output far beyond the tolerance
    memory = seen["memory"][0]
    keep = torch.cat([torch.ones(4, info["num_query_token"], dtype=torch.long), mask[:4]], 1).reshape(1, -1)
    with torch.inference_mode():
        masked = model.video_qformer(query_embeds=model.video_query_tokens, encoder_hidden_states=memory,
                                     encoder_attention_mask=keep).last_hidden_state
    assert (masked - outputs["window0_video_qformer_last_hidden_state"]).abs().max() > 100 * ATOL


def test_audiomae_golden():
    info = _json("audiomae_golden")
    state, inputs, outputs = _golden("audiomae")
    pool = info["conditioner_params"]
    assert pool["eval_time_pooling"] == pool["eval_freq_pooling"]
    cfg = AudioMAEConfig(target_frames=info["img_size"][0], num_mel_bins=info["img_size"][1],
                         patch_size=info["patch_size"], embed_dim=info["embed_dim"], depth=info["depth"],
                         num_heads=info["num_heads"], mlp_ratio=info["mlp_ratio"],
                         layer_norm_eps=info["layer_norm_eps"], average_blocks=tuple(info["averaged_blocks"]),
                         pool_kernel=pool["eval_time_pooling"])
    assert info["averaged_blocks"] == list(range(info["contextual_depth"] + 1, info["depth"]))  # n > contextual_depth
    # random init already has AudioMAE's sin-cos table, built on its swapped (8, 64) patch_hw grid
    assert cfg.pos_embed_grid == tuple(info["patch_hw_attr"]) == (8, 64)
    model = AudioMAEEncoder(cfg).eval()
    _close(model.vit.pos_embed.detach(), state["pos_embed"], atol=1e-6)
    for ckpt in ({"model": state}, {"state_dict": {AUDIOLDM2_AUDIOMAE_PREFIX + k: v for k, v in state.items()}}):
        model = AudioMAEEncoder(cfg).eval()
        model.load_state_dict(convert_audiomae_checkpoint(ckpt, cfg))
        with torch.inference_mode():
            _close(model.contextual_embedding(inputs["fbank"]), outputs["contextual_emb"])  # blocks averaged, CLS first
            _close(model(inputs["fbank"]), outputs["pooled"])  # 8 tokens, time order
    assert outputs["pooled_mask"].shape == (1, cfg.num_tokens) and outputs["pooled_mask"].eq(1).all()


KALDI_ARGS = {"htk_compat": True, "sample_frequency": 16000, "use_energy": False, "window_type": "hanning",
              "num_mel_bins": 128, "dither": 0.0, "frame_shift": 10}


def test_kaldi_fbank_golden():
    info = _json("kaldi_fbank_golden")
    assert info["kwargs"] == KALDI_ARGS  # htk_compat only matters with use_energy; the rest are Kaldi defaults
    _, inputs, outputs = _golden("kaldi_fbank")
    assert set(inputs) == {"noise", "sine440", "short"}
    for name, wave in inputs.items():
        ours = kaldi_fbank(wave, sample_rate=16000, num_mel_bins=128, frame_shift_ms=10.0, window_type="hanning")[0]
        assert ours.shape[0] == num_frames(wave.shape[-1]) == 1 + (wave.shape[-1] - 400) // 160
        assert_spectrogram_close(ours, outputs[name])


# =========================================================================== preprocessing

def _pil_resize(frame: np.ndarray, size: int) -> torch.Tensor:
    """Diff-Foley: ``transforms.Resize((s, s))`` on a PIL image + ``ToTensor`` -> (3, s, s) in [0, 1]."""
    resized = np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))
    return torch.from_numpy(resized.copy()).permute(2, 0, 1).float() / 255.0


@pytest.mark.parametrize("h,w", [(180, 320), (48, 40)])  # down- and up-scaling
def test_cavp_preprocess_is_pil_squash_resize_without_normalisation(h, w):
    frames = torch.randint(0, 256, (1, 2, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(h))
    with torch.device("meta"):
        model = CAVPEncoder(CAVPConfig())
    ours = model.preprocess(frames)  # runs on the CPU frames; the model's weights are not used
    assert ours.shape == (1, 2, 3, 224, 224) and ours.min() >= 0 and ours.max() <= 1
    assert torch.equal(ours * 255, (ours * 255).round())  # uint8 levels, as PIL hands them over
    for t in range(2):
        diff = (ours[0, t] - _pil_resize(frames[0, t].numpy(), 224)).abs()
        assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0).float().mean() < 0.05  # PIL's rounding, rarely


def test_timechat_preprocess_is_clip_normalised():
    assert CLIP_MEAN == (0.48145466, 0.4578275, 0.40821073) and CLIP_STD == (0.26862954, 0.26130258, 0.27577711)
    model = TimeChatVisual(replace(get_preset("tiny").visual["timechat"], image_size=224))
    frames = torch.randint(0, 256, (1, 1, 90, 160, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ours = model.preprocess(frames)[0, 0]
    expected = (_pil_resize(frames[0, 0].numpy(), 224) - torch.tensor(CLIP_MEAN)[:, None, None]) \
        / torch.tensor(CLIP_STD)[:, None, None]
    assert (ours - expected).abs().max() <= 1 / 255 / min(CLIP_STD) + 1e-5


def test_audiomae_input_follows_audioldm2_from_the_kaldi_golden():
    """normalize_wav (mean off, peak 0.5) -> pad the waveform to 10.24 s -> fbank -> 2 zero rows -> normalise."""
    _, inputs, outputs = _golden("kaldi_fbank")
    cfg = AudioMAEConfig()
    assert (cfg.peak_normalize, cfg.pad_waveform, cfg.segment_samples) == (0.5, True, 163_840)
    norm = lambda fb: (fb - cfg.fbank_mean) / (2 * cfg.fbank_std)  # noqa: E731
    wave = inputs["noise"][0]  # 1 s: 98 frames lie fully inside the signal
    centred = wave - wave.mean()
    gain = 0.5 / (centred.abs().max() + 1e-8)  # log-mel of a scaled signal shifts by 2 ln(gain)
    x = waveform_to_audiomae_input(3.0 * wave + 0.2, cfg)  # level and DC do not matter
    assert x.shape == (1024, 128)
    floor = math.log(LOG_FLOOR_EPS)  # (mel bin 3 covers no FFT bin: it stays at the floor whatever the level)
    golden = outputs["noise"]
    _close(x[:98], norm(torch.where(golden > floor, golden + 2 * torch.log(gain), golden)))
    _close(x[100:1022], torch.full((922, 128), norm(floor)))  # padded waveform: digital silence
    _close(x[1022:], torch.full((2, 128), norm(0.0)))  # 1 + (163840 - 400) // 160 = 1022 frames, then 2 zero rows
    # without waveform padding (extract_kaldi_fbank_feature on the bare 1 s): 98 frames + 926 zero rows
    bare = waveform_to_audiomae_input(wave, replace(cfg, peak_normalize=None, pad_waveform=False))
    _close(bare[:98], norm(outputs["noise"]))
    _close(bare[98:], torch.full((926, 128), norm(0.0)))


# =========================================================================== precision

@pytest.mark.parametrize("precision,dtype,tol", [("bf16", torch.bfloat16, 0.1), ("fp16", torch.float16, 0.02)])
def test_timechat_mixed_precision_like_lavis(precision, dtype, tol):
    cfg = get_preset("tiny").visual["timechat"]
    torch.manual_seed(0)
    full = TimeChatVisual(cfg).eval()
    half = TimeChatVisual(replace(cfg, precision=precision)).eval()
    half.load_state_dict(full.state_dict())
    vit = half.visual_encoder
    cast = {k for k, v in vit.state_dict().items() if v.dtype == dtype}
    linear = {f"{n}.{p}" for n, m in vit.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))
              for p, _ in m.named_parameters(recurse=False)}
    assert cast == linear and "patch_embed.proj.weight" in cast and "blocks.0.attn.qkv.weight" in cast
    fp32 = {k for k, v in half.state_dict().items() if v.is_floating_point() and v.dtype == torch.float32}
    assert {"visual_encoder.blocks.0.norm1.weight", "visual_encoder.blocks.0.attn.q_bias",
            "visual_encoder.cls_token", "visual_encoder.pos_embed", "ln_vision.weight", "query_tokens"} <= fp32
    assert all(p.dtype == torch.float32 for p in half.frame_qformer.parameters())  # autocast, not cast
    frames = torch.randn(2, 40, 3, 56, 56, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference, _ = full(frames, 4.0)
        tokens, _ = half(frames, 4.0)
        embeds = half.encode_images(frames[0])
    assert embeds.dtype == torch.float32 and tokens.dtype == torch.float32  # fp32 residual streams / ln_vision
    error = ((tokens - reference).norm() / reference.norm()).item()
    assert 1e-4 < error < tol  # half matmuls really ran, and stay close
    assert get_preset("paper").visual["timechat"].precision == "fp16" and get_preset("tiny").visual["timechat"].precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        TimeChatConfig(precision="fp8")


def test_ln_vision_computes_in_fp32():
    norm = Fp32LayerNorm(48, eps=1e-5)
    nn.init.normal_(norm.weight)
    x = (10 * torch.randn(3, 48)).to(torch.bfloat16)
    out = norm(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, F.layer_norm(x.float(), (48,), norm.weight, norm.bias, 1e-5).to(torch.bfloat16))


def test_frozen_extractors_in_bf16_stay_close_to_fp32():
    tiny = get_preset("tiny")
    mixed = replace(tiny, visual={**tiny.visual, "timechat": replace(tiny.visual["timechat"], precision="bf16")})
    assert mixed.fingerprint() != tiny.fingerprint()  # caches of the two precisions never mix
    frames = torch.randint(0, 256, (1, 40, 36, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    a = FrozenExtractors.from_preset(tiny).encode_video(frames)
    b = FrozenExtractors.from_preset(mixed).encode_video(frames)
    torch.testing.assert_close(b["cavp"], a["cavp"], rtol=0, atol=0)  # CAVP stays fp32, as Diff-Foley
    assert b["timechat"].dtype == torch.float32
    assert 0 < ((b["timechat"] - a["timechat"]).norm() / a["timechat"].norm()).item() < 0.1


# =========================================================================== safe loading

def test_checkpoints_are_read_with_safetensors_or_weights_only():
    """Every torch.load in the project passes weights_only=True (no pickled code from downloaded files), and
    outside the tests only the one reader, extractors/checkpoint.py, opens a checkpoint (torch.load,
    safetensors' load_file / safe_open): every other module reads through it."""
    readers = set()
    for path in ROOT.rglob("*.py"):
        if ".venv" in path.parts or "fixtures" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (called == "load" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                    and func.value.id == "torch"):
                flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                assert isinstance(flag, ast.Constant) and flag.value is True, f"{path}:{node.lineno}"
                readers.add(path.relative_to(ROOT).as_posix())
            elif called in ("load_file", "safe_open"):
                readers.add(path.relative_to(ROOT).as_posix())
    assert {path for path in readers if not path.startswith("tests/")} == {"extractors/checkpoint.py"}
