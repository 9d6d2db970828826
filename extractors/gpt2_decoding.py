"""The continuous-token GPT-2 loop: each output hidden state is fed back as the next input embedding.

AudioLDM-2 generates its eight AudioMAE-like tokens this way with its own GPT-2 (no LM head, no
vocabulary: the "GPT-2 stream" of its UNet), and the MFM-Mapper predicts the same tokens with the same
loop over a visual prefix. One loop serves both, so the two can never drift apart.

It lives in ``extractors``, the bottom layer, because that is the one layer both users may import:
the mapper core (``mapper.model``) and the decoders (``mapper.decoders.audioldm2``) are side by side,
and neither may import the other. It depends on nothing but torch and transformers.

The KV cache is a transformers ``Cache`` object made up front and passed on every step, under the
keyword the installed ``GPT2Model.forward`` takes (``cache``; older 5.x releases call it
``past_key_values``, which newer ones still accept with a deprecation warning on every call).
"""
from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache


def _cache_keyword(model: torch.nn.Module) -> str:
    """The name ``model.forward`` takes its KV cache under."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.no_grad()
def generate_hidden_states(
    language_model: torch.nn.Module,
    inputs_embeds: torch.Tensor,
    num_tokens: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``num_tokens`` cached autoregressive steps of a GPT-2 on continuous embeddings.

    inputs_embeds (B, T, W): the prefix; attention_mask (B, T) 1 = token, 0 = padding, or None (no
    mask is passed at all: the unmasked causal path, for a prefix without padding, as the mapper's).
    Step 1 reads the prefix, every later step the previous step's last hidden state (after the final
    LayerNorm). Returns the generated hidden states (B, num_tokens, W).

    ``language_model``: a ``GPT2Model`` or a ``GPT2LMHeadModel`` (its body runs; the head is unused).
    With a mask this is ``AudioLDM2Pipeline.generate_language_model`` (a test checks), which works for
    a ``GPT2LMHeadModel`` only, while the hub config of AudioLDM-2 loads a ``GPT2Model``.
    """
    body = language_model.base_model  # GPT2LMHeadModel -> its GPT2Model; GPT2Model -> itself
    cache = DynamicCache(config=body.config)  # what the model builds itself when handed none; filled in place
    keyword = _cache_keyword(body)
    step_input, generated = inputs_embeds, []
    for _ in range(num_tokens):
        masked = {} if attention_mask is None else {"attention_mask": attention_mask}
        hidden = body(inputs_embeds=step_input, use_cache=True, **{keyword: cache}, **masked).last_hidden_state
        step_input = hidden[:, -1:]  # (B, 1, W): the next token, and the next step's input
        generated.append(step_input)
        if attention_mask is not None:  # the new token is attended to from now on
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], dim=1)
    return torch.cat(generated, dim=1)
