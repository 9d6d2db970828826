"""A complete AudioLDM-2 pipeline with random tiny weights, built offline from configs.

Same component classes and wiring as ``cvssp/audioldm2`` (CLAP, Flan-T5, projection model, GPT-2,
the two-stream UNet, mel VAE, HiFi-GAN vocoder, DDIM with AudioLDM-2's schedule), so every code path
(both UNet condition streams, save/load, the negative-prompt GPT-2 loop) runs as with the real
model, in tests and in the offline demo.
"""
from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import (
    AudioLDM2Pipeline,
    AudioLDM2ProjectionModel,
    AudioLDM2UNet2DConditionModel,
    AutoencoderKL,
    DDIMScheduler,
)
from tokenizers import pre_tokenizers
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
    GPT2Config,
    GPT2Model,
    RobertaTokenizer,
    SpeechT5HifiGan,
    SpeechT5HifiGanConfig,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

from mapper.decoders.audioldm2.conditions import AUDIOMAE_TOKENS, T5_MAX_LENGTH
from mapper.decoders.audioldm2.latents import LatentGeometry
from mapper.decoders.audioldm2.reference import encode_reference


@dataclass(frozen=True)
class DecoderSize:
    """Widths of the audio-side components (the text side is the same 2-layer build at every size)."""

    unet_channels: tuple[int, ...] = (16, 32)  # one UNet level each
    unet_attention_levels: int = 1  # the deepest levels that carry (self + two cross) attention
    vae_channels: tuple[int, ...] = (8, 16, 16)  # three levels: /4 in time and mel, as AudioLDM-2
    vocoder_channels: int = 16  # HiFi-GAN's upsample_initial_channel
    vocoder_kernels: tuple[int, ...] = (3,)  # HiFi-GAN's multi-receptive-field resblock kernels


TINY = DecoderSize()  # random weights, for tests: cheapest that runs every code path


# Words the tiny T5 tokenizer keeps whole, so typical labels are a few tokens, like with Flan-T5.
_TINY_T5_WORDS = (
    "dog barking cat meowing bird chirping car engine water running people talking music playing "
    "low average high quality noise silence sound of a the and with in on"
).split()


def _tiny_t5_tokenizer() -> T5Tokenizer:
    """Flan-T5-style Unigram tokenizer (<pad>=0, </s>=1, <unk>=2) from an in-code vocabulary.

    Every printable ASCII character is a piece, so any English label tokenizes without <unk>;
    a few whole words score higher than their spelling so they stay one token.
    """
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    words = [("\u2581" + word, -3.0) for word in _TINY_T5_WORDS]
    chars = [(c, -6.0) for c in string.ascii_letters + string.digits + string.punctuation]
    vocab = specials + words + chars
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def _tiny_roberta_tokenizer() -> RobertaTokenizer:
    """CLAP's RoBERTa byte-level BPE with no merges: one token per byte, any text encodes."""
    specials = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, as RoBERTa / CLAP expect
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # the 256 byte-level symbols
    vocab = {token: i for i, token in enumerate(specials + alphabet + ["<mask>"])}
    return RobertaTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _tiny_clap(vocab_size: int) -> ClapModel:
    """CLAP with a 2-layer, 16-wide text branch; the audio branch is only there to complete it."""
    text = ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=37,
        num_attention_heads=2,
        num_hidden_layers=2,
        projection_dim=16,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
    )
    audio = ClapAudioConfig(
        spec_size=64,
        window_size=4,
        num_mel_bins=64,
        intermediate_size=37,
        depths=[2, 2],
        num_attention_heads=[2, 2],
        num_hidden_layers=2,
        hidden_size=192,
        projection_dim=16,
        patch_size=2,
        patch_stride=2,
        patch_embed_input_channels=4,
    )
    return ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16))


def _tiny_t5(vocab_size: int, width: int) -> T5EncoderModel:
    """Flan-T5 encoder architecture (gated-GELU feed-forward) at width ``width``."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=width,
        d_ff=2 * width,
        d_kv=8,
        num_heads=2,
        num_layers=2,
        feed_forward_proj="gated-gelu",
    )
    return T5EncoderModel(config)


def _tiny_gpt2(width: int) -> GPT2Model:
    """GPT-2 body as the hub config loads it (``GPT2Model``, no LM head), ``width`` wide."""
    vocab_size = 64  # token ids are never used: AudioLDM-2 feeds GPT-2 embeddings only
    config = GPT2Config(
        n_embd=width,
        n_head=2,
        n_layer=2,
        n_positions=256,
        vocab_size=vocab_size,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    model = GPT2Model(config)
    model.config.max_new_tokens = AUDIOMAE_TOKENS  # the hub config carries it too
    return model


def _tiny_unet(gpt2_width: int, t5_width: int, channels: tuple[int, ...],
               attention_levels: int) -> AudioLDM2UNet2DConditionModel:
    """UNet whose attention blocks carry [self-attn, GPT-2 cross-attn, T5 cross-attn].

    Attention sits only at the `attention_levels` deepest levels, so a 10 s latent (256 x 16) stays cheap.
    """
    streams = [None, gpt2_width, t5_width]  # None = the extra self-attention layer
    levels = len(channels)
    plain = levels - attention_levels
    return AudioLDM2UNet2DConditionModel(
        sample_size=256,  # x 4 (VAE) x 10 ms: default length 10.24 s, as AudioLDM-2
        in_channels=8,
        out_channels=8,
        block_out_channels=channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * attention_levels,
        up_block_types=("CrossAttnUpBlock2D",) * attention_levels + ("UpBlock2D",) * plain,
        cross_attention_dim=(streams,) * levels,
        attention_head_dim=4 if channels[-1] <= 32 else 8,
        norm_num_groups=8,
    )


def _tiny_vae(channels: tuple[int, ...]) -> AutoencoderKL:
    """Mel VAE with AudioLDM-2's geometry: 1 channel in, 8 latent channels, /4 in time and mel."""
    return AutoencoderKL(
        in_channels=1,
        out_channels=1,
        block_out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        latent_channels=8,
        norm_num_groups=8,
    )


def _tiny_vocoder(channels: int, kernels: tuple[int, ...]) -> SpeechT5HifiGan:
    """HiFi-GAN from 64 mel bins to 16 kHz with a 160-sample hop: one mel frame is 10 ms."""
    config = SpeechT5HifiGanConfig(
        model_in_dim=64,
        sampling_rate=16000,
        upsample_initial_channel=channels,
        upsample_rates=[8, 5, 4],  # product 160
        upsample_kernel_sizes=[16, 10, 8],
        resblock_kernel_sizes=list(kernels),
        resblock_dilation_sizes=[[1, 3]] * len(kernels),
        normalize_before=False,
    )
    return _variance_preserving(SpeechT5HifiGan(config))


def _variance_preserving(vocoder: SpeechT5HifiGan) -> SpeechT5HifiGan:
    """Re-draw conv weights as N(0, 1/fan_in) so a random vocoder's output is audible.

    HiFi-GAN's own init, N(0, 0.01), suits training from scratch but shrinks a random signal to
    ~1e-7; with fan-in scaling the tiny model emits noise at ~0.1 amplitude, which keeps demos
    audible and makes "did the condition change the audio" checks meaningful.
    """
    for module in vocoder.modules():
        if isinstance(module, torch.nn.ConvTranspose1d):  # each output sees in * kernel / stride taps
            fan_in = module.in_channels * module.kernel_size[0] / module.stride[0]
        elif isinstance(module, torch.nn.Conv1d):
            fan_in = module.in_channels * module.kernel_size[0]
        else:
            continue
        torch.nn.init.normal_(module.weight, std=fan_in**-0.5)
    return vocoder


def audioldm2_scheduler() -> DDIMScheduler:
    """DDIM with AudioLDM-2's training schedule (linear_start/end 0.0015/0.0195, 1000 steps)."""
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        steps_offset=1,
        clip_sample=False,
        set_alpha_to_one=False,
        prediction_type="epsilon",
    )


def build_tiny_audioldm2(
    gpt2_width: int = 32, t5_width: int = 32, seed: int = 0, size: DecoderSize = TINY
) -> AudioLDM2Pipeline:
    """A complete AudioLDM2Pipeline with random tiny weights, built without network or files.

    Same component classes as ``cvssp/audioldm2`` so every code path (both UNet condition
    streams, save/load, the negative-prompt GPT-2 loop) runs as with the real model. The seed
    makes the weights identical across processes; the caller's global RNG state is restored.
    ``size``: the audio-side widths (the toy decoder is this build at a larger size, then trained).
    """
    tokenizer, tokenizer_2 = _tiny_roberta_tokenizer(), _tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = AudioLDM2Pipeline(
            vae=_tiny_vae(size.vae_channels),
            text_encoder=_tiny_clap(len(tokenizer)),
            text_encoder_2=_tiny_t5(len(tokenizer_2), t5_width),
            projection_model=AudioLDM2ProjectionModel(
                text_encoder_dim=16, text_encoder_1_dim=t5_width, langauge_model_dim=gpt2_width
            ),
            language_model=_tiny_gpt2(gpt2_width),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            feature_extractor=ClapFeatureExtractor(),
            unet=_tiny_unet(gpt2_width, t5_width, size.unet_channels, size.unet_attention_levels),
            scheduler=audioldm2_scheduler(),
            vocoder=_tiny_vocoder(size.vocoder_channels, size.vocoder_kernels),
        )
    pipe = freeze(pipe)
    _scale_by_std(pipe)
    return pipe


@torch.no_grad()
def _scale_by_std(pipe: AudioLDM2Pipeline) -> None:
    """Set the VAE's scaling factor so encoded audio has unit-variance latents.

    AudioLDM-2 does the same on its first training batch (``scale_by_std``): the UNet's prior
    is a unit Gaussian, so latents it generates and latents encoded from audio (a reference
    sound) then live on one scale. A random VAE has no data: 4 s of fixed white noise stands in.
    """
    geometry = LatentGeometry.of(pipe.vae, pipe.vocoder, pipe.unet)
    frame_samples = geometry.frame_samples
    frames = 4 * geometry.sample_rate // frame_samples
    noise = np.random.default_rng(0).standard_normal(frames * frame_samples).astype(np.float32)
    latent = encode_reference(pipe.vae, pipe.vocoder.config, noise, frames, frame_samples)
    unscaled_std = latent.std().item() / pipe.vae.config.scaling_factor
    pipe.vae.register_to_config(scaling_factor=1.0 / unscaled_std)


def freeze(pipe: AudioLDM2Pipeline) -> AudioLDM2Pipeline:
    """Inference mode for every module (freshly built ones start in train mode, with dropout)."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval().requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
