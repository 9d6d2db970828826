"""The loudness envelope (extractors/envelope.py): one number per decoder latent frame, its shape in time
(z-scored per clip), NaN where there is no audio."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from extractors.envelope import audio_envelope

FRAME = 640  # AudioLDM-2: 4 mel frames of 160 samples


def test_shape_z_score_and_no_target_past_the_end():
    audio = np.random.default_rng(0).standard_normal((3, 10 * FRAME)).astype(np.float32)
    audio[:, 4 * FRAME:6 * FRAME] *= 20  # a loud stretch
    envelope = audio_envelope(audio, FRAME, frames=12)
    assert isinstance(envelope, np.ndarray) and envelope.shape == (3, 12) and envelope.dtype == np.float32
    assert np.isnan(envelope[:, 10:]).all() and np.isfinite(envelope[:, :10]).all()  # 10 frames of audio
    np.testing.assert_allclose(envelope[:, :10].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(envelope[:, :10].std(axis=1), 1, atol=1e-4)
    assert (envelope[:, 4:6] > 1).all() and (envelope[:, :4] < 0).all()
    assert audio_envelope(audio[0], FRAME).shape == (10,)  # one waveform; frames default to ceil(N / frame)


def test_an_impulse_lands_in_its_frame_and_the_level_does_not_matter():
    audio = np.full(8 * FRAME, 1e-3, np.float32)
    audio[5 * FRAME + 600] = 1.0  # late in frame 5
    envelope = audio_envelope(audio, FRAME)
    assert int(np.argmax(envelope)) == 5
    np.testing.assert_allclose(audio_envelope(30 * audio, FRAME), envelope, atol=1e-4)  # shape, not level
    torch_envelope = audio_envelope(torch.from_numpy(audio)[None], FRAME)  # torch in, torch out
    assert isinstance(torch_envelope, torch.Tensor) and torch_envelope.shape == (1, 8)
    np.testing.assert_allclose(torch_envelope[0].numpy(), envelope, atol=1e-5)


def test_silence_is_floored_and_a_silent_clip_is_all_zeros():
    audio = np.zeros((2, 6 * FRAME), np.float32)
    audio[0, :FRAME] = 1.0
    envelope = audio_envelope(audio, FRAME, floor_db=40.0)
    assert np.all(np.isfinite(envelope))
    assert len(set(np.round(envelope[0, 1:], 5))) == 1  # every silent frame sits at the floor
    np.testing.assert_array_equal(envelope[1], np.zeros(6, np.float32))


@pytest.mark.parametrize("kwargs, message", [
    ({"frame_samples": 0}, "frame_samples"),
    ({"frame_samples": FRAME, "frames": 0}, "frames"),
    ({"frame_samples": FRAME, "floor_db": 0.0}, "floor_db"),
])
def test_bad_arguments_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        audio_envelope(np.zeros((1, 1000), np.float32), **kwargs)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="shape"):
        audio_envelope(np.zeros((1, 2, 3), np.float32), FRAME)
