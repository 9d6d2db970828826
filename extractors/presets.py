"""Named extractor configurations ("presets"), timm-style: a preset is data, never a code path.

``paper`` is the MFM-Mapper setting (released weights under ``weights_dir``); ``tiny`` has the same
clip timing and token counts but small random models, for tests and the offline demo.
``preset.dims`` gives every feature shape without building a model (the mapper config needs them).

Precision: the paper preset runs TimeChat's visual side the way TimeChat does (``precision="fp16"``:
EVA-ViT-g Conv/Linear weights in fp16, ViT + Q-Formers under fp16 autocast, LayerNorms in fp32);
CAVP and AudioMAE run in fp32 as in Diff-Foley and AudioLDM-2. Use e.g.
``replace(preset, timechat=replace(preset.timechat, precision="bf16"))`` on hardware without fast fp16.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace

from extractors.audiomae import AudioMAEConfig
from extractors.cavp import CAVPConfig
from extractors.clip import ClipConfig
from extractors.timechat import BUILTIN_TOKENIZER, TimeChatConfig

# Bump when a code change alters the features of an unchanged preset, so old caches are refused.
# 2: AudioMAE's random pos_embed on AudioMAE's own (swapped) grid; frames resized on uint8 like
#    PIL / decord; AudioMAE waveforms padded to 10.24 s before the fbank (AudioMAEConfig.pad_waveform).
FEATURE_VERSION = 2


@dataclass(frozen=True)
class FeatureDims:
    """Shapes of one clip's features, derived from a preset."""

    num_frames: int  # CAVP steps = frames sampled from the clip (40)
    cavp_dim: int  # 512
    timechat_dim: int  # 768
    num_windows: int  # video Q-Former windows (2 for 40 frames)
    timechat_tokens: int  # num_windows * video queries (64)
    num_audio_tokens: int  # AudioMAE target tokens (8)
    audio_token_dim: int  # 768


@dataclass(frozen=True)
class ExtractorPreset:
    name: str
    clip: ClipConfig = field(default_factory=ClipConfig)
    cavp: CAVPConfig = field(default_factory=CAVPConfig)
    timechat: TimeChatConfig = field(default_factory=TimeChatConfig)
    audiomae: AudioMAEConfig = field(default_factory=AudioMAEConfig)
    audioldm2: str = "cvssp/audioldm2"  # hub id / folder of the AudioLDM-2 pipeline, or "tiny"
    weights_dir: str | None = None  # folder with the released extractor checkpoints; None = random init
    seed: int = 0  # torch seed before building the models (identical random weights everywhere)

    def __post_init__(self):
        if self.clip.sample_rate != self.audiomae.sample_rate:
            raise ValueError(f"clip sample_rate {self.clip.sample_rate} != AudioMAE's {self.audiomae.sample_rate}")
        if self.clip.num_frames > self.timechat.max_frame_pos:
            raise ValueError(f"{self.clip.num_frames} frames exceed TimeChat's max_frame_pos "
                             f"{self.timechat.max_frame_pos}")

    @property
    def dims(self) -> FeatureDims:
        t = self.clip.num_frames
        return FeatureDims(
            num_frames=t,
            cavp_dim=self.cavp.out_dim,
            timechat_dim=self.timechat.hidden,
            num_windows=self.timechat.num_windows(t),
            timechat_tokens=self.timechat.num_tokens(t),
            num_audio_tokens=self.audiomae.num_tokens,
            audio_token_dim=self.audiomae.embed_dim,
        )

    def to_dict(self) -> dict:
        """JSON-able description (tuples become lists when serialised)."""
        return asdict(self)

    def fingerprint(self) -> str:
        """Short stable hash of everything that determines the features.

        ``weights_dir`` enters only as "pretrained or not": the same weights in another folder give
        the same features, random and released weights do not.
        """
        data = self.to_dict()
        data["weights_dir"] = self.weights_dir is not None
        data["feature_version"] = FEATURE_VERSION
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


PRESETS: dict[str, ExtractorPreset] = {}


def register_preset(preset: ExtractorPreset, overwrite: bool = False) -> ExtractorPreset:
    if preset.name in PRESETS and not overwrite:
        raise KeyError(f"preset {preset.name!r} already registered")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> ExtractorPreset:
    """The registered preset; ``paper`` re-reads ``MFM_WEIGHTS`` so the variable can be set late."""
    if name not in PRESETS:
        raise KeyError(f"unknown extractor preset {name!r}; known: {sorted(PRESETS)}")
    preset = PRESETS[name]
    if name == "paper":
        preset = replace(preset, weights_dir=os.environ.get("MFM_WEIGHTS") or None)
    return preset


def feature_dims(preset: ExtractorPreset | str) -> FeatureDims:
    """Feature shapes of a preset (or preset name) without building any model."""
    return (get_preset(preset) if isinstance(preset, str) else preset).dims


register_preset(ExtractorPreset(
    name="paper",
    timechat=TimeChatConfig(precision="fp16"),  # TimeChat's vit_precision="fp16" + autocast
    weights_dir=os.environ.get("MFM_WEIGHTS") or None,
))

register_preset(ExtractorPreset(
    name="tiny",
    clip=ClipConfig(),  # same timing as the paper: 4 fps x 10 s = 40 frames, 16 kHz
    cavp=CAVPConfig(image_size=64, base_channels=8, stage_blocks=(1, 1, 1, 1), out_dim=32),
    timechat=TimeChatConfig(
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
    audiomae=AudioMAEConfig(embed_dim=32, depth=4, num_heads=2, average_blocks=(1, 2, 3)),  # 1024 x 128 in, 8 tokens
    audioldm2="tiny",
))
