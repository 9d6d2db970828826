"""Video -> frozen extractors -> mapper -> AudioLDM-2 -> waveform.

`load_pipeline()` assembles the parts a trained mapper was made for: its config names the
extractor preset that produced its inputs and the AudioLDM-2 its outputs condition, so only the
mapper has to be named (or found: the last `train_mapper` run). Videos longer than the clip
window are cut into consecutive windows, each rendered on its own and joined end to end.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from extractors.frozen import FrozenExtractors
from extractors.presets import get_preset
from extractors.video import probe_duration, read_clip
from mapper.audioldm2 import load_audioldm2, render
from mapper.loading import load_mapper
from mapper.model import MapperBase
from mapper.registry import last_mapper

PAPER_NEGATIVE_PROMPT = "low quality, average quality"


@dataclass
class GeneratedAudio:
    audio: np.ndarray  # (samples,) float32 mono
    sample_rate: int
    video: str
    label: str
    audio_tokens: np.ndarray  # (windows, N, D): the mapper's predicted AudioMAE tokens


class VideoToAudioPipeline:
    def __init__(self, extractors: FrozenExtractors, mapper: MapperBase, audioldm2):
        self.extractors, self.mapper, self.audioldm2 = extractors, mapper.eval(), audioldm2
        self.clip = extractors.preset.clip
        self.sample_rate = audioldm2.vocoder.config.sampling_rate
        if self.sample_rate != self.clip.sample_rate:
            raise ValueError(f"AudioLDM-2 renders {self.sample_rate} Hz, the preset expects {self.clip.sample_rate} Hz")

    @property
    def device(self) -> torch.device:
        return next(self.mapper.parameters()).device

    @torch.inference_mode()
    def audio_tokens(self, video: str | os.PathLike, start: float) -> torch.Tensor:
        """The mapper's (1, N, D) AudioMAE tokens for the window of `video` starting at `start`."""
        clip = read_clip(video, self.clip, start=start, with_audio=False)
        visual = self.extractors.encode_video(torch.from_numpy(clip.frames)[None])
        cavp, timechat = visual["cavp"].to(self.device), visual["timechat"].to(self.device)
        return self.mapper.generate(cavp.to(self.mapper.dtype), timechat.to(self.mapper.dtype))

    @torch.inference_mode()
    def __call__(
        self,
        video: str | os.PathLike,
        label: str | None = None,
        num_inference_steps: int = 100,
        guidance_scale: float = 3.5,
        negative_prompt: str = PAPER_NEGATIVE_PROMPT,
        seed: int = 0,
    ) -> GeneratedAudio:
        """Paper decoding by default: DDIM 100 steps, CFG 3.5, the paper's negative prompt, the
        label (or "" without one) as the Flan-T5 prompt, the mapper's tokens as the GPT-2 stream."""
        duration = probe_duration(video)
        generator = torch.Generator("cpu").manual_seed(seed)
        pieces, tokens = [], []
        for start in np.arange(0.0, duration, self.clip.seconds):
            seconds = min(self.clip.seconds, duration - start)
            window_tokens = self.audio_tokens(video, float(start))
            audio = render(
                self.audioldm2,
                window_tokens,
                [label or ""],
                seconds=seconds,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                negative_prompt=negative_prompt,
                generator=generator,
            )
            pieces.append(audio[0])
            tokens.append(window_tokens[0].float().cpu().numpy())
        audio = np.concatenate(pieces)[: round(duration * self.sample_rate)]
        return GeneratedAudio(audio.astype(np.float32), self.sample_rate, str(video), label or "", np.stack(tokens))


def load_pipeline(
    mapper: str | os.PathLike | None = None,
    audioldm2: str | None = None,
    extractors: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> VideoToAudioPipeline:
    """Assemble a pipeline. `mapper`: a `save_pretrained` folder (default: the last trained one);
    `audioldm2` / `extractors`: override what the mapper's config names (a hub id goes online)."""
    mapper_dir = Path(mapper) if mapper is not None else last_mapper()
    model = load_mapper(mapper_dir).to(device=device, dtype=dtype)
    preset = get_preset(extractors or model.config.extractor_preset)
    if extractors is None and preset.fingerprint() != model.config.extractor_fingerprint:
        raise ValueError(
            f"{mapper_dir}: trained on features of a different '{preset.name}' preset config "
            f"(fingerprint {model.config.extractor_fingerprint} vs {preset.fingerprint()})"
        )
    frozen = FrozenExtractors.from_preset(preset).to(device)
    decoder = load_audioldm2(audioldm2 or model.config.audioldm2, device=device, dtype=dtype)
    return VideoToAudioPipeline(frozen, model, decoder)
