"""Held-out evaluation of a mapper against baselines that ignore (part of) the video.

- mean predictor: the train-set mean of every AudioMAE token, whatever the video;
- shuffled-video predictor: the mapper's own prediction for a *different* held-out clip, which
  keeps everything the mapper learned about typical sounds but breaks the link to this video.
Beating the first shows the mapper uses the input at all; beating the second shows it uses the
right video.

The video envelope predictor (timing control) is scored on the same clips: MSE of its z-scored envelope
(all zeros, the mean of any z-scored envelope, scores 1) and its Pearson correlation with the true one,
against the shuffled-video baseline (another held-out clip's prediction).

Temporal score: the 8 pooled AudioMAE tokens are in time order (each pools 1.28 s of audio), so a
mapper that puts events at the right time loses accuracy when its predicted *events* are moved in
time. The time-shuffled prediction keeps the train mean of every token position (what any clip
sounds like at that position) and rotates only the clip-specific part, prediction - mean, by half
the token axis. `temporal_score` = 1 - MSE(prediction) / MSE(time-shuffled prediction): 0 means
timing carries nothing; higher means the predicted events sit at the right time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from extractors.presets import AUDIO_TARGET, ENVELOPE_TARGET
from mapper.training.feature_arrays import identity_collate
from mapper.model import MapperBase


@torch.no_grad()
def predict(mapper: MapperBase, dataset, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Autoregressive predictions and targets, both (N, tokens, D) float32 on CPU."""
    mapper.eval()
    device = next(mapper.parameters()).device
    predictions, targets = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=identity_collate):
        features = {name: batch[name].float().to(device) for name in mapper.input_streams}
        predictions.append(mapper.generate(features).float().cpu())
        targets.append(batch[AUDIO_TARGET].float())
    return torch.cat(predictions), torch.cat(targets)


def _mean_target(dataset, batch_size: int) -> torch.Tensor:
    total, count = 0.0, 0
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=identity_collate):
        total = total + batch[AUDIO_TARGET].double().sum(dim=0)
        count += len(batch[AUDIO_TARGET])
    return (total / count).float()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a, b, dim=-1).mean().item()


@torch.no_grad()
def evaluate_mapper(mapper: MapperBase, train_dataset, test_dataset, batch_size: int = 64) -> dict[str, float]:
    """MSE and cosine of the mapper and both baselines on `test_dataset`."""
    predictions, targets = predict(mapper, test_dataset, batch_size)
    if len(targets) < 2:
        raise ValueError("evaluation needs at least two held-out clips (one to shuffle against)")
    train_mean = _mean_target(train_dataset, batch_size)  # (tokens, D)
    mean_prediction = train_mean.expand_as(targets)
    shuffled = predictions.roll(1, dims=0)  # every clip gets another clip's prediction
    # (N, tokens, D): per-position means stay, the clip-specific part moves by half the clip
    time_shuffled = mean_prediction + (predictions - mean_prediction).roll(predictions.shape[1] // 2, dims=1)
    mse = F.mse_loss(predictions, targets).item()
    mse_time_shuffled = F.mse_loss(time_shuffled, targets).item()
    return {
        "mse": mse,
        "mse_mean_baseline": F.mse_loss(mean_prediction, targets).item(),
        "mse_shuffled_baseline": F.mse_loss(shuffled, targets).item(),
        "cosine": _cosine(predictions, targets),
        "cosine_mean_baseline": _cosine(mean_prediction, targets),
        "cosine_shuffled_baseline": _cosine(shuffled, targets),
        "mse_time_shuffled": mse_time_shuffled,
        "temporal_score": 1 - mse / mse_time_shuffled,
        "clips": float(len(targets)),
    }


@torch.no_grad()
def evaluate_envelope_predictor(predictor, test_dataset, batch_size: int = 64) -> dict[str, float]:
    """MSE and correlation of the predicted envelopes on `test_dataset`, and of the shuffled-video baseline."""
    predictor.eval()
    device = next(predictor.parameters()).device
    predictions, targets = [], []
    for batch in DataLoader(test_dataset, batch_size=batch_size, collate_fn=identity_collate):
        features = {name: batch[name].float().to(device) for name in predictor.input_streams}
        predictions.append(predictor(features).float().cpu())
        targets.append(batch[ENVELOPE_TARGET].float()[..., 0])
    predictions, targets = torch.cat(predictions), torch.cat(targets)  # (N, E)
    shuffled = predictions.roll(1, dims=0)

    def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
        return F.cosine_similarity(a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True), dim=1).mean().item()

    return {"envelope_mse": F.mse_loss(predictions, targets).item(), "envelope_corr": correlation(predictions, targets),
            "envelope_mse_shuffled_baseline": F.mse_loss(shuffled, targets).item(),
            "envelope_corr_shuffled_baseline": correlation(shuffled, targets)}


def format_report(metrics: dict[str, float]) -> str:
    gain_mean = 1 - metrics["mse"] / metrics["mse_mean_baseline"]
    gain_shuffled = 1 - metrics["mse"] / metrics["mse_shuffled_baseline"]
    return "\n".join(
        [
            f"held-out clips: {int(metrics['clips'])}",
            f"{'':22s}{'MSE':>10s}{'cosine':>10s}",
            f"{'mapper':22s}{metrics['mse']:10.4f}{metrics['cosine']:10.4f}",
            f"{'mean predictor':22s}{metrics['mse_mean_baseline']:10.4f}{metrics['cosine_mean_baseline']:10.4f}",
            f"{'shuffled-video':22s}{metrics['mse_shuffled_baseline']:10.4f}{metrics['cosine_shuffled_baseline']:10.4f}",
            f"{'time-shuffled tokens':22s}{metrics['mse_time_shuffled']:10.4f}",
            f"MSE reduction vs mean predictor: {gain_mean:.1%}, vs shuffled video: {gain_shuffled:.1%}",
            f"temporal score (1 - MSE / time-shuffled MSE): {metrics['temporal_score']:.3f}",
        ]
        + ([f"{'envelope predictor':22s}{metrics['envelope_mse']:10.4f}{'':>10s}  (correlation "
            f"{metrics['envelope_corr']:.3f}; shuffled video: MSE {metrics['envelope_mse_shuffled_baseline']:.4f}, "
            f"correlation {metrics['envelope_corr_shuffled_baseline']:.3f})"] if "envelope_mse" in metrics else [])
    )
