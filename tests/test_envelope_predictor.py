"""The video envelope predictor of timing control: shapes, where in time it reads the video, its folder,
its training beside the mapper (which must not change the mapper), and the window targets the pipeline
guides towards."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from extractors.motion import MOTION_CHANNELS, MOTION_FEATURE
from extractors.presets import get_preset
from mapper.config import MapperConfig
from mapper.envelope_predictor import (
    EnvelopePredictorConfig,
    VideoEnvelopePredictor,
    envelope_loss,
    load_envelope_predictor,
    time_interpolation,
)
from mapper.generation.long_form import Window
from mapper.generation.window_envelope import window_envelope

TINY = get_preset("tiny")


def _config(**options) -> EnvelopePredictorConfig:
    mapper = MapperConfig.from_preset(TINY, n_layer=2, n_head=2)
    return EnvelopePredictorConfig.for_mapper(mapper, TINY.clip, **{"hidden": 16, **options})


def _features(batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every stream of the tiny preset and the motion stream, random."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {name: TINY.dims.shapes()[name] for name in [*TINY.dims.streams, MOTION_FEATURE]}
    return {name: torch.randn(batch, *shape, generator=generator) for name, shape in shapes.items()}


def test_it_maps_the_streams_to_one_number_per_envelope_frame():
    predictor = VideoEnvelopePredictor(_config())
    assert predictor.config.envelope_frames == TINY.clip.envelope_frames == 250
    assert predictor(_features()).shape == (2, 250)
    with pytest.raises(KeyError, match="missing"):
        predictor({"timechat": _features()["timechat"]})
    with pytest.raises(KeyError, match=r"missing \['motion'\]"):
        predictor({"cavp": _features()["cavp"]})


def test_the_motion_stream_moves_the_prediction_where_the_motion_is():
    """The motion stream enters at the envelope rate: changing it over one second changes the prediction there
    (and, through the fine blocks' reach of about a second, near it) several times more than at the other end of
    the clip, which moves only through the per-clip normalisations."""
    torch.manual_seed(0)
    predictor = VideoEnvelopePredictor(_config()).eval()
    assert predictor.config.motion_channels == MOTION_CHANNELS and predictor.reads_motion
    features = _features(batch=1)
    moved = {**features, MOTION_FEATURE: features[MOTION_FEATURE].clone()}
    moved[MOTION_FEATURE][:, 100:125] += 3.0  # a burst of motion over frames 100-124 (4.0-5.0 s)
    change = (predictor(moved) - predictor(features)).abs()[0]  # (250,)
    assert change[100:125].mean() > 3 * change[200:].mean()
    # its scale is the clip's own: brighter, larger or more compressed video gives the same prediction
    rescaled = {**features, MOTION_FEATURE: 2.0 * features[MOTION_FEATURE] - 7.0}
    assert torch.allclose(predictor(rescaled), predictor(features), atol=1e-5)


def test_a_config_saved_before_the_motion_stream_reads_the_streams_alone(tmp_path):
    VideoEnvelopePredictor(_config(motion_channels=0)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["motion_channels"]  # as session 10's predictors wrote it
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = load_envelope_predictor(tmp_path)
    assert loaded.input_streams == ["cavp"] and not loaded.reads_motion
    assert loaded({"cavp": _features()["cavp"]}).shape == (2, 250)


def test_video_frame_i_is_read_at_its_own_instant():
    """Frame i is the picture at i / fps: the envelope frame centred on that instant reads frame i alone (an
    interpolation between bin centres would read it 1 / (2 fps) = 125 ms late)."""
    matrix = time_interpolation(num_frames=40, fps=4.0, envelope_frames=250, frame_seconds=0.04)
    assert torch.allclose(matrix.sum(dim=1), torch.ones(250))
    for frame in (2, 10, 38):  # centre of envelope frame k: (k + 0.5) * 0.04 s = frame / 4 s
        k = round(frame / 4.0 / 0.04 - 0.5)
        assert matrix[k, frame] == pytest.approx(1.0)
    assert matrix[-1, -1] == pytest.approx(1.0)  # past the last frame: held flat


def test_the_loss_ignores_frames_without_a_target():
    predicted = torch.zeros(1, 4)
    target = torch.tensor([[[1.0], [float("nan")], [3.0], [float("nan")]]])  # (B, E, 1), as the cache stores it
    assert envelope_loss(predicted, target).item() == pytest.approx(5.0)  # (1 + 9) / 2


def test_save_and_load_round_trip(tmp_path):
    predictor = VideoEnvelopePredictor(_config())
    predictor.save_pretrained(tmp_path)
    loaded = load_envelope_predictor(tmp_path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    features = _features()
    assert torch.equal(loaded(features), predictor.eval()(features))


@pytest.mark.parametrize("change, message", [
    ({"hidden": 0}, "hidden must be"),
    ({"kernel": 4}, "kernel must be odd"),
    ({"fine_dilations": [1] * 17}, "at most 16 dilations"),
    ({"envelope_frames": 10**9}, "envelope_frames must be"),
    ({"motion_channels": -1}, "motion_channels must be"),
    ({"kind": "latent_envelope_head"}, "not a video envelope predictor"),
    ({"surprise": 1}, "unknown surprise"),
])
def test_a_bad_config_is_refused_in_one_line(tmp_path, change, message):
    VideoEnvelopePredictor(_config()).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=message) as error:
        load_envelope_predictor(tmp_path)
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)


def test_weights_of_another_size_are_refused_before_any_weight_is_read(tmp_path):
    VideoEnvelopePredictor(_config(hidden=32)).save_pretrained(tmp_path / "big")
    VideoEnvelopePredictor(_config()).save_pretrained(tmp_path / "small")
    (tmp_path / "small" / "model.safetensors").write_bytes((tmp_path / "big" / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="model.safetensors") as error:
        load_envelope_predictor(tmp_path / "small")
    assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_envelope_predictor(tmp_path / "nowhere")


def test_training_it_beside_the_mapper_leaves_the_mapper_exactly_as_alone():
    """Same initial mapper weights, and after AdamW steps on the summed loss the same mapper weights, bit for
    bit, as a module without the predictor (the predictor reads the raw streams; its init is under a forked
    random state; its augmentation draws from its own generator)."""
    from mapper.config import MapperOptions
    from mapper.training.module import MapperModule

    options = MapperOptions(n_layer=2, n_head=2, dropout=0.1)  # dropout: the random state must be the same too
    shapes = TINY.dims.shapes()
    generator = torch.Generator().manual_seed(3)
    batches = [{name: torch.randn(4, *shape, generator=generator) for name, shape in shapes.items()} for _ in range(3)]

    def train(with_predictor: bool) -> dict:
        torch.manual_seed(0)
        module = MapperModule("tiny", options, envelope_predictor=with_predictor)
        module._trainer = SimpleNamespace(estimated_stepping_batches=len(batches))  # what configure_optimizers reads
        optimizer = module.configure_optimizers()["optimizer"]  # the predictor in a parameter group of its own
        for step, batch in enumerate(batches):
            loss = module.mapper.training_loss(*module._split(batch))
            envelope = module._envelope_loss(batch, augment_seed=step)  # time-shifted copies, dropout
            if with_predictor:
                assert envelope is not None and envelope.requires_grad
                loss = loss + envelope
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {k: v.clone() for k, v in module.mapper.state_dict().items()}

    alone, beside = train(False), train(True)
    assert alone.keys() == beside.keys()
    assert all(torch.equal(alone[k], beside[k]) for k in alone)


def test_training_copies_are_shifted_by_whole_seconds_features_and_envelope_together():
    from mapper.envelope_predictor import INPUT_DROPOUT, TRAIN_COPIES, training_batch

    predictor = VideoEnvelopePredictor(_config())
    # the per-frame stream (TimeChat's windows carry little timing) and the motion stream
    assert predictor.input_streams == ["cavp", MOTION_FEATURE]
    assert predictor.config.shift_frames == 4  # 1 s: 4 frames at 4 fps, 25 envelope frames of 40 ms
    cavp = torch.arange(40.0)[None, :, None].expand(2, 40, 3).clone()  # (B, T, dim): the frame index
    target = (torch.arange(250.0) / 6.25)[None, :, None].expand(2, 250, 1).clone()  # the frame index in time
    motion = (torch.arange(250.0) / 6.25)[None, :, None].expand(2, 250, MOTION_CHANNELS).clone()  # (B, E, C)
    state = torch.random.get_rng_state()
    features, shifted = training_batch(predictor, {"cavp": cavp, MOTION_FEATURE: motion}, target, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is not used
    assert features["cavp"].shape == (2 * TRAIN_COPIES, 40, 3) and shifted.shape == (2 * TRAIN_COPIES, 250, 1)
    frames = features["cavp"] * (1 - INPUT_DROPOUT)  # undo the dropout's scaling: kept values are the frames
    for copy in range(2 * TRAIN_COPIES):
        kept = frames[copy, :, 0] != 0
        shift = int((torch.arange(40.0) - frames[copy, :, 0])[kept][0]) % 40  # how far this copy was rolled
        assert shift % 4 == 0
        assert torch.allclose(frames[copy, kept, 0], cavp[0].roll(shift, 0)[kept, 0])
        assert torch.allclose(shifted[copy], target[0].roll(round(shift * 6.25), 0))
        # the motion stream rolled with them, by the same seconds at its own rate, z-scored then dropped out
        standard = VideoEnvelopePredictor.standardise_motion(motion[:1].roll(round(shift * 6.25), 1))[0]
        kept_motion = features[MOTION_FEATURE][copy] != 0
        assert 0.5 < kept_motion.float().mean() < 0.9
        assert torch.allclose(features[MOTION_FEATURE][copy][kept_motion] * (1 - INPUT_DROPOUT),
                              standard[kept_motion], atol=1e-5)
    again = training_batch(predictor, {"cavp": cavp, MOTION_FEATURE: motion}, target, seed=7)
    assert torch.equal(again[0]["cavp"], features["cavp"])  # a resumed step repeats its copies


def test_a_window_reads_the_envelope_of_its_own_clip():
    envelope = np.arange(10, dtype=np.float32)
    # the clip starts at the window's start: frames copied one for one, NaN past the clip's end
    out = window_envelope(envelope, 0.04, Window(start=0, end=12, known=0, video_start=0), 0.04)
    assert np.array_equal(out[:10], envelope) and np.isnan(out[10:]).all()
    # a reference of 4 frames before the clip (window from -4), and a later window whose clip starts at 20
    out = window_envelope(envelope, 0.04, Window(start=-4, end=10, known=4, video_start=0), 0.04)
    assert np.isnan(out[:4]).all() and np.array_equal(out[4:], envelope)
    out = window_envelope(envelope, 0.04, Window(start=16, end=30, known=4, video_start=20), 0.04)
    assert np.isnan(out[:4]).all() and np.array_equal(out[4:], envelope)
    # a decoder with frames twice as long reads the envelope at its frames' centres
    out = window_envelope(envelope, 0.04, Window(start=0, end=6, known=0, video_start=0), 0.08)
    assert np.allclose(out[:5], [0.5, 2.5, 4.5, 6.5, 8.5]) and np.isnan(out[5])


def test_a_window_shorter_than_its_clip_gets_its_part_of_the_envelope_re_standardised():
    # a clip window of 10 frames, its last 4 padding (silence: low), z-scored over all 10, as extraction stores it
    clip = np.array([0.0, 2.0, 0.0, 0.0, 2.0, 0.0, -5.0, -5.0, -5.0, -5.0], np.float32)
    envelope = (clip - clip.mean()) / clip.std()
    out = window_envelope(envelope, 0.04, Window(start=0, end=6, known=0, video_start=0), 0.04)  # a 6-frame video
    assert np.allclose(out, [-0.70710677, 1.4142135, -0.70710677, -0.70710677, 1.4142135, -0.70710677])
    assert envelope[:6].mean() > 0.5 and abs(out.mean()) < 1e-6 and out.std() == pytest.approx(1.0)
    # the same at twice the frame length, and a flat part stays flat
    out = window_envelope(envelope, 0.04, Window(start=0, end=3, known=0, video_start=0), 0.08)
    assert abs(out.mean()) < 1e-6 and out.std() == pytest.approx(1.0)
    flat = window_envelope(np.r_[np.ones(6), -np.ones(4)].astype(np.float32), 0.04, Window(0, 6, 0, 0), 0.04)
    assert np.array_equal(flat, np.zeros(6, np.float32))
