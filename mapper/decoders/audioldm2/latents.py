"""AudioLDM-2's latent time axis: how latent frames map to audio samples, and latents -> waveform.

A latent frame is ``vae_scale_factor`` mel frames of ``hop`` samples each (AudioLDM-2: 4 x 160 =
640 samples = 40 ms at 16 kHz). The UNet halves time once per level after the first, so latent
lengths that are multiples of ``frame_multiple`` (AudioLDM-2: 8; the tiny UNet: 2) need no resize.
All of it is read from the components' configs, so a tiny test decoder gets matching numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LatentGeometry:
    sample_rate: int  # the vocoder's output rate
    vae_scale_factor: int  # VAE downsampling, in time and in mel bins
    hop: int  # vocoder samples per mel frame
    channels: int  # latent channels (the UNet's input)
    mel_bins: int  # mel bins the vocoder reads
    frame_multiple: int  # latent lengths in multiples of this need no resize in the UNet

    @classmethod
    def of(cls, vae, vocoder, unet) -> "LatentGeometry":
        return cls(
            sample_rate=int(vocoder.config.sampling_rate),
            vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1),
            hop=int(np.prod(vocoder.config.upsample_rates)),
            channels=int(unet.config.in_channels),
            mel_bins=int(vocoder.config.model_in_dim),  # as AudioLDM2Pipeline.prepare_latents
            frame_multiple=2 ** (len(unet.config.block_out_channels) - 1),
        )

    @property
    def frame_samples(self) -> int:
        """Audio samples per latent frame: VAE time factor x vocoder hop (AudioLDM-2: 4 x 160)."""
        return self.vae_scale_factor * self.hop

    def seconds_to_frames(self, seconds: float) -> int:
        return round(seconds * self.sample_rate / self.frame_samples)

    def window_frames(self, seconds: float) -> int:
        """Latent frames of a window of ``seconds``, rounded up to the UNet's multiple
        (AudioLDM-2, 10 s: 250 -> 256 = 10.24 s, its native length)."""
        frames = math.ceil(seconds * self.sample_rate / self.frame_samples)
        return math.ceil(frames / self.frame_multiple) * self.frame_multiple

    def latent_shape(self, frames: int) -> tuple[int, int, int, int]:
        """(1, C, frames, F) of one latent."""
        return (1, self.channels, frames, self.mel_bins // self.vae_scale_factor)


@torch.no_grad()
def decode_latents(vae, vocoder, latents: torch.Tensor, frame_samples: int) -> np.ndarray:
    """Latents (B, C, T, F) -> waveforms (B, T * frame_samples) float32, one item at a time
    (the VAE decoder's activations are the largest tensors of the whole pipeline; batching them is no faster on
    a CPU either). On a CPU the latent goes in channels-last: the decoder's convolutions then run in oneDNN's
    native layout, 0.8 x the time of the toy VAE's decode on this project's 2-core Xeon (the UNet gains nothing
    from it, so it is left as it is; on a GPU nothing changes, as it was not measured there)."""
    length = latents.shape[2] * frame_samples
    out = np.zeros((latents.shape[0], length), np.float32)
    layout = torch.channels_last if latents.device.type == "cpu" else torch.contiguous_format
    for i, latent in enumerate(latents):
        latent = (latent[None] / vae.config.scaling_factor).contiguous(memory_format=layout)
        mel = vae.decode(latent).sample  # (1, 1, T*4, mels)
        audio = vocoder(mel.squeeze(1)).float().cpu().numpy()[0]  # (~T * frame_samples,)
        out[i, : min(length, len(audio))] = audio[:length]
    return out
