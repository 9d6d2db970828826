"""The rules for generation's arguments, each in one place.

The Python API (``VideoToAudioPipeline``, ``mapper.generate``, the sampling and long-form configs)
checks through these functions, before any model is loaded or any video read, and the command line
(``recipes/generate.py``) runs the very same checks: it hands its values to
``VideoToAudioPipeline.check_call``. A failed check is a ``ValueError`` of one line that names the
argument and says what is allowed; as an ``ArgumentError`` it lets the command line name its option
(``--steps``) where the API names its keyword (``num_inference_steps``).
"""
from __future__ import annotations

import os

from mapper.arguments import ArgumentError, check_choice, check_int, check_number, shown

# the shared checks too, so generation's callers import every rule from here
__all__ = [
    "MAX_SEED", "ArgumentError", "check_choice", "check_int", "check_number", "shown", "check_steps",
    "check_guidance", "check_eta", "check_seed", "check_overlap", "check_duration", "check_max_seconds", "check_start",
    "check_batch_size", "check_negative_needs_guidance", "check_device", "check_reference_audio",
]

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes [0, 2**64); we do not wrap negatives


# ---------------------------------------------------------------- one rule per argument
# `name` is how the caller spells the argument (the API keyword by default, "--steps" on the CLI).


def check_steps(value, name: str = "num_inference_steps", most: int | None = None) -> int:
    """Sampling steps: at least 1, at most the scheduler's training timesteps (``most``)."""
    return check_int(name, value, 1, most)


def check_guidance(value, name: str = "guidance_scale") -> float:
    """Classifier-free guidance: 1 means none (a scale below 1 would silently mean the same)."""
    return check_number(name, value, low=1.0)


def check_eta(value, name: str = "eta") -> float:
    return check_number(name, value, low=0.0, high=1.0)


def check_seed(value, name: str = "seed") -> int:
    return check_int(name, value, 0, MAX_SEED)


def check_overlap(value, name: str = "overlap_seconds", window: float | None = None) -> float:
    """Seconds shared by consecutive windows: >= 0 and shorter than the clip window."""
    return check_number(name, value, low=0.0, below=window, unit=" (seconds)" if window is None else
                        f" (seconds; {window:g} s is the clip window)")  # fmt: skip


def check_duration(value, name: str = "duration") -> float:
    """Seconds to render; None (omitting it) renders to the end of the video."""
    return check_number(name, value, above=0.0, unit=" (seconds; omit it to render to the end)")


def check_max_seconds(value, name: str = "max_seconds") -> float:
    """The most seconds of video one request renders (a bound on work: a few KB of video can claim
    hours); a longer video is refused before its first window, unless ``duration`` renders a part."""
    return check_number(name, value, above=0.0, unit=" (seconds of video one request may render)")


def check_start(value, name: str = "start") -> float:
    return check_number(name, value, low=0.0, unit=" (seconds)")


def check_batch_size(value, name: str = "batch_size") -> int:
    """Videos in flight together; 0 would never start one (and loop forever)."""
    return check_int(name, value, 1)


def check_negative_needs_guidance(guidance: float, given: dict[str, object]) -> None:
    """A negative prompt or mode only acts through guidance; refuse it where it would be ignored.

    ``given``: {argument name: value} of the negative settings the caller named (None: not named).
    """
    named = [name for name, value in given.items() if value is not None]
    if named and guidance <= 1.0:
        raise ArgumentError(named[0], f" has no effect without guidance: it needs a guidance scale > 1, got {guidance:g}")


def check_device(value, name: str = "device"):
    """A torch device that exists here: cpu, cuda / cuda:N (N < the number of GPUs), mps."""
    import torch

    allowed = "cpu, cuda, cuda:N or mps"
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ArgumentError(name, f" must be {allowed}, got {shown(value)}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ArgumentError(name, f" {value!r}: no CUDA device is available here; use cpu")
        if device.index is not None and device.index >= count:
            raise ArgumentError(name, f" {value!r}: only cuda:0 to cuda:{count - 1} exist here")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ArgumentError(name, f" {value!r}: MPS is not available here; use cpu")
    elif device.type != "cpu":
        raise ArgumentError(name, f" must be {allowed}, got {shown(value)}")
    return device


def check_reference_audio(value, name: str = "reference_audio") -> None:
    """A readable audio file, or a non-empty 1-D float array of finite samples (None: no reference).

    Only the file's header is read here; whether it is long enough depends on the model.
    """
    import numpy as np
    import soundfile as sf

    if value is None:
        return
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or not value.size or value.dtype.kind != "f" or not np.isfinite(value).all():
            raise ArgumentError(name, " must be a non-empty 1-D float array of finite samples, got "
                                      f"{value.dtype} {tuple(value.shape)}")  # fmt: skip
        return
    if not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(name, f" must be an audio file or a 1-D float array, got {shown(value)}")
    if not os.path.isfile(value):
        raise ArgumentError(name, f" {value}: no such file")
    try:
        sf.info(str(value))
    except (sf.LibsndfileError, RuntimeError) as error:
        reason = getattr(error, "error_string", "") or type(error).__name__
        raise ArgumentError(name, f" {value}: not a readable audio file (soundfile: {reason})") from None
