"""A latent envelope head: the loudness envelope of the clean audio, read from AudioLDM-2's *noisy* latent.

The LatCH idea (Latent-Control Heads, arXiv 2603.04366): to steer a frozen latent diffusion model
towards a control feature, train a small head that predicts the feature straight from the noisy
latent x_t and the timestep t. Guidance then differentiates only this head, not the VAE decoder
and vocoder, so a guided step costs one small extra forward and backward
(``mapper.decoders.audioldm2.envelope_guidance``). Here the feature is
``extractors.envelope.audio_envelope`` at the decoder's latent frame rate: one number per latent
frame, so the head is a 1-D network along the latent's time axis.

Architecture (shapes for AudioLDM-2: C = 8 channels, F = 16 frequency bins):

    x_t (B, C, T, F) -> per frame, C*F -> hidden (a 1x1 conv over time)
    -> blocks, one per dilation: GroupNorm -> FiLM by the timestep embedding -> SiLU ->
       conv over time (kernel, dilation, same length) -> + residual
    -> GroupNorm -> SiLU -> hidden -> 1 per frame -> (B, T)

The timestep enters by FiLM (a per-channel scale and shift) because the head must read x_t very
differently at t = 50 (x_t is almost the clean latent) and at t = 900 (mostly noise); the dilated
convolutions see about two seconds around a frame (1 + (kernel - 1) * sum(dilations) frames), enough
to tell an onset from the decay of the previous event.

Saved as a folder: ``config.json`` (every field of :class:`EnvelopeHeadConfig`) and
``model.safetensors``. Loading validates the config, then checks every key and shape of the
weights file against the model the config describes (read from the file's header, before any
weight is read), then loads weights-only; each failure is one line naming the file.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from extractors.checkpoint import load_safetensors_model, save_safetensors_model
from extractors.envelope import FLOOR_DB

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOY_ENVELOPE_HEAD = Path(__file__).parent / "toy_envelope_head"  # trained for the `toy` decoder
KIND = "latent_envelope_head"  # config.json's "kind": a folder of something else is refused by name


@dataclass(frozen=True)
class EnvelopeHeadConfig:
    latent_channels: int = 8  # C of the decoder's latent (AudioLDM-2: 8)
    latent_bins: int = 16  # F of the decoder's latent (AudioLDM-2: 64 mel bins / 4)
    hidden: int = 64  # width of the temporal network
    kernel: int = 5  # temporal kernel (odd: the output stays aligned with the input frames)
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # one residual block each
    time_features: int = 32  # sinusoidal features of the timestep
    frame_samples: int = 640  # audio samples per latent frame of the decoder the head was trained for
    floor_db: float = FLOOR_DB  # the envelope's floor it was trained on (extractors.envelope.audio_envelope)

    def __post_init__(self):
        object.__setattr__(self, "dilations", tuple(self.dilations))  # JSON gives a list
        for name in ("latent_channels", "latent_bins", "hidden", "kernel", "time_features", "frame_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"envelope head config: {name} must be a positive integer, got {value!r}")
        if self.kernel % 2 == 0:
            raise ValueError(f"envelope head config: kernel must be odd (frames stay aligned), got {self.kernel}")
        if self.hidden % _GROUPS:
            raise ValueError(f"envelope head config: hidden must be a multiple of {_GROUPS}, got {self.hidden}")
        if self.time_features % 2:
            raise ValueError(f"envelope head config: time_features must be even, got {self.time_features}")
        if not self.dilations or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.dilations):
            raise ValueError(f"envelope head config: dilations must be positive integers, got {list(self.dilations)!r}")
        if isinstance(self.floor_db, bool) or not isinstance(self.floor_db, (int, float)) or not self.floor_db > 0:
            raise ValueError(f"envelope head config: floor_db must be a number > 0, got {self.floor_db!r}")

    @property
    def receptive_frames(self) -> int:
        """Latent frames one output frame sees."""
        return 1 + (self.kernel - 1) * sum(self.dilations)

    def to_dict(self) -> dict:
        return {"kind": KIND, **asdict(self), "dilations": list(self.dilations)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "EnvelopeHeadConfig":
        """The config a ``to_dict`` wrote: every field present, nothing else (one-line ValueError)."""
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ValueError(f"{source}: not a latent envelope head config (no \"kind\": \"{KIND}\")")
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - names - {"kind"}), sorted(names - set(data))
        if unknown or missing:
            problems = [f"{kind} {', '.join(keys)}"
                        for kind, keys in (("unknown", unknown), ("missing", missing)) if keys]
            raise ValueError(f"{source}: {'; '.join(problems)}")
        try:
            return cls(**{name: data[name] for name in names})
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from None


_GROUPS = 8  # GroupNorm groups


def timestep_features(timestep: torch.Tensor, count: int) -> torch.Tensor:
    """Timesteps (B,) -> (B, count) sinusoids, periods from 2 pi to 2 pi * 10^4 timesteps (half sin, half cos)."""
    half = count // 2
    rates = torch.exp(-math.log(10_000.0) * torch.arange(half, device=timestep.device, dtype=torch.float32) / half)
    angles = timestep.float()[:, None] * rates[None]  # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Block(nn.Module):
    """Residual temporal block: GroupNorm, FiLM by the timestep, SiLU, dilated conv."""

    def __init__(self, hidden: int, kernel: int, dilation: int):
        super().__init__()
        self.norm = nn.GroupNorm(_GROUPS, hidden)
        self.film = nn.Linear(hidden, 2 * hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)

    def forward(self, h: torch.Tensor, time: torch.Tensor) -> torch.Tensor:  # h (B, H, T), time (B, H)
        scale, shift = self.film(time)[:, :, None].chunk(2, dim=1)  # (B, H, 1) each
        return h + self.conv(nn.functional.silu(self.norm(h) * (1 + scale) + shift))


class EnvelopeHead(nn.Module):
    """Noisy latent (B, C, T, F) + timestep -> envelope of the clean audio (B, T)."""

    def __init__(self, config: EnvelopeHeadConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.frame_in = nn.Conv1d(config.latent_channels * config.latent_bins, hidden, 1)
        self.time = nn.Sequential(nn.Linear(config.time_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(_Block(hidden, config.kernel, d) for d in config.dilations)
        self.out_norm = nn.GroupNorm(_GROUPS, hidden)
        self.frame_out = nn.Conv1d(hidden, 1, 1)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor | float | int) -> torch.Tensor:
        b, c, t, f = latents.shape
        if (c, f) != (self.config.latent_channels, self.config.latent_bins):
            raise ValueError(f"envelope head: latents have {c} channels x {f} bins, the head was built for "
                             f"{self.config.latent_channels} x {self.config.latent_bins}")
        timestep = torch.as_tensor(timestep, device=latents.device).reshape(-1).expand(b)  # (B,)
        time = self.time(timestep_features(timestep, self.config.time_features).to(latents.dtype))  # (B, H)
        h = self.frame_in(latents.permute(0, 1, 3, 2).reshape(b, c * f, t))  # (B, H, T)
        for block in self.blocks:
            h = block(h, time)
        return self.frame_out(nn.functional.silu(self.out_norm(h)))[:, 0]  # (B, T)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created; each file atomically)."""
        save_safetensors_model(self, self.config.to_dict(), Path(folder) / CONFIG_FILE, Path(folder) / WEIGHTS_FILE)


def build_envelope_head(config: EnvelopeHeadConfig = EnvelopeHeadConfig(), seed: int = 0) -> EnvelopeHead:
    """A head with seeded random weights (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EnvelopeHead(config)


def read_head_config(folder: str | os.PathLike) -> EnvelopeHeadConfig:
    """A saved head's config, checked (one-line FileNotFoundError / ValueError naming the file)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a latent envelope head folder (no {CONFIG_FILE})")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    return EnvelopeHeadConfig.from_dict(data, str(path))


def load_envelope_head(source: str | os.PathLike = "toy") -> EnvelopeHead:
    """``"toy"`` (the head shipped for the `toy` decoder) or a folder ``save_pretrained`` wrote -> the head,
    frozen, in eval mode. The config is validated, then every key and shape of the weights checked
    against the model it describes before any weight is read; safetensors only."""
    folder = TOY_ENVELOPE_HEAD if str(source) == "toy" else Path(source)
    config = read_head_config(folder)
    return load_safetensors_model(lambda: EnvelopeHead(config), folder / WEIGHTS_FILE, "envelope heads",
                                  "the head config.json describes")
