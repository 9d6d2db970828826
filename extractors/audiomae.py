"""AudioMAE encoder as AudioLDM-2 uses it: the source of the mapper's 8 target tokens.

AudioLDM-2 conditions its UNet on 8 "AudioMAE tokens" of 768 channels. They come from
``AudioMAEConditionCTPoolRand`` (haoheliu/AudioLDM2, ``latent_diffusion/modules/encoders/modules.py``,
``eval_time_pooling = eval_freq_pooling = 8``) over ``Vanilla_AudioMAE.forward_encoder_no_mask``
(``modules/audiomae/models_mae.py``):

* a ViT-B/16 over a (1024 frames x 128 mel) one-channel "image": 64 x 8 = 512 patches, time-major;
* fixed 2D sin-cos position embedding (MAE ``get_2d_sincos_pos_embed_flexible``), CLS row zero,
  built on AudioMAE's *swapped* grid: ``PatchEmbed_org.patch_hw = (W // p, H // p) = (8, 64)``, so
  for the time-major token k the first half of the channels encodes ``k % 64`` and the second half
  ``k // 64`` (not freq / time). The table is stored in the checkpoints, so this only matters for
  random initialisation, which reproduces it exactly;
* output = mean over blocks 9, 10, 11 (``n > contextual_depth = 8``) of ``norm(hidden)``, CLS included
  (``contextual_embedding``);
* drop CLS -> (C, 64 time, 8 freq) -> ``(AvgPool2d(8) + MaxPool2d(8)) / 2`` -> (C, 8, 1) ->
  flatten -> 8 tokens ordered by time (each covers 128 frames = 1.28 s and all frequencies).

The backbone is timm's ``VisionTransformer``; its keys equal the MAE encoder's, so the AudioMAE
``pretrained.pth`` (encoder part), a timm-format port, or the copy nested in an AudioLDM-2 checkpoint
load by ``convert_audiomae_checkpoint``.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from extractors.checkpoint import check_keys, load_strict, read_checkpoint
from extractors.encoders import register_encoder
from extractors.fbank import kaldi_fbank


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
    # AudioLDM-2 then zero-pads (or crops) the *waveform* to its segment length, 10.24 s =
    # target_frames * frame shift (dataset ``pad_wav`` with ``pad_wav_start_sample = 0``; inference
    # ``read_wav_file(path, segment_length)``), so a 10 s clip yields 1022 fbank frames of which the
    # last ~24 are digital silence, and only 2 rows are padded after the log. False pads the fbank
    # rows instead (what ``extract_kaldi_fbank_feature`` alone does with a shorter waveform).
    pad_waveform: bool = True
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
    def pos_embed_grid(self) -> tuple[int, int]:
        """AudioMAE's ``patch_hw`` = (freq, time) patches = (8, 64): swapped, see the module docstring."""
        t, f = self.patch_grid
        return f, t

    @property
    def segment_samples(self) -> int:
        """Waveform length AudioLDM-2 pads / crops to: target_frames * frame shift (163840 = 10.24 s)."""
        return self.target_frames * int(self.sample_rate * self.frame_shift_ms * 0.001)

    @property
    def token_grid(self) -> tuple[int, int]:
        t, f = self.patch_grid
        return t // self.pool_kernel, f // self.pool_kernel

    @property
    def num_tokens(self) -> int:
        """Pooled tokens per clip: (64/8) * (8/8) = 8 at paper size."""
        t, f = self.token_grid
        return t * f

    @property
    def token_seconds(self) -> float:
        """Seconds of audio each row of pooled tokens covers: 128 fbank frames = 1.28 s at paper size."""
        return self.target_frames * self.frame_shift_ms / 1000 / self.token_grid[0]

    def tokens_within(self, seconds: float) -> int:
        """How many leading tokens (time-major) describe the first ``seconds`` of audio: every row of tokens
        whose span lies mostly inside (its centre before ``seconds``), one row at least."""
        rows = min(self.token_grid[0], max(1, math.ceil(seconds / self.token_seconds - 0.5)))
        return rows * self.token_grid[1]

    def to_dict(self) -> dict:
        return asdict(self)


def waveform_to_audiomae_input(wave_16k: torch.Tensor, cfg: AudioMAEConfig) -> torch.Tensor:
    """AudioLDM-2's AudioMAE input: (B, N) or (N,) 16 kHz waveform -> (B, target_frames, mel) or (F, M).

    Steps, per clip, as AudioLDM-2's data loader and ``extract_kaldi_fbank_feature`` do them:

    1. if ``cfg.pad_waveform``: crop to at most ``cfg.segment_samples`` (10.24 s; ``random_segment_wav``,
       here from the start);
    2. ``normalize_wav``: subtract the mean, scale the peak to ``cfg.peak_normalize`` (0.5; skipped if
       None), then, if ``cfg.pad_waveform``, ``pad_wav``: zero-pad at the end to ``cfg.segment_samples``;
    3. subtract the mean again, Kaldi fbank (``kaldi_fbank``);
    4. zero-pad or crop the frame axis to ``cfg.target_frames`` -- zeros are added *after* the log
       (a 10.24 s waveform gives 1022 frames + 2 such rows; without step 2, 10 s give 998 + 26);
    5. ``(fbank - mean) / (2 * std)`` with AudioMAE's AudioSet statistics.
    """
    squeeze = wave_16k.dim() == 1
    wave = wave_16k.unsqueeze(0) if squeeze else wave_16k
    wave = wave.float()
    if cfg.pad_waveform:
        wave = wave[:, : cfg.segment_samples]
    wave = wave - wave.mean(dim=-1, keepdim=True)
    if cfg.peak_normalize is not None:  # AudioLDM normalize_wav: x / (max|x| + 1e-8) * 0.5
        wave = wave / (wave.abs().amax(dim=-1, keepdim=True) + 1e-8) * cfg.peak_normalize
    if cfg.pad_waveform:
        wave = F.pad(wave, (0, cfg.segment_samples - wave.shape[-1]))
        wave = wave - wave.mean(dim=-1, keepdim=True)  # extract_kaldi_fbank_feature's own mean removal
    fbank = kaldi_fbank(
        wave,
        sample_rate=cfg.sample_rate,
        num_mel_bins=cfg.num_mel_bins,
        frame_length_ms=cfg.frame_length_ms,
        frame_shift_ms=cfg.frame_shift_ms,
        window_type="hanning",
    )  # (B, F, M)
    missing = cfg.target_frames - fbank.shape[1]
    fbank = F.pad(fbank, (0, 0, 0, missing)) if missing > 0 else fbank[:, : cfg.target_frames]
    fbank = (fbank - cfg.fbank_mean) / (cfg.fbank_std * 2)
    return fbank.squeeze(0) if squeeze else fbank


def sincos_pos_embed_2d(embed_dim: int, grid: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2D sin-cos table on an (H, W) grid, (1 + H*W, D) float32, rows in row-major order.

    Reproduces ``get_2d_sincos_pos_embed_flexible(D, (H, W))``: ``meshgrid(w, h)`` puts the *column*
    coordinate first, so for row k channels [0, D/2) encode ``k % W`` and [D/2, D) encode ``k // W``;
    each half is ``[sin(pos * w_k), cos(pos * w_k)]`` with ``w_k = 10000^(-k / (D/4))``. Computed in
    float64 like the numpy original, then cast. AudioMAE calls it with grid (8, 64) although its
    tokens are (64 time x 8 freq) row-major: see ``AudioMAEConfig.pos_embed_grid``.
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
        # timm only offers learned position embeddings; AudioMAE's is a frozen sin-cos table (on its
        # swapped grid). Keep the parameter (checkpoint keys stay identical), fill it, freeze it.
        with torch.no_grad():
            self.vit.pos_embed.copy_(sincos_pos_embed_2d(cfg.embed_dim, cfg.pos_embed_grid).unsqueeze(0))
        self.vit.pos_embed.requires_grad_(False)

    def contextual_embedding(self, fbank: torch.Tensor) -> torch.Tensor:
        """``forward_encoder_no_mask``: (B, T, F) fbank -> mean over ``average_blocks`` of ``norm(hidden)``,
        (B, 1 + patches, C) with the CLS token first."""
        cfg, vit = self.cfg, self.vit
        if fbank.shape[1:] != (cfg.target_frames, cfg.num_mel_bins):
            raise ValueError(f"expected fbank (B, {cfg.target_frames}, {cfg.num_mel_bins}), got {tuple(fbank.shape)}")
        x = vit.patch_embed(fbank.unsqueeze(1).to(vit.pos_embed.dtype))  # (B, T'*F', C), time-major
        x = x + vit.pos_embed[:, 1:]
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + T'*F', C)
        averaged = []
        for i, block in enumerate(vit.blocks[: max(cfg.average_blocks) + 1]):
            x = block(x)
            if i in cfg.average_blocks:
                averaged.append(vit.norm(x))  # the same final norm for each averaged block
        return torch.stack(averaged).mean(0)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        hidden = self.contextual_embedding(fbank)[:, 1:]  # drop CLS: (B, T'*F', C)
        return pool_tokens(hidden, self.cfg.patch_grid, self.cfg.pool_kernel)  # (B, num_tokens, C)

    @torch.no_grad()
    def encode_waveform(self, wave_16k: torch.Tensor) -> torch.Tensor:
        """Convenience: (B, N) 16 kHz waveform -> (B, num_tokens, C)."""
        return self(waveform_to_audiomae_input(wave_16k, self.cfg))


# Keys of the MAE training checkpoint that the encoder does not use: the MAE decoder and mask token,
# and (fine-tuned / timm checkpoints) a classifier head and its norm.
AUDIOMAE_DROPPED_PREFIXES = ("decoder_", "mask_token", "head.", "fc_norm.")
# Where an AudioLDM-2 checkpoint nests AudioMAE (LatentDiffusion.cond_stage_models[0] =
# SequenceGenAudioMAECond, whose cond_stage_models[2] is the AudioMAE conditioner).
AUDIOLDM2_AUDIOMAE_PREFIX = "cond_stage_models.0.cond_stage_models.2.audiomae.model."
AUDIOMAE_LAYOUT = "an AudioMAE encoder of this config"  # what a mismatch says the file is not


def audiomae_key_map(key: str) -> str | None:
    """One AudioMAE key (nesting prefix already removed) -> ``AudioMAEEncoder`` key, None if dropped on purpose."""
    return None if key.startswith(AUDIOMAE_DROPPED_PREFIXES) else f"vit.{key}"


def convert_audiomae_checkpoint(state_dict: dict, cfg: AudioMAEConfig = AudioMAEConfig(),
                                origin: str = "state dict") -> dict:
    """Map an AudioMAE state dict onto ``AudioMAEEncoder`` keys (``vit.*``), checking every key and shape.

    Accepts the MAE ``pretrained.pth`` (``{"model": ...}``, encoder + decoder), a timm-format
    ``vit_base_patch16_1024_128`` state dict, or an AudioLDM-2 checkpoint (the encoder is found under
    the ``...audiomae.model.`` prefix, ``AUDIOLDM2_AUDIOMAE_PREFIX``; other keys are ignored). Decoder /
    classifier keys are dropped (``audiomae_key_map``); anything else that does not match is a one-line
    ``StateDictMismatchError`` naming ``origin`` and the first offending keys.
    """
    for wrapper in ("state_dict", "model"):
        if wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            state_dict = state_dict[wrapper]
    nested = sorted({k[: k.index("audiomae.model.") + len("audiomae.model.")]
                     for k in state_dict if "audiomae.model." in k})
    if len(nested) > 1:
        raise KeyError(f"several AudioMAE copies in checkpoint: {nested}")
    prefix = nested[0] if nested else ""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(prefix):
            new = audiomae_key_map(key[len(prefix):])
            if new is not None:
                out[new] = value
    with torch.device("meta"):  # the config's keys and shapes, no memory
        reference = AudioMAEEncoder(cfg)
    check_keys(reference.state_dict(), out, origin, AUDIOMAE_LAYOUT)
    return out


# Accepted weight files in a weights folder, first found wins. Either holds the AS-2M pre-trained
# AudioMAE encoder that AudioLDM-2 uses: the MAE ``pretrained.pth`` (facebookresearch/AudioMAE), its
# timm port (gaunernst/vit_base_patch16_1024_128.audiomae_as2m), or an AudioLDM-2 training checkpoint.
AUDIOMAE_FILES = ("audiomae.safetensors", "audiomae.pth")
RELEASED_FILES = ("|".join(AUDIOMAE_FILES),)


def load_released(model: AudioMAEEncoder, weights_dir: str) -> None:
    """The first of ``AUDIOMAE_FILES`` in ``weights_dir`` (safetensors or weights-only), strictly checked."""
    paths = [os.path.join(weights_dir, name) for name in AUDIOMAE_FILES]
    path = next((p for p in paths if os.path.isfile(p)), None)
    if path is None:
        raise FileNotFoundError(f"AudioMAE weights not found: expected {' or '.join(paths)} (the AS-2M "
                                "pre-trained AudioMAE encoder, e.g. facebookresearch/AudioMAE pretrained.pth "
                                "or the timm port gaunernst/vit_base_patch16_1024_128.audiomae_as2m)")
    state = convert_audiomae_checkpoint(read_checkpoint(path), model.cfg, origin=path)
    load_strict(model, state, path, AUDIOMAE_LAYOUT)


register_encoder(AudioMAEConfig, AudioMAEEncoder, RELEASED_FILES, load_released)
