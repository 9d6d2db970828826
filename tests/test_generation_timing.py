"""Timing control in the pipeline: the video envelope predictor and the decoder's latent head loaded from a
mapper folder, ``sync_guidance`` from the call, the folder's generation defaults or the command line, 0
bit for bit unguided, each window guided towards its own clip's envelope, the guiding envelope handed back."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import shutil  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from test_generation import tiny_mapper_dir, two_window_video, write_video  # noqa: E402, F401 (fixtures)

from extractors.presets import get_preset  # noqa: E402
from mapper.config import MapperConfig  # noqa: E402
from mapper.decoders.audioldm2 import EnvelopeHeadConfig, build_envelope_head  # noqa: E402
from mapper.envelope_predictor import FOLDER, EnvelopePredictorConfig, VideoEnvelopePredictor  # noqa: E402
from mapper.generation import load_pipeline  # noqa: E402
from mapper.generation.long_form import round_up  # noqa: E402
from mapper.generation.sampling import sampling_config  # noqa: E402
from mapper.generation_defaults import GenerationDefaults, write_generation_defaults  # noqa: E402
from recipes import generate  # noqa: E402

FAST = {"preset": "fast", "num_inference_steps": 3}


@pytest.fixture(scope="module")
def guided_dirs(tiny_mapper_dir, tmp_path_factory):
    """The tiny mapper folder with a video envelope predictor and a default scale; a latent head folder."""
    root = tmp_path_factory.mktemp("guided")
    mapper = root / "mapper"
    shutil.copytree(tiny_mapper_dir, mapper)
    tiny = get_preset("tiny")
    config = EnvelopePredictorConfig.for_mapper(MapperConfig.from_pretrained(mapper), tiny.clip, hidden=16)
    torch.manual_seed(0)
    VideoEnvelopePredictor(config).save_pretrained(mapper / FOLDER)
    write_generation_defaults(mapper, GenerationDefaults(sync_guidance=1.0))
    head = root / "head"
    build_envelope_head(EnvelopeHeadConfig(latent_channels=8, latent_bins=16, hidden=16, dilations=(1, 2),
                                           time_features=8)).save_pretrained(head)
    return mapper, head


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("videos") / "three.mp4", 3.0, seed=3)


def test_load_pipeline_attaches_the_predictor_the_head_and_the_defaults(guided_dirs, tiny_mapper_dir):
    mapper, head = guided_dirs
    pipe = load_pipeline(mapper=mapper, envelope_head=head)
    assert pipe.envelope_predictor is not None and pipe.envelope_head is not None
    assert pipe.generation_defaults.sync_guidance == 1.0 and pipe.missing_for_sync_guidance() is None
    plain = load_pipeline(mapper=tiny_mapper_dir)  # a folder without them, the tiny decoder: nothing to guide with
    assert plain.envelope_predictor is None and plain.envelope_head is None
    assert "video envelope predictor" in plain.missing_for_sync_guidance()


def test_the_predictor_reads_the_windows_motion_stream_decoded_only_when_asked(guided_dirs, short, monkeypatch):
    """Its features are the streams and the window's motion stream, as extraction stores it (read_clip's), and
    the motion stream is left out when asked to; unguided generation never decodes it."""
    from extractors import video
    from extractors.motion import MOTION_FEATURE
    from extractors.video import read_clip

    mapper, head = guided_dirs
    pipe = load_pipeline(mapper=mapper, envelope_head=head)
    assert pipe.envelope_predictor.input_streams == ["cavp", MOTION_FEATURE]
    features = pipe.visual_features(short, 0.0)
    stored = read_clip(short, pipe.clip, with_audio=False, motion=True).motion  # (250, 16)
    assert torch.equal(features[MOTION_FEATURE][0], torch.from_numpy(stored))
    assert MOTION_FEATURE not in pipe.visual_features(short, 0.0, motion=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the motion stream was decoded")

    monkeypatch.setattr(video, "_read_motion", refuse)
    assert pipe(short, "", sync_guidance=0.0, **FAST).envelope is None
    with pytest.raises(AssertionError, match="motion stream was decoded"):
        pipe(short, "", sync_guidance=1.0, **FAST)


def test_scale_zero_is_unguided_bit_for_bit_and_a_scale_guides(guided_dirs, tiny_mapper_dir, short):
    mapper, head = guided_dirs
    pipe = load_pipeline(mapper=mapper, envelope_head=head)
    reference = load_pipeline(mapper=tiny_mapper_dir)(short, "", **FAST)
    off = pipe(short, "", sync_guidance=0.0, **FAST)
    assert np.array_equal(off.audio, reference.audio) and off.envelope is None
    on = pipe(short, "", sync_guidance=1.0, **FAST)
    assert np.abs(on.audio - off.audio).max() > 1e-4
    default = pipe(short, "", **FAST)  # the folder's generation_config.json: 1.0
    assert np.array_equal(default.audio, on.audio)
    # the envelope it was guided towards, one value per latent frame of the returned audio (3 s: 75 frames)
    assert on.envelope_frame_seconds == pytest.approx(0.04) and on.envelope.shape == (75,)
    with torch.no_grad():
        predicted = pipe.predict_envelopes([pipe.visual_features(short, 0.0)])[0]
    # a 3 s video is one window of its own length, a part of its clip window: the predicted part, re-standardised
    part = predicted[:round_up(75, pipe.frame_multiple)]
    assert np.allclose(on.envelope, ((part - part.mean()) / part.std())[:75], atol=1e-5)


def test_each_window_of_a_long_video_is_guided_towards_its_own_clip(guided_dirs, two_window_video):
    mapper, head = guided_dirs
    pipe = load_pipeline(mapper=mapper, envelope_head=head)
    seen = []
    sample = pipe.sample_latents

    def spy(*args, **kwargs):
        seen.append(args[7] if len(args) > 7 else kwargs.get("envelope"))
        return sample(*args, **kwargs)

    pipe.sample_latents = spy
    result = pipe(two_window_video, "", sync_guidance=1.0, **FAST)
    assert len(seen) == 2 and result.envelope.shape == (350,)  # 14 s
    first, second = seen[0][0], seen[1][0]  # (window frames,) each
    window = pipe.window_frames  # the decoder's 10 s window, in latent frames
    assert len(first) == len(second) == window and np.isfinite(first[:250]).all() and np.isnan(first[250:]).all()
    start = 350 - window  # the second window is pulled back to end at the video's end; its clip starts there
    with torch.no_grad():
        clip = pipe.predict_envelopes([pipe.visual_features(two_window_video, start * 0.04)])[0]  # (250,)
    assert np.allclose(second[:250], clip)
    assert np.allclose(result.envelope[start:start + 250], clip)  # the later window's target on the overlap
    assert np.allclose(result.envelope[:start], first[:start])


def test_asking_for_guidance_without_its_parts_is_one_line(tiny_mapper_dir, guided_dirs, short):
    pipe = load_pipeline(mapper=tiny_mapper_dir)
    with pytest.raises(ValueError, match="sync_guidance=0.5 needs a video envelope predictor") as error:
        pipe(short, "", sync_guidance=0.5, **FAST)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="sync_guidance must be a finite number >= 0"):
        pipe(short, "", sync_guidance=-1.0, **FAST)
    mapper, _ = guided_dirs
    headless = load_pipeline(mapper=mapper)  # the tiny decoder has no shipped head
    with pytest.raises(ValueError, match="needs a latent envelope head"):
        headless(short, "", sync_guidance=0.5, **FAST)
    with warnings.catch_warnings(record=True) as caught:  # the folder's default cannot run: off, and said so
        warnings.simplefilter("always")
        result = headless(short, "", **FAST)
    assert result.envelope is None and any("default sync_guidance=1 is off" in str(w.message) for w in caught)


def test_a_bad_generation_config_is_refused_in_one_line(guided_dirs, tmp_path):
    mapper, _ = guided_dirs
    broken = tmp_path / "mapper"
    shutil.copytree(mapper, broken)
    for content, says in (({"sync_guidance": "loud"}, "sync_guidance must be"), ({"temperature": 1}, "unknown setting")):
        (broken / "generation_config.json").write_text(json.dumps(content))
        with pytest.raises(ValueError, match=says) as error:
            load_pipeline(mapper=broken)
        assert str(broken / "generation_config.json") in str(error.value) and "\n" not in str(error.value)


def test_the_command_line_takes_sync_guidance(guided_dirs, tiny_mapper_dir, short, tmp_path, capsys):
    code = generate.main([str(short), "--out", str(tmp_path / "a.wav"), "--mapper", str(tiny_mapper_dir),
                          "--sync-guidance", "-2", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --sync-guidance must be a finite number >= 0") and "\n" not in err
    code = generate.main([str(short), "--out", str(tmp_path / "b.wav"), "--mapper", str(tiny_mapper_dir),
                          "--sync-guidance", "0.5", "--no-progress"])  # checked before any model loads
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs the mapper's video envelope predictor" in err and "\n" not in err
    mapper, head = guided_dirs
    code = generate.main([str(short), "--out", str(tmp_path / "c.wav"), "--mapper", str(mapper),
                          "--sync-guidance", "0.5", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs a latent envelope head for the decoder 'tiny': --envelope-head FOLDER" in err
    code = generate.main([str(short), "--out", str(tmp_path / "d.wav"), "--mapper", str(mapper), "--sync-guidance",
                          "0.5", "--envelope-head", str(head), "--preset", "fast", "--steps", "2", "--no-progress"])
    assert code == 0 and (tmp_path / "d.wav").is_file()


def test_the_demo_offers_the_folders_default_and_draws_the_guiding_envelope(guided_dirs, tiny_mapper_dir, short):
    from recipes.demo import Demo

    mapper, head = guided_dirs
    plain = Demo(tiny_mapper_dir, "cpu", None)
    assert not plain.can_guide() and plain.sync_guidance_default() == 0.0  # the slider starts at 0, greyed out
    demo = Demo(mapper, "cpu", None)
    assert demo.can_guide() and demo.sync_guidance_default() == 1.0
    demo._pipeline = load_pipeline(mapper=mapper, envelope_head=head)  # the tiny decoder ships no head
    status, wav, _, png = demo.generate(str(short), "", "fast", 2, 2.5, 0, "inpaint", None,
                                        lambda *args, **kwargs: None, sync_guidance=1.0)
    assert status.startswith("Generated 3.00 s") and "sync guidance 1" in status, status
    assert "the envelope predicted from the video drawn in white" in status and png and wav


def test_a_saved_pipeline_keeps_its_timing_control(guided_dirs, short, tmp_path):
    mapper, head = guided_dirs
    pipe = load_pipeline(mapper=mapper, envelope_head=head)
    pipe.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "mapper" / FOLDER / "model.safetensors").is_file()
    assert (tmp_path / "saved" / "envelope_head" / "model.safetensors").is_file()
    loaded = load_pipeline(mapper=tmp_path / "saved")  # the predictor, the head and the default come back
    assert loaded.missing_for_sync_guidance() is None and loaded.generation_defaults.sync_guidance == 1.0
    # DDIM: a saved scheduler config loses diffusers' `_use_default_values`, so another solver built from it
    # takes the saved DDIM's timestep spacing instead of its own default (noted for the sampling presets)
    ddim = {"preset": "paper", "num_inference_steps": 3}
    expected = pipe(short, "", sync_guidance=1.0, **ddim).audio
    np.testing.assert_array_equal(loaded(short, "", **ddim).audio, expected)


def test_render_tokens_renders_a_short_clip_as_the_pipeline_renders_a_short_video(guided_dirs, short):
    """``seconds``: a row shorter than the clip window gets a window of its own length (the 3 s video's 75 latent
    frames), the part of its target it covers re-standardised as the pipeline's window target is, and silence
    after its end; whole windows render bit for bit as without ``seconds``, in the same batch."""
    mapper, head = guided_dirs
    pipe = load_pipeline(mapper=mapper, envelope_head=head)
    features = [pipe.visual_features(short, 0.0)] * 2
    tokens = pipe.map_features(features)  # (2, N, D)
    envelope = pipe.predict_envelopes(features)  # (2, 250)
    seen = []
    sample = pipe.sample_latents

    def spy(*args, **kwargs):
        seen.append((args[4], kwargs.get("envelope")))
        return sample(*args, **kwargs)

    pipe.sample_latents = spy
    fast = sampling_config("fast", num_inference_steps=3)
    whole = pipe.render_tokens(tokens, ["", ""], fast, seed=5, envelope=envelope, sync_guidance=1.0)
    mixed = pipe.render_tokens(tokens, ["", ""], fast, seed=5, envelope=envelope, sync_guidance=1.0,
                               seconds=[10.0, 3.0])
    # row 0 is a whole window: as before, its noise its own (a batch of 1 instead of 2: equal to float rounding)
    assert np.allclose(mixed[0], whole[0], atol=1e-5)
    samples = 3 * pipe.sample_rate
    assert np.abs(mixed[1, :samples]).max() > 0 and not mixed[1, samples:].any()
    frames = round_up(75, pipe.frame_multiple)
    (short_frames, target), (whole_frames, _) = seen[1:]  # one UNet batch per length, shortest first
    assert whole_frames == pipe.window_frames and short_frames == frames and target.shape == (1, frames)
    part = envelope[1, :frames]
    assert np.allclose(target[0], (part - part.mean()) / part.std(), atol=1e-5)
    # the pipeline itself renders the 3 s video from the same target
    assert np.allclose(pipe(short, "", sync_guidance=1.0, **FAST).envelope, target[0][:75], atol=1e-5)
