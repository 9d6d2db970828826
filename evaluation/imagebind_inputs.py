"""ImageBind's inputs for the IB-score, made the way av-benchmark makes them, batched, in torch.

Video (``av_bench/data/video_dataset.py`` ``VideoDataset`` + ``extract_video.py``
``encode_video_with_imagebind``):

1. frames: ffmpeg's ``fps=0.5`` filter on the decoded stream (torio ``frame_rate=0.5``), the first
   ``int(0.5 * duration)`` of them (4 for 8 s); a shorter video is an error there (the file is then
   skipped). The filter does not take the frames at 0, 2, 4, 6 s: output tick k (every 2 s) gets the
   last frame whose time, rounded to the nearest tick, is <= k, so at 25 fps frames 24, 74, 124, 174
   (0.96, 2.96, 4.96, 6.96 s). ``fps_filter_indices`` computes that choice from frame times;
2. each frame, uint8: short side resized to 224, bicubic with antialias, *in uint8* (torchvision's
   ``v2.Resize`` on a CPU uint8 tensor runs torch's native uint8 kernel, which rounds and clamps
   between its horizontal and vertical passes); then ``/ 255`` and CLIP's mean / std;
3. three 224x224 crops (``ib_data.SpatialCrop``: start, centre, end of the long side);
4. clips of two consecutive frames, for every frame pair and crop: ``3 * (T - 1)`` clips (9 for
   4 frames), ordered pair-major (clip ``n = 3 * pair + crop``), each ``(3, 2, 224, 224)``.

Audio (``av_bench/data/audio_dataset.py`` ``ImageBindAudioDataset``, ImageBind's own loader):

1. the whole file, every channel (no mono mix, no mean removal, no truncation to the clip length),
   resampled to 16 kHz with ``torchaudio.functional.resample`` (``to_model_rate``);
2. three 2 s clips placed by pytorchvideo's ``ConstantClipsPerVideoSampler`` (``audio_clip_bounds``):
   starts ``k * max(d - 2, 0) / 2`` for k = 0, 1, 2, so 0, 3, 6 s for an 8 s file, 0, 4, 8 s for 10 s;
   a file shorter than 2 s gives three identical (short) clips;
3. per clip, in order: ``clip -= clip.mean()`` over all channels, *in place on the file* (clips of a
   file shorter than 6 s overlap, and a later clip sees the earlier clips' subtractions); Kaldi fbank
   of channel 0 (128 bins, 25 ms / 10 ms, hanning, dither 0: ``extractors.fbank``); 198 frames for
   2 s, zero-padded (or cut) to 204, padding before normalisation; then ``(x + 4.268) / 9.138``.

Numbers verified against the originals (``tests/test_eval_imagebind.py``,
``tests/fixtures/eval/imagebind.md``). Note: pytorchvideo 0.1.5 from PyPI places the clips at
``k * (d - 2) / 3`` (0, 2, 4 s); the ImageBind fork pins the git commit with the fix used here.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import torch
import torch.nn.functional as F

from extractors.fbank import kaldi_fbank, num_frames

# video (av_bench/data/video_dataset.py, ImageBind's vision preprocessor)
FRAME_RATE = 0.5  # _IMAGEBIND_FPS: frames per second fed to ImageBind
IMAGE_SIZE = 224  # short side after the resize, and the crop size
FRAMES_PER_CLIP = 2  # consecutive frames per clip (the vision stem's Conv3d spans 2 frames)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's RGB mean / std
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# audio (ImageBindAudioDataset.load_and_transform_audio_data defaults)
SAMPLE_RATE = 16000
AUDIO_CLIP_SECONDS = 2
AUDIO_CLIPS = 3
NUM_MEL_BINS = 128
TARGET_FRAMES = 204  # fbank frames per clip after padding / cutting
FBANK_MEAN = -4.268  # normalisation: (fbank - mean) / std
FBANK_STD = 9.138


def num_video_frames(duration_sec: float) -> int:
    """Frames av-benchmark feeds ImageBind for a clip of ``duration_sec`` (its ``ib_expected_length``)."""
    return int(FRAME_RATE * duration_sec)


def _round_half_away(x: Fraction) -> int:
    """ffmpeg's AV_ROUND_NEAR_INF: to the nearest integer, halves away from zero."""
    return math.floor(x + Fraction(1, 2)) if x >= 0 else -math.floor(-x + Fraction(1, 2))


def _exact(t) -> Fraction:
    """A time in seconds as an exact fraction; floats are read to the microsecond (ties at k + 1/2 ticks
    decide which frame ffmpeg keeps, so 0.999999999 must count as 1)."""
    return t if isinstance(t, Fraction) else Fraction(t).limit_denominator(1_000_000)


def fps_filter_indices(frame_times: Sequence[float], end_time: float, fps: float = FRAME_RATE) -> list[int]:
    """Indices of the decoded frames that ffmpeg's ``fps`` filter outputs (defaults: round=near,
    eof_action=round), as torio's ``frame_rate=0.5`` stream in av-benchmark gets them.

    ``frame_times``: presentation times (s) of the decoded frames, increasing. ``end_time``: where
    the stream closes, i.e. the last frame's time plus its duration (ffmpeg 6's buffer source; older
    ones close at the last frame's time, which only matters if it changes the last rounded tick).
    Each input time is rounded to the nearest tick of ``1/fps`` s; output tick k, from the first
    frame's tick up to (not including) the end's tick, repeats the last frame whose tick is <= k.
    Take the first ``num_video_frames(duration)`` of the result, as av-benchmark does.
    """
    if len(frame_times) == 0:
        return []
    rate = _exact(fps)
    ticks = [_round_half_away(_exact(t) * rate) for t in frame_times]
    stop = _round_half_away(_exact(end_time) * rate)
    chosen, i = [], 0
    for k in range(ticks[0], stop):
        while i + 1 < len(ticks) and ticks[i + 1] <= k:
            i += 1
        chosen.append(i)
    return chosen


def resized_size(height: int, width: int, size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(height, width) after torchvision's ``Resize(size)``: the short side becomes ``size``, the long
    side ``int(size * long / short)`` (truncated)."""
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def crop_offsets(height: int, width: int, size: int = IMAGE_SIZE) -> list[tuple[int, int]]:
    """(top, left) of ``SpatialCrop(224, 3)``'s three crops (ImageBind's ``uniform_crop`` with index 0, 1, 2):
    start, centre (``ceil`` of half the margin) and end of the long side; landscape if width >= height."""
    top, left = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
    if height > width:
        return [(0, left), (top, left), (height - size, left)]
    return [(top, 0), (top, left), (top, width - size)]


def video_clips(frames: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """ImageBind vision input for a batch of frame sequences.

    ``frames``: (B, T, 3, H, W) uint8 RGB, T >= 2 frames sampled at 0.5 fps (see the module docstring),
    any device. Returns (B, 3 * (T - 1), 3, 2, size, size) float32 on the frames' device: clip
    ``3 * i + c`` is crop c of frames (i, i + 1), channels first, then the two frames.

    The resize runs on the CPU whatever the frames' device: av-benchmark resizes in its DataLoader
    workers with torch's uint8 kernel, which has no CUDA counterpart (torchvision's CUDA path resizes
    in float and differs by up to tens of grey levels on noisy frames).
    """
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames: expected (batch, time, 3, height, width), got {tuple(frames.shape)}")
    if frames.dtype != torch.uint8:
        raise TypeError(f"frames: expected uint8 RGB (as decoded), got {frames.dtype}")
    batch, steps, _, height, width = frames.shape
    if steps < FRAMES_PER_CLIP:
        raise ValueError(f"frames: {steps} per video; ImageBind clips need at least {FRAMES_PER_CLIP}")
    new_h, new_w = resized_size(height, width, size)
    x = frames.reshape(batch * steps, 3, height, width)
    if (new_h, new_w) != (height, width):  # torchvision returns the image untouched at the target size
        x = F.interpolate(x.cpu().contiguous(), size=(new_h, new_w), mode="bicubic", align_corners=False,
                          antialias=True).to(frames.device)  # uint8 in, uint8 out
    x = x.to(torch.float32) * (1.0 / 255)  # v2.ToDtype(float32, scale=True)
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    x = ((x - mean) / std).reshape(batch, steps, 3, new_h, new_w)
    crops = torch.stack([x[..., top:top + size, left:left + size]
                         for top, left in crop_offsets(new_h, new_w, size)], dim=1)  # (B, 3, T, 3, S, S)
    pairs = torch.cat([crops[:, :, i:i + FRAMES_PER_CLIP] for i in range(steps - 1)], dim=1)  # (B, N, 2, 3, S, S)
    return pairs.transpose(2, 3)  # (B, N, 3, 2, S, S)


def audio_clip_bounds(num_samples: int, sample_rate: int = SAMPLE_RATE, clip_seconds: int = AUDIO_CLIP_SECONDS,
                      clips: int = AUDIO_CLIPS) -> list[tuple[int, int]]:
    """[start, end) sample indices of the clips of a ``num_samples`` file, as the reference slices them.

    pytorchvideo's ``ConstantClipsPerVideoSampler`` (at the fork's pinned commit) in exact fractions:
    ``max_start = Fraction(max(duration - clip, 0))`` (the subtraction is a float one), starts
    ``k * max_start / (clips - 1)``; the slice is ``[int(start * sr), int(end * sr))``, which the
    file's end may shorten.
    """
    duration = num_samples / sample_rate  # float, waveform.size(1) / sample_rate
    max_start = Fraction(max(duration - float(clip_seconds), 0))
    step = Fraction(max_start, max(clips - 1, 1))
    bounds = []
    for k in range(clips):
        start = step * k
        bounds.append((int(start * sample_rate), int((start + clip_seconds) * sample_rate)))
        if step * (k + 1) > max_start:  # the sampler's "end of video reached" (never before `clips` here)
            break
    return bounds


def audio_clips(waveform: torch.Tensor, num_samples: Sequence[int] | torch.Tensor | None = None, *,
                sample_rate: int = SAMPLE_RATE, num_mel_bins: int = NUM_MEL_BINS,
                target_frames: int = TARGET_FRAMES) -> torch.Tensor:
    """ImageBind audio input for a batch of files.

    ``waveform``: (B, C, N) or (B, N) float at ``sample_rate`` (16 kHz), each file's channels as
    loaded (channel 0 is analysed, the clip means span all channels), files right-padded to N;
    ``num_samples``: each file's true length (default: N for all). Returns (B, 3, 1, num_mel_bins,
    target_frames) float32 on the waveform's device.
    """
    if waveform.dim() == 2:
        waveform = waveform[:, None]
    if waveform.dim() != 3 or not waveform.is_floating_point():
        raise ValueError(f"waveform: expected a float (batch, channels, samples) tensor, got "
                         f"{tuple(waveform.shape)} {waveform.dtype}")
    batch, _, length = waveform.shape
    lengths = [length] * batch if num_samples is None else [int(n) for n in num_samples]
    shortest = int(sample_rate * 0.025)  # one 25 ms Kaldi window; the reference fails on fewer samples
    if len(lengths) != batch or not all(shortest <= n <= length for n in lengths):
        raise ValueError(f"num_samples {lengths}: need one length per file, each in [{shortest}, {length}] "
                         f"(at least one 25 ms fbank window)")
    # [start, end) of every clip, cut at the file's end: (B, K) each, python ints first
    bounds = [[(a, min(b, n)) for a, b in audio_clip_bounds(n, sample_rate)] for n in lengths]
    if any(len(row) != AUDIO_CLIPS for row in bounds):
        raise AssertionError(f"the clip sampler gave other than {AUDIO_CLIPS} clips: {bounds}")
    real_frames = [[num_frames(b - a, sample_rate) for a, b in row] for row in bounds]
    clip_len = AUDIO_CLIP_SECONDS * sample_rate
    clips = torch.zeros(batch, AUDIO_CLIPS, clip_len)  # channel 0 of every clip, zero after its end
    for b, n in enumerate(lengths):
        # the reference's exact float32 steps, on the CPU like its DataLoader workers: the file as one
        # contiguous (C, n) tensor, each clip a view whose mean (over all channels) is subtracted in
        # place, so overlapping clips see the earlier subtractions. fbank bin 0 (little energy after
        # pre-emphasis) moves by 2e-5 if the mean is rounded differently, hence no batched shortcut.
        wave = waveform[b, :, :n].detach().to("cpu", torch.float32, copy=True).contiguous()
        for k, (start, end) in enumerate(bounds[b]):
            view = wave[:, start:end]
            view -= view.mean()
            clips[b, k, :end - start] = view[0]
    device = waveform.device
    clips = clips.to(device)

    fbank = kaldi_fbank(clips.flatten(0, 1), sample_rate=sample_rate, num_mel_bins=num_mel_bins,
                        window_type="hanning")  # (B*K, F, M); each frame sees only its own window
    fbank = fbank.unflatten(0, (batch, AUDIO_CLIPS))  # (B, K, F, M)
    real = torch.arange(fbank.shape[2], device=device) < torch.tensor(real_frames, device=device)[..., None]
    fbank = torch.where(real[..., None], fbank, 0.0)  # frames past a clip's end do not exist: padding, 0
    fbank = F.pad(fbank, (0, 0, 0, max(target_frames - fbank.shape[2], 0)))[:, :, :target_frames]  # (B, K, T, M)
    mel = fbank.transpose(2, 3)[:, :, None]  # (B, K, 1, M, T)
    mean = torch.tensor([FBANK_MEAN], dtype=mel.dtype, device=device)
    std = torch.tensor([FBANK_STD], dtype=mel.dtype, device=device)
    return (mel - mean) / std  # v2.Normalize(mean=[-4.268], std=[9.138]): pad frames become 0.467


def to_model_rate(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(..., N) at ``sample_rate`` -> 16 kHz with ``torchaudio.functional.resample`` (float32 filter),
    the resampler av-benchmark's ImageBind loader uses (not ``transforms.Resample``, which the other
    embedders' loader uses: about 1e-5 apart)."""
    from evaluation.resample import resample

    return resample(waveform, sample_rate, SAMPLE_RATE, kernel_dtype=None)
