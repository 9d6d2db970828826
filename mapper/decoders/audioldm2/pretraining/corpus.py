"""The decoder's training data: toy-world sound tracks as AudioLDM-2 and the mapper see them.

Each clip is the window extraction reads (``clip_window_audio``: ``start`` .. ``start + clip.seconds``,
zero-padded). The decoder works on AudioLDM-2's native 10.24 s (256 latent frames = 1024 mel frames),
so the window is zero-padded to that length. As AudioLDM-2 prepares audio for its VAE, the waveform
is mean-removed and peak-normalised to 0.5 before the log-mel (``normalize_reference``); the
AudioMAE tokens, like the feature cache's, are computed on the window as it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from extractors.frozen import FrozenExtractors
from mapper.decoders.audioldm2.mel import MelConfig, log_mel
from mapper.decoders.audioldm2.reference import normalize_reference
from toy_world import clip_window_audio, plan_world, window_event_times


@dataclass
class DecoderCorpus:
    ids: list[str]
    labels: list[str]
    splits: list[str]
    waveforms: torch.Tensor  # (N, mel_frames * hop) normalised audio, what the vocoder must output
    mels: torch.Tensor  # (N, mel_frames, mels) log-mel of the waveforms, what the VAE encodes
    tokens: torch.Tensor  # (N, 8, token_dim) the preset's AudioMAE of the raw window: the GPT-2 stream
    event_times: list[np.ndarray]  # per clip, seconds from the window's start

    def subset(self, split: str) -> "DecoderCorpus":
        keep = [i for i, s in enumerate(self.splits) if s == split]
        return DecoderCorpus([self.ids[i] for i in keep], [self.labels[i] for i in keep], [split] * len(keep),
                             self.waveforms[keep], self.mels[keep], self.tokens[keep],
                             [self.event_times[i] for i in keep])


def build_corpus(num_clips: int, seed: int, mel_config: MelConfig, mel_frames: int,
                 preset="tiny", batch: int = 32) -> DecoderCorpus:
    """Plan a toy world (`num_clips`, `seed`), render its sound tracks (no video) and prepare them:
    `mel_frames` frames of the vocoder's mel (`mel_config`) per clip; the GPT-2-stream tokens from the
    AudioMAE of `preset` (a name or an ExtractorPreset)."""
    extractors = FrozenExtractors.from_preset(preset)
    clip = extractors.preset.clip
    world = plan_world(num_clips, seed, clip)
    samples = mel_frames * mel_config.hop_length
    windows = np.stack([clip_window_audio(spec, clip) for spec in world["clips"]])  # (N, clip samples)
    tokens = torch.cat([extractors.encode_audio(torch.from_numpy(windows[i:i + batch]))
                        for i in range(0, len(windows), batch)])  # (N, 8, D)
    waveforms = np.zeros((len(windows), samples), np.float32)
    length = min(samples, windows.shape[1])
    for i, window in enumerate(windows):
        waveforms[i, :length] = normalize_reference(window)[:length]
    waveforms = torch.from_numpy(waveforms)
    mels = torch.cat([log_mel(waveforms[i:i + batch], mel_config)[:, :mel_frames]
                      for i in range(0, len(waveforms), batch)])  # (N, mel_frames, mels)
    specs = world["clips"]
    return DecoderCorpus(
        ids=[c["id"] for c in specs], labels=[c["label"] for c in specs], splits=[c["split"] for c in specs],
        waveforms=waveforms, mels=mels, tokens=tokens.float(),
        event_times=[window_event_times(c) for c in specs],
    )
