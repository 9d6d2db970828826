"""Named extractor configurations ("presets"), timm-style: a preset is data, never a code path.

A preset names its visual encoders (``visual``: stream name -> encoder config, in fusion order), its
audio target encoder and its clip timing. ``paper`` is the MFM-Mapper setting (released weights,
read from ``weights_dir`` or ``$MFM_WEIGHTS`` when the models are built; random full-size weights
when neither is set); ``tiny`` has the same clip timing and token counts but small random models,
for tests and the offline demo. ``preset.dims`` gives every feature shape without building a model
(the mapper config needs them).

Precision: the paper preset runs TimeChat's visual side the way TimeChat does (``precision="fp16"``:
EVA-ViT-g Conv/Linear weights in fp16, ViT + Q-Formers under fp16 autocast, LayerNorms in fp32);
CAVP and AudioMAE run in fp32 as in Diff-Foley and AudioLDM-2. Use e.g.
``replace(preset, visual={**preset.visual, "timechat": replace(preset.visual["timechat"], precision="bf16")})``
on hardware without fast fp16.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

from extractors.audiomae import AudioMAEConfig
from extractors.cavp import CAVPConfig
from extractors.clip import ClipConfig
from extractors.encoders import StreamSpec, released_weights_dir
from extractors.motion import MOTION_CHANNELS, MOTION_FEATURE
from extractors.timechat import BUILTIN_TOKENIZER, TimeChatConfig

# Bump when a code change alters the features of an unchanged preset, so old caches are refused.
# 2: AudioMAE's random pos_embed on AudioMAE's own (swapped) grid; frames resized on uint8 like
#    PIL / decord; AudioMAE waveforms padded to 10.24 s before the fbank (AudioMAEConfig.pad_waveform).
# 3: visual features as named streams (presets' `visual` mapping); fingerprints include encoder types.
FEATURE_VERSION = 3
AUDIO_TARGET = "audiomae"  # the feature the mapper learns to predict (a cache column, like each stream)
# the clip's loudness envelope (extractors.envelope), (clip.envelope_frames, 1): what timing control learns to
# predict from the video
ENVELOPE_TARGET = "envelope"
TARGETS = (AUDIO_TARGET, ENVELOPE_TARGET)  # columns computed from the audio: null where a clip has none
# Cache columns that are not features; no stream may take one of these names.
RESERVED_NAMES = ("id", "label", "split", "start", "duration", "num_valid_frames", "preset", "preset_fingerprint",
                  *TARGETS, MOTION_FEATURE)


def paper_visual() -> dict:
    """The paper's two visual encoders, in fusion order: CAVP, then TimeChat."""
    return {"cavp": CAVPConfig(), "timechat": TimeChatConfig(precision="fp16")}  # TimeChat's fp16 + autocast


@dataclass(frozen=True)
class FeatureDims:
    """Shapes of one clip's features, derived from a preset."""

    num_frames: int  # frames sampled from the clip (40)
    streams: dict[str, StreamSpec]  # visual stream name -> its tokens' shape and spans, in fusion order
    num_audio_tokens: int  # AudioMAE target tokens (8)
    audio_token_dim: int  # 768
    envelope_frames: int  # loudness-envelope frames of a clip window (250: 40 ms each)

    def shapes(self) -> dict[str, list[int]]:
        """Per-clip array shape of every feature column: each stream (tokens, dim), the motion stream (frames,
        MOTION_CHANNELS: extractors.motion), the target (N, Da), the envelope (frames, 1)."""
        shapes = {name: list(spec.shape) for name, spec in self.streams.items()}
        shapes[MOTION_FEATURE] = [self.envelope_frames, MOTION_CHANNELS]
        shapes[AUDIO_TARGET] = [self.num_audio_tokens, self.audio_token_dim]
        shapes[ENVELOPE_TARGET] = [self.envelope_frames, 1]
        return shapes


@dataclass(frozen=True)
class ExtractorPreset:
    name: str
    clip: ClipConfig = field(default_factory=ClipConfig)
    visual: dict = field(default_factory=paper_visual)  # stream name -> encoder config (a registered type)
    audiomae: AudioMAEConfig = field(default_factory=AudioMAEConfig)
    audioldm2: str = "cvssp/audioldm2"  # hub id / folder of the AudioLDM-2 pipeline, or "tiny"
    released: bool = False  # True: released weights, from weights_dir or $MFM_WEIGHTS (read when loading)
    weights_dir: str | None = None  # folder with the released checkpoints, overriding $MFM_WEIGHTS
    seed: int = 0  # torch seed before building each model (identical random weights everywhere)
    # a calibration of AudioMAE's final norm (``extractors/audiomae_calibration.py``: a shipped file name
    # or a path), applied after the weights; None: the norm as built or released
    audiomae_norm: str | None = None

    def __post_init__(self):
        if not self.visual:
            raise ValueError(f"preset {self.name!r} has no visual encoder")
        taken = [name for name in self.visual if name in RESERVED_NAMES or not name.isidentifier()]
        if taken:
            raise ValueError(f"visual stream names {taken} are not allowed (reserved: {', '.join(RESERVED_NAMES)})")
        if self.clip.sample_rate != self.audiomae.sample_rate:
            raise ValueError(f"clip sample_rate {self.clip.sample_rate} != AudioMAE's {self.audiomae.sample_rate}")
        for name, config in self.visual.items():
            limit = getattr(config, "max_frame_pos", None)
            if limit is not None and self.clip.num_frames > limit:
                raise ValueError(f"{self.clip.num_frames} frames exceed {name}'s max_frame_pos {limit}")

    def resolved_weights_dir(self) -> str | None:
        """Where this preset's released weights are read (None: random init from ``seed``)."""
        return released_weights_dir(self.weights_dir, self.released)

    @property
    def dims(self) -> FeatureDims:
        t = self.clip.num_frames
        return FeatureDims(
            num_frames=t,
            streams={name: config.stream(t) for name, config in self.visual.items()},
            num_audio_tokens=self.audiomae.num_tokens,
            audio_token_dim=self.audiomae.embed_dim,
            envelope_frames=self.clip.envelope_frames,
        )

    def to_dict(self) -> dict:
        """JSON-able description (tuples become lists when serialised); encoder types by name."""
        data = asdict(self)
        data["visual"] = {name: {"type": type(config).__name__, **asdict(config)} for name, config in self.visual.items()}
        if data["audiomae_norm"] is None:  # absent, as before the field existed: older fingerprints stay valid
            del data["audiomae_norm"]
        return data

    def fingerprint(self) -> str:
        """Short stable hash of everything that determines the features.

        The weights folder enters only as "released or random": the same weights in another folder
        give the same features, random and released weights do not.
        """
        data = self.to_dict()
        data["weights_dir"] = self.resolved_weights_dir() is not None
        data.pop("released")
        data["feature_version"] = FEATURE_VERSION
        if self.audiomae_norm is not None:  # the numbers, not the name: a recalibration changes the features
            from extractors.audiomae_calibration import calibration_path
            from extractors.file_hash import file_sha256

            path = calibration_path(self.audiomae_norm)
            data["audiomae_norm"] = file_sha256(path) if path.is_file() else f"missing:{self.audiomae_norm}"
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


PRESETS: dict[str, ExtractorPreset] = {}


def register_preset(preset: ExtractorPreset, overwrite: bool = False) -> ExtractorPreset:
    if preset.name in PRESETS and not overwrite:
        raise KeyError(f"preset {preset.name!r} already registered")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> ExtractorPreset:
    if name not in PRESETS:
        raise KeyError(f"unknown extractor preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def feature_dims(preset: ExtractorPreset | str) -> FeatureDims:
    """Feature shapes of a preset (or preset name) without building any model."""
    return (get_preset(preset) if isinstance(preset, str) else preset).dims


register_preset(ExtractorPreset(name="paper", released=True))

register_preset(ExtractorPreset(
    name="tiny",
    clip=ClipConfig(),  # same timing as the paper: 4 fps x 10 s = 40 frames, 16 kHz
    visual={
        "cavp": CAVPConfig(image_size=64, base_channels=8, stage_blocks=(1, 1, 1, 1), out_dim=32),
        "timechat": TimeChatConfig(
            image_size=56,  # 4 x 4 patches of 14
            vit_width=48, vit_depth=2, vit_heads=2,
            num_query_tokens=8, qformer_hidden=32, qformer_layers=2, qformer_heads=2, qformer_intermediate=64,
            qformer_cross_attention_freq=2,
            qformer_vocab_size=128,  # >= the builtin tokenizer's vocabulary
            tokenizer=BUILTIN_TOKENIZER,
            video_num_query_tokens=8, video_qformer_hidden=32, video_qformer_layers=2, video_qformer_heads=2,
            video_qformer_intermediate=64,
            window=32, stride=32,  # same windows as the paper: 40 frames -> 2 windows
            qformer_init_std=0.3,  # random weights whose tokens still depend on the video
        ),
    },
    audiomae=AudioMAEConfig(embed_dim=32, depth=4, num_heads=2, average_blocks=(1, 2, 3)),  # 1024 x 128 in, 8 tokens
    audioldm2="tiny",
))

# `tiny` with AudioMAE's output norm calibrated on toy-world audio (tokens standardised per channel):
# what the `toy` AudioLDM-2 is trained on and the toy recipe's mapper predicts. Made by
# `python -m recipes.pretrain_toy_decoder --stages audiomae,...` (see extractors/audiomae_calibration.py).
TOY_AUDIOMAE_NORM = "toy_audiomae_norm.safetensors"
register_preset(replace(PRESETS["tiny"], name="toy", audiomae_norm=TOY_AUDIOMAE_NORM, audioldm2="toy"))
