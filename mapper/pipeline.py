"""Video -> frozen extractors -> mapper -> AudioLDM-2 -> waveform, as one diffusers pipeline.

``VideoToAudioPipeline`` is a ``DiffusionPipeline``: the frozen visual extractors, the trained
mapper and AudioLDM-2's own components (UNet, VAE, vocoder, Flan-T5, and optionally the text
stack that computes the negative GPT-2 condition) are registered components, so
``save_pretrained`` / ``from_pretrained`` round-trip it and ``.to(device)`` moves it.

How a video is rendered (see :mod:`mapper.long_form` for the windows, :mod:`mapper.sampler` for
the loop, :mod:`mapper.schedulers` for the presets):

1. The video is cut into overlapping clip windows (one window for a clip of <= 10 s).
2. Per window: decode its frames, run the extractors and the mapper -> 8 AudioMAE tokens.
3. Per window: AudioLDM-2 samples a latent with the tokens as the GPT-2 stream and the label as
   the Flan-T5 prompt, classifier-free guidance against the negative pair; in the default
   ``inpaint`` mode the overlap with the previous window is a known region, so the window
   continues the previous one. A reference sound is the known region of the first window.
4. Per window: VAE + vocoder; the waveforms are cross-faded over the overlaps and streamed out.

Several videos are rendered together: their current windows share UNet batches (grouped by
latent length), each video with its own random generator, so a video's audio does not depend on
what it was batched with. A video that cannot be read fails alone (``ClipFailed``).

``load_pipeline()`` assembles the parts a trained mapper was made for: its config names the
extractor preset that produced its inputs and the AudioLDM-2 its outputs condition.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from extractors.presets import get_preset
from extractors.video import AudioReadError, MediaReadError, VideoReadError, probe_duration, read_audio_file, read_clip
from mapper.audioldm2 import DEFAULT_NEGATIVE_PROMPT, encode_labels, load_audioldm2, text_generated_embeds
from mapper.extractors_component import VisualExtractors
from mapper.loading import load_mapper
from mapper.long_form import LongFormConfig, Stitcher, Window, plan_windows, round_up
from mapper.reference_audio import encode_reference
from mapper.registry import last_mapper
from mapper.sampler import Conditions, denoise
from mapper.schedulers import SamplingConfig, make_scheduler, sampling_config

PAPER_NEGATIVE_PROMPT = DEFAULT_NEGATIVE_PROMPT  # the paper preset's negative prompt


@dataclass
class GeneratedAudio:
    audio: np.ndarray | None  # (samples,) float32 mono; None when streamed (see VideoToAudioPipeline.stream)
    sample_rate: int
    video: str
    label: str
    audio_tokens: np.ndarray  # (windows, N, D): the mapper's predicted AudioMAE tokens per window
    joins: list[tuple[int, int]] = field(default_factory=list)  # [start, end) samples where windows meet
    reference_samples: int = 0  # leading samples that are the (re-rendered) reference sound

    @property
    def num_samples(self) -> int:
        return 0 if self.audio is None else len(self.audio)


@dataclass(frozen=True)
class GenerationRequest:
    """One soundtrack to render: ``video`` from ``start`` for ``duration`` seconds (None: to its end)."""

    video: str | os.PathLike
    label: str = ""
    start: float = 0.0
    duration: float | None = None
    reference_audio: str | os.PathLike | np.ndarray | None = None  # file, or (S,) at the pipeline's rate


@dataclass
class AudioChunk:
    """The next finished samples of request ``index`` (in order)."""

    index: int
    samples: np.ndarray


@dataclass
class ClipDone:
    index: int
    result: GeneratedAudio  # audio is None: it came as AudioChunks


@dataclass
class ClipFailed:
    index: int
    error: MediaReadError


@dataclass
class _Track:
    """One request in flight: its window plan, where it is, and what it carries to the next window."""

    index: int
    request: GenerationRequest
    plan: list[Window]
    stitcher: Stitcher
    generator: torch.Generator
    begin: int  # timeline sample where the returned audio begins (negative: a kept reference)
    carry: torch.Tensor | None = None  # (1, C, frames, F) latent the next window must continue
    reference: np.ndarray | None = None  # the reference's own render (its VAE/vocoder round trip)
    reference_fade: int = 0  # samples over which that render fades into window 0
    next: int = 0
    tokens: list = field(default_factory=list)

    @property
    def window(self) -> Window:
        return self.plan[self.next]


class VideoToAudioPipeline(DiffusionPipeline):
    _optional_components = ["text_encoder", "tokenizer", "projection_model", "language_model"]

    def __init__(
        self,
        extractors: VisualExtractors,
        mapper,
        vae,
        text_encoder_2,
        tokenizer_2,
        unet,
        scheduler,
        vocoder,
        text_encoder=None,
        tokenizer=None,
        projection_model=None,
        language_model=None,
    ):
        super().__init__()
        self.register_modules(
            extractors=extractors,
            mapper=mapper,
            vae=vae,
            text_encoder_2=text_encoder_2,
            tokenizer_2=tokenizer_2,
            unet=unet,
            scheduler=scheduler,
            vocoder=vocoder,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            projection_model=projection_model,
            language_model=language_model,
        )
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self._negatives: dict[tuple[str, str], torch.Tensor] = {}
        gpt2_width = self.unet.config.cross_attention_dim[0][1]
        if mapper.config.audio_token_dim != gpt2_width:
            raise ValueError(
                f"the mapper predicts {mapper.config.audio_token_dim}-wide tokens but this AudioLDM-2's "
                f"GPT-2 stream is {gpt2_width} wide"
            )
        if self.sample_rate != self.clip.sample_rate:
            raise ValueError(f"AudioLDM-2 renders {self.sample_rate} Hz, the preset expects {self.clip.sample_rate} Hz")

    @classmethod
    def from_parts(cls, extractors: VisualExtractors, mapper, audioldm2) -> "VideoToAudioPipeline":
        """Assemble from extractors, a mapper and an ``AudioLDM2Pipeline`` (its components are reused)."""
        names = ("vae", "text_encoder_2", "tokenizer_2", "unet", "scheduler", "vocoder", *cls._optional_components)
        parts = {name: getattr(audioldm2, name) for name in names}
        pipe = cls(extractors=extractors, mapper=mapper.eval(), **parts)
        pipe.set_progress_bar_config(**getattr(audioldm2, "_progress_bar_config", {}))
        return pipe

    # ------------------------------------------------------------------ geometry

    @property
    def clip(self):
        """The clip window the extractors and the mapper were built for (``ClipConfig``)."""
        return self.extractors.preset.clip

    @property
    def sample_rate(self) -> int:
        return int(self.vocoder.config.sampling_rate)

    @property
    def frame_samples(self) -> int:
        """Audio samples per latent frame: VAE time factor x vocoder hop (AudioLDM-2: 4 x 160)."""
        return self.vae_scale_factor * int(np.prod(self.vocoder.config.upsample_rates))

    @property
    def frame_multiple(self) -> int:
        """Latent lengths in multiples of this need no resize in the UNet (it halves time once per
        level after the first): 8 for AudioLDM-2, 2 for the tiny test UNet."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def window_frames(self) -> int:
        """Latent frames of one clip window: 10 s -> 250, rounded up to the UNet's multiple
        (AudioLDM-2: 256 = 10.24 s, its native length)."""
        return round_up(math.ceil(self.clip.seconds * self.sample_rate / self.frame_samples), self.frame_multiple)

    def seconds_to_frames(self, seconds: float) -> int:
        return round(seconds * self.sample_rate / self.frame_samples)

    # ------------------------------------------------------------------ stages

    @torch.inference_mode()
    def visual_features(self, video: str | os.PathLike, start: float) -> tuple[torch.Tensor, torch.Tensor]:
        """CAVP (1, T, Dc) and TimeChat (1, W*Q, Dt) features of the clip window of ``video`` at ``start`` s."""
        clip = read_clip(video, self.clip, start=start, with_audio=False)
        visual = self.extractors.encode_video(torch.from_numpy(clip.frames)[None])  # frames (1, T, H, W, 3)
        return visual["cavp"], visual["timechat"]

    @torch.inference_mode()
    def audio_tokens(self, windows: Sequence[tuple[str | os.PathLike, float]]) -> torch.Tensor:
        """The mapper's (B, N, D) AudioMAE tokens for clip windows given as (video, start seconds)."""
        return self._map([self.visual_features(video, start) for video, start in windows])

    @torch.inference_mode()
    def _map(self, features: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """One batched mapper call over windows' (cavp, timechat) features -> (B, N, D)."""
        device, dtype = self.mapper.device, self.mapper.dtype
        cavp = torch.cat([c for c, _ in features]).to(device, dtype)  # (B, T, Dc)
        timechat = torch.cat([t for _, t in features]).to(device, dtype)  # (B, W*Q, Dt)
        return self.mapper.generate(cavp, timechat)

    def negative_tokens(self, sampling: SamplingConfig) -> torch.Tensor:
        """The negative GPT-2-stream condition (N, D), computed once per prompt and mode."""
        key = (sampling.negative_prompt, sampling.negative_mode)
        if key not in self._negatives:
            if sampling.negative_mode == "zeros":
                width = self.mapper.config.audio_token_dim
                tokens = torch.zeros(self.mapper.config.num_audio_tokens, width)
            else:  # AudioLDM-2's own GPT-2 on the negative text, not the mapper
                tokens = text_generated_embeds(self, [sampling.negative_prompt], self.mapper.config.num_audio_tokens)[0]
            self._negatives[key] = tokens
        return self._negatives[key]

    @torch.no_grad()
    def conditions(self, tokens: torch.Tensor, labels: list[str], sampling: SamplingConfig) -> Conditions:
        """Mapper tokens (B, N, D) + labels -> the UNet's two streams, negatives first when guided."""
        batch, device, dtype = len(labels), self.unet.device, self.unet.dtype
        texts = list(labels) + ([sampling.negative_prompt] if sampling.guided else [])
        t5, mask = encode_labels(self, texts)  # (B [+1], L, t5_width): padded together, masked
        generated = tokens.to(device, dtype)
        text, text_mask = t5[:batch], mask[:batch]
        if sampling.guided:
            negative = self.negative_tokens(sampling).to(device, dtype)[None].expand(batch, -1, -1)
            generated = torch.cat([negative, generated])
            text = torch.cat([t5[batch:].expand(batch, -1, -1), text])
            text_mask = torch.cat([mask[batch:].expand(batch, -1), text_mask])
        return Conditions(generated, text.to(device, dtype), text_mask.to(device))

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Latents (B, C, T, F) -> waveforms (B, T * frame_samples) float32, one item at a time
        (the VAE decoder's activations are the largest tensors of the whole pipeline)."""
        length = latents.shape[2] * self.frame_samples
        out = np.zeros((latents.shape[0], length), np.float32)
        for i, latent in enumerate(latents):
            mel = self.vae.decode(latent[None] / self.vae.config.scaling_factor).sample  # (1, 1, T*4, mels)
            audio = self.vocoder(mel.squeeze(1)).float().cpu().numpy()[0]  # (~T * frame_samples,)
            out[i, : min(length, len(audio))] = audio[:length]
        return out

    # ------------------------------------------------------------------ rendering

    def stream(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig | str = "paper",
        long_form: LongFormConfig = LongFormConfig(),
        seed: int = 0,
        keep_reference: bool = False,
        batch_size: int = 4,
    ) -> Iterator[AudioChunk | ClipDone | ClipFailed]:
        """Render ``requests``, yielding each one's audio in order as it becomes final.

        Up to ``batch_size`` videos are in flight; memory stays at one window per video in
        flight, whatever the videos' lengths. Unreadable inputs give ``ClipFailed`` and the rest
        goes on. ``keep_reference``: the returned audio starts with the reference region.
        """
        sampling = sampling_config(sampling) if isinstance(sampling, str) else sampling
        queue, active = list(enumerate(requests)), []
        clips_bar = tqdm(
            total=len(requests), desc="clips", unit="clip",
            disable=len(requests) < 2 or self._progress_config().get("disable", False),
        )  # fmt: skip
        with clips_bar:
            while queue or active:
                while queue and len(active) < batch_size:
                    index, request = queue.pop(0)
                    try:
                        active.append(self._start(index, request, long_form, seed, keep_reference))
                    except MediaReadError as error:
                        clips_bar.update()
                        yield ClipFailed(index, error)
                events, active = self._advance(active, sampling, long_form)
                for event in events:
                    if isinstance(event, (ClipDone, ClipFailed)):
                        clips_bar.update()
                    yield event

    @torch.no_grad()
    def __call__(
        self,
        video: str | os.PathLike | Sequence[str | os.PathLike],
        label: str | Sequence[str] | None = None,
        *,
        preset: str | SamplingConfig = "paper",
        scheduler: str | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        negative_prompt: str | None = None,
        negative_mode: str | None = None,
        eta: float | None = None,
        seed: int = 0,
        mode: str | None = None,
        overlap_seconds: float | None = None,
        reference_audio: str | os.PathLike | np.ndarray | None = None,
        keep_reference: bool = False,
        start: float = 0.0,
        duration: float | None = None,
        batch_size: int = 4,
    ) -> GeneratedAudio | list[GeneratedAudio | MediaReadError]:
        """Soundtrack(s) for ``video`` (a path, or a list of paths rendered as one batch).

        Paper decoding by default (``preset="paper"``: DDIM 100 steps, CFG 3.5, negative prompt
        "low quality, average quality" with AudioLDM-2's own negative GPT-2 condition); ``"fast"``
        is DPM-Solver++ at 25 steps; the other keywords override single settings. ``label`` is
        the Flan-T5 prompt ("" without one). Long videos are rendered in windows joined by
        ``mode`` ("inpaint" or "crossfade") over ``overlap_seconds``. ``reference_audio`` is
        continued by the soundtrack. A single video raises ``VideoReadError`` if it cannot be
        read; in a list, such a video comes back as its error and the others are rendered.
        """
        sampling = sampling_config(
            preset, scheduler=scheduler, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            negative_prompt=negative_prompt, negative_mode=negative_mode, eta=eta,
        )  # fmt: skip
        long_form = LongFormConfig(
            **{k: v for k, v in {"mode": mode, "overlap_seconds": overlap_seconds}.items() if v is not None}
        )
        single = isinstance(video, (str, os.PathLike))
        videos = [video] if single else list(video)
        labels = [label] * len(videos) if label is None or isinstance(label, str) else list(label)
        if len(labels) != len(videos):
            raise ValueError(f"got {len(videos)} videos but {len(labels)} labels")
        requests = [
            GenerationRequest(v, lab or "", start, duration, reference_audio) for v, lab in zip(videos, labels)
        ]
        chunks: dict[int, list[np.ndarray]] = {i: [] for i in range(len(requests))}
        results: list = [None] * len(requests)
        for event in self.stream(requests, sampling, long_form, seed, keep_reference, batch_size):
            if isinstance(event, AudioChunk):
                chunks[event.index].append(event.samples)
            elif isinstance(event, ClipDone):
                event.result.audio = np.concatenate(chunks.pop(event.index)).astype(np.float32)
                results[event.index] = event.result
            else:
                if single:
                    raise event.error
                chunks.pop(event.index, None)
                results[event.index] = event.error
        return results[0] if single else results

    # ------------------------------------------------------------------ internals

    def _progress_config(self) -> dict:
        return getattr(self, "_progress_bar_config", {})

    def _start(
        self, index: int, request: GenerationRequest, long_form: LongFormConfig, seed: int, keep_reference: bool
    ) -> _Track:
        """Plan one request's windows (reads the video's duration and the reference)."""
        video = Path(request.video)
        available = probe_duration(video) - request.start
        if available <= 0:
            raise VideoReadError(video, f"start {request.start:g} s is at or past the end of the video")
        duration = available if request.duration is None else min(request.duration, available)
        num_samples = round(duration * self.sample_rate)
        num_frames = math.ceil(num_samples / self.frame_samples)
        window = self.window_frames
        overlap = min(self.seconds_to_frames(long_form.overlap_seconds), window - self.frame_multiple)
        reference = None
        if request.reference_audio is not None:
            waveform = request.reference_audio
            if not isinstance(waveform, np.ndarray):
                waveform = read_audio_file(waveform, self.sample_rate)
            frames = min(len(waveform) // self.frame_samples, self.seconds_to_frames(long_form.max_reference_seconds))
            frames -= frames % self.frame_multiple
            if frames <= 0:
                source = request.reference_audio
                source = "reference audio" if isinstance(source, np.ndarray) else source
                shortest = self.frame_multiple * self.frame_samples / self.sample_rate
                raise AudioReadError(source, f"too short to continue (at least {shortest:g} s needed)")
            reference = encode_reference(self.vae, self.vocoder.config, waveform, frames, self.frame_samples)
        reference_frames = 0 if reference is None else reference.shape[2]
        plan = plan_windows(num_frames, window, overlap, self.frame_multiple, reference_frames)
        begin = -reference_frames * self.frame_samples if keep_reference else 0
        return _Track(
            index=index,
            request=request,
            plan=plan,
            stitcher=Stitcher(begin, num_samples),
            generator=torch.Generator("cpu").manual_seed(seed),
            begin=begin,
            carry=reference,
            reference=None if reference is None else self.decode_latents(reference)[0],
            reference_fade=min(round(long_form.reference_fade_seconds * self.sample_rate), reference_frames * self.frame_samples),
        )

    def _advance(
        self, tracks: list[_Track], sampling: SamplingConfig, long_form: LongFormConfig
    ) -> tuple[list, list[_Track]]:
        """Render the next window of every track; return the events and the tracks still going."""
        events, ready, features = [], [], []
        for track in tracks:  # decoding and extraction per video: a bad file fails alone
            start = track.request.start + track.window.video_start * self.frame_samples / self.sample_rate
            try:
                features.append(self.visual_features(track.request.video, start))
                ready.append(track)
            except MediaReadError as error:
                events.append(ClipFailed(track.index, error))
        tokens = self._map(features) if ready else None  # (B, N, D): one mapper batch for all videos
        groups: dict[int, list[int]] = {}
        for i, track in enumerate(ready):
            groups.setdefault(track.window.length, []).append(i)
        for members in groups.values():
            group = [ready[i] for i in members]
            group_tokens = tokens[members]  # (B, N, D)
            latents = self._sample(group, group_tokens, sampling, long_form)
            audio = self.decode_latents(latents)  # (B, samples)
            for track, latent, wave, window_tokens in zip(group, latents, audio, group_tokens):
                events.extend(self._finish_window(track, latent, wave, window_tokens))
        still = [t for t in ready if t.next < len(t.plan)]
        return events, still

    def _sample(
        self, group: list[_Track], tokens: torch.Tensor, sampling: SamplingConfig, long_form: LongFormConfig
    ) -> torch.Tensor:
        """One UNet batch: the current window of every track in ``group`` (all the same length)."""
        device, dtype = self.unet.device, self.unet.dtype
        length = group[0].window.length
        mel_bins = int(self.vocoder.config.model_in_dim)  # as AudioLDM2Pipeline.prepare_latents
        shape = (1, self.unet.config.in_channels, length, mel_bins // self.vae_scale_factor)  # (1, C, T, F)
        noise = torch.cat([randn_tensor(shape, generator=t.generator, device=device, dtype=dtype) for t in group])
        known = mask = None
        # frames to keep: the overlap with the previous window (inpaint mode) or the reference (always)
        fixed = [t.window.known if t.carry is not None and (long_form.mode == "inpaint" or t.next == 0) else 0
                 for t in group]  # fmt: skip
        if any(fixed):
            known = torch.zeros_like(noise)  # (B, C, T, F)
            mask = torch.zeros(len(group), 1, length, 1, dtype=torch.bool, device=device)
            for i, (track, frames) in enumerate(zip(group, fixed)):
                if frames:
                    known[i, :, :frames] = track.carry[0, :, -frames:].to(device, dtype)
                    mask[i, :, :frames] = True
        conditions = self.conditions(tokens, [t.request.label for t in group], sampling)
        return denoise(
            self.unet,
            make_scheduler(self.scheduler, sampling),
            noise,
            conditions,
            sampling.num_inference_steps,
            sampling.guidance_scale,
            known=known,
            known_mask=mask,
            generator=[t.generator for t in group],
            eta=sampling.eta,
            progress_bar=self.progress_bar(total=sampling.num_inference_steps),
        )

    def _finish_window(self, track: _Track, latent: torch.Tensor, wave: np.ndarray, tokens: torch.Tensor) -> list:
        """Stitch a decoded window into its track; keep what the next window must continue."""
        window = track.window
        track.tokens.append(tokens.float().cpu().numpy())
        track.next += 1
        following = track.plan[track.next] if track.next < len(track.plan) else None
        final_until = following.start * self.frame_samples if following else track.stitcher.end
        track.carry = latent[None, :, following.start - window.start :].clone() if following else None
        fade = None
        if track.reference is not None:  # window 0: the reference region is the reference's own render
            at = window.start * self.frame_samples
            track.stitcher.add(track.reference, at, at)
            track.reference, fade = None, track.reference_fade
        samples = track.stitcher.add(wave, window.start * self.frame_samples, final_until, fade)
        events = [AudioChunk(track.index, samples)] if len(samples) else []
        if following is None:
            rest = track.stitcher.finish()
            if len(rest):
                events.append(AudioChunk(track.index, rest))
            events.append(ClipDone(track.index, self._result(track)))
        return events

    def _result(self, track: _Track) -> GeneratedAudio:
        fs, plan, end = self.frame_samples, track.plan, track.stitcher.end
        joins = [(max(w.start * fs, track.begin) - track.begin, min(prev.end * fs, end) - track.begin)
                 for prev, w in zip(plan, plan[1:])]  # fmt: skip
        reference = -track.begin
        if reference:  # the reference's render fades into the generation just before the video
            joins.insert(0, (reference - track.reference_fade, reference))
        return GeneratedAudio(
            audio=None,
            sample_rate=self.sample_rate,
            video=str(track.request.video),
            label=track.request.label,
            audio_tokens=np.stack(track.tokens),
            joins=joins,
            reference_samples=reference,
        )


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}  # fmt: skip
    if dtype not in names:
        raise ValueError(f"dtype must be one of {', '.join(names)}, got {dtype!r}")
    return names[dtype]


def load_pipeline(
    mapper: str | os.PathLike | None = None,
    audioldm2: str | None = None,
    extractors: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    progress: bool = False,
) -> VideoToAudioPipeline:
    """Assemble a pipeline, offline unless a hub id is named.

    ``mapper``: a mapper's ``save_pretrained`` folder (default: the last one trained) or a saved
    ``VideoToAudioPipeline`` folder. ``audioldm2`` / ``extractors``: override what the mapper's
    config names ("tiny", a local diffusers folder, or a hub id such as cvssp/audioldm2).
    ``dtype`` (torch dtype or "fp16" / "bf16" / "fp32") applies to the mapper and AudioLDM-2 —
    half precision is meant for GPUs; the frozen extractors stay in float32. ``progress``: show
    progress bars over clips and sampling steps.
    """
    dtype = _dtype(dtype)
    mapper_dir = Path(mapper) if mapper is not None else last_mapper()
    if (mapper_dir / "model_index.json").is_file():
        pipe = VideoToAudioPipeline.from_pretrained(mapper_dir, local_files_only=True)
        pipe.to(device)
        for name in ("mapper", "vae", "text_encoder_2", "unet", "vocoder", *VideoToAudioPipeline._optional_components):
            module = getattr(pipe, name, None)
            if isinstance(module, torch.nn.Module) and module.dtype != dtype:
                module.to(dtype=dtype)
        pipe.set_progress_bar_config(disable=not progress)
        return pipe
    model = load_mapper(mapper_dir).to(device=device, dtype=dtype)
    preset = get_preset(extractors or model.config.extractor_preset)
    if extractors is None and preset.fingerprint() != model.config.extractor_fingerprint:
        raise ValueError(
            f"{mapper_dir}: trained on features of a different '{preset.name}' preset config "
            f"(fingerprint {model.config.extractor_fingerprint} vs {preset.fingerprint()})"
        )
    frozen = VisualExtractors.from_preset(preset).to(device)
    decoder = load_audioldm2(audioldm2 or model.config.audioldm2, device=device, dtype=dtype)
    pipe = VideoToAudioPipeline.from_parts(frozen, model, decoder)
    pipe.set_progress_bar_config(disable=not progress)
    return pipe
