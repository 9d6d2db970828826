"""Video -> frozen extractors -> mapper -> AudioLDM-2 -> waveform, as one diffusers pipeline.

``VideoToAudioPipeline`` is a ``DiffusionPipeline``: the frozen visual extractors, the trained
mapper and AudioLDM-2's own components (UNet, VAE, vocoder, Flan-T5, and optionally the text
stack that computes the negative GPT-2 condition) are registered components, so
``save_pretrained`` / ``from_pretrained`` round-trip it and ``.to(device)`` moves it.

How a video is rendered (see ``mapper.generation.long_form`` for the windows,
``mapper.generation.sampling`` for the sampling presets, ``mapper.decoders.audioldm2`` for the
decoder's conditions, sampling loop and latents):

1. The video is cut into overlapping clip windows (one window for a clip of <= 10 s).
2. Per window: decode its frames, run the extractors and the mapper -> 8 AudioMAE tokens.
3. Per window: AudioLDM-2 samples a latent with the tokens as the GPT-2 stream and the label as
   the Flan-T5 prompt, classifier-free guidance against the negative pair; in the default
   ``inpaint`` mode the overlap with the previous window is a known region, so the window
   continues the previous one. A reference sound is the known region of the first window.
   (``VideoToAudioPipeline.sample_latents`` is this step, the one sampling path;
   ``VideoToAudioPipeline.render_tokens`` runs it on given tokens, one clip window each.)
4. Per window: VAE + vocoder; the waveforms are cross-faded over the overlaps and streamed out.

Timing control (``sync_guidance`` > 0): per window, the video envelope predictor trained beside the mapper
(``envelope_predictor``) predicts where the sound is loud from the same features, and the sampler is
guided towards it through a latent envelope head of the decoder (``envelope_head``;
``mapper.decoders.audioldm2.envelope_guidance``). Both are attributes set by ``load_pipeline`` (None
otherwise), as are the mapper folder's generation defaults (``generation_defaults``), which give
``sync_guidance`` when the caller does not.

Several videos are rendered together: their current windows share UNet batches (grouped by
latent length), each video with its own random generator, so a video's audio does not depend on
what it was batched with. A video that cannot be read fails alone (``ClipFailed``).

``mapper.generation.loading.load_pipeline`` assembles the parts a trained mapper was made for.

Length: one class whose rendering loop (start, advance, sample, finish a window) reads top to
bottom; its parts (outputs, the checked request, loading, windows, sampling, the decoder) live in
their own modules.
"""
from __future__ import annotations

import inspect
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from extractors.frames import shared_frame_size
from extractors.motion import MOTION_FEATURE
from extractors.video import AudioReadError, MediaReadError, probe_duration, read_audio_file, read_clip, seconds_to_render
from mapper.decoders.audioldm2 import (
    Conditions,
    EnvelopeGuidanceConfig,
    LatentGeometry,
    decode_latents,
    denoise,
    encode_reference,
    gpt2_stream_width,
    guidance_conditions,
    make_envelope_guidance,
    negative_tokens,
)
from mapper.generation.arguments import check_batch_size, check_seed
from mapper.generation.call_plan import CallPlan, check_against_models
from mapper.generation.extractors_component import VisualExtractors
from mapper.generation.long_form import LongFormConfig, Stitcher, Window, plan_windows
from mapper.generation.outputs import AudioChunk, ClipDone, ClipFailed, GeneratedAudio, GenerationRequest
from mapper.generation.sampling import SamplingConfig, check_sampling, make_scheduler, sampling_config
from mapper.generation.window_envelope import window_envelope
from mapper.generation.window_tokens import window_token_count
from mapper.envelope_predictor import FOLDER as PREDICTOR_FOLDER
from mapper.generation_defaults import GenerationDefaults, check_sync_guidance, write_generation_defaults

TEXT_COMPONENTS = ("tokenizer", "text_encoder", "projection_model", "language_model")  # negative_mode="audioldm2"
HEAD_FOLDER = "envelope_head"  # a saved pipeline's latent envelope head (timing control)


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
    envelope: dict = field(default_factory=dict)  # timeline latent frame -> the target it was guided towards
    continues: bool = False  # several windows or a reference: sampled with the continuation scheduler

    def sampling(self, sampling: SamplingConfig) -> SamplingConfig:
        return sampling.for_continuation() if self.continues else sampling

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
        self._negatives: dict[tuple[str, str], torch.Tensor] = {}
        # timing control (load_pipeline sets them from the mapper's folder and the decoder): see the module doc
        self.envelope_predictor = None  # mapper.envelope_predictor.VideoEnvelopePredictor
        self.envelope_head = None  # mapper.decoders.audioldm2.EnvelopeHead
        self.generation_defaults = GenerationDefaults()
        # AudioLDM-2's latent frames <-> samples, read once from its components' configs
        self.geometry = LatentGeometry.of(vae, vocoder, unet)
        if mapper.config.audio_token_dim != gpt2_stream_width(self):
            raise ValueError(
                f"the mapper predicts {mapper.config.audio_token_dim}-wide tokens but this AudioLDM-2's "
                f"GPT-2 stream is {gpt2_stream_width(self)} wide"
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

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """diffusers' ``save_pretrained``, plus timing control: the envelope predictor and the generation
        defaults beside the mapper (``mapper/envelope_predictor/``, ``mapper/generation_config.json``, as in a
        trained mapper's folder) and the latent envelope head (``envelope_head/``), which ``load_pipeline``
        reads back."""
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        if self.envelope_predictor is not None:
            self.envelope_predictor.save_pretrained(folder / "mapper" / PREDICTOR_FOLDER)
        write_generation_defaults(folder / "mapper", self.generation_defaults)
        if self.envelope_head is not None:
            self.envelope_head.save_pretrained(folder / HEAD_FOLDER)

    # ------------------------------------------------------------------ geometry

    @property
    def clip(self):
        """The clip window the extractors and the mapper were built for (``ClipConfig``)."""
        return self.extractors.preset.clip

    @property
    def sample_rate(self) -> int:
        return self.geometry.sample_rate

    @property
    def frame_samples(self) -> int:
        """Audio samples per latent frame (AudioLDM-2: 640)."""
        return self.geometry.frame_samples

    @property
    def frame_multiple(self) -> int:
        return self.geometry.frame_multiple

    @property
    def window_frames(self) -> int:
        """Latent frames of one clip window (AudioLDM-2, 10 s: 256 = 10.24 s, its native length)."""
        return self.geometry.window_frames(self.clip.seconds)

    def seconds_to_frames(self, seconds: float) -> int:
        return self.geometry.seconds_to_frames(seconds)

    def window_token_count(self, video_seconds: float) -> int:
        """How many of the mapper's tokens a window conditions on when its clip holds ``video_seconds`` of
        video (``mapper.generation.window_tokens``): all of them for a whole clip window."""
        return window_token_count(self.extractors.preset.audiomae, self.mapper.config.num_audio_tokens,
                                  min(video_seconds, self.clip.seconds))

    # ------------------------------------------------------------------ stages

    @torch.inference_mode()
    def visual_features(self, video: str | os.PathLike, start: float, motion: bool | None = None) -> dict[str, torch.Tensor]:
        """{stream name: (1, tokens, dim)} of the clip window of ``video`` at ``start`` s, and with ``motion`` its
        motion stream (``motion``: (1, E, C), ``extractors.motion``); None: when the envelope predictor reads it."""
        if motion is None:
            motion = self.envelope_predictor is not None and self.envelope_predictor.reads_motion
        size = shared_frame_size(self.extractors.preset)  # resized as decoded: never 40 full-size frames
        clip = read_clip(video, self.clip, start=start, with_audio=False, size=size, motion=motion)
        features = self.extractors.encode_video(torch.from_numpy(clip.frames)[None])  # frames (1, T, H, W, 3)
        if motion:
            features[MOTION_FEATURE] = torch.from_numpy(clip.motion)[None]  # (1, E, C)
        return features

    @torch.inference_mode()
    def audio_tokens(self, windows: Sequence[tuple[str | os.PathLike, float]]) -> torch.Tensor:
        """The mapper's (B, N, D) AudioMAE tokens for clip windows given as (video, start seconds)."""
        return self.map_features([self.visual_features(video, start, motion=False) for video, start in windows])

    @torch.inference_mode()
    def map_features(self, features: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """One batched mapper call over windows' named streams -> (B, N, D)."""
        device, dtype = self.mapper.device, self.mapper.dtype
        batch = {name: torch.cat([f[name] for f in features]).to(device, dtype)  # (B, tokens, dim)
                 for name in self.mapper.input_streams}
        return self.mapper.generate(batch)

    @torch.inference_mode()
    def predict_envelopes(self, features: list[dict[str, torch.Tensor]]) -> np.ndarray:
        """Windows' named streams -> (B, E) predicted envelopes of their clips (one predictor batch)."""
        predictor = self.envelope_predictor
        device, dtype = next(predictor.parameters()).device, next(predictor.parameters()).dtype
        batch = {name: torch.cat([f[name] for f in features]).to(device, dtype) for name in predictor.input_streams}
        return predictor(batch).float().cpu().numpy()

    def resolve_sync_guidance(self, sync_guidance: float | None) -> float:
        """The scale a call uses: ``sync_guidance``, or the mapper folder's default when None. A scale > 0
        needs the envelope predictor and the decoder's latent head: asked for explicitly without them it
        is an error (one line), as a folder default it falls back to 0 (off) with a warning."""
        if sync_guidance is not None:
            scale = check_sync_guidance(sync_guidance)
            missing = self.missing_for_sync_guidance()
            if scale and missing:
                raise ValueError(f"sync_guidance={scale:g} needs {missing}")
            return scale
        scale = self.generation_defaults.sync_guidance
        missing = self.missing_for_sync_guidance()
        if scale and missing:
            warnings.warn(f"the mapper's default sync_guidance={scale:g} is off: it needs {missing}", stacklevel=3)
            return 0.0
        return scale

    def missing_for_sync_guidance(self) -> str | None:
        """What timing control lacks in this pipeline (None: it can run)."""
        if self.envelope_predictor is None:
            return "a video envelope predictor (a mapper folder's envelope_predictor/, trained beside the mapper)"
        if self.envelope_head is None:
            return ("a latent envelope head for this decoder (load_pipeline(envelope_head=FOLDER); "
                    "python -m recipes.train_envelope_head trains one)")
        return None

    def negative_tokens(self, sampling: SamplingConfig) -> torch.Tensor:
        """The negative GPT-2-stream condition (N, D), computed once per prompt and mode."""
        key = (sampling.negative_prompt, sampling.negative_mode)
        if key not in self._negatives:
            self._negatives[key] = negative_tokens(
                self, sampling.negative_prompt, sampling.negative_mode, self.mapper.config.num_audio_tokens
            )
        return self._negatives[key]

    def conditions(self, tokens: torch.Tensor, labels: list[str], sampling: SamplingConfig) -> Conditions:
        """Mapper tokens (B, N, D) + labels -> the UNet's two streams, negatives first when guided (the
        negative stream cut to the same N leading tokens, as a short window's tokens are)."""
        negative = self.negative_tokens(sampling)[: tokens.shape[1]] if sampling.guided else None
        return guidance_conditions(self, tokens, labels, sampling.negative_prompt, negative)

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Latents (B, C, T, F) -> waveforms (B, T * frame_samples) float32."""
        return decode_latents(self.vae, self.vocoder, latents, self.frame_samples)

    # ------------------------------------------------------------------ rendering

    def check_settings(
        self, sampling: SamplingConfig, long_form: LongFormConfig, seed: int = 0, batch_size: int = 4
    ) -> None:
        """What can only be checked against this pipeline's models, before any work: the scheduler
        and the steps against its noise schedule, the overlap against its clip window, the text
        models the negative mode needs. ValueError of one line naming the argument."""
        check_against_models(sampling, long_form, self.scheduler, self.clip.seconds)
        check_seed(seed)
        check_batch_size(batch_size)
        missing = [name for name in TEXT_COMPONENTS if getattr(self, name, None) is None]
        if sampling.guided and sampling.negative_mode == "audioldm2" and missing:
            raise ValueError(
                f"negative_mode 'audioldm2' needs AudioLDM-2's {', '.join(missing)}, which this pipeline lacks; "
                "use negative_mode='zeros'"
            )

    def stream(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingConfig | str = "paper",
        long_form: LongFormConfig = LongFormConfig(),
        seed: int = 0,
        keep_reference: bool = False,
        batch_size: int = 4,
        sync_guidance: float | None = None,
    ) -> Iterator[AudioChunk | ClipDone | ClipFailed]:
        """Render ``requests``, yielding each one's audio in order as it becomes final.

        Up to ``batch_size`` videos are in flight; memory stays at one window per video in
        flight, whatever the videos' lengths. Unreadable inputs give ``ClipFailed`` and the rest
        goes on. ``keep_reference``: the returned audio starts with the reference region. ``sync_guidance``:
        timing control's scale (None: the mapper's default; 0: off). The settings are checked when this is
        called (ValueError), before the first video is read.
        """
        sampling = sampling_config(sampling) if isinstance(sampling, str) else sampling
        self.check_settings(sampling, long_form, seed, batch_size)  # batch_size < 1 would never start a video
        scale = self.resolve_sync_guidance(sync_guidance)
        return self._render(list(requests), sampling, long_form, seed, keep_reference, batch_size, scale)

    def _render(self, requests, sampling, long_form, seed, keep_reference, batch_size, sync_guidance) -> Iterator:
        """``stream``'s loop: keep up to ``batch_size`` videos in flight, one window of each per step."""
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
                events, active = self._advance(active, sampling, long_form, sync_guidance)
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
        start: float | Sequence[float] = 0.0,
        duration: float | None = None,
        max_seconds: float | None = None,
        batch_size: int = 4,
        sync_guidance: float | None = None,
    ) -> GeneratedAudio | list[GeneratedAudio | MediaReadError]:
        """Soundtrack(s) for ``video`` (a path, or a list of paths rendered as one batch).

        Paper decoding by default (``preset="paper"``: DDIM 100 steps, CFG 3.5, AudioLDM-2's negative
        prompt ``DEFAULT_NEGATIVE_PROMPT`` with its own negative GPT-2 condition); ``"fast"``
        is Euler at 25 steps (CFG 5), ``"turbo"`` Euler ancestral at 4; the other keywords override single settings. ``label`` is
        the Flan-T5 prompt ("" without one); ``label`` and ``start`` (seconds into the video) are one
        for all videos or a list of one per video. Long videos are rendered in windows joined by
        ``mode`` ("inpaint" or "crossfade") over ``overlap_seconds``; a video shorter than a window is one window
        of its own length, conditioned on the mapper tokens inside it (``mapper.generation.window_tokens``). ``reference_audio`` is
        continued by the soundtrack. A video that would render more than ``max_seconds`` (default
        ``extractors.media_limits.MAX_SECONDS``) is refused before its first window, as one whose
        frames are too small or too large. ``sync_guidance``: timing control, how hard the sound is pulled
        onto the loudness envelope predicted from the video (0: off, the paper's decoding bit for bit;
        None: the mapper folder's default, ``generation_config.json``). Every argument is checked first
        (ValueError naming it). A
        single video raises ``VideoReadError`` if it cannot be read; in a list, such a video
        comes back as its error and the others are rendered.
        """
        arguments = {name: value for name, value in locals().items() if name != "self"}  # locals(): just the arguments here
        call = CallPlan.of(**arguments)  # every argument checked before any video is read
        chunks: dict[int, list[np.ndarray]] = {i: [] for i in range(len(call.requests))}
        results: list = [None] * len(call.requests)
        events = self.stream(call.requests, call.sampling, call.long_form, call.seed, call.keep_reference,
                             call.batch_size, call.sync_guidance)  # fmt: skip
        for event in events:
            if isinstance(event, AudioChunk):
                chunks[event.index].append(event.samples)
            elif isinstance(event, ClipDone):
                event.result.audio = np.concatenate(chunks.pop(event.index)).astype(np.float32)
                results[event.index] = event.result
            else:
                if call.single:
                    raise event.error
                chunks.pop(event.index, None)
                results[event.index] = event.error
        return results[0] if call.single else results

    @classmethod
    def check_call(cls, video, label=None, **kwargs) -> CallPlan:
        """Check ``__call__``'s arguments without any model (``mapper.generate`` and ``recipes.generate``
        do, before they load one): TypeError for an unknown keyword, ValueError of one line naming a bad
        value. Returns the checked request (what ``stream`` takes). What only a model can tell (the
        scheduler, the bounds of the steps and the overlap: ``mapper.generation.call_plan.check_against_models``)
        ``__call__`` checks next."""
        bound = inspect.signature(cls.__call__).bind(None, video, label, **kwargs)
        bound.apply_defaults()
        return CallPlan.of(**{name: value for name, value in bound.arguments.items() if name != "self"})

    # ------------------------------------------------------------------ internals

    def _progress_config(self) -> dict:
        return getattr(self, "_progress_bar_config", {})

    def _start(
        self, index: int, request: GenerationRequest, long_form: LongFormConfig, seed: int, keep_reference: bool
    ) -> _Track:
        """Plan one request's windows (reads the video's duration and the reference)."""
        video = Path(request.video)
        # the frame size (probe_duration checks it) and the seconds to render: before any frame is decoded
        duration = seconds_to_render(video, probe_duration(video), long_form.max_seconds, start=request.start,
                                     duration=request.duration)  # fmt: skip
        num_samples = max(1, round(duration * self.sample_rate))  # a sliver of a second is still one sample
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
            continues=reference is not None or len(plan) > 1,  # crossfade too: the two join modes differ only in the join
        )

    def _advance(
        self, tracks: list[_Track], sampling: SamplingConfig, long_form: LongFormConfig, sync_guidance: float = 0.0
    ) -> tuple[list, list[_Track]]:
        """Render the next window of every track; return the events and the tracks still going."""
        events, ready, features = [], [], []
        for track in tracks:  # decoding and extraction per video: a bad file fails alone
            start = track.request.start + track.window.video_start * self.frame_samples / self.sample_rate
            try:
                # the motion stream only when guidance will read it (one more decode of the window)
                features.append(self.visual_features(track.request.video, start, motion=None if sync_guidance else False))
                ready.append(track)
            except MediaReadError as error:
                events.append(ClipFailed(track.index, error))
        tokens = self.map_features(features) if ready else None  # (B, N, D): one mapper batch for all videos
        envelopes = self.predict_envelopes(features) if ready and sync_guidance else None  # (B, E)
        groups: dict[tuple[int, bool, int], list[int]] = {}  # one UNet batch per window length, sampler, tokens
        for i, track in enumerate(ready):
            video_seconds = (track.stitcher.end - track.window.video_start * self.frame_samples) / self.sample_rate
            groups.setdefault((track.window.length, track.continues, self.window_token_count(video_seconds)),
                              []).append(i)  # fmt: skip
        for (_, _, count), members in groups.items():
            group = [ready[i] for i in members]
            group_tokens = tokens[members]  # (B, N, D)
            targets = None if envelopes is None else np.stack([
                window_envelope(envelopes[i], self.envelope_predictor.config.frame_seconds, ready[i].window,
                                self.frame_samples / self.sample_rate) for i in members])  # (B, window frames)
            latents = self._sample(group, group_tokens[:, :count], group[0].sampling(sampling), long_form, targets,
                                   sync_guidance)  # fmt: skip
            audio = self.decode_latents(latents)  # (B, samples)
            for k, (track, latent, wave, window_tokens) in enumerate(zip(group, latents, audio, group_tokens)):
                if targets is not None:  # kept for the result (a later window's target wins on an overlap)
                    track.envelope.update((track.window.start + j, float(v)) for j, v in enumerate(targets[k])
                                          if np.isfinite(v))  # fmt: skip
                events.extend(self._finish_window(track, latent, wave, window_tokens))
        still = [t for t in ready if t.next < len(t.plan)]
        return events, still

    def _sample(
        self, group: list[_Track], tokens: torch.Tensor, sampling: SamplingConfig, long_form: LongFormConfig,
        envelopes: np.ndarray | None = None, sync_guidance: float = 0.0,
    ) -> torch.Tensor:
        """One UNet batch: the current window of every track in ``group`` (all the same length)."""
        device, dtype = self.unet.device, self.unet.dtype
        length = group[0].window.length
        known = mask = None
        # frames to keep: the overlap with the previous window (inpaint mode) or the reference (always)
        fixed = [t.window.known if t.carry is not None and (long_form.mode == "inpaint" or t.next == 0) else 0
                 for t in group]  # fmt: skip
        if any(fixed):
            known = torch.zeros(len(group), *self.geometry.latent_shape(length)[1:], device=device, dtype=dtype)
            mask = torch.zeros(len(group), 1, length, 1, dtype=torch.bool, device=device)  # (B, 1, T, 1)
            for i, (track, frames) in enumerate(zip(group, fixed)):
                if frames:
                    known[i, :, :frames] = track.carry[0, :, -frames:].to(device, dtype)
                    mask[i, :, :frames] = True
        labels = [t.request.label for t in group]
        return self.sample_latents(tokens, labels, sampling, [t.generator for t in group], length, known, mask,
                                   envelopes, sync_guidance)

    @torch.no_grad()
    def sample_latents(
        self,
        tokens: torch.Tensor,
        labels: list[str],
        sampling: SamplingConfig,
        generators: list[torch.Generator],
        frames: int,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        envelope: torch.Tensor | np.ndarray | None = None,
        sync_guidance: EnvelopeGuidanceConfig | float | None = None,
    ) -> torch.Tensor:
        """The one sampling path: mapper tokens (B, N, D) + labels -> latents (B, C, frames, F).

        Row i's noise is drawn from ``generators[i]`` (so a row sounds the same whatever it is batched
        with), the conditions are those of ``conditions`` (negatives first when guided), and AudioLDM-2's
        loop (``mapper.decoders.audioldm2.denoise``) runs ``sampling``'s scheduler; ``known``
        (B, C, frames, F) where ``known_mask`` (B, 1, frames, 1) is set is kept (inpainting).
        ``envelope`` (B, <= frames) target loudness envelope per latent frame (``extractors.envelope``;
        NaN: no target) steers the timing through ``self.envelope_head`` (an attribute, None unless set)
        with ``sync_guidance`` (an ``EnvelopeGuidanceConfig``, a bare scale, or None: the default; 0: off).
        """
        guidance = make_envelope_guidance(getattr(self, "envelope_head", None), envelope, sync_guidance,
                                          self.frame_samples, len(generators), frames)
        device, dtype = self.unet.device, self.unet.dtype
        shape = self.geometry.latent_shape(frames)  # (1, C, frames, F)
        noise = torch.cat([randn_tensor(shape, generator=g, device=device, dtype=dtype) for g in generators])
        return denoise(
            self.unet,
            make_scheduler(self.scheduler, sampling),
            noise,
            self.conditions(tokens, labels, sampling),
            sampling.num_inference_steps,
            sampling.guidance_scale,
            known=known,
            known_mask=known_mask,
            generator=generators,
            eta=sampling.eta,
            progress_bar=self.progress_bar(total=sampling.num_inference_steps),
            guidance=guidance,
        )

    @torch.no_grad()
    def render_tokens(
        self, tokens: torch.Tensor, labels: list[str], sampling: SamplingConfig | str = "paper", seed: int = 0,
        envelope: torch.Tensor | np.ndarray | None = None, sync_guidance: EnvelopeGuidanceConfig | float | None = None,
        seconds: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Mapper tokens (B, N, D) + labels -> audio (B, clip samples): one clip window each, no video.

        What the pipeline renders for a window, from given tokens (AudioMAE's of true audio, zeros,
        another clip's): the toy report and the tests render through it. Row i's noise comes from its
        own generator on the UNet's device seeded ``seed + i``, so rows differ only by their tokens and
        labels when the seeds are shared. ``envelope`` and ``sync_guidance``: timing control, as in
        ``sample_latents`` (the envelope's frames are the window's latent frames, ``window_frames`` at most).
        ``seconds``: each row's seconds of video (None: every row a whole ``window_frames`` window). A row is
        then rendered as the pipeline renders a video that long: the one window ``plan_windows`` gives it (a
        short video's: its own length, rounded up to the UNet's multiple), conditioned on the tokens inside the
        video (``window_token_count``), its target read by ``window_envelope`` (a window covering part of its
        clip gets that part re-standardised), its audio zero after its end.
        """
        sampling = sampling_config(sampling) if isinstance(sampling, str) else sampling
        check_sampling(sampling, self.scheduler)
        check_seed(seed)
        generators = [torch.Generator(self.unet.device).manual_seed(seed + i) for i in range(len(labels))]
        counts = [tokens.shape[1]] * len(labels)
        if seconds is None:
            samples, windows = [self.clip.num_samples] * len(labels), [Window(0, self.window_frames, 0, 0)] * len(labels)
        else:  # each row the one window the pipeline plans for a video of its length
            samples = [min(self.clip.num_samples, max(1, round(s * self.sample_rate))) for s in seconds]
            windows = [plan_windows(math.ceil(n / self.frame_samples), self.window_frames, 0, self.frame_multiple)[0]
                       for n in samples]
            counts = [self.window_token_count(n / self.sample_rate) for n in samples]
        latent_seconds = self.frame_samples / self.sample_rate
        audio = np.zeros((len(labels), self.clip.num_samples), np.float32)
        for length, count in sorted(set(zip((w.length for w in windows), counts))):  # a UNet batch per length, tokens
            rows = [i for i, (window, n) in enumerate(zip(windows, counts)) if (window.length, n) == (length, count)]
            targets = None
            if envelope is not None:
                targets = np.asarray(envelope, np.float32)[rows]  # (b, <= window frames)
                if seconds is not None:  # the part of its clip each window covers, as _advance reads it
                    targets = np.stack([window_envelope(t, latent_seconds, windows[i], latent_seconds)
                                        for i, t in zip(rows, targets)])
            latents = self.sample_latents(tokens[rows, :count], [labels[i] for i in rows], sampling,
                                          [generators[i] for i in rows], length, envelope=targets,
                                          sync_guidance=sync_guidance)
            for i, wave in zip(rows, self.decode_latents(latents)):
                audio[i, : samples[i]] = wave[: samples[i]]
        return audio

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
        envelope = None
        if track.envelope:  # per latent frame from the returned audio's first sample
            first, frames = track.begin // fs, math.ceil((end - track.begin) / fs)
            envelope = np.array([track.envelope.get(first + k, np.nan) for k in range(frames)], np.float32)
        return GeneratedAudio(
            audio=None,
            sample_rate=self.sample_rate,
            video=str(track.request.video),
            label=track.request.label,
            audio_tokens=np.stack(track.tokens),
            joins=joins,
            reference_samples=reference,
            envelope=envelope,
            envelope_frame_seconds=fs / self.sample_rate if envelope is not None else 0.0,
        )
