"""The AudioLDM-2 decoder stage: tiny offline build, exact lengths, both condition streams,
equivalence with diffusers' own text path, negative conditions, save/load."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import hashlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from diffusers import AudioLDM2Pipeline  # noqa: E402
from transformers import GPT2LMHeadModel  # noqa: E402

from extractors.gpt2_decoding import generate_hidden_states  # noqa: E402
from mapper.decoders.audioldm2 import (  # noqa: E402
    AUDIOMAE_TOKENS,
    DEFAULT_NEGATIVE_PROMPT,
    build_tiny_audioldm2,
    encode_labels,
    load_audioldm2,
    negative_tokens,
    render,
    text_generated_embeds,
)
from mapper.decoders.audioldm2.conditions import _clap_text_embeds  # noqa: E402

WIDTH = 32  # tiny GPT-2 stream width (build_tiny_audioldm2's default)
SR = 16000


@pytest.fixture(scope="module")
def pipe():
    return build_tiny_audioldm2()


@pytest.fixture(scope="module")
def pipe_lm(pipe):
    """Same weights, but language_model as GPT2LMHeadModel, so diffusers' own prompt path runs."""
    lm = GPT2LMHeadModel(pipe.language_model.config)
    lm.transformer.load_state_dict(pipe.language_model.state_dict())
    lm.eval().requires_grad_(False)
    with_lm = AudioLDM2Pipeline(**{**pipe.components, "language_model": lm})
    with_lm.set_progress_bar_config(disable=True)
    return with_lm


def tokens(seed: int, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, AUDIOMAE_TOKENS, WIDTH, generator=torch.Generator().manual_seed(seed))


def quick_render(pipe, audio_tokens, labels, seconds=1.0, seed=0, **kwargs):
    kwargs = {"num_inference_steps": 2, "guidance_scale": 3.5, **kwargs}
    return render(pipe, audio_tokens, labels, seconds, generator=torch.Generator().manual_seed(seed), **kwargs)


def weights(pipe) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value
        for name, module in pipe.components.items()
        if isinstance(module, torch.nn.Module)
        for key, value in module.state_dict().items()
    }


def weights_digest(pipe) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(weights(pipe).items()):
        digest.update(key.encode() + value.contiguous().numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- tiny build


def test_tiny_build_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    first, second, other = weights(build_tiny_audioldm2()), weights(build_tiny_audioldm2()), weights(build_tiny_audioldm2(seed=1))
    assert torch.equal(state, torch.random.get_rng_state())
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.slow
def test_tiny_build_is_identical_in_another_process():
    """Features cached or mappers trained against "tiny" in one process must match it in the next."""
    script = "from tests.test_audioldm2 import *; print(weights_digest(build_tiny_audioldm2()))"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert other.stdout.strip().splitlines()[-1] == weights_digest(build_tiny_audioldm2())


def test_tiny_build_wires_both_streams_and_a_10ms_hop(pipe):
    streams = pipe.unet.config.cross_attention_dim[0]
    assert list(streams) == [None, WIDTH, pipe.text_encoder_2.config.d_model]
    assert np.prod(pipe.vocoder.config.upsample_rates) == 160 and pipe.vocoder.config.sampling_rate == SR
    assert pipe.vocoder.config.model_in_dim == 64 and pipe.vae_scale_factor == 4
    assert not any(m.training for m in pipe.components.values() if isinstance(m, torch.nn.Module))


def test_same_generator_seed_gives_identical_audio(pipe):
    first = quick_render(pipe, tokens(0), ["dog barking"])
    assert np.array_equal(first, quick_render(pipe, tokens(0), ["dog barking"]))
    assert not np.array_equal(first, quick_render(pipe, tokens(0), ["dog barking"], seed=1))


# ---------------------------------------------------------------- lengths


@pytest.mark.parametrize("seconds", [0.05, 3.7, 10.0, 10.005, 12.3])
def test_output_has_exact_length_and_is_finite(pipe, seconds):
    audio = quick_render(pipe, tokens(0, batch=2), ["dog barking", ""], seconds, num_inference_steps=1)
    assert audio.shape == (2, round(seconds * SR)) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and audio.std() > 1e-3  # the tiny vocoder is audible


def test_exact_length_is_the_pipelines_own_render_cropped(pipe):
    """The length fix-up picks the latent the pipeline picks for that duration: same noise, same audio."""
    ours = quick_render(pipe, tokens(0), ["dog barking"], 3.7, guidance_scale=1.0)
    t5, mask = encode_labels(pipe, ["dog barking"])
    theirs = pipe(
        prompt_embeds=t5, attention_mask=mask, generated_prompt_embeds=tokens(0), audio_length_in_s=3.7,
        num_inference_steps=2, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
    ).audios
    assert theirs.shape == ours.shape and np.array_equal(theirs, ours)


# ---------------------------------------------------------------- conditions


def test_both_unet_streams_change_the_audio(pipe):
    base = quick_render(pipe, tokens(0), ["dog barking"])
    other_tokens = quick_render(pipe, tokens(1), ["dog barking"])
    other_label = quick_render(pipe, tokens(0), ["cat meowing"])
    assert np.abs(base - other_tokens).max() > 1e-4
    assert np.abs(base - other_label).max() > 1e-4


def test_encode_labels_is_the_pipelines_t5_stream(pipe, pipe_lm):
    labels = ["dog barking", "a cat meowing in the kitchen"]  # different lengths: padding + mask
    t5, mask = encode_labels(pipe, labels)
    theirs, their_mask, _ = pipe_lm.encode_prompt(labels, torch.device("cpu"), 1, False)
    assert torch.equal(t5, theirs) and torch.equal(mask, their_mask)
    assert mask[0].sum() < mask[1].sum() == mask.shape[1]


@pytest.mark.parametrize("model", ["GPT2Model", "GPT2LMHeadModel"])
def test_gpt2_loop_equals_the_pipelines_generate_language_model(pipe, pipe_lm, model):
    texts = [DEFAULT_NEGATIVE_PROMPT, "dog barking"]  # padded batch exercises the mask
    t5, t5_mask = encode_labels(pipe, texts)
    clap = _clap_text_embeds(pipe, texts)
    projected = pipe.projection_model(
        hidden_states=clap, hidden_states_1=t5, attention_mask=t5_mask.new_ones(clap.shape[:2]), attention_mask_1=t5_mask
    )
    with torch.no_grad():
        theirs = pipe_lm.generate_language_model(
            projected.hidden_states, attention_mask=projected.attention_mask, max_new_tokens=AUDIOMAE_TOKENS
        )
    language_model = pipe.language_model if model == "GPT2Model" else pipe_lm.language_model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = generate_hidden_states(language_model, projected.hidden_states, AUDIOMAE_TOKENS, projected.attention_mask)
    assert ours.shape == (2, AUDIOMAE_TOKENS, WIDTH)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert not [w for w in caught if "deprecated" in str(w.message)]  # the cache goes in as transformers wants it


def test_text_condition_is_the_pipelines_generated_prompt_embeds(pipe, pipe_lm):
    labels = ["dog barking", "a cat meowing in the kitchen"]
    _, _, theirs = pipe_lm.encode_prompt(labels, torch.device("cpu"), 1, False)
    torch.testing.assert_close(text_generated_embeds(pipe, labels), theirs, rtol=0, atol=1e-6)


def test_render_equals_diffusers_text_to_audio(pipe, pipe_lm):
    """With AudioLDM-2's own tokens for the label, render == the pipeline's prompt path.

    The negative prompt has the label's T5 length, where diffusers neither truncates nor pads it.
    """
    label, negative = "dog barking", "low quality"
    assert len(pipe.tokenizer_2.tokenize(label)) == len(pipe.tokenizer_2.tokenize(negative))
    theirs = pipe_lm(
        prompt=[label], negative_prompt=[negative], audio_length_in_s=2.0, num_inference_steps=3,
        guidance_scale=3.5, generator=torch.Generator().manual_seed(0),
    ).audios
    ours = quick_render(pipe, text_generated_embeds(pipe, [label]), [label], 2.0, num_inference_steps=3, negative_prompt=negative)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)


def test_batch_padding_is_invisible(pipe):
    """A short label rendered next to a long one (hence padded) sounds as it does alone."""
    generators = lambda: [torch.Generator().manual_seed(s) for s in (0, 1)]  # noqa: E731
    both = render(pipe, tokens(0, batch=2), ["dog", "a cat meowing in the kitchen"], 1.0, 2, 3.5, generator=generators())
    alone = render(pipe, tokens(0, batch=2)[:1], ["dog"], 1.0, 2, 3.5, generator=generators()[:1])
    np.testing.assert_allclose(both[:1], alone, rtol=0, atol=1e-5)


def test_negative_modes(pipe):
    zeros = negative_tokens(pipe, mode="zeros")
    assert zeros.shape == (AUDIOMAE_TOKENS, WIDTH) and not zeros.any()
    learned = negative_tokens(pipe, DEFAULT_NEGATIVE_PROMPT, num_tokens=4)
    assert learned.shape == (4, WIDTH) and learned.abs().sum() > 0
    with pytest.raises(ValueError, match="negative mode"):
        negative_tokens(pipe, mode="random")
    assert not np.array_equal(quick_render(pipe, tokens(0), ["dog barking"]), quick_render(pipe, tokens(0), ["dog barking"], negative_mode="zeros"))


def test_bring_your_own_embeddings_needs_no_clap_or_projection(pipe):
    """diffusers' checks accept the embeddings path with CLAP, tokenizer and projection absent;
    text_encoder_2 and language_model must stay (their dtypes are read), and T5 encodes labels."""
    lean = AudioLDM2Pipeline(**{**pipe.components, "text_encoder": None, "tokenizer": None, "projection_model": None, "feature_extractor": None})
    lean.set_progress_bar_config(disable=True)
    audio = quick_render(lean, tokens(0), ["dog barking"], negative_mode="zeros")
    assert np.array_equal(audio, quick_render(pipe, tokens(0), ["dog barking"], negative_mode="zeros"))
    with pytest.raises(ValueError, match="text_encoder, projection_model"):
        quick_render(lean, tokens(0), ["dog barking"], negative_mode="audioldm2")


def test_no_guidance_skips_the_negative(pipe):
    audio = quick_render(pipe, tokens(0), ["dog barking"], guidance_scale=1.0)
    assert audio.shape == (1, SR) and np.isfinite(audio).all()


# ---------------------------------------------------------------- loading


def test_save_pretrained_round_trip_gives_identical_audio(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    loaded = load_audioldm2(str(tmp_path))
    assert type(loaded.language_model).__name__ == "GPT2Model"  # as the hub config loads it
    assert np.array_equal(quick_render(pipe, tokens(0), ["dog barking"]), quick_render(loaded, tokens(0), ["dog barking"]))


def test_load_tiny_and_missing_folder(tmp_path):
    assert isinstance(load_audioldm2("tiny"), AudioLDM2Pipeline)
    for missing in (str(tmp_path / "nope"), "./nope", "weights/audioldm2/base"):
        with pytest.raises(FileNotFoundError, match="AudioLDM-2 folder not found") as error:
            load_audioldm2(missing)
        assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_audioldm2(str(tmp_path))
    with pytest.raises(OSError, match="is no local folder and could not be loaded from the hub") as error:
        load_audioldm2("no-such-owner/audioldm2")  # a hub id; HF_HUB_OFFLINE keeps it local
    assert "\n" not in str(error.value)


# The released AudioLDM-2's noise schedule: cvssp/audioldm2 scheduler/scheduler_config.json (the same in
# cvssp/audioldm2-large), every field but the diffusers version. Samplers built from a pipeline's scheduler
# (mapper.generation.sampling) inherit these, timestep_spacing included.
RELEASED_SCHEDULER = {
    "_class_name": "DDIMScheduler", "beta_end": 0.0195, "beta_schedule": "scaled_linear", "beta_start": 0.0015,
    "clip_sample": False, "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "rescale_betas_zero_snr": False, "sample_max_value": 1.0, "set_alpha_to_one": False,
    "steps_offset": 1, "thresholding": False, "timestep_spacing": "leading", "trained_betas": None,
}


@pytest.mark.parametrize("name", ["tiny", "toy"])
def test_the_scheduler_is_the_released_audioldm2s(name):
    scheduler = load_audioldm2(name).scheduler
    config = {**scheduler.config, "_class_name": type(scheduler).__name__}
    assert {key: config.get(key) for key in RELEASED_SCHEDULER} == RELEASED_SCHEDULER
