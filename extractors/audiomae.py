"""AudioMAE encoder as AudioLDM-2 uses it: the source of the mapper's 8 target tokens.

AudioLDM-2 conditions its UNet on 8 "AudioMAE tokens" of 768 channels. They come from
``AudioMAEConditionCTPoolRand`` (haoheliu/AudioLDM2, ``latent_diffusion/modules/encoders/modules.py``,
``eval_time_pooling = eval_freq_pooling = 8``) over ``Vanilla_AudioMAE.forward_encoder_no_mask``
(``modules/audiomae/models_mae.py``):

* a ViT-B/16 over a (1024 frames x 128 mel) one-channel "image": 64 x 8 = 512 patches, time-major;
* fixed 2D sin-cos position embedding (MAE ``get_2d_sincos_pos_embed_flexible``), CLS row zero;
* output = mean over blocks 9, 10, 11 (``n > contextual_depth = 8``) of ``norm(hidden)``;
* drop CLS -> (C, 64 time, 8 freq) -> ``(AvgPool2d(8) + MaxPool2d(8)) / 2`` -> (C, 8, 1) ->
  flatten -> 8 tokens ordered by time (each covers 128 frames = 1.28 s and all frequencies).

The backbone is timm's ``VisionTransformer``; its keys equal the MAE encoder's, so the AudioMAE
``pretrained.pth`` (encoder part), a timm-format port, or the copy nested in an AudioLDM-2 checkpoint
load by ``convert_audiomae_checkpoint``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from .fbank import waveform_to_audiomae_input


@dataclass(frozen=True)
class AudioMAEConfig:
    # Front end (AudioLDM-2 ``extract_kaldi_fbank_feature``).
    sample_rate: int = 16_000  # AudioMAE's fbank was computed at 16 kHz
    num_mel_bins: int = 128
    frame_length_ms: float = 25.0  # Kaldi default window
    frame_shift_ms: float = 10.0  # 100 frames per second
    target_frames: int = 1024  # 10.24 s; a 10 s clip gives 998 frames + 26 zero rows
    fbank_mean: float = -4.2677393  # AudioSet statistics of the log-mel fbank (AudioMAE)
    fbank_std: float = 4.5689974  # AudioLDM-2 divides by 2*std, not std
    # AudioLDM-2's training loader (read_wav_file -> normalize_wav) removes the mean and scales the
    # peak to 0.5 before the fbank, so the targets its GPT-2 learned were computed that way (checked
    # in haoheliu/AudioLDM2's dataset code; REFERENCE.md omits it). None keeps the file's own level.
    peak_normalize: float | None = 0.5
    # ViT-B/16 encoder.
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6
    average_blocks: tuple[int, ...] = (9, 10, 11)  # blocks whose normed outputs are averaged
    # Token pooling: square kernel over the (time, freq) patch grid, mean of avg- and max-pool.
    pool_kernel: int = 8

    def __post_init__(self):
        t, f = self.patch_grid
        if self.target_frames % self.patch_size or self.num_mel_bins % self.patch_size:
            raise ValueError("target_frames and num_mel_bins must be multiples of patch_size")
        if t % self.pool_kernel or f % self.pool_kernel:
            raise ValueError(f"patch grid {t}x{f} is not divisible by pool_kernel={self.pool_kernel}")
        if not all(0 <= b < self.depth for b in self.average_blocks):
            raise ValueError(f"average_blocks {self.average_blocks} outside 0..{self.depth - 1}")

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(time, freq) patches: (64, 8) at paper size."""
        return self.target_frames // self.patch_size, self.num_mel_bins // self.patch_size

    @property
    def token_grid(self) -> tuple[int, int]:
        t, f = self.patch_grid
        return t // self.pool_kernel, f // self.pool_kernel

    @property
    def num_tokens(self) -> int:
        """Pooled tokens per clip: (64/8) * (8/8) = 8 at paper size."""
        t, f = self.token_grid
        return t * f

    def to_dict(self) -> dict:
        return asdict(self)


def sincos_pos_embed_2d(embed_dim: int, grid: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2D sin-cos table, (1 + H*W, D) float32, rows in row-major (time-major) order.

    Reproduces ``get_2d_sincos_pos_embed_flexible``: ``meshgrid(w, h)`` puts the *column* (freq)
    coordinate first, so channels [0, D/2) encode the freq index and [D/2, D) the time index; each
    half is ``[sin(pos * w_k), cos(pos * w_k)]`` with ``w_k = 10000^(-k / (D/4))``. Computed in
    float64 like the numpy original, then cast.
    """
    if embed_dim % 4:
        raise ValueError("embed_dim must be divisible by 4 for a 2D sin-cos embedding")
    h, w = grid
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")  # (H, W) each

    def one_axis(pos: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(embed_dim // 4, dtype=torch.float64) / (embed_dim / 4))
        out = pos.reshape(-1, 1) * omega  # (H*W, D/4)
        return torch.cat([out.sin(), out.cos()], dim=1)  # (H*W, D/2)

    table = torch.cat([one_axis(cols), one_axis(rows)], dim=1)  # (H*W, D)
    if cls_token:
        table = torch.cat([torch.zeros(1, embed_dim, dtype=torch.float64), table], dim=0)
    return table.float()


def pool_tokens(hidden: torch.Tensor, grid: tuple[int, int], kernel: int) -> torch.Tensor:
    """AudioLDM-2's ``AudioMAEConditionCTPoolRand.pool``: (B, T'*F', C) patch tokens (CLS removed) ->
    (B, T'/k * F'/k, C) = (avg_pool + max_pool) / 2 over k x k patches, flattened time-major."""
    b, _, c = hidden.shape
    t, f = grid
    patches = hidden.transpose(1, 2).reshape(b, c, t, f)  # (B, C, T', F')
    pooled = (F.avg_pool2d(patches, kernel, kernel) + F.max_pool2d(patches, kernel, kernel)) / 2  # (B, C, T'/k, F'/k)
    return pooled.flatten(2).transpose(1, 2)


class AudioMAEEncoder(nn.Module):
    """(B, target_frames, num_mel_bins) normalised fbank -> (B, num_tokens, embed_dim) targets."""

    def __init__(self, cfg: AudioMAEConfig = AudioMAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.vit = VisionTransformer(
            img_size=(cfg.target_frames, cfg.num_mel_bins),
            patch_size=cfg.patch_size,
            in_chans=1,
            embed_dim=cfg.embed_dim,
            depth=cfg.depth,
            num_heads=cfg.num_heads,
            mlp_ratio=cfg.mlp_ratio,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=cfg.layer_norm_eps),
            num_classes=0,
            global_pool="",
        )
        # timm only offers learned position embeddings; AudioMAE's is a frozen sin-cos table. Keep
        # the parameter (checkpoint keys stay identical) but fill it and switch learning off.
        with torch.no_grad():
            self.vit.pos_embed.copy_(sincos_pos_embed_2d(cfg.embed_dim, cfg.patch_grid).unsqueeze(0))
        self.vit.pos_embed.requires_grad_(False)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if fbank.shape[1:] != (cfg.target_frames, cfg.num_mel_bins):
            raise ValueError(f"expected fbank (B, {cfg.target_frames}, {cfg.num_mel_bins}), got {tuple(fbank.shape)}")
        x = fbank.unsqueeze(1).to(self.vit.pos_embed.dtype)  # (B, 1, T, F)
        hidden = self.vit.forward_intermediates(
            x, indices=list(cfg.average_blocks), norm=True, output_fmt="NLC", intermediates_only=True
        )  # list of (B, T'*F', C), CLS already removed
        return pool_tokens(torch.stack(hidden).mean(0), cfg.patch_grid, cfg.pool_kernel)  # (B, num_tokens, C)

    @torch.no_grad()
    def encode_waveform(self, wave_16k: torch.Tensor) -> torch.Tensor:
        """Convenience: (B, N) 16 kHz waveform -> (B, num_tokens, C)."""
        return self(waveform_to_audiomae_input(wave_16k, self.cfg))


# Keys of the MAE training checkpoint that the encoder does not use.
_MAE_UNUSED_PREFIXES = ("decoder_", "mask_token", "head.", "fc_norm.")


def convert_audiomae_checkpoint(state_dict: dict, cfg: AudioMAEConfig = AudioMAEConfig()) -> dict:
    """Map an AudioMAE state dict onto ``AudioMAEEncoder`` keys (``vit.*``), checking every key and shape.

    Accepts the MAE ``pretrained.pth`` (``{"model": ...}``, encoder + decoder), a timm-format
    ``vit_base_patch16_1024_128`` state dict, or an AudioLDM-2 checkpoint (the encoder is found under
    the ``...audiomae.model.`` prefix). Decoder / classifier keys are dropped; anything else that
    does not match raises torch's strict-load ``RuntimeError`` naming the keys and shapes.
    """
    for wrapper in ("state_dict", "model"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
    nested = sorted({k[: k.index("audiomae.model.") + len("audiomae.model.")]
                     for k in state_dict if "audiomae.model." in k})
    if len(nested) > 1:
        raise KeyError(f"several AudioMAE copies in checkpoint: {nested}")
    prefix = nested[0] if nested else ""
    src = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    src = {k: v for k, v in src.items() if not k.startswith(_MAE_UNUSED_PREFIXES)}
    out = {f"vit.{k}": v for k, v in src.items()}
    with torch.device("meta"):
        reference = AudioMAEEncoder(cfg)
    # strict load into a weightless copy: raises naming every missing / unexpected key and bad shape
    reference.load_state_dict(out, strict=True, assign=True)
    return out
