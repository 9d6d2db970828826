"""Generation: sampling presets and schedulers, the denoising loop against diffusers', the
pipeline as a diffusers DiffusionPipeline (save/load), batching, negatives and determinism.

Helpers here (`write_video`, `tiny_mapper_dir`, `tiny_pipeline`) are shared with the other
test_generation_* modules.
"""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler  # noqa: E402

from extractors.video import VideoReadError  # noqa: E402
from mapper.decoders.audioldm2 import build_tiny_audioldm2, encode_labels, text_generated_embeds  # noqa: E402
from mapper.config import MapperConfig  # noqa: E402
from mapper.loading import build_mapper  # noqa: E402
from mapper.generation import VideoToAudioPipeline, load_pipeline  # noqa: E402
from mapper.decoders.audioldm2 import Conditions, denoise  # noqa: E402
from mapper.generation.sampling import SAMPLING_PRESETS, make_scheduler, sampling_config  # noqa: E402

SR = 16000


# ---------------------------------------------------------------- shared helpers


def write_video(path: Path, seconds: float, fps: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A small h264 video without audio: a coloured square drifting over a noisy background."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            t = i / fps
            frame = rng.integers(0, 24, (size, size, 3), dtype=np.uint8)
            x = int((np.sin(0.7 * t + seed) + 1) / 2 * (size - 8))
            frame[8:16, x : x + 8] = (255, int(127 * (1 + np.sin(t))), 40)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="session")
def tiny_mapper_dir(tmp_path_factory) -> Path:
    """An untrained tiny mapper (training is irrelevant to generation mechanics)."""
    path = tmp_path_factory.mktemp("mapper") / "mapper"
    build_mapper(MapperConfig.from_preset("tiny", n_layer=2, n_head=2)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_mapper_dir) -> VideoToAudioPipeline:
    pipe = load_pipeline(mapper=tiny_mapper_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def short_video(tmp_path_factory) -> Path:
    """2 s: a 50-frame latent, so even the paper's 100 steps are quick on the tiny UNet."""
    return write_video(tmp_path_factory.mktemp("videos") / "short.mp4", 2.0)


@pytest.fixture(scope="session")
def two_window_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("videos") / "fourteen.mp4", 14.0, seed=1)


class UNetCalls:
    """Records the batch size of every UNet forward (a forward hook: the real UNet runs)."""

    def __init__(self, unet):
        self.batches: list[int] = []
        self._handle = unet.register_forward_hook(lambda module, args, out: self.batches.append(args[0].shape[0]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.remove()


# ---------------------------------------------------------------- presets and schedulers


def test_presets_are_the_papers_decoding_a_fast_deterministic_sampler_and_a_turbo_ancestral_one():
    paper, fast = SAMPLING_PRESETS["paper"], SAMPLING_PRESETS["fast"]
    assert (paper.scheduler, paper.num_inference_steps, paper.guidance_scale) == ("DDIMScheduler", 100, 3.5)
    assert paper.negative_prompt == "low quality, average quality" and paper.negative_mode == "audioldm2"
    assert (fast.scheduler, fast.num_inference_steps, fast.guidance_scale) == ("EulerDiscreteScheduler", 25, 5.0)
    turbo = SAMPLING_PRESETS["turbo"]
    assert (turbo.scheduler, turbo.num_inference_steps, turbo.guidance_scale) == ("EulerAncestralDiscreteScheduler", 4, 5.0)
    base = build_tiny_audioldm2().scheduler
    assert isinstance(make_scheduler(base, fast), EulerDiscreteScheduler)
    solver = make_scheduler(base, turbo)
    assert isinstance(solver, EulerAncestralDiscreteScheduler)
    assert solver.config.beta_start == base.config.beta_start == 0.0015  # AudioLDM-2's training schedule kept
    assert isinstance(make_scheduler(base, paper), DDIMScheduler)


def test_any_compatible_scheduler_by_name_and_clear_errors():
    base = build_tiny_audioldm2().scheduler
    config = sampling_config("fast", scheduler="UniPCMultistepScheduler", num_inference_steps=7, guidance_scale=2.0)
    assert (config.num_inference_steps, config.guidance_scale, config.scheduler_kwargs) == (7, 2.0, {})
    assert isinstance(make_scheduler(base, config), UniPCMultistepScheduler)
    with pytest.raises(ValueError, match="'NoSuchScheduler' is not a diffusers scheduler; choose one of .*EulerDiscreteScheduler"):
        make_scheduler(base, sampling_config(scheduler="NoSuchScheduler"))
    with pytest.raises(ValueError, match="not compatible"):
        make_scheduler(base, sampling_config(scheduler="FlowMatchEulerDiscreteScheduler"))
    with pytest.raises(ValueError, match="unknown sampling preset 'warp'"):
        sampling_config("warp")
    with pytest.raises(ValueError, match="negative_mode"):
        sampling_config(negative_mode="random")


# ---------------------------------------------------------------- the denoising loop


@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "DPMSolverMultistepScheduler"])
def test_denoise_is_the_audioldm2_pipelines_loop(scheduler):
    """Without a known region our loop gives the latents AudioLDM2Pipeline gives, step for step."""
    pipe = build_tiny_audioldm2()
    sampling = sampling_config("fast", scheduler=scheduler, num_inference_steps=4)
    tokens = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(3))
    t5, mask = encode_labels(pipe, ["dog barking", "low quality"])
    negative = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(4))
    pipe.scheduler = make_scheduler(pipe.scheduler, sampling)
    theirs = pipe(
        prompt_embeds=t5[:1], attention_mask=mask[:1], generated_prompt_embeds=tokens,
        negative_prompt_embeds=t5[1:], negative_attention_mask=mask[1:], negative_generated_prompt_embeds=negative,
        audio_length_in_s=2.0, num_inference_steps=4, guidance_scale=3.5,
        generator=torch.Generator().manual_seed(0), output_type="latent",
    ).audios  # fmt: skip
    noise = torch.randn(theirs.shape, generator=torch.Generator().manual_seed(0))
    conditions = Conditions(torch.cat([negative, tokens]), torch.cat([t5[1:], t5[:1]]), torch.cat([mask[1:], mask[:1]]))
    ours = denoise(pipe.unet, make_scheduler(pipe.scheduler, sampling), noise, conditions, 4, 3.5)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_known_region_is_kept_exactly_and_the_rest_is_sampled():
    pipe = build_tiny_audioldm2()
    t5, mask = encode_labels(pipe, ["dog barking"])
    conditions = Conditions(torch.randn(1, 8, 32), t5, mask)
    noise = torch.randn(1, 8, 40, 16, generator=torch.Generator().manual_seed(0))
    known = torch.randn(1, 8, 40, 16, generator=torch.Generator().manual_seed(1))
    region = torch.zeros(1, 1, 40, 1, dtype=torch.bool)
    region[:, :, :16] = True
    scheduler = make_scheduler(pipe.scheduler, sampling_config("fast"))
    free = denoise(pipe.unet, scheduler, noise, conditions, 5, 1.0)
    inpainted = denoise(pipe.unet, scheduler, noise, conditions, 5, 1.0, known=known, known_mask=region)
    assert torch.equal(inpainted[:, :, :16], known[:, :, :16])
    assert (inpainted[:, :, 16:] - free[:, :, 16:]).abs().max() > 1e-3  # the known part steered the rest
    with pytest.raises(ValueError, match="go together"):
        denoise(pipe.unet, scheduler, noise, conditions, 5, 1.0, known=known)


# ---------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("preset, steps", [("paper", 100), ("fast", 25)])
def test_paper_and_fast_presets_generate_from_a_toy_video(tiny_pipeline, short_video, preset, steps):
    with UNetCalls(tiny_pipeline.unet) as calls:
        result = tiny_pipeline(short_video, "dog barking", preset=preset)
    assert calls.batches == [2] * steps  # every step: negative + positive rows (CFG 3.5 and 5)
    assert result.audio.dtype == np.float32 and result.audio.shape == (2 * SR,) and result.sample_rate == SR
    assert np.isfinite(result.audio).all() and result.audio.std() > 1e-3
    assert result.audio_tokens.shape == (1, 8, 32) and result.joins == []


def test_render_tokens_is_the_sampling_path_a_video_window_takes(tiny_pipeline, tmp_path):
    """A video of one clip window, and its tokens rendered directly: the same audio, bit for bit."""
    video = write_video(tmp_path / "ten.mp4", 10.0, seed=2)
    result = tiny_pipeline(video, "dog barking", preset="fast", num_inference_steps=2, seed=3)
    tokens = torch.from_numpy(result.audio_tokens)  # (1 window, 8, 32)
    direct = tiny_pipeline.render_tokens(tokens, ["dog barking"], sampling_config("fast", num_inference_steps=2), seed=3)
    assert direct.shape == (1, 10 * SR)
    np.testing.assert_array_equal(direct[0], result.audio)


def test_same_seed_gives_identical_audio_on_cpu(tiny_pipeline, two_window_video):
    kwargs = dict(num_inference_steps=3, preset="fast")
    first = tiny_pipeline(two_window_video, "drum hit", **kwargs)
    again = tiny_pipeline(two_window_video, "drum hit", **kwargs)
    other = tiny_pipeline(two_window_video, "drum hit", seed=1, **kwargs)
    assert len(first.audio) == 14 * SR and first.audio_tokens.shape[0] == 2 and len(first.joins) == 1
    np.testing.assert_array_equal(first.audio, again.audio)
    assert np.abs(first.audio - other.audio).max() > 1e-3


def test_a_batch_goes_through_the_unet_together_and_sounds_as_each_alone(tiny_pipeline, short_video, two_window_video):
    alone = tiny_pipeline(two_window_video, "drum hit", num_inference_steps=2)
    short_alone = tiny_pipeline(short_video, "dog barking", num_inference_steps=2)
    videos, labels = [two_window_video, short_video, two_window_video], ["drum hit", "dog barking", "drum hit"]
    with UNetCalls(tiny_pipeline.unet) as calls:
        batch = tiny_pipeline(videos, labels, num_inference_steps=2)
    # windows of one length share a UNet batch: the two 250-frame first windows, then the
    # 50-frame short clip, then both second windows; each row pair is (negative, positive)
    assert calls.batches == [4, 4, 2, 2, 4, 4]
    for result, expected in zip(batch, [alone, short_alone, alone]):
        np.testing.assert_allclose(result.audio, expected.audio, rtol=0, atol=1e-4)


def test_a_bad_video_fails_alone(tiny_pipeline, short_video, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    results = tiny_pipeline([bad, short_video], "dog barking", num_inference_steps=2)
    assert isinstance(results[0], VideoReadError) and str(bad) in str(results[0])
    assert results[1].audio.shape == (2 * SR,)
    with pytest.raises(VideoReadError, match="not a readable video"):
        tiny_pipeline(bad, "dog barking", num_inference_steps=2)


def test_negative_condition_is_audioldm2s_own_gpt2_or_zeros(tiny_pipeline, short_video):
    paper = sampling_config("paper")
    expected = text_generated_embeds(tiny_pipeline, [paper.negative_prompt])[0]
    own = tiny_pipeline.negative_tokens(paper)
    torch.testing.assert_close(own, expected, rtol=0, atol=0)
    assert own.abs().sum() > 0 and tiny_pipeline.language_model is not tiny_pipeline.mapper.gpt2
    assert not tiny_pipeline.negative_tokens(sampling_config(negative_mode="zeros")).any()
    default = tiny_pipeline(short_video, "dog barking", num_inference_steps=2).audio
    zeros = tiny_pipeline(short_video, "dog barking", num_inference_steps=2, negative_mode="zeros").audio
    assert np.abs(default - zeros).max() > 1e-4


def test_pipeline_is_a_diffusers_pipeline_that_round_trips(tiny_pipeline, short_video, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "saved")
    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["_class_name"] == "VideoToAudioPipeline"
    assert index["extractors"] == ["mapper.generation.extractors_component", "VisualExtractors"]
    assert index["mapper"] == ["mapper.model", "MapperModel"] and index["unet"][1] == "AudioLDM2UNet2DConditionModel"
    loaded = VideoToAudioPipeline.from_pretrained(tmp_path / "saved", local_files_only=True)
    loaded.set_progress_bar_config(disable=True)
    expected = tiny_pipeline(short_video, "dog barking", num_inference_steps=2).audio
    np.testing.assert_array_equal(loaded(short_video, "dog barking", num_inference_steps=2).audio, expected)
    via_loader = load_pipeline(mapper=tmp_path / "saved")  # a saved pipeline folder works as `mapper`
    via_loader.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(via_loader(short_video, "dog barking", num_inference_steps=2).audio, expected)


def test_load_pipeline_names_the_missing_parts(tiny_mapper_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="AudioLDM-2 folder not found"):
        load_pipeline(mapper=tiny_mapper_dir, audioldm2=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="not a saved mapper"):
        load_pipeline(mapper=tmp_path)
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_pipeline(mapper=tiny_mapper_dir, dtype="fp8")
