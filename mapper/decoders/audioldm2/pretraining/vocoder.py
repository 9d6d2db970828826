"""Stage 2: HiFi-GAN from mel to waveform, trained on true mels of the toy corpus.

HiFi-GAN is trained adversarially; on CPU in minutes the generator alone, with a multi-resolution
STFT loss (spectral convergence + log magnitude, as Parallel WaveGAN's auxiliary loss) and an L1 on
the log-mel of its output (HiFi-GAN's own mel loss, weight 45 there), learns the toy world's sounds:
right energy at the right time and frequency, without the fine phase a discriminator would add.

Its input is standardised per mel bin (HiFi-GAN's ``normalize_before``, with the training mels' mean and
std as its ``mean``/``scale`` buffers, so the pipeline still hands it plain log-mels). Raw log-mels
(silence at -11.5, events near 0) drove a vocoder trained this way to render the steady tones 30-40 dB
too quietly: the bell's partials came out at the right pitch at 1/70 of their amplitude, after 3,000
steps; standardised, at 1/1.3 after 400.
"""
from __future__ import annotations

import torch
from transformers import SpeechT5HifiGan

from mapper.decoders.audioldm2.mel import MelConfig, log_mel
from mapper.decoders.audioldm2.pretraining.training_loop import random_crops, train_steps

# (n_fft, hop), window = n_fft; the 2048-point one resolves the toy world's steady tones (lamp, bell)
STFT_RESOLUTIONS = ((2048, 512), (1024, 256), (512, 128), (256, 64))
MEL_LOSS_WEIGHT = 1.0


def _magnitude(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    # floor at the mel front end's clip value: silence (padding) is not worth chasing below it
    return torch.stft(x, n_fft, hop, n_fft, window, return_complex=True).abs().clamp(min=1e-5)  # (B, F, frames)


def stft_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss of waveforms (B, S): spectral convergence + L1 of log magnitudes.

    Convergence is taken over the whole batch (not per crop), so a silent crop cannot blow it up."""
    total = fake.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        f, r = _magnitude(fake, n_fft, hop), _magnitude(real, n_fft, hop)
        total = total + torch.linalg.norm(r - f) / torch.linalg.norm(r) + (f.log() - r.log()).abs().mean()
    return total / len(STFT_RESOLUTIONS)


def train_vocoder(vocoder: SpeechT5HifiGan, mels: torch.Tensor, waveforms: torch.Tensor, steps: int, batch: int,
                  crop_frames: int, lr: float, generator: torch.Generator, log=print) -> SpeechT5HifiGan:
    """mels (N, T, M) and their waveforms (N, T * hop) -> the trained vocoder. Crops of `crop_frames`."""
    mel_config = MelConfig.for_vocoder(vocoder.config)
    hop = mel_config.hop_length
    vocoder.config.normalize_before = True  # saved in its config.json; mean and scale in its weights
    vocoder.mean.copy_(mels.mean(dim=(0, 1)))  # (M,)
    vocoder.scale.copy_(mels.std(dim=(0, 1)).clamp(min=1e-3))

    def loss_of(step: int) -> torch.Tensor:
        mel, real = random_crops(mels, crop_frames, batch, generator, scale=hop, paired=waveforms)
        fake = vocoder(mel)  # (B, crop * hop)
        mel_fake = log_mel(fake, mel_config)[:, :crop_frames]
        mel_real = log_mel(real, mel_config)[:, :crop_frames]  # the crop's own mel (edges as the fake's)
        return stft_loss(fake, real) + MEL_LOSS_WEIGHT * (mel_fake - mel_real).abs().mean()

    return train_steps(vocoder, loss_of, steps, lr, "vocoder", log)
