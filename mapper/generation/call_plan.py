"""A generation request, checked: ``VideoToAudioPipeline.__call__``'s arguments resolved into requests
and settings, every argument checked before any model is loaded or any video read.

One owner for the request the Python API, ``mapper.generate`` and the command line make: the API checks
through :meth:`CallPlan.of` (``VideoToAudioPipeline.check_call``), and ``recipes.generate`` hands its
options to the same ``check_call`` (naming its options in the errors, see ``ArgumentError.spelled``).
What only the models bound (the scheduler and the steps against the noise schedule, the overlap
against the clip window) is :func:`check_against_models`, which the pipeline runs with its own models
and the command line with AudioLDM-2's schedule and the mapper's clip window, before loading them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from diffusers import SchedulerMixin

from mapper.generation.arguments import (
    ArgumentError,
    check_batch_size,
    check_choice,
    check_duration,
    check_negative_needs_guidance,
    check_overlap,
    check_reference_audio,
    check_seed,
    check_start,
    shown,
)
from mapper.generation.long_form import LongFormConfig
from mapper.generation.outputs import GenerationRequest
from mapper.generation.sampling import SAMPLING_PRESETS, SamplingConfig, check_sampling, sampling_config
from mapper.generation_defaults import check_sync_guidance


@dataclass(frozen=True)
class CallPlan:
    """``__call__``'s arguments, checked and resolved (no model needed): what ``stream`` takes."""

    requests: list[GenerationRequest]
    sampling: SamplingConfig
    long_form: LongFormConfig
    seed: int
    keep_reference: bool
    batch_size: int
    single: bool  # one video given as a path (not a list): __call__ returns one result and raises its error
    sync_guidance: float | None = None  # timing control's scale; None: the mapper folder's default

    @classmethod
    def of(cls, video, label, *, preset, scheduler, num_inference_steps, guidance_scale, negative_prompt,
           negative_mode, eta, seed, mode, overlap_seconds, reference_audio, keep_reference, start, duration,
           max_seconds, batch_size, sync_guidance=None) -> "CallPlan":  # fmt: skip
        """Check ``__call__``'s arguments, in its keywords' names (ValueError of one line naming the first
        bad one); ``label`` and ``start`` are one for every video or a list of one per video."""
        single = isinstance(video, (str, os.PathLike))
        videos = [video] if single else list(video) if isinstance(video, (list, tuple)) else [None]
        if not all(isinstance(v, (str, os.PathLike)) for v in videos):
            raise ArgumentError("video", f" must be a path or a list of paths, got {shown(video)}")
        labels = [label] * len(videos) if label is None or isinstance(label, str) else label
        if not isinstance(labels, (list, tuple)) or not all(lab is None or isinstance(lab, str) for lab in labels):
            raise ArgumentError("label", " must be a string, None or a list of strings (one per video), "
                                         f"got {shown(label)}")  # fmt: skip
        if len(labels) != len(videos):
            raise ArgumentError("label", f": got {len(videos)} videos but {len(labels)} labels")
        if not isinstance(preset, SamplingConfig):
            check_choice("preset", preset, tuple(SAMPLING_PRESETS))
        sampling = sampling_config(
            preset, scheduler=scheduler, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            negative_prompt=negative_prompt, negative_mode=negative_mode, eta=eta,
        )  # fmt: skip
        check_negative_needs_guidance(
            sampling.guidance_scale, {"negative_prompt": negative_prompt, "negative_mode": negative_mode}
        )
        long_form = LongFormConfig(**{k: v for k, v in {"mode": mode, "overlap_seconds": overlap_seconds,
                                                         "max_seconds": max_seconds}.items() if v is not None})
        check_seed(seed)
        check_batch_size(batch_size)
        starts = list(start) if isinstance(start, (list, tuple)) else [start] * len(videos)
        if len(starts) != len(videos):
            raise ArgumentError("start", f": got {len(videos)} videos but {len(starts)} starts")
        for one in starts:
            check_start(one)
        if duration is not None:
            check_duration(duration)
        if not isinstance(keep_reference, bool):
            raise ArgumentError("keep_reference", f" must be True or False, got {shown(keep_reference)}")
        check_reference_audio(reference_audio)
        if sync_guidance is not None:
            check_sync_guidance(sync_guidance)
        requests = [GenerationRequest(v, lab or "", at, duration, reference_audio)
                    for v, lab, at in zip(videos, labels, starts)]  # fmt: skip
        return cls(requests, sampling, long_form, seed, keep_reference, batch_size, single, sync_guidance)


def check_against_models(
    sampling: SamplingConfig, long_form: LongFormConfig, schedule: SchedulerMixin, window_seconds: float
) -> None:
    """What only the models bound: the scheduler and the steps against the noise schedule
    (``schedule``: AudioLDM-2's scheduler), the overlap against the clip window the mapper sees."""
    check_sampling(sampling, schedule)
    check_overlap(long_form.overlap_seconds, window=window_seconds)
