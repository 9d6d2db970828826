"""A window whose clip holds less than a clip window of video conditions on the mapper tokens inside the video
(``mapper.generation.window_tokens``): the rows of AudioMAE's 1.28 s grid mostly inside it, the negative stream
cut alike; a whole clip keeps all of them."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from test_generation import SR, short_video, tiny_mapper_dir, tiny_pipeline, write_video  # noqa: E402, F401, F811

from extractors.audiomae import AudioMAEConfig  # noqa: E402
from mapper.decoders.audioldm2 import negative_tokens  # noqa: E402
from mapper.generation.sampling import sampling_config  # noqa: E402
from mapper.generation.window_tokens import window_token_count  # noqa: E402

FAST = sampling_config("fast", num_inference_steps=2)


@pytest.mark.parametrize("seconds, count", [(10.0, 8), (10.24, 8), (30.0, 8), (9.0, 7), (5.0, 4), (5.7, 4),
                                            (5.8, 5), (2.0, 2), (0.6, 1), (0.01, 1)])
def test_the_tokens_inside_a_video_are_the_rows_whose_span_is_mostly_inside(seconds, count):
    audiomae = AudioMAEConfig()  # paper size: 1024 fbank frames of 10 ms, 8 rows of one token, 1.28 s each
    assert audiomae.token_seconds == pytest.approx(1.28)
    assert audiomae.tokens_within(seconds) == count
    assert window_token_count(audiomae, 8, seconds) == count
    assert window_token_count(audiomae, 16, seconds) == 16  # another layout: no known time per token, all kept


def test_a_grid_with_several_frequency_rows_keeps_whole_time_rows():
    audiomae = AudioMAEConfig(num_mel_bins=256)  # (8, 2) tokens, time-major
    assert audiomae.num_tokens == 16 and audiomae.tokens_within(3.0) == 4


def test_a_short_video_is_rendered_from_its_own_tokens_only(tiny_pipeline, short_video):
    """The 2 s video: its first 2 tokens condition the decoder (the spy sees them); what the mapper predicted
    past its end changes nothing, while every token changes a whole window's render; the result still hands
    back all 8 of the mapper's tokens."""
    pipe = tiny_pipeline
    seen = []
    sample = pipe.sample_latents

    def spy(tokens, *args, **kwargs):
        seen.append(tokens.shape)
        return sample(tokens, *args, **kwargs)

    pipe.sample_latents = spy
    try:
        result = pipe(short_video, "dog barking", preset="fast", num_inference_steps=2, seed=3)
    finally:
        del pipe.sample_latents
    assert seen == [torch.Size([1, 2, 32])] and result.audio_tokens.shape == (1, 8, 32)
    tokens = torch.from_numpy(result.audio_tokens)  # (1, 8, 32)
    garbage = tokens.clone()
    garbage[:, 2:] = torch.randn(1, 6, 32, generator=torch.Generator().manual_seed(0)) * 10
    direct = pipe.render_tokens(tokens, ["dog barking"], FAST, seed=3, seconds=[2.0])
    np.testing.assert_array_equal(direct[0, : 2 * SR], result.audio)  # the pipeline's path, bit for bit
    np.testing.assert_array_equal(pipe.render_tokens(garbage, ["dog barking"], FAST, seed=3, seconds=[2.0]), direct)
    whole = pipe.render_tokens(tokens, ["dog barking"], FAST, seed=3)
    assert np.abs(pipe.render_tokens(garbage, ["dog barking"], FAST, seed=3) - whole).max() > 1e-3


def test_the_negative_stream_is_cut_to_the_windows_tokens(tiny_pipeline):
    """AudioLDM-2's negative GPT-2 stream is autoregressive: its leading 2 tokens are what 2 steps generate."""
    pipe, sampling = tiny_pipeline, sampling_config("paper")
    tokens = torch.zeros(3, 2, 32)
    conditions = pipe.conditions(tokens, ["a", "b", "c"], sampling)
    expected = negative_tokens(pipe, sampling.negative_prompt, "audioldm2", num_tokens=2)
    assert conditions.generated.shape == (6, 2, 32)
    torch.testing.assert_close(conditions.generated[:3], expected[None].expand(3, -1, -1), rtol=1e-5, atol=1e-5)


def test_videos_of_different_token_counts_are_batched_apart_and_sound_as_each_alone(tiny_pipeline, tmp_path):
    """Videos of 2, 4 and 5 tokens in one call: each is rendered from its own tokens, as it is alone."""
    pipe = tiny_pipeline
    videos = [write_video(tmp_path / f"{s}.mp4", s, seed=i) for i, s in enumerate((2.0, 5.0, 5.8))]
    alone = [pipe(v, "drum hit", preset="fast", num_inference_steps=2).audio for v in videos]
    together = pipe(videos, ["drum hit"] * 3, preset="fast", num_inference_steps=2)
    for one, batched in zip(alone, together):
        assert np.allclose(one, batched.audio, atol=1e-5)
