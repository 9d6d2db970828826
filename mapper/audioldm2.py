"""AudioLDM-2 as the frozen audio decoder of the MFM-Mapper toolkit.

The mapper predicts AudioLDM-2's eight AudioMAE tokens (the "GPT-2 stream"); the sound label goes
through AudioLDM-2's own Flan-T5 (the "T5 stream"). This module turns those two conditions into a
waveform with the stock diffusers ``AudioLDM2Pipeline`` through its bring-your-own-embeddings
arguments, so the UNet, VAE, vocoder and scheduler run exactly as diffusers runs them.

What it deliberately never does is call the pipeline's own text -> GPT-2 path
(``encode_prompt`` with a prompt, i.e. ``generate_language_model``): the hub config loads
``language_model`` as ``GPT2Model``, which lacks ``_update_model_kwargs_for_generation`` and breaks
that path (diffusers issue #12630). Where AudioLDM-2's own GPT-2 condition is needed (the negative
prompt) :func:`generate_hidden_states` runs the same 8-step loop with an explicit KV cache.

Public API:
    build_tiny_audioldm2     random tiny pipeline, built offline from configs (tests, demos)
    load_audioldm2           "tiny" | local folder | hub id -> pipeline
    encode_labels            Flan-T5 stream for sound labels, as the pipeline computes it
    generate_hidden_states   AudioLDM-2's autoregressive GPT-2 loop (works for GPT2Model too)
    text_generated_embeds    CLAP + T5 -> projection -> GPT-2: AudioLDM-2's own 8-token condition
    negative_generated_embeds  the negative GPT-2-stream condition for classifier-free guidance
    render                   mapper tokens + labels -> float32 waveform of an exact length
"""

from __future__ import annotations

import math
import os
import string
from typing import Literal

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

AUDIOMAE_TOKENS = 8  # AudioLDM-2's GPT-2 generates 8 AudioMAE tokens (sequence_gen_length)
DEFAULT_NEGATIVE_PROMPT = "low quality, average quality"
T5_MAX_LENGTH = 128  # hard-coded in the original AudioLDM-2 (diffusers' conversion script copies it)
NegativeMode = Literal["audioldm2", "zeros"]


# --------------------------------------------------------------------------------------------
# Tiny pipeline, built offline. Same classes and wiring as cvssp/audioldm2, random tiny weights.
# --------------------------------------------------------------------------------------------

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


def _tiny_unet(gpt2_width: int, t5_width: int) -> AudioLDM2UNet2DConditionModel:
    """UNet whose attention blocks carry [self-attn, GPT-2 cross-attn, T5 cross-attn].

    Attention sits only at the downsampled level, so a 10 s latent (250 x 16) stays cheap.
    """
    streams = [None, gpt2_width, t5_width]  # None = the extra self-attention layer
    return AudioLDM2UNet2DConditionModel(
        sample_size=256,  # x 4 (VAE) x 10 ms: default length 10.24 s, as AudioLDM-2
        in_channels=8,
        out_channels=8,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(streams, streams),
        attention_head_dim=4,
        norm_num_groups=8,
    )


def _tiny_vae() -> AutoencoderKL:
    """Mel VAE with AudioLDM-2's geometry: 1 channel in, 8 latent channels, /4 in time and mel."""
    return AutoencoderKL(
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1,
        latent_channels=8,
        norm_num_groups=8,
    )


def _tiny_vocoder() -> SpeechT5HifiGan:
    """HiFi-GAN from 64 mel bins to 16 kHz with a 160-sample hop: one mel frame is 10 ms."""
    config = SpeechT5HifiGanConfig(
        model_in_dim=64,
        sampling_rate=16000,
        upsample_initial_channel=16,
        upsample_rates=[8, 5, 4],  # product 160
        upsample_kernel_sizes=[16, 10, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
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


def build_tiny_audioldm2(gpt2_width: int = 32, t5_width: int = 32, seed: int = 0) -> AudioLDM2Pipeline:
    """A complete AudioLDM2Pipeline with random tiny weights, built without network or files.

    Same component classes as ``cvssp/audioldm2`` so every code path (both UNet condition
    streams, save/load, the negative-prompt GPT-2 loop) runs as with the real model. The seed
    makes the weights identical across processes; the caller's global RNG state is restored.
    """
    tokenizer, tokenizer_2 = _tiny_roberta_tokenizer(), _tiny_t5_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipe = AudioLDM2Pipeline(
            vae=_tiny_vae(),
            text_encoder=_tiny_clap(len(tokenizer)),
            text_encoder_2=_tiny_t5(len(tokenizer_2), t5_width),
            projection_model=AudioLDM2ProjectionModel(
                text_encoder_dim=16, text_encoder_1_dim=t5_width, langauge_model_dim=gpt2_width
            ),
            language_model=_tiny_gpt2(gpt2_width),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            feature_extractor=ClapFeatureExtractor(),
            unet=_tiny_unet(gpt2_width, t5_width),
            scheduler=audioldm2_scheduler(),
            vocoder=_tiny_vocoder(),
        )
    pipe = _frozen(pipe)
    _scale_by_std(pipe)
    return pipe


@torch.no_grad()
def _scale_by_std(pipe: AudioLDM2Pipeline) -> None:
    """Set the VAE's scaling factor so encoded audio has unit-variance latents.

    AudioLDM-2 does the same on its first training batch (``scale_by_std``): the UNet's prior
    is a unit Gaussian, so latents it generates and latents encoded from audio (a reference
    sound) then live on one scale. A random VAE has no data: 4 s of fixed white noise stands in.
    """
    from mapper.reference_audio import encode_reference  # reference_audio does not import this module

    hop = int(np.prod(pipe.vocoder.config.upsample_rates))
    frame_samples = pipe.vae_scale_factor * hop
    frames = 4 * pipe.vocoder.config.sampling_rate // frame_samples
    noise = np.random.default_rng(0).standard_normal(frames * frame_samples).astype(np.float32)
    latent = encode_reference(pipe.vae, pipe.vocoder.config, noise, frames, frame_samples)
    unscaled_std = latent.std().item() / pipe.vae.config.scaling_factor
    pipe.vae.register_to_config(scaling_factor=1.0 / unscaled_std)


def _frozen(pipe: AudioLDM2Pipeline) -> AudioLDM2Pipeline:
    """Inference mode for every module (freshly built ones start in train mode, with dropout)."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval().requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else is meant as a local folder."""
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or name.endswith("/")
        or (os.sep != "/" and os.sep in name)
    )


def _from_hub(repo_id: str, dtype: torch.dtype) -> AudioLDM2Pipeline:
    """Hub download; a failure (offline, unknown id) becomes one line naming both readings."""
    try:
        return AudioLDM2Pipeline.from_pretrained(repo_id, dtype=dtype)
    except OSError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OSError(
            f"AudioLDM-2 '{repo_id}' is no local folder and could not be loaded from the hub ({reason})"
        ) from error


def load_audioldm2(
    name_or_path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> AudioLDM2Pipeline:
    """``"tiny"`` -> random tiny pipeline; a local folder -> offline load; else a hub id.

    Only a hub id may reach the network. Whatever is loaded, the caller must not use the
    pipeline's own prompt path (see the module docstring); :func:`render` never does.
    """
    if name_or_path == "tiny":
        return _placed(build_tiny_audioldm2(), device, dtype)
    path = os.path.expanduser(name_or_path)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise FileNotFoundError(f"{path} is not a diffusers AudioLDM-2 folder: model_index.json is missing")
        pipe = AudioLDM2Pipeline.from_pretrained(path, local_files_only=True, dtype=dtype)
    elif os.path.exists(path) or _looks_like_path(name_or_path):
        raise FileNotFoundError(
            f"AudioLDM-2 folder not found: {path} (expected a diffusers save_pretrained folder, "
            "'tiny', or a hub id such as cvssp/audioldm2)"
        )
    else:
        pipe = _from_hub(name_or_path, dtype)
    return _placed(_frozen(pipe), device, dtype)  # dtype again: older diffusers ignore the kwarg


def _placed(pipe: AudioLDM2Pipeline, device, dtype: torch.dtype) -> AudioLDM2Pipeline:
    """Move to ``device``; cast only modules not already in ``dtype`` (diffusers warns on every cast)."""
    pipe.to(device)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module) and any(p.dtype != dtype for p in component.parameters()):
            component.to(dtype=dtype)
    return pipe


# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def encode_labels(pipe: AudioLDM2Pipeline, labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flan-T5 stream of ``labels``: what ``AudioLDM2Pipeline.encode_prompt`` feeds the UNet.

    The pipeline uses T5's last hidden state raw (no projection, no normalisation) as
    ``encoder_hidden_states_1``, tokenized with padding to the longest label and truncation at
    ``tokenizer_2.model_max_length``; the attention mask masks the padding in cross-attention.
    Returns (B, L, t5_width) embeds in the T5 dtype and a (B, L) int64 mask, on the pipe's device.
    """
    tokens = pipe.tokenizer_2(
        list(labels),
        padding=True,
        max_length=pipe.tokenizer_2.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    device = pipe.text_encoder_2.device
    input_ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)  # (B, L)
    embeds = pipe.text_encoder_2(input_ids, attention_mask=mask)[0]  # (B, L, t5_width)
    return embeds, mask


@torch.no_grad()
def _clap_text_embeds(pipe: AudioLDM2Pipeline, texts: list[str]) -> torch.Tensor:
    """CLAP text embedding (B, 1, clap_dim), tokenized and pooled exactly as the pipeline does."""
    tokens = pipe.tokenizer(
        list(texts),
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    device = pipe.text_encoder.device
    features = pipe.text_encoder.get_text_features(
        tokens.input_ids.to(device), attention_mask=tokens.attention_mask.to(device)
    )
    features = getattr(features, "pooler_output", features)  # transformers v5 wraps it, v4 does not
    return features[:, None, :]


@torch.no_grad()
def generate_hidden_states(
    language_model: torch.nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    num_tokens: int = AUDIOMAE_TOKENS,
) -> torch.Tensor:
    """AudioLDM-2's autoregressive GPT-2 loop: each last hidden state becomes the next input.

    Equals ``AudioLDM2Pipeline.generate_language_model`` but drives the KV cache itself, so it
    works for ``GPT2Model`` (what the hub config loads) as well as ``GPT2LMHeadModel``.
    inputs_embeds (B, T, W), attention_mask (B, T) -> generated hidden states (B, num_tokens, W).
    """
    body = language_model.base_model  # GPT2LMHeadModel -> its GPT2Model; GPT2Model -> itself
    batch = inputs_embeds.shape[0]
    if attention_mask is None:
        attention_mask = inputs_embeds.new_ones(inputs_embeds.shape[:2], dtype=torch.long)
    step_input, past, generated = inputs_embeds, None, []
    for _ in range(num_tokens):
        output = body(inputs_embeds=step_input, attention_mask=attention_mask, past_key_values=past, use_cache=True)
        past = output.past_key_values
        step_input = output.last_hidden_state[:, -1:]  # (B, 1, W), after the final LayerNorm
        generated.append(step_input)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=1)
    return torch.cat(generated, dim=1)


@torch.no_grad()
def text_generated_embeds(
    pipe: AudioLDM2Pipeline, texts: list[str], num_tokens: int = AUDIOMAE_TOKENS
) -> torch.Tensor:
    """AudioLDM-2's own GPT-2-stream condition for ``texts``: (B, num_tokens, gpt2_width).

    CLAP(text) and T5(text) -> projection model (adds learned SOS/EOS per stream) -> GPT-2 loop,
    as ``encode_prompt`` does for a prompt. Needs the pipeline's text-side components.
    """
    missing = [
        name for name in ("tokenizer", "text_encoder", "projection_model", "language_model")
        if getattr(pipe, name, None) is None
    ]
    if missing:
        raise ValueError(
            f"AudioLDM-2's text condition needs the pipeline's {', '.join(missing)}; "
            "load the full pipeline or use negative_mode='zeros'"
        )
    clap = _clap_text_embeds(pipe, texts)  # (B, 1, clap_dim)
    t5, t5_mask = encode_labels(pipe, texts)  # (B, L, t5_width), (B, L)
    projected = pipe.projection_model(
        hidden_states=clap,
        hidden_states_1=t5,
        attention_mask=t5_mask.new_ones(clap.shape[:2]),
        attention_mask_1=t5_mask,
    )  # (B, 1 + 1 + 1 + 1 + L + 1, gpt2_width): [sos, clap, eos, sos_1, t5..., eos_1]
    return generate_hidden_states(
        pipe.language_model, projected.hidden_states, projected.attention_mask, num_tokens
    )


def negative_generated_embeds(
    pipe: AudioLDM2Pipeline,
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    num_tokens: int = AUDIOMAE_TOKENS,
    mode: NegativeMode = "audioldm2",
) -> torch.Tensor:
    """The GPT-2-stream condition classifier-free guidance pushes away from: (num_tokens, width).

    "audioldm2": what AudioLDM-2 generates for the negative prompt text, computed on the text
    alone (diffusers pads the negative T5 tokens to the positive prompt's length, which shifts
    GPT-2's positions; that artefact of batching is not reproduced). "zeros": AudioLDM-2's
    unconditional AudioMAE condition, which needs no text model at all.
    """
    width = pipe.language_model.config.n_embd
    if mode == "zeros":
        return torch.zeros(num_tokens, width, device=pipe.language_model.device, dtype=pipe.language_model.dtype)
    if mode == "audioldm2":
        return text_generated_embeds(pipe, [negative_prompt], num_tokens)[0]
    raise ValueError(f"negative mode must be 'audioldm2' or 'zeros', got {mode!r}")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _request_seconds(pipe: AudioLDM2Pipeline, num_samples: int) -> float:
    """The ``audio_length_in_s`` that makes the pipeline render >= ``num_samples`` samples.

    The pipeline floors ``seconds / hop`` to mel frames, rounds frames up to the VAE factor and
    floors ``seconds * sr`` for its crop; float error can cost a frame or a sample. Asking for a
    whole number of VAE-aligned frames plus half a sample makes every floor land where intended.
    The latent shape (hence the noise) is the one the pipeline picks for the same duration.
    """
    sampling_rate = pipe.vocoder.config.sampling_rate
    hop = int(np.prod(pipe.vocoder.config.upsample_rates))  # samples per mel frame
    frames = math.ceil(max(num_samples, 1) / hop)  # the pipeline renders at least one latent step
    frames = math.ceil(frames / pipe.vae_scale_factor) * pipe.vae_scale_factor
    return (frames * hop + 0.5) / sampling_rate


@torch.no_grad()
def render(
    pipe: AudioLDM2Pipeline,
    audio_tokens: torch.Tensor,
    labels: list[str],
    seconds: float,
    num_inference_steps: int,
    guidance_scale: float,
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    negative_mode: NegativeMode = "audioldm2",
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> np.ndarray:
    """Mapper tokens (B, 8, gpt2_width) + sound labels -> waveforms (B, round(seconds * sr)).

    The tokens replace AudioLDM-2's GPT-2 output; the labels go through Flan-T5 exactly as the
    pipeline encodes a prompt. With guidance (scale > 1) the negative pair is T5(negative
    prompt) and :func:`negative_generated_embeds`. Labels and negative prompt are tokenized in
    one batch so they share a padded length (the pipeline requires equal shapes), rather than
    truncating the negative prompt to the label's length as the pipeline's own path does; the
    attention mask makes the extra padding invisible to the UNet. Use "" for no label;
    negative_prompt="" with negative_mode="zeros" is AudioLDM-2's fully unconditional pair.
    """
    batch = audio_tokens.shape[0]
    if len(labels) != batch:
        raise ValueError(f"got {batch} token sequences but {len(labels)} labels")
    if audio_tokens.shape[-1] != pipe.language_model.config.n_embd:
        raise ValueError(
            f"audio tokens are {audio_tokens.shape[-1]} wide but this AudioLDM-2's GPT-2 stream is "
            f"{pipe.language_model.config.n_embd} wide"
        )
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    guided = guidance_scale > 1.0  # the pipeline's own switch for classifier-free guidance
    texts = list(labels) + ([negative_prompt] if guided else [])
    t5, t5_mask = encode_labels(pipe, texts)  # (B [+1], L, t5_width), (B [+1], L)
    conditions = dict(
        prompt_embeds=t5[:batch],
        attention_mask=t5_mask[:batch],
        generated_prompt_embeds=audio_tokens,
    )
    if guided:
        negative = negative_generated_embeds(pipe, negative_prompt, audio_tokens.shape[1], negative_mode)
        conditions.update(
            negative_prompt_embeds=t5[batch:].expand(batch, -1, -1),
            negative_attention_mask=t5_mask[batch:].expand(batch, -1),
            negative_generated_prompt_embeds=negative.expand(batch, -1, -1).to(audio_tokens),
        )
    num_samples = round(seconds * pipe.vocoder.config.sampling_rate)
    audio = pipe(
        **conditions,
        audio_length_in_s=_request_seconds(pipe, num_samples),
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        generator=generator,
        output_type="np",
    ).audios  # (B, >= num_samples)
    return np.ascontiguousarray(audio[:, :num_samples], dtype=np.float32)
