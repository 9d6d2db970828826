"""AudioLDM-2, the frozen decoder: everything specific to it lives in this package.

The mapper predicts AudioLDM-2's eight AudioMAE tokens (the "GPT-2 stream"); the sound label goes
through AudioLDM-2's own Flan-T5 (the "T5 stream"); the UNet, VAE, vocoder and scheduler are
diffusers' own components, run as diffusers runs them.

    tiny        build_tiny_audioldm2: random tiny pipeline, built offline from configs (tests, demos)
    loading     load_audioldm2: "tiny" | local diffusers folder | hub id (the only online case)
    conditions  the two condition streams and their negatives; guidance_conditions builds the
                classifier-free-guidance batch (the one builder the pipeline and render share)
    denoise     the sampling loop (= AudioLDM2Pipeline's), with an optional known region (inpainting)
                and optional envelope guidance
    envelope_head      a latent envelope head: noisy latent + timestep -> loudness envelope (LatCH-style);
                       load_envelope_head("toy") reads the one shipped for the toy decoder
    envelope_guidance  timing control: guide the sampler towards a target envelope (selective steps)
    latents     latent frames <-> samples (LatentGeometry) and latents -> waveform
    mel         AudioLDM-2's log-mel front end (what its VAE encodes and its vocoder inverts)
    reference   a reference sound -> its scaled VAE latent, to be continued
    render      the reference path through the stock AudioLDM2Pipeline, exact output length
"""
from mapper.decoders.audioldm2.conditions import (
    AUDIOMAE_TOKENS,
    DEFAULT_NEGATIVE_PROMPT,
    NEGATIVE_MODES,
    Conditions,
    NegativeMode,
    encode_labels,
    gpt2_stream_width,
    guidance_conditions,
    negative_tokens,
    text_generated_embeds,
)
from mapper.decoders.audioldm2.denoise import denoise
from mapper.decoders.audioldm2.envelope_guidance import EnvelopeGuidance, EnvelopeGuidanceConfig, make_envelope_guidance
from mapper.decoders.audioldm2.envelope_head import (
    EnvelopeHead,
    EnvelopeHeadConfig,
    build_envelope_head,
    load_envelope_head,
)
from mapper.decoders.audioldm2.latents import LatentGeometry, decode_latents
from mapper.decoders.audioldm2.loading import load_audioldm2
from mapper.decoders.audioldm2.reference import encode_reference
from mapper.decoders.audioldm2.render import render
from mapper.decoders.audioldm2.tiny import audioldm2_scheduler, build_tiny_audioldm2

__all__ = [
    "AUDIOMAE_TOKENS",
    "DEFAULT_NEGATIVE_PROMPT",
    "NEGATIVE_MODES",
    "Conditions",
    "EnvelopeGuidance",
    "EnvelopeGuidanceConfig",
    "EnvelopeHead",
    "EnvelopeHeadConfig",
    "LatentGeometry",
    "NegativeMode",
    "audioldm2_scheduler",
    "build_envelope_head",
    "build_tiny_audioldm2",
    "decode_latents",
    "denoise",
    "encode_labels",
    "encode_reference",
    "gpt2_stream_width",
    "guidance_conditions",
    "load_audioldm2",
    "load_envelope_head",
    "make_envelope_guidance",
    "negative_tokens",
    "render",
    "text_generated_embeds",
]
