"""AudioLDM-2's two condition streams, and the one place classifier-free guidance pairs are built.

The UNet cross-attends to two streams: the "GPT-2 stream" (8 AudioMAE-like tokens; the mapper's
prediction replaces what AudioLDM-2's own GPT-2 would generate) and the "T5 stream" (Flan-T5's last
hidden state of the sound label, with its padding mask). With guidance, each stream also needs a
negative: T5 of the negative prompt, and for the GPT-2 stream either what AudioLDM-2's *original*
GPT-2 generates for the negative prompt ("audioldm2") or its unconditional condition ("zeros").

The pipeline's own text -> GPT-2 path (``encode_prompt`` with a prompt) is never called: the hub
config loads ``language_model`` as ``GPT2Model``, which breaks it (diffusers issue #12630);
:func:`extractors.gpt2_decoding.generate_hidden_states` (the loop the mapper runs too) does the same
8 steps with an explicit KV cache instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import AudioLDM2Pipeline

from extractors.audiomae import AudioMAEConfig
from extractors.gpt2_decoding import generate_hidden_states

# AudioLDM-2's GPT-2 generates AudioMAE's pooled tokens: 8 (its sequence_gen_length), owned by AudioMAEConfig
AUDIOMAE_TOKENS = AudioMAEConfig().num_tokens
DEFAULT_NEGATIVE_PROMPT = "low quality, average quality"
T5_MAX_LENGTH = 128  # hard-coded in the original AudioLDM-2 (diffusers' conversion script copies it)
NegativeMode = Literal["audioldm2", "zeros"]
NEGATIVE_MODES = ("audioldm2", "zeros")


@dataclass
class Conditions:
    """What the UNet cross-attends to, ready for classifier-free guidance.

    With guidance the batch holds the negative rows first, then the positive rows, as
    ``AudioLDM2Pipeline.encode_prompt`` concatenates them.
    """

    generated: torch.Tensor  # (B or 2B, 8, gpt2_width): GPT-2 stream (mapper tokens / negative)
    text: torch.Tensor  # (B or 2B, L, t5_width): Flan-T5 stream
    text_mask: torch.Tensor  # (B or 2B, L) 1 = token, 0 = padding
    guided: bool = False

    def halves(self) -> tuple["Conditions | None", "Conditions"]:
        """(negative rows or None, positive rows): the pipeline's ``negative_*`` / positive arguments."""
        if not self.guided:
            return None, self
        negative, positive = (Conditions(*parts) for parts in zip(
            self.generated.chunk(2), self.text.chunk(2), self.text_mask.chunk(2)))  # fmt: skip
        return negative, positive


def gpt2_stream_width(pipe) -> int:
    """Width of the UNet's GPT-2 stream (cross-attention dims are [self, GPT-2, T5] per block)."""
    return int(pipe.unet.config.cross_attention_dim[0][1])


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
    return generate_hidden_states(pipe.language_model, projected.hidden_states, num_tokens, projected.attention_mask)


def negative_tokens(
    pipe,
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    mode: NegativeMode = "audioldm2",
    num_tokens: int = AUDIOMAE_TOKENS,
) -> torch.Tensor:
    """The GPT-2-stream condition classifier-free guidance pushes away from: (num_tokens, width).

    "audioldm2": what AudioLDM-2 generates for the negative prompt text, computed on the text
    alone (diffusers pads the negative T5 tokens to the positive prompt's length, which shifts
    GPT-2's positions; that artefact of batching is not reproduced). "zeros": AudioLDM-2's
    unconditional AudioMAE condition, which needs no text model at all.
    """
    if mode == "zeros":
        return torch.zeros(num_tokens, gpt2_stream_width(pipe), device=pipe.unet.device, dtype=pipe.unet.dtype)
    if mode == "audioldm2":
        return text_generated_embeds(pipe, [negative_prompt], num_tokens)[0]
    raise ValueError(f"negative mode must be one of {', '.join(NEGATIVE_MODES)}, got {mode!r}")


@torch.no_grad()
def guidance_conditions(
    pipe,
    tokens: torch.Tensor,
    labels: list[str],
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT,
    negative: torch.Tensor | None = None,
) -> Conditions:
    """Mapper tokens (B, N, D) + labels -> the UNet's two streams, negatives first when guided.

    ``negative`` (N, D): the negative GPT-2-stream condition (:func:`negative_tokens`), None for no
    guidance. Labels and the negative prompt are tokenized in one batch so they share a padded
    length (the UNet batch needs equal shapes), rather than truncating the negative prompt to the
    label's length as the pipeline's own path does; the attention mask hides the extra padding.
    """
    batch, guided = len(labels), negative is not None
    if tokens.shape[0] != batch:
        raise ValueError(f"got {tokens.shape[0]} token sequences but {batch} labels")
    if tokens.shape[-1] != gpt2_stream_width(pipe):
        raise ValueError(f"audio tokens are {tokens.shape[-1]} wide but this AudioLDM-2's GPT-2 stream is "
                         f"{gpt2_stream_width(pipe)} wide")
    device, dtype = pipe.unet.device, pipe.unet.dtype
    texts = list(labels) + ([negative_prompt] if guided else [])
    t5, mask = encode_labels(pipe, texts)  # (B [+1], L, t5_width): padded together, masked
    generated, text, text_mask = tokens.to(device, dtype), t5[:batch], mask[:batch]
    if guided:
        generated = torch.cat([negative.to(device, dtype)[None].expand(batch, -1, -1), generated])
        text = torch.cat([t5[batch:].expand(batch, -1, -1), text])
        text_mask = torch.cat([mask[batch:].expand(batch, -1), text_mask])
    return Conditions(generated, text.to(device, dtype), text_mask.to(device), guided)
