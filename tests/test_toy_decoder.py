"""The shipped `toy` AudioLDM-2: what was shipped is what the recipe wrote, it loads offline, and the
sounds it renders land on the toy world's events (which a mis-wired condition or a wrong scale breaks)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evaluation.toy_classifier import TOY_LABELS, classify, load_toy_classifier
from evaluation.toy_sync import sync_offset
from extractors.clip import ClipConfig
from extractors.frozen import FrozenExtractors
from mapper.decoders.audioldm2 import LatentGeometry, decode_latents, denoise, guidance_conditions, load_audioldm2
from mapper.decoders.audioldm2.toy import PROVENANCE, TOY_FOLDER, TOY_WORLD_SEED, checksums, weight_files
from mapper.generation.sampling import make_scheduler, sampling_config
from mapper.training.toy_world import clip_window_audio, plan_world

MAX_BYTES = 20 * 2**20
HELD_OUT_SEED = 11  # neither the decoder's world (1), the classifier's (2) nor the mapper's (0)


def test_the_shipped_weights_are_what_the_recipe_recorded():
    provenance = json.loads((TOY_FOLDER / PROVENANCE).read_text())
    assert provenance["seed"] == TOY_WORLD_SEED and provenance["command"].startswith("python -m recipes.pretrain_toy_decoder")
    assert checksums() == provenance["sha256"]  # every weight file, byte for byte
    assert {"vae/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors",
            "vocoder/model.safetensors"} <= provenance["sha256"].keys()
    assert sum(path.stat().st_size for path in TOY_FOLDER.rglob("*") if path.is_file()) <= MAX_BYTES
    assert all(path.suffix == ".safetensors" for path in weight_files())
    assert not list(TOY_FOLDER.rglob("*.bin")) and not list(TOY_FOLDER.rglob("*.pt*"))  # tensors only


@pytest.fixture(scope="module")
def toy():
    return load_audioldm2("toy")


@pytest.fixture(scope="module")
def held_out():
    """Eight clips of an unseen toy world: labels, event times (s from the window start), true audio."""
    clip = ClipConfig()
    specs = [c for c in plan_world(40, HELD_OUT_SEED, clip)["clips"] if c["duration"] >= clip.seconds][:8]
    audio = np.stack([clip_window_audio(c, clip) for c in specs])  # (8, 160000)
    tokens = FrozenExtractors.from_preset("tiny").encode_audio(torch.from_numpy(audio))  # (8, 8, 32)
    return {"labels": [c["label"] for c in specs], "tokens": tokens,
            "events": [np.asarray(c["events"]["times"]) - c["start"] for c in specs]}


def _render(pipe, tokens, labels, scaling=None, steps=12):
    """Tokens (B, 8, D) + labels -> (B, 10 s) audio, seeded per clip, as the pipeline samples one window."""
    geometry = LatentGeometry.of(pipe.vae, pipe.vocoder, pipe.unet)
    sampling = sampling_config("fast", num_inference_steps=steps)
    generators = [torch.Generator().manual_seed(i) for i in range(len(labels))]
    noise = torch.cat([torch.randn(geometry.latent_shape(geometry.window_frames(10.0)), generator=g)
                       for g in generators])
    negative = torch.zeros_like(tokens[0])
    conditions = guidance_conditions(pipe, tokens, labels, sampling.negative_prompt, negative)
    latents = denoise(pipe.unet, make_scheduler(pipe.scheduler, sampling), noise, conditions, steps,
                      sampling.guidance_scale, generator=generators)
    if scaling is not None:  # decode as if the VAE's latent scale were another
        latents = latents * pipe.vae.config.scaling_factor / scaling
    return decode_latents(pipe.vae, pipe.vocoder, latents, geometry.frame_samples)[:, :160000]


def _judge(audio, held_out) -> tuple[float, float]:
    """(mean |event-sync lag| in s, class accuracy of the toy classifier)."""
    lags = [abs(sync_offset(a, 16000, times)) for a, times in zip(audio, held_out["events"])]
    predicted = [TOY_LABELS[k] for k in classify(load_toy_classifier(), audio[:, :128000])]
    return float(np.nanmean(lags)), float(np.mean([p == t for p, t in zip(predicted, held_out["labels"])]))


@pytest.mark.slow
def test_generated_onsets_follow_the_events_and_miswiring_breaks_them(toy, held_out):
    tokens, labels = held_out["tokens"], held_out["labels"]
    sync, accuracy = _judge(_render(toy, tokens, labels), held_out)
    wrong_video_sync, _ = _judge(_render(toy, tokens.roll(1, dims=0), labels), held_out)  # another clip's tokens
    assert sync <= 0.5 * wrong_video_sync and accuracy >= 0.75, (sync, wrong_video_sync, accuracy)

    broken = {
        "GPT-2 stream in reverse order": _render(toy, tokens.flip(1), labels),
        "zeroed tokens": _render(toy, torch.zeros_like(tokens), labels),
        "latent scale of 1": _render(toy, tokens, labels, scaling=1.0),
    }
    for name, audio in broken.items():
        broken_sync, broken_accuracy = _judge(audio, held_out)
        assert broken_sync > 0.5 * wrong_video_sync or broken_accuracy < 0.75, (name, broken_sync, broken_accuracy)
