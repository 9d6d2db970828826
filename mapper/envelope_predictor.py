"""Where the sound is loud, from the video: the clip's loudness envelope predicted from the visual streams.

Timing control (``mapper.decoders.audioldm2.envelope_guidance``) steers the frozen AudioLDM-2 towards a
target envelope; at generation the only thing that can say where the sound belongs is the video. This
small temporal network is that predictor, the ReWaS idea (arXiv 2407.05551: an energy curve estimated
from video conditions a frozen text-to-audio model) with the envelope of ``extractors.envelope`` as the
curve. It is trained beside the mapper on the same cache (``mapper.training.module``, target: the cache's
``envelope`` column) and saved next to it (``MAPPER_DIR/envelope_predictor/``). It reads the raw streams,
not the mapper's fused tokens, so it shares no weight with the mapper: training it changes nothing the
mapper learns, and the paper's mapper stays the paper's.

Architecture (shapes for the paper preset: T = 40 frames at 4 fps, E = 250 envelope frames of 40 ms):

    each stream -> one token per frame (the mapper's alignment rule, ``mapper.fusion.alignment_matrix``)
    -> concat over streams (B, T, sum dims) -> LayerNorm -> Linear -> hidden (B, H, T)
    -> coarse residual blocks at the video's frame rate: GroupNorm -> GELU -> dilated conv over time
    -> to envelope frames by linear interpolation in *time* (B, H, E): envelope frame k, centred at
       (k + 1/2) * frame_seconds, reads the video frames around that instant (frame i is the picture at
       i / fps, not the middle of a bin: an interpolation on bin centres would put every event 1/(2 fps)
       = 125 ms late)
    + the motion stream (``extractors.motion``, (B, E, 16) at the envelope rate; when ``motion_channels``),
      z-scored per clip, through a 3-tap convolution (B, H, E)
    -> fine residual blocks at the envelope rate (sharpen onsets between frames) -> 1 per frame (B, E)

The output is the z-scored envelope (the target's own scale: zero mean, unit std per clip), so a
prediction of all zeros scores MSE 1 and a perfect one 0.

It reads the mapper's per-frame streams (one token per video frame: the paper's CAVP), which carry the
timing; windowed streams (TimeChat: 32 queries per 32-frame window, about a second per token) add little
timing and made it overfit on the toy world (held-out MSE 0.61 with both, 0.53 without). CAVP's 4 fps miss
most onsets; the motion stream, one value per region and envelope frame, finds them (toy world, session 11:
held-out correlation 0.77 -> 0.98, on the high-passed envelopes, i.e. the events, 0.46 -> 0.95). It is
z-scored per clip over its frames and regions together (the target is z-scored per clip too: a video's
brightness, contrast or size says nothing about where its sound is); per clip it did better than with
training-set statistics (0.98 / 0.95 against 0.96 / 0.91). A config without ``motion_channels`` (saved
before it existed) reads the streams alone, as it was trained. Training
(``training_batch``) sees each batch in ``TRAIN_COPIES`` copies, each shifted in time by a random whole
number of ``shift_frames`` (a circular shift of features and envelope together: the same scene, its
events elsewhere), with ``INPUT_DROPOUT`` on the features, under its own learning rate and weight decay;
on the toy world (140 training clips, 40 epochs) these took the held-out MSE from 0.53 to 0.44 (0.40 in
the recipe's run). The shifts and the dropout draw from their own generator seeded by the step, never the
global random state, so the mapper trained beside it keeps its own random stream (and a resumed run
repeats them).

Saved as a folder: ``config.json`` (every field of :class:`EnvelopePredictorConfig`, each size bounded)
and ``model.safetensors``; loading checks the config, then every key and shape against the file's
header, then reads weights only; each failure is one line naming the file.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from extractors.checkpoint import load_safetensors_model, read_config_json, save_safetensors_model
from extractors.encoders import StreamSpec
from extractors.motion import MOTION_CHANNELS, MOTION_FEATURE
from mapper.arguments import check_int, check_number
from mapper.config import LIMITS, check_streams
from mapper.fusion import alignment_matrix

FOLDER = "envelope_predictor"  # MAPPER_DIR/envelope_predictor: saved beside the mapper it was trained with
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
KIND = "video_envelope_predictor"  # config.json's "kind": a folder of something else is refused by name
MAX_CONFIG_BYTES = 1 << 20
# Bounds of an untrusted config: width, kernel, blocks and envelope length far above the defaults.
MAX_HIDDEN, MAX_KERNEL, MAX_BLOCKS, MAX_DILATION, MAX_ENVELOPE_FRAMES, MAX_MOTION = 4096, 63, 16, 1024, 65536, 1024
MAX_FRAMES = LIMITS["num_frames"]  # video frames of a clip window: the mapper's own bound
_GROUPS = 8  # GroupNorm groups
_MIN_MOTION_STD = 1e-3  # a still clip's motion stream z-scores to zeros, not 0 / 0
TRAIN_COPIES = 4  # time-shifted copies of each training batch
INPUT_DROPOUT = 0.3  # of the per-frame features, in training
WEIGHT_DECAY = 0.1  # AdamW's, for the predictor's parameters (the mapper keeps its own)
LEARNING_RATE = 1e-2  # its peak learning rate, under the mapper's schedule (toy world: 0.47 at 3e-3, 0.44 at 1e-2)


@dataclass(frozen=True)
class EnvelopePredictorConfig:
    streams: dict  # stream name -> StreamSpec.to_dict(), the streams it reads (the mapper config's)
    stream_order: list  # the streams, in the order they are concatenated
    num_frames: int  # video frames of a clip window (40)
    fps: float  # their rate (4.0): frame i is the picture at i / fps
    envelope_frames: int  # output frames (250)
    frame_seconds: float  # seconds per output frame (0.04: AudioLDM-2's latent frame)
    hidden: int = 64  # 128 overfit the toy world (held-out MSE 0.51 vs 0.47)
    kernel: int = 5  # odd: outputs stay aligned with their frames
    coarse_dilations: list = field(default_factory=lambda: [1, 2, 4])  # blocks at the video rate (~3.6 s seen)
    fine_dilations: list = field(default_factory=lambda: [1, 2, 4])  # blocks at the envelope rate (~1.1 s)
    motion_channels: int = 0  # channels of the motion stream it reads (extractors.motion); 0: none, streams only

    def __post_init__(self):
        check_int("num_frames", self.num_frames, 1, MAX_FRAMES)
        check_streams(self.streams, self.num_frames)
        if not (isinstance(self.stream_order, list) and sorted(self.stream_order) == sorted(self.streams)):
            raise ValueError(f"stream_order {self.stream_order!r} does not name the streams {sorted(self.streams)}")
        check_number("fps", self.fps, above=0.0)
        check_int("envelope_frames", self.envelope_frames, 1, MAX_ENVELOPE_FRAMES)
        check_number("frame_seconds", self.frame_seconds, above=0.0)
        check_int("hidden", self.hidden, _GROUPS, MAX_HIDDEN)
        if self.hidden % _GROUPS:
            raise ValueError(f"hidden must be a multiple of {_GROUPS}, got {self.hidden}")
        check_int("kernel", self.kernel, 1, MAX_KERNEL)
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (frames stay aligned), got {self.kernel}")
        for name in ("coarse_dilations", "fine_dilations"):
            value = getattr(self, name)
            if not (isinstance(value, (list, tuple)) and len(value) <= MAX_BLOCKS):
                raise ValueError(f"{name} must be a list of at most {MAX_BLOCKS} dilations, got {value!r}")
            for dilation in value:
                check_int(name, dilation, 1, MAX_DILATION)
            object.__setattr__(self, name, list(value))
        check_int("motion_channels", self.motion_channels, 0, MAX_MOTION)

    @property
    def shift_frames(self) -> int | None:
        """The shortest time shift, in video frames, that is also a whole number of envelope frames (4 for 4 fps
        and 40 ms: 1 s), when every input stream is per frame; None otherwise (no shift can move them)."""
        specs = [StreamSpec.from_dict(self.streams[name]) for name in self.stream_order]
        if not all(_per_frame(spec, self.num_frames) for spec in specs):
            return None
        for frames in range(1, self.num_frames):
            envelope_frames = frames / self.fps / self.frame_seconds
            if abs(envelope_frames - round(envelope_frames)) < 1e-6:
                return frames
        return None

    @classmethod
    def for_mapper(cls, mapper_config, clip, **options) -> "EnvelopePredictorConfig":
        """A predictor of a mapper's (``MapperConfig``) per-frame streams (all its streams if none is per
        frame) and of the motion stream, for clip windows of ``clip`` (``ClipConfig``: frame rate and envelope
        frames)."""
        options = {"motion_channels": MOTION_CHANNELS, **options}
        streams = mapper_config.selected_streams
        per_frame = {name: spec for name, spec in streams.items() if _per_frame(spec, mapper_config.num_frames)}
        streams = per_frame or streams
        return cls(streams={name: spec.to_dict() for name, spec in streams.items()}, stream_order=list(streams),
                   num_frames=mapper_config.num_frames, fps=float(clip.fps), envelope_frames=clip.envelope_frames,
                   frame_seconds=clip.envelope_frame_samples / clip.sample_rate, **options)

    def to_dict(self) -> dict:
        return {"kind": KIND, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "EnvelopePredictorConfig":
        """The config a ``to_dict`` wrote: every required field present, nothing unknown (one-line ValueError)."""
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ValueError(f"{source}: not a video envelope predictor config (no \"kind\": \"{KIND}\")")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"kind"})
        if unknown:
            raise ValueError(f"{source}: unknown {', '.join(unknown)}")
        try:
            return cls(**{name: data[name] for name in names if name in data})
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from None


def _per_frame(spec: StreamSpec, num_frames: int) -> bool:
    return tuple(map(tuple, spec.spans)) == ((0, num_frames),) and spec.queries == num_frames


def time_interpolation(num_frames: int, fps: float, envelope_frames: int, frame_seconds: float) -> torch.Tensor:
    """(envelope_frames, num_frames): row k linearly interpolates the video frames at the centre of envelope
    frame k, (k + 1/2) * frame_seconds, where video frame i sits at i / fps (held flat past the last frame)."""
    position = ((torch.arange(envelope_frames, dtype=torch.float64) + 0.5) * frame_seconds * fps)
    position = position.clamp(0, num_frames - 1)
    low = position.floor().long().clamp(max=num_frames - 1)
    high = (low + 1).clamp(max=num_frames - 1)
    weight = position - low
    matrix = torch.zeros(envelope_frames, num_frames, dtype=torch.float64)
    rows = torch.arange(envelope_frames)
    matrix[rows, low] += 1 - weight
    matrix[rows, high] += weight
    return matrix.float()


class _Block(nn.Module):
    """Residual temporal block: GroupNorm, GELU, dilated conv (same length)."""

    def __init__(self, hidden: int, kernel: int, dilation: int):
        super().__init__()
        self.norm = nn.GroupNorm(_GROUPS, hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (B, H, T)
        return h + self.conv(nn.functional.gelu(self.norm(h)))


class VideoEnvelopePredictor(nn.Module):
    """{stream name: (B, tokens, dim)} -> the clip window's z-scored loudness envelope (B, envelope_frames)."""

    def __init__(self, config: EnvelopePredictorConfig):
        super().__init__()
        self.config = config
        self.specs = {name: StreamSpec.from_dict(config.streams[name]) for name in config.stream_order}
        for name, spec in self.specs.items():  # derived from the config, never saved
            self.register_buffer(f"align_{name}", alignment_matrix(spec.spans, spec.queries, config.num_frames),
                                 persistent=False)  # (T, W*Q)
        self.register_buffer("to_envelope", time_interpolation(config.num_frames, config.fps, config.envelope_frames,
                                                               config.frame_seconds), persistent=False)  # (E, T)
        width, hidden = sum(spec.dim for spec in self.specs.values()), config.hidden
        self.norm_in = nn.LayerNorm(width)
        self.frame_in = nn.Linear(width, hidden)
        self.coarse = nn.ModuleList(_Block(hidden, config.kernel, d) for d in config.coarse_dilations)
        self.fine = nn.ModuleList(_Block(hidden, config.kernel, d) for d in config.fine_dilations)
        self.motion_in = nn.Conv1d(config.motion_channels, hidden, 3, padding=1) if config.motion_channels else None
        self.norm_out = nn.GroupNorm(_GROUPS, hidden)
        self.frame_out = nn.Conv1d(hidden, 1, 1)

    @property
    def input_streams(self) -> list[str]:
        """The feature names it reads: the visual streams, then ``motion`` when it reads the motion stream."""
        return list(self.specs) + ([MOTION_FEATURE] if self.reads_motion else [])

    @property
    def reads_motion(self) -> bool:
        return self.motion_in is not None

    @staticmethod
    def standardise_motion(motion: torch.Tensor) -> torch.Tensor:
        """(B, E, C) log motion -> z-scored per clip over its frames and regions together (a still clip: zeros)."""
        mean = motion.mean(dim=(1, 2), keepdim=True)
        return (motion - mean) / motion.std(dim=(1, 2), keepdim=True).clamp(min=_MIN_MOTION_STD)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in self.input_streams if name not in features]
        if missing:
            raise KeyError(f"the envelope predictor reads {self.input_streams}; missing {missing}")
        dtype = self.frame_in.weight.dtype
        per_frame = [torch.matmul(getattr(self, f"align_{name}").to(dtype), features[name].to(dtype))
                     for name in self.specs]  # each (B, T, dim)
        h = self.frame_in(self.norm_in(torch.cat(per_frame, dim=-1))).transpose(1, 2)  # (B, H, T)
        for block in self.coarse:
            h = block(h)
        h = torch.matmul(h, self.to_envelope.to(dtype).T)  # (B, H, E)
        if self.reads_motion:
            motion = self.standardise_motion(features[MOTION_FEATURE].to(dtype))  # (B, E, C)
            h = h + self.motion_in(motion.transpose(1, 2))  # (B, H, E)
        for block in self.fine:
            h = block(h)
        return self.frame_out(nn.functional.gelu(self.norm_out(h)))[:, 0]  # (B, E)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created; each file atomically)."""
        save_safetensors_model(self, self.config.to_dict(), Path(folder) / CONFIG_FILE, Path(folder) / WEIGHTS_FILE)


def envelope_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite target frames: predicted (B, E), target (B, E) or (B, E, 1)."""
    target = target.reshape(predicted.shape).to(predicted.dtype)
    valid = torch.isfinite(target)
    return ((predicted - torch.nan_to_num(target)) ** 2 * valid).sum() / valid.sum().clamp(min=1)


def training_batch(predictor: VideoEnvelopePredictor, features: Mapping[str, torch.Tensor], target: torch.Tensor,
                   seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """What the predictor trains on for one batch: ``TRAIN_COPIES`` copies of the features (B, T, dim), the
    motion stream (B, E, C) if it reads it, and the target (B, E, 1), each copy shifted in time by a random
    whole number of ``shift_frames`` (one copy, unshifted, when the streams cannot be shifted), with
    ``INPUT_DROPOUT`` on the features (the motion stream dropped out once z-scored: a dropped value is its
    clip's mean, not a burst of motion). Random numbers come from a generator seeded with ``seed`` (the
    caller's step), never from the global random state."""
    generator = torch.Generator().manual_seed(seed)
    config, unit = predictor.config, predictor.config.shift_frames
    names = predictor.input_streams
    if unit is None:
        shifts = [0]
    else:
        shifts = torch.randint(0, config.num_frames // unit, (TRAIN_COPIES,), generator=generator).tolist()
    envelope_unit = round(unit / config.fps / config.frame_seconds) if unit else 0
    step = {name: envelope_unit if name == MOTION_FEATURE else unit for name in names}  # its rate's frames
    frames = {name: torch.cat([features[name].roll(k * step[name], dims=1) for k in shifts]) if unit else features[name]
              for name in names}  # (copies * B, T, dim); motion (copies * B, E, C)
    if predictor.reads_motion:
        frames[MOTION_FEATURE] = predictor.standardise_motion(frames[MOTION_FEATURE])
    target = torch.cat([target.roll(k * envelope_unit, dims=1) for k in shifts]) if unit else target
    keep = {name: (torch.rand(value.shape, generator=generator) >= INPUT_DROPOUT).to(value.device)
            for name, value in frames.items()}
    frames = {name: value * keep[name] / (1 - INPUT_DROPOUT) for name, value in frames.items()}
    return frames, target


def load_envelope_predictor(folder: str | os.PathLike) -> VideoEnvelopePredictor:
    """A predictor ``save_pretrained`` wrote, frozen, in eval mode: the config validated, every key and shape
    of the weights checked against the model it describes before any weight is read; safetensors only."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: not a video envelope predictor folder (no {CONFIG_FILE})")
    config = EnvelopePredictorConfig.from_dict(read_config_json(path, MAX_CONFIG_BYTES), str(path))
    return load_safetensors_model(lambda: VideoEnvelopePredictor(config), folder / WEIGHTS_FILE,
                                  "envelope predictors", "the predictor config.json describes")
