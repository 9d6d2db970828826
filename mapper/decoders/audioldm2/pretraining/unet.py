"""Stage 3: the latent diffusion UNet, conditioned as AudioLDM-2's: the GPT-2 stream carries the
AudioMAE tokens of the *same* audio (its "language of audio" self-supervision), the T5 stream the label.

Epsilon prediction on AudioLDM-2's noise schedule. Condition dropout teaches the unconditional
branch classifier-free guidance needs; since our pipeline's negative branch is one of three pairs
(tokens zeros or AudioLDM-2's own tokens for the negative prompt; T5 of the negative prompt or of
""), each dropped row gets one of them at random, so guidance works with every negative mode. Rows
may also carry only the label (label-only generation). Of the other rows, most carry the tokens
alone: AudioLDM-2's own UNet learned from the tokens of the same audio, and a UNet that sees the
label beside them in most rows renders the label and ignores the tokens (measured on the toy world:
with the label in 75 % of the rows, oracle tokens without a label gave chance-level class).
"""
from __future__ import annotations

import torch
from diffusers import AudioLDM2Pipeline

from mapper.decoders.audioldm2.conditions import DEFAULT_NEGATIVE_PROMPT, encode_labels, negative_tokens
from mapper.decoders.audioldm2.pretraining.training_loop import train_steps

DROP_BOTH = 0.10  # rows trained as the unconditional branch
DROP_TOKENS = 0.05  # rows with the label only
LABEL_WITH_TOKENS = 0.20  # of the rows with tokens, those that also see the label (the rest: tokens alone)


class TextTable:
    """T5 stream of every text the UNet is trained on, padded to one length: rows are looked up by index."""

    def __init__(self, pipe: AudioLDM2Pipeline, labels: list[str]):
        self.texts = sorted(set(labels)) + ["", DEFAULT_NEGATIVE_PROMPT]
        self.embeds, self.masks = encode_labels(pipe, self.texts)  # (K, L, t5_width), (K, L)

    def index(self, text: str) -> int:
        return self.texts.index(text)


def train_unet(pipe: AudioLDM2Pipeline, latents: torch.Tensor, tokens: torch.Tensor, labels: list[str], steps: int,
               batch: int, lr: float, generator: torch.Generator, log=print,
               label_with_tokens: float = LABEL_WITH_TOKENS):
    """latents (N, C, T, F) scaled, tokens (N, 8, D), labels (N,) -> pipe.unet trained in place."""
    unet, scheduler = pipe.unet, pipe.scheduler
    table = TextTable(pipe, labels)
    label_rows = torch.tensor([table.index(label) for label in labels])
    empty, negative_text = table.index(""), table.index(DEFAULT_NEGATIVE_PROMPT)
    negatives = torch.stack([torch.zeros_like(tokens[0]), negative_tokens(pipe, DEFAULT_NEGATIVE_PROMPT, "audioldm2")])
    # the three unconditional pairs: (GPT-2 stream: 0 zeros / 1 AudioLDM-2's, T5 stream text row)
    unconditional = [(0, empty), (0, negative_text), (1, negative_text)]
    alphas = scheduler.alphas_cumprod  # (1000,)

    def loss_of(step: int) -> torch.Tensor:
        items = torch.randint(0, len(latents), (batch,), generator=generator)
        x0, cond, text = latents[items], tokens[items].clone(), label_rows[items].clone()
        draw = torch.rand(batch, generator=generator)
        for row in torch.nonzero(draw < DROP_BOTH).flatten().tolist():
            kind, text[row] = unconditional[int(torch.randint(0, 3, (1,), generator=generator))]
            cond[row] = negatives[kind]
        cond[(draw >= DROP_BOTH) & (draw < DROP_BOTH + DROP_TOKENS)] = 0.0
        tokens_only = (draw >= DROP_BOTH + DROP_TOKENS) & (torch.rand(batch, generator=generator) >= label_with_tokens)
        text[tokens_only] = empty
        t = torch.randint(0, len(alphas), (batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = alphas[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise  # = scheduler.add_noise
        predicted = unet(noisy, t, encoder_hidden_states=cond, encoder_hidden_states_1=table.embeds[text],
                         encoder_attention_mask_1=table.masks[text]).sample
        return torch.nn.functional.mse_loss(predicted, noise)

    return train_steps(unet, loss_of, steps, lr, "unet", log)
