"""ImageBind (vision + audio towers) and its inputs against the original code, through fixtures made
by running it (``tests/fixtures/eval/imagebind.md``): ``imagebind_keys.json`` holds every key and
shape of the fork's full ``imagebind_huge()`` (all six modalities); ``imagebind_golden.safetensors``
a tiny original ``ImageBindModel`` with seeded weights, run through av-benchmark's own video and
audio loaders on fixed frames and 16-bit waveforms, with the loaders' intermediates.
"""
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from evaluation import imagebind_inputs as inputs
from golden import assert_spectrogram_close  # tests/golden.py
from evaluation.imagebind import (OTHER_TOWERS, PRESETS, RELEASED, ImageBindModel, build, embed_audio,
                                  embed_video, ib_score, load_checked, load_released, tower_state_dict)

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
ATOL = 1e-5


@pytest.fixture(scope="module")
def golden():
    info = json.loads((FIXTURES / "imagebind_golden.json").read_text())
    groups = {"state.": {}, "input.": {}, "output.": {}}
    for key, value in load_file(FIXTURES / "imagebind_golden.safetensors").items():
        prefix = next(p for p in groups if key.startswith(p))
        groups[prefix][key[len(prefix):]] = value
    return info, groups["state."], groups["input."], groups["output."]


@pytest.fixture(scope="module")
def tiny(golden):
    _, state, _, _ = golden
    model = ImageBindModel(PRESETS["tiny"]).eval()
    load_checked(model, state, "imagebind_golden.safetensors")
    return model


def _close(actual, expected, atol=ATOL):
    assert actual.shape == expected.shape, (tuple(actual.shape), tuple(expected.shape))
    error = (actual.float() - expected.float()).abs().max().item()
    assert error <= atol, error
    return error


def _meta_state(shapes: dict) -> dict:
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_tiny_preset_is_the_golden_config(golden):
    tiny = golden[0]["tiny"]
    config = PRESETS["tiny"]
    assert (config.embed_dim, config.vision_width, config.vision_depth, config.vision_heads) == (
        tiny["out_embed_dim"], tiny["vision_embed_dim"], tiny["vision_num_blocks"], tiny["vision_num_heads"])
    assert (config.audio_width, config.audio_depth, config.audio_heads) == (
        tiny["audio_embed_dim"], tiny["audio_num_blocks"], tiny["audio_num_heads"])


def test_paper_model_has_the_released_vision_audio_keys():
    """The full file layout (all modalities): the prefix rule keeps exactly our keys, drops only the
    other towers, and the strict loader accepts it (meta tensors: no allocation)."""
    shapes = json.loads((FIXTURES / "imagebind_keys.json").read_text())
    with torch.device("meta"):
        model = ImageBindModel(PRESETS["paper"])
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    kept = tower_state_dict(shapes, "imagebind_keys.json")
    assert {key: list(shape) for key, shape in kept.items()} == ours
    dropped = set(shapes) - set(kept)
    assert dropped and all(key.split(".")[1] in OTHER_TOWERS for key in dropped)
    assert sum(math.prod(shape) for shape in ours.values()) == 719_065_089  # of 1.2 B in the file
    load_checked(model, _meta_state(shapes), "imagebind_keys.json")
    assert model.modality_trunks["vision"].blocks[31].attn.in_proj_weight.shape == (3840, 1280)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("modality_trunks.audio.blocks.0.attn.bias_k"), "missing 1"),
    (lambda s: s.__setitem__("modality_heads.vision.2.weight", torch.empty(1024, 1024, device="meta")),
     "wrong shape 1"),
    (lambda s: s.__setitem__("modality_trunks.audio.blocks.12.norm_1.weight", torch.empty(768, device="meta")),
     "unexpected 1"),
    (lambda s: s.__setitem__("logit_scale", torch.empty([], device="meta")), "not an ImageBind state dict"),
])
def test_loader_refuses_a_mismatch_in_one_line(change, message):
    state = _meta_state(json.loads((FIXTURES / "imagebind_keys.json").read_text()))
    change(state)
    with torch.device("meta"):
        model = ImageBindModel(PRESETS["paper"])
    with pytest.raises(ValueError, match=message) as error:
        load_checked(model, state, "some/imagebind_huge.pth")
    assert "\n" not in str(error.value) and str(error.value).startswith("some/imagebind_huge.pth: ")


def test_load_released_reads_the_full_file_and_build_never_downloads(tmp_path, golden):
    _, state, _, _ = golden
    full = dict(state)
    full["modality_preprocessors.text.token_embedding.weight"] = torch.zeros(3, 4)  # another tower: skipped
    full["modality_postprocessors.text.1.log_logit_scale"] = torch.zeros([])
    torch.save(full, tmp_path / RELEASED.name)
    model = build("tiny", seed=3)
    load_released(model, tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    with pytest.raises(FileNotFoundError, match=RELEASED.name):
        build("paper", weights_dir=tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown"):
        build("huge")


def test_build_tiny_is_seeded_and_in_eval_mode():
    a, b = build("tiny", seed=0), build("tiny", seed=0)
    assert not a.training
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.modality_heads["audio"][2].weight, build("tiny", seed=1).modality_heads["audio"][2].weight)


@pytest.mark.parametrize("name", ["landscape", "portrait"])
def test_video_matches_av_benchmark(golden, tiny, name):
    info, _, given, expected = golden
    frames = given[f"{name}.frames"]  # (B, T, 3, H, W) uint8
    clips = inputs.video_clips(frames)  # (B, 3 * (T - 1), 3, 2, 224, 224)
    # back to av-benchmark's ib_video (B, crops, T, 3, 224, 224): clip 3 * i + c holds frames i, i + 1 of crop c
    firsts = clips[:, :, :, 0].unflatten(1, (-1, 3))  # (B, T - 1, crops, 3, 224, 224)
    ib_video = torch.cat([firsts, clips[:, None, -3:, :, 1]], dim=1).transpose(1, 2)
    stride, clip_stride = info["strides"]["video"], info["strides"]["clips"]
    _close(ib_video[..., ::stride, ::stride], expected[f"{name}.ib_video_strided"], atol=0)
    _close(ib_video.double().sum(-1).float(), expected[f"{name}.ib_video_rowsum"], atol=0)
    _close(ib_video.double().sum((-1, -2)).float(), expected[f"{name}.ib_video_sum"], atol=0)
    _close(clips[..., ::clip_stride, ::clip_stride], expected[f"{name}.clips_strided"], atol=0)
    _close(clips.double().sum((-1, -2)).float(), expected[f"{name}.clips_sum"], atol=0)
    _close(clips.double().pow(2).sum((-1, -2)).float(), expected[f"{name}.clips_sumsq"], atol=0)

    out = embed_video(tiny, frames)
    _close(out["embedding"], expected[f"{name}.video_embedding"])
    _close(out["clip_embeddings"], expected[f"{name}.clip_embeddings"])
    with torch.no_grad():
        flat = clips.flatten(0, 1)
        cls = tiny.modality_trunks["vision"](tiny.modality_preprocessors["vision"](flat))[:, 0]
    _close(cls.reshape(expected[f"{name}.trunk_cls"].shape), expected[f"{name}.trunk_cls"])
    torch.testing.assert_close(out["clip_embeddings"].norm(dim=-1), torch.ones(out["clip_embeddings"].shape[:2]))


@pytest.mark.parametrize("name", ["mono_8s", "stereo_2_7s", "mono_1_2s"])
def test_audio_matches_av_benchmark(golden, tiny, name):
    info, _, given, expected = golden
    waveform = (given[f"{name}.pcm16"].float() / 32768)[None]  # (1, C, N): torchaudio.load of a 16-bit file
    mel = inputs.audio_clips(waveform)  # (1, 3, 1, 128, 204)
    rows, cols = info["strides"]["fbank"]
    assert_spectrogram_close(mel[..., ::rows, ::cols], expected[f"{name}.fbank_strided"])
    assert_spectrogram_close(mel.double().sum(-1).float(), expected[f"{name}.fbank_rowsum"], mel.shape[-1])
    assert_spectrogram_close(mel.double().sum(-2).float(), expected[f"{name}.fbank_colsum"], mel.shape[-2])

    out = embed_audio(tiny, waveform)  # through the FFT front end
    assert_spectrogram_close(out["embedding"], expected[f"{name}.audio_embedding"])
    assert_spectrogram_close(out["clip_embeddings"], expected[f"{name}.clip_embeddings"])
    torch.testing.assert_close(out["clip_embeddings"].norm(dim=-1), torch.full((1, 3), 20.0))
    with torch.no_grad():
        cls = tiny.modality_trunks["audio"](tiny.modality_preprocessors["audio"](mel.flatten(0, 1)))[:, 0]
    _close(cls[None], expected[f"{name}.trunk_cls"])


def test_audio_batch_of_different_lengths_equals_one_by_one(golden):
    _, _, given, _ = golden
    files = [given["mono_8s.pcm16"][0].float() / 32768, given["mono_1_2s.pcm16"][0].float() / 32768,
             given["stereo_2_7s.pcm16"][0].float() / 32768]
    lengths = [len(f) for f in files]
    batch = torch.zeros(len(files), max(lengths))
    for i, f in enumerate(files):
        batch[i, :len(f)] = f
    together = inputs.audio_clips(batch, torch.tensor(lengths))
    for i, f in enumerate(files):
        assert torch.equal(together[i], inputs.audio_clips(f[None])[0])


def test_audio_clip_bounds_match_pytorchvideo(golden):
    _, _, given, expected = golden
    bounds = [inputs.audio_clip_bounds(n) for n in given["clip_lengths"].tolist()]
    assert torch.equal(torch.tensor(bounds), expected["clip_bounds"])
    assert inputs.audio_clip_bounds(128000) == [(0, 32000), (48000, 80000), (96000, 128000)]  # 0, 3, 6 s
    assert inputs.audio_clip_bounds(160000) == [(0, 32000), (64000, 96000), (128000, 160000)]  # 0, 4, 8 s


def test_input_errors_are_explicit():
    with pytest.raises(TypeError, match="uint8"):
        inputs.video_clips(torch.zeros(1, 4, 3, 30, 40))
    with pytest.raises(ValueError, match="at least 2"):
        inputs.video_clips(torch.zeros(1, 1, 3, 30, 40, dtype=torch.uint8))
    with pytest.raises(ValueError, match="25 ms"):
        inputs.audio_clips(torch.zeros(1, 399))
    with pytest.raises(ValueError, match="one length per file"):
        inputs.audio_clips(torch.zeros(2, 16000), [16000])


def test_frames_already_at_size_are_not_resampled():
    frames = torch.randint(0, 256, (1, 2, 3, 224, 230), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    clips = inputs.video_clips(frames)
    mean = torch.tensor(inputs.CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(inputs.CLIP_STD).view(3, 1, 1)
    first = (frames[0, 0].float() * (1.0 / 255) - mean) / std
    assert torch.equal(clips[0, 0, :, 0], first[:, :, :224])  # crop 0: left edge
    assert torch.equal(clips[0, 2, :, 0], first[:, :, 6:])  # crop 2: right edge
    assert inputs.resized_size(360, 640) == (224, 398) and inputs.resized_size(640, 360) == (398, 224)
    assert inputs.crop_offsets(398, 224) == [(0, 0), (87, 0), (174, 0)]


def test_fps_filter_choice_matches_ffmpeg():
    """Which frames torio's frame_rate=0.5 stream holds: ffmpeg's own fps filter (through PyAV)."""
    av = pytest.importorskip("av")

    def ffmpeg(times, durations):
        tb = Fraction(1, 90000)
        graph = av.filter.Graph()
        source = graph.add_buffer(width=16, height=16, format="gray", time_base=tb)
        fps = graph.add("fps", "0.5")
        sink = graph.add("buffersink")
        source.link_to(fps)
        fps.link_to(sink)
        graph.configure()
        chosen = []

        def drain():
            while True:
                try:
                    frame = sink.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                pixels = frame.to_ndarray()
                chosen.append(int(pixels[0, 0]) + 256 * int(pixels[0, 1]))
        for i, (t, d) in enumerate(zip(times, durations)):
            pixels = np.zeros((16, 16), np.uint8)
            pixels[0, 0], pixels[0, 1] = i % 256, i // 256
            frame = av.VideoFrame.from_ndarray(pixels, format="gray")
            frame.pts, frame.time_base, frame.duration = int(t / tb), tb, int(d / tb)
            source.push(frame)
            drain()
        source.push(None)
        drain()
        return chosen

    for rate, seconds, start in [(25, 8, 0), (Fraction(30000, 1001), 8, 0), (24, 10, 0), (25, 7, 0),
                                 (25, 6.5, 0), (25, 8, Fraction(1, 3))]:
        rate = Fraction(rate)
        count = int(Fraction(seconds) * rate)
        times = [Fraction(round((start + Fraction(i) / rate) * 90000), 90000) for i in range(count)]
        durations = [Fraction(round(90000 / rate), 90000)] * count
        ours = inputs.fps_filter_indices([float(t) for t in times], float(times[-1] + durations[-1]))
        assert ours == ffmpeg(times, durations), (rate, seconds, start)
    assert inputs.fps_filter_indices([i / 25 for i in range(200)], 8.0) == [24, 74, 124, 174]
    assert inputs.num_video_frames(8.0) == 4


def test_ib_score_is_the_paired_cosine():
    video, audio = torch.randn(5, 12), torch.randn(5, 12)
    expected = (video / video.norm(dim=-1, keepdim=True) * audio / audio.norm(dim=-1, keepdim=True)).sum(-1)
    torch.testing.assert_close(ib_score(video, 20 * audio), expected)
