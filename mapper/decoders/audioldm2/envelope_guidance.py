"""Timing control of the frozen AudioLDM-2: guide its sampler towards a target loudness envelope.

AudioLDM-2 cannot place a sound in time from its conditions: its GPT-2 stream is 8 tokens of 1.28 s
and cross-attention carries no position. A target envelope (``extractors.envelope.audio_envelope``,
one number per latent frame: where the sound should be loud) steers it instead, by guidance at
sampling time, with no change to the model: at a guided step, a latent envelope head
(``mapper.decoders.audioldm2.envelope_head``: noisy latent + timestep -> envelope of the clean audio)
scores the current latent against the target, and the gradient of that loss nudges the noise
prediction. This is LatCH-style guidance (arXiv 2603.04366): the head works on the latent, so no
gradient flows through the VAE decoder or the vocoder, and it is *selective*: only some steps are
guided (by default the first ones, where the layout of the sound is decided), which keeps the
quality the unguided steps restore.

The update. With an epsilon model, a step moves the latent towards its prediction of the clean latent,
Tweedie's estimate ``x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)`` (x_t as the UNet sees it,
``scheduler.scale_model_input``). Guidance scores that estimate: L(x0) = masked mean squared error between
head(x0, t=0) and the target (the head's clean-audio reading, where it is most accurate), and moves it down
the loss, ``x0' = x0 - c * grad L(x0)``, which is the noise prediction

    eps' = eps + scale * g / rms(g),        g = grad_x0 L(x0)   (space="clean", the default)

(the factor sqrt(alpha_bar) / sqrt(1 - alpha_bar) dropped, and the gradient normalised per sample to unit
RMS). The gradient never passes through the UNet, the VAE decoder or the vocoder: only through the head.
``space="noisy"`` is classifier guidance proper (LatCH's form): L(x_t) = the loss of head(x_t, t) on the
noisy latent itself, ``grad log p(x_t | target) = grad log p(x_t) - grad L`` and, since
``eps = -sqrt(1 - alpha_bar_t) * grad log p(x_t)``, the same update with g = grad_xt L(x_t). On the toy
recipe's 30 held-out clips rendered from their video (DPM-Solver++ 25 steps, scale 0.045, first 30 % of the steps) the clean form
places the sound tighter at less cost: guided by the true audio's envelope, event-sync error 0.158 s (noisy:
0.298 s); by the envelope predicted from the video, 0.304 s at FD x 0.98 of unguided (noisy: 0.303 s, x 1.23).

``scale`` is in units of the noise's own standard deviation (eps has unit RMS), the same at every step and
for every head, whatever the loss's magnitude. A push of the prediction's own size is far too much: on the
toy decoder the useful scales are a few hundredths (0.02-0.07). (A v-prediction model moves the same way:
adding to v moves x0 by -sigma_t * scale * g / rms(g). A model that predicts the sample itself would need
the opposite sign and is refused.)

Frames get no guidance where the target is NaN (no target, e.g. past a clip's end) or where an
inpainting ``known_mask`` holds the latent fixed: they are out of the loss, and the gradient there is
zeroed before it is normalised (the RMS is over the frames that are guided).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import SchedulerMixin

from mapper.decoders.audioldm2.envelope_head import EnvelopeHead

# The library's default (a pipeline whose mapper folder names no scale, the paper tables' fallback): the first 30 % of
# the steps (8 of the fast preset's 25) at 0.045 noise std, in the clean space. Measured on 30 held-out clips of toy
# world seed 11 (toy decoder and head; benchmarks/sync_guidance.py), true tokens, fast preset (Euler ancestral 25):
# event-sync error 0.56 -> 0.017 s (another clip's envelope: 0.47 s, and 0.098 s against that clip's events), class
# accuracy 0.97 -> 0.97, FD x 1.19, time x 1.02; at 0.02 only 0.34 s. From the video (recipes/configs/toy.yaml writes
# it too; the predictor reading CAVP and the motion stream), over three sampling seeds: 0.54 -> 0.149 s, class
# 0.90 -> 0.88, FD x 1.06 (0.02: 0.27 s, 0.88, x 0.97; 0.06: 0.12 s, class 0.86); over ten: 0.52 -> 0.171 s, class
# 0.89 -> 0.87, FD x 1.09.
DEFAULT_SCALE = 0.045
LOSSES = ("mse", "correlation")
SPACES = ("clean", "noisy")
DEFAULT_FIRST_FRACTION = 0.3


@dataclass(frozen=True)
class EnvelopeGuidanceConfig:
    """How hard and when: ``scale`` (units of the noise's std; 0 = off) on the first ``first_fraction`` of
    the sampling steps (selective guidance: ceil(fraction * steps) steps), or on the step indices
    ``steps`` (0 = the first, noisiest step) when given."""

    scale: float = DEFAULT_SCALE
    first_fraction: float = DEFAULT_FIRST_FRACTION
    steps: tuple[int, ...] | None = None
    loss: str = "mse"  # "mse": match the target's values; "correlation": only its shape (1 - Pearson r per clip)
    space: str = "clean"  # score the predicted clean latent ("clean") or the noisy latent itself ("noisy")

    def __post_init__(self):
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not (
                math.isfinite(self.scale) and self.scale >= 0):
            raise ValueError(f"sync guidance scale must be a finite number >= 0, got {self.scale!r}")
        if isinstance(self.first_fraction, bool) or not isinstance(self.first_fraction, (int, float)) or not (
                0 < self.first_fraction <= 1):
            raise ValueError(f"sync guidance first_fraction must be in (0, 1], got {self.first_fraction!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"sync guidance loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.space not in SPACES:
            raise ValueError(f"sync guidance space must be one of {', '.join(SPACES)}, got {self.space!r}")
        if self.steps is not None:
            steps = tuple(self.steps)
            if not steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps):
                raise ValueError(f"sync guidance steps must be step indices >= 0, got {self.steps!r}")
            object.__setattr__(self, "steps", steps)

    def guided_steps(self, num_steps: int) -> set[int]:
        """The indices of the guided steps of a run of ``num_steps``."""
        if self.scale == 0:
            return set()
        if self.steps is not None:
            return {s for s in self.steps if s < num_steps}
        return set(range(math.ceil(self.first_fraction * num_steps)))


class EnvelopeGuidance:
    """One run's guidance: a head, a target envelope (B, T') per latent frame (NaN: no target; T' may be
    shorter than the latent, the rest is free) and an ``EnvelopeGuidanceConfig``. ``denoise`` calls
    ``applies`` and ``adjust`` at every step."""

    def __init__(self, head: EnvelopeHead, target: torch.Tensor | np.ndarray,
                 config: EnvelopeGuidanceConfig = EnvelopeGuidanceConfig()):
        target = torch.as_tensor(np.asarray(target, np.float32) if isinstance(target, np.ndarray) else target)
        if target.dim() != 2 or target.shape[1] == 0:
            raise ValueError(f"the target envelope must be (batch, frames), got shape {tuple(target.shape)}")
        if torch.isinf(target).any():
            raise ValueError("the target envelope has infinite values (NaN marks a frame without a target)")
        self.head, self.target, self.config = head, target.float().cpu(), config  # (B, T'), moved per step

    def applies(self, index: int, num_steps: int) -> bool:
        return index in self.config.guided_steps(num_steps)

    def adjust(self, latents: torch.Tensor, timestep: torch.Tensor, noise_pred: torch.Tensor,
               scheduler: SchedulerMixin, known_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Latents x_t (B, C, T, F) at ``timestep``, the (classifier-free-guided) noise prediction (B, C, T, F)
        -> the guided noise prediction (see the module docstring); ``known_mask`` (B, 1, T, 1) frames get none."""
        prediction_type = getattr(scheduler.config, "prediction_type", "epsilon")
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"sync guidance needs an epsilon or v-prediction model, not {prediction_type!r}")
        b, _, frames, _ = latents.shape
        weight = self._weights(b, frames, known_mask).to(latents.device)  # (B, T) 1 = guided frame
        target = torch.nan_to_num(self._padded(frames).to(latents.device))  # (B, T)
        parameter = next(self.head.parameters())
        # inference_mode(False): a caller's inference tensors are copied into ones autograd may use
        with torch.inference_mode(False), torch.enable_grad():
            t = timestep.clone() if isinstance(timestep, torch.Tensor) else timestep
            x = scheduler.scale_model_input(latents.detach().clone(), t)  # x_t as the UNet sees it
            if self.config.space == "clean":
                x = _predicted_clean(x, noise_pred.detach().clone(), t, scheduler, prediction_type)
                t = 0
            x = x.to(parameter.device, parameter.dtype).requires_grad_(True)
            predicted = self.head(x, t)  # (B, T)
            w, y = weight.clone().to(predicted), target.clone().to(predicted)
            loss = _loss(self.config.loss, predicted, y, w)
            (grad,) = torch.autograd.grad(loss, x)  # (B, C, T, F)
        grad = grad.to(noise_pred) * weight.to(noise_pred)[:, None, :, None]
        guided = (weight.sum(dim=1) * latents.shape[1] * latents.shape[3]).clamp(min=1)  # (B,) guided elements
        rms = (grad.pow(2).sum(dim=(1, 2, 3)) / guided).sqrt().clamp(min=1e-12)  # (B,)
        return noise_pred + self.config.scale * grad / rms[:, None, None, None]

    def _padded(self, frames: int) -> torch.Tensor:
        """The target at the latent's length: NaN (free) after its end."""
        b, length = self.target.shape
        if length > frames:
            raise ValueError(f"the target envelope has {length} frames, the latent only {frames}")
        return torch.cat([self.target, torch.full((b, frames - length), torch.nan)], dim=1)

    def _weights(self, batch: int, frames: int, known_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T) float: 1 where a frame is guided (a finite target, not in the known region)."""
        if self.target.shape[0] != batch:
            raise ValueError(f"the target envelope has {self.target.shape[0]} rows, the batch {batch}")
        weight = torch.isfinite(self._padded(frames)).float()
        if known_mask is not None:
            weight = weight * (~known_mask[:, 0, :, 0].cpu()).float()
        return weight


def _predicted_clean(x: torch.Tensor, prediction: torch.Tensor, timestep, scheduler: SchedulerMixin,
                     prediction_type: str) -> torch.Tensor:
    """Tweedie's estimate of the clean latent from x_t (B, C, T, F; as the UNet sees it) and the model's
    epsilon or v prediction. alpha_bar at a fractional timestep (Karras-sigma solvers) is interpolated in log."""
    alphas = scheduler.alphas_cumprod.to(x.device, torch.float64)  # (N,)
    at = torch.as_tensor(timestep, dtype=torch.float64, device=x.device).reshape(()).clamp(0, len(alphas) - 1)
    low = int(at.floor())
    high = min(low + 1, len(alphas) - 1)
    fraction = at - low
    alpha_bar = torch.exp((1 - fraction) * alphas[low].log() + fraction * alphas[high].log()).to(x.dtype)
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * x - (1 - alpha_bar).sqrt() * prediction
    return (x - (1 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()


def _loss(kind: str, predicted: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sum over rows (each row's gradient is its own) of the masked loss of (B, T) envelopes; weight 1 = guided."""
    count = weight.sum(dim=1).clamp(min=1)  # (B,)
    if kind == "mse":
        return ((weight * (predicted - target) ** 2).sum(dim=1) / count).sum()
    centred = [v - (weight * v).sum(dim=1, keepdim=True) / count[:, None] for v in (predicted, target)]
    p, y = (weight * v for v in centred)
    r = (p * y).sum(dim=1) / ((p * p).sum(dim=1) * (y * y).sum(dim=1)).sqrt().clamp(min=1e-6)
    return (1 - r).sum()


def make_envelope_guidance(head: EnvelopeHead | None, envelope, settings: EnvelopeGuidanceConfig | float | None = None,
                           frame_samples: int | None = None, batch: int | None = None,
                           frames: int | None = None) -> EnvelopeGuidance | None:
    """What a pipeline passes to ``denoise``: None without an ``envelope`` or at scale 0, else the guidance.

    ``settings``: a config, a bare scale (with the default steps) or None (the default config).
    ``frame_samples``: the decoder's samples per latent frame, checked against what the head was trained
    for (an envelope at another frame rate would put every event at the wrong time). ``batch`` and
    ``frames``: the latents' rows and length, to check the envelope against before any sampling."""
    if envelope is None:
        return None
    if settings is None:
        settings = EnvelopeGuidanceConfig()
    elif not isinstance(settings, EnvelopeGuidanceConfig):
        settings = EnvelopeGuidanceConfig(scale=settings)
    if settings.scale == 0:
        return None
    if head is None:
        raise ValueError("sync guidance needs a latent envelope head: set pipe.envelope_head "
                         "(mapper.decoders.audioldm2.load_envelope_head)")
    if frame_samples is not None and head.config.frame_samples != frame_samples:
        raise ValueError(f"the envelope head was trained on frames of {head.config.frame_samples} samples, "
                         f"this decoder's latent frames are {frame_samples}")
    guidance = EnvelopeGuidance(head, envelope, settings)
    if batch is not None and guidance.target.shape[0] != batch:
        raise ValueError(f"the target envelope has {guidance.target.shape[0]} rows, the batch {batch}")
    if frames is not None and guidance.target.shape[1] > frames:
        raise ValueError(f"the target envelope has {guidance.target.shape[1]} frames, the latent only {frames}")
    return guidance
