"""The MFM-Mapper: fused visual tokens -> GPT-2 -> 8 pooled AudioMAE tokens.

Training (teacher forcing): GPT-2 reads `fused (S) ⊕ target[:-1] (N-1)` as `inputs_embeds`; the
last hidden states at positions S-1 .. S+N-2 are the predictions of target tokens 0 .. N-1.
Inference: N autoregressive steps with GPT-2's KV cache, each output hidden state fed back as the
next input embedding — the same continuous-token loop AudioLDM-2 runs with its own GPT-2 (one loop
for both: :func:`extractors.gpt2_decoding.generate_hidden_states`), which is why the GPT-2 width
equals the AudioMAE token width and there is no LM head.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2Model, PreTrainedModel

from extractors.gpt2_decoding import generate_hidden_states
from mapper.config import MapperConfig
from mapper.fusion import VisualFusion


def gpt2_config(config: MapperConfig) -> GPT2Config:
    return GPT2Config(
        n_embd=config.audio_token_dim,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_positions=config.n_positions,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        vocab_size=1,  # inputs are always embeddings; the token table is unused
        bos_token_id=None,
        eos_token_id=None,
    )


def regression_loss(kind: str, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    target = target.to(prediction.dtype)
    return F.l1_loss(prediction, target) if kind == "l1" else F.mse_loss(prediction, target)


class MapperBase(PreTrainedModel):
    """What both mapper variants share: the visual fusion and the GPT-2 backbone."""

    config_class = MapperConfig
    base_model_prefix = "mapper"
    main_input_name = "features"

    def __init__(self, config: MapperConfig):
        super().__init__(config)
        self.fusion = VisualFusion(config)
        self.gpt2 = GPT2Model(gpt2_config(config))
        self.gpt2.wte.requires_grad_(False)  # inputs are always embeddings: the token table is unused
        if self.sequence_length > config.n_positions:
            raise ValueError(f"{self.sequence_length} tokens exceed GPT-2's n_positions={config.n_positions}")
        self.post_init()

    @property
    def sequence_length(self) -> int:
        return self.config.prefix_length + self.config.num_audio_tokens

    def _init_weights(self, module):
        # GPT2Model initialised its own weights when built; the fusion Linears keep PyTorch's.
        # The alignment matrix is derived from the config, not saved: rebuild it whenever
        # transformers materialises the model (from_pretrained builds it on the meta device).
        if isinstance(module, VisualFusion):
            module.reset_alignment(self.config)

    def load_language_model(self, gpt2: GPT2Model) -> None:
        """Initialise the backbone from AudioLDM-2's GPT-2 (`language_model`), as the paper does."""
        state = {k: v for k, v in gpt2.state_dict().items() if not k.startswith("wte.")}
        missing, unexpected = self.gpt2.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("wte.")]
        if missing or unexpected:
            raise ValueError(f"GPT-2 init mismatch: missing {missing}, unexpected {unexpected}")

    @property
    def input_streams(self) -> list[str]:
        """Names of the feature streams the mapper reads, in fusion order (fixed when it is built)."""
        return list(self.fusion.streams)

    def fuse(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """{stream name: (B, tokens, dim)} -> (B, S, D) fused visual prefix."""
        return self.fusion(features)


class MapperModel(MapperBase):
    """The paper's autoregressive mapper."""

    def forward(self, features: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Teacher-forced predictions (B, N, D) of `target` (B, N, D)."""
        prefix = self.fuse(features)  # (B, S, D)
        inputs = torch.cat([prefix, target[:, :-1].to(prefix.dtype)], dim=1)  # (B, S+N-1, D)
        hidden = self.gpt2(inputs_embeds=inputs).last_hidden_state
        return hidden[:, prefix.shape[1] - 1 :]  # (B, N, D)

    def training_loss(self, features: Mapping[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return regression_loss(self.config.loss, self(features, target), target)

    @torch.no_grad()
    def generate(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """N cached autoregressive steps -> predicted AudioMAE tokens (B, N, D)."""
        return generate_hidden_states(self.gpt2, self.fuse(features), self.config.num_audio_tokens)  # prefix (B, S, D)
