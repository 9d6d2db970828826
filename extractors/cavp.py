"""CAVP video encoder (Diff-Foley): per-frame, audio-aligned visual features.

Architecture, from ``luosiallen/Diff-Foley`` ``inference/model/cavp_model.py`` (``CAVP_Inference``)
and ``cavp_modules.py`` (``ResNet3dSlowOnly(depth=50)``, mmaction2's SlowOnly ResNet3d):

* stem: Conv3d (1,7,7) stride (1,2,2) pad (0,3,3) + BN + ReLU, MaxPool3d (1,3,3) stride (1,2,2) pad (0,1,1);
* 4 stages of Bottleneck3d (3, 4, 6, 3 blocks, expansion 4, widths 64..512), "pytorch" style
  (the spatial stride 1,2,2,2 sits in the 3x3 conv); stages 3 and 4 are "inflated" with style
  3x1x1: their blocks' first conv has kernel (3,1,1) pad (1,0,0), i.e. the only temporal mixing;
  no temporal stride anywhere and no pool2, so T frames in give T steps out;
* ``AdaptiveAvgPool2d((1,1))`` on the (B, C, T, H, W) map = mean over H, W per step;
* ``video_project_head`` Linear(2048 -> 512), then L2 normalisation per step
  (``encode_video(normalize=True, pool=False)`` as Diff-Foley's feature extractor calls it; the
  MaxPool1d(16) head is only used for contrastive training).

Input: RGB frames squash-resized to 224x224, scaled to [0, 1], *no* mean/std (Diff-Foley's
``transforms.Resize + ToTensor``). Diff-Foley's extractor (``demo_util.Extract_CAVP_Features``)
feeds the model chunks of 40 frames (its notebook's ``batch_size``), each an independent forward
pass; a 10 s clip at 4 fps is exactly one chunk, which is what ``CAVPEncoder`` computes.
Temporal receptive field: each of the 9 inflated blocks (6 + 3) widens it by one frame on each
side, so a step sees +-9 frames (+-2.25 s at 4 fps). Consequently the black frames that pad a short
clip to 10 s also change the features of its last real frames; we keep that (features are computed
on the padded 40-frame clip, as in training) rather than encoding the real frames alone, so cached
and generation-time features always agree.

Submodules use mmcv's ``ConvModule`` naming (``.conv``, ``.bn``) so the released
``cavp_epoch66.ckpt`` loads without mmcv after stripping ``module.``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from extractors.checkpoint import check_keys, load_strict, read_checkpoint
from extractors.clip import ClipConfig
from extractors.encoders import StreamSpec, register_encoder
from extractors.frames import resize_frames

CAVP_CHECKPOINT = "cavp_epoch66.ckpt"
RELEASED_FILES = (CAVP_CHECKPOINT,)
CAVP_SOURCE = "Hugging Face repo SimianLuo/Diff-Foley, folder diff_foley_ckpt"


@dataclass(frozen=True)
class CAVPConfig:
    image_size: int = 224  # frames are squash-resized to image_size x image_size
    in_channels: int = 3
    base_channels: int = 64  # stem width; stage i has base * 2**i planes, x4 after expansion
    stage_blocks: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-50
    inflate: tuple[int, ...] = (0, 0, 1, 1)  # stages whose blocks get a (3,1,1) first conv
    spatial_strides: tuple[int, ...] = (1, 2, 2, 2)
    out_dim: int = 512  # video_project_head output (CAVP embedding size)
    bn_eps: float = 1e-5  # mmcv BN3d default

    def __post_init__(self):
        if not len(self.stage_blocks) == len(self.inflate) == len(self.spatial_strides):
            raise ValueError("stage_blocks, inflate and spatial_strides need one entry per stage")

    @property
    def feat_dim(self) -> int:
        """Backbone output channels: 4 * base * 2**(stages-1) = 2048 for ResNet-50."""
        return Bottleneck3d.expansion * self.base_channels * 2 ** (len(self.stage_blocks) - 1)

    def stream(self, num_frames: int) -> StreamSpec:
        """One L2-normalised ``out_dim`` vector per frame."""
        return StreamSpec.per_frame(self.out_dim, num_frames)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvModule(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> optional ReLU; mmcv's ConvModule with its key names."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, act: bool = True, eps: float = 1e-5):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=eps)
        self.activate = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class Bottleneck3d(nn.Module):
    """mmaction2 Bottleneck3d, "pytorch" style, inflate style 3x1x1."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, spatial_stride: int, inflate: bool,
                 downsample: nn.Module | None, eps: float):
        super().__init__()
        k1, p1 = ((3, 1, 1), (1, 0, 0)) if inflate else ((1, 1, 1), (0, 0, 0))
        self.conv1 = ConvModule(inplanes, planes, k1, padding=p1, eps=eps)
        self.conv2 = ConvModule(planes, planes, (1, 3, 3), stride=(1, spatial_stride, spatial_stride),
                                padding=(0, 1, 1), eps=eps)
        self.conv3 = ConvModule(planes, planes * self.expansion, 1, act=False, eps=eps)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class ResNet3dSlowOnly(nn.Module):
    """(B, 3, T, H, W) -> (B, feat_dim, T): SlowOnly backbone + per-step spatial mean."""

    def __init__(self, cfg: CAVPConfig):
        super().__init__()
        eps = cfg.bn_eps
        self.conv1 = ConvModule(cfg.in_channels, cfg.base_channels, (1, 7, 7), stride=(1, 2, 2),
                                padding=(0, 3, 3), eps=eps)
        self.maxpool = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        inplanes = cfg.base_channels
        self.res_layers = []
        for i, (blocks, inflate, stride) in enumerate(zip(cfg.stage_blocks, cfg.inflate, cfg.spatial_strides)):
            planes = cfg.base_channels * 2 ** i
            downsample = None
            if stride != 1 or inplanes != planes * Bottleneck3d.expansion:
                downsample = ConvModule(inplanes, planes * Bottleneck3d.expansion, 1,
                                        stride=(1, stride, stride), act=False, eps=eps)
            layer = [Bottleneck3d(inplanes, planes, stride, bool(inflate), downsample, eps)]
            inplanes = planes * Bottleneck3d.expansion
            layer += [Bottleneck3d(inplanes, planes, 1, bool(inflate), None, eps) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            self.res_layers.append(f"layer{i + 1}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))  # (B, C, T, H/4, W/4)
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return x.mean(dim=(-2, -1))  # (B, feat_dim, T)


class CAVPEncoder(nn.Module):
    """Frames (B, T, 3, S, S) in [0, 1] -> L2-normalised CAVP features (B, T, out_dim)."""

    def __init__(self, cfg: CAVPConfig = CAVPConfig()):
        super().__init__()
        self.cfg = cfg
        self.video_encoder = ResNet3dSlowOnly(cfg)
        self.video_project_head = nn.Linear(cfg.feat_dim, cfg.out_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """mmaction2's ResNet3d random init (kaiming normal, fan_out, for convs; BN weight 1, bias 0).

        Only random (tiny) models see it. mmaction's ``zero_init_residual`` is left out: it zeroes the
        last BN of every residual branch, which would make a random model skip all 3x3 and temporal
        convolutions (PyTorch's default conv init instead gives features that barely depend on the input).
        """
        for m in self.video_encoder.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def preprocess(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> (B, T, 3, S, S) float in [0, 1], squash-resized (no crop, no mean/std)."""
        return resize_frames(frames_uint8, self.cfg.image_size) / 255.0

    def forward(self, frames: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``CAVP_Inference.encode_video(frames, normalize, pool=False)``: (B, T, 3, S, S) -> (B, T, out_dim)."""
        x = frames.permute(0, 2, 1, 3, 4)  # (B, 3, T, S, S)
        feat = self.video_encoder(x.to(self.video_project_head.weight.dtype))  # (B, C, T)
        feat = self.video_project_head(feat.transpose(1, 2))  # (B, T, out_dim)
        return F.normalize(feat, dim=-1) if normalize else feat  # eps 1e-12, per step

    def encode(self, frames_uint8: torch.Tensor, clip: ClipConfig) -> torch.Tensor:
        """The encoder contract (``extractors.encoders``): (B, T, H, W, 3) uint8 -> (B, T, out_dim) float32."""
        return self(self.preprocess(frames_uint8)).float()


# Keys of the contrastive CAVP checkpoint that video features do not use: the audio tower (Cnn14
# ``spec_encoder``; ``spec_project_head`` is an ``nn.Identity`` without keys) and the temperature.
CAVP_DROPPED_PREFIXES = ("spec_encoder.", "spec_project_head.")
CAVP_DROPPED_KEYS = ("logit_scale",)
CAVP_LAYOUT = "a Diff-Foley CAVP checkpoint of this config"  # what a mismatch says the file is not


def cavp_key_map(key: str) -> str | None:
    """One Diff-Foley CAVP key -> its ``CAVPEncoder`` key (``module.`` stripped), None if dropped on purpose."""
    key = key[len("module."):] if key.startswith("module.") else key
    if key in CAVP_DROPPED_KEYS or key.startswith(CAVP_DROPPED_PREFIXES):
        return None
    return key


def convert_cavp_checkpoint(state_dict: dict, cfg: CAVPConfig = CAVPConfig(), origin: str = "state dict") -> dict:
    """Diff-Foley CAVP checkpoint -> ``CAVPEncoder`` state dict, every key and shape checked.

    Unwraps ``{"state_dict": ...}``, strips the DDP ``module.`` prefix, keeps ``video_encoder.*`` and
    ``video_project_head.*`` and drops the audio side (``cavp_key_map``). Missing or unexpected keys
    and wrong shapes are a one-line ``StateDictMismatchError`` naming ``origin`` and the first of them.
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    out = {}
    for key, value in state_dict.items():
        new = cavp_key_map(key)
        if new is not None:
            out[new] = value
    with torch.device("meta"):  # the config's keys and shapes, no memory
        reference = CAVPEncoder(cfg)
    check_keys(reference.state_dict(), out, origin, CAVP_LAYOUT)
    return out


def read_cavp_checkpoint(path: str, cfg: CAVPConfig = CAVPConfig(), map_location="cpu") -> dict:
    """Read (weights-only) and convert ``cavp_epoch66.ckpt``; one-line error naming the file (and, when
    it is missing, where to get it). ``map_location="meta"``: every check, no tensor read."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CAVP checkpoint not found: {path} (download {CAVP_CHECKPOINT} from {CAVP_SOURCE})")
    return convert_cavp_checkpoint(read_checkpoint(path, map_location=map_location), cfg, origin=path)


def check_cavp_checkpoint(path: str, cfg: CAVPConfig = CAVPConfig()) -> None:
    """Everything ``load_cavp`` would refuse (a missing file, pickled objects, a file that is no checkpoint,
    wrong keys or shapes), as the same one-line error, without reading a weight or building the model:
    the file is unpickled weights-only onto the meta device. A command line calls it before any model
    is built."""
    read_cavp_checkpoint(path, cfg, map_location="meta")


def check_released(cfg: CAVPConfig, weights_dir: str) -> None:
    """:func:`check_cavp_checkpoint` on ``weights_dir``'s ``cavp_epoch66.ckpt``."""
    check_cavp_checkpoint(os.path.join(weights_dir, CAVP_CHECKPOINT), cfg)


def load_cavp(path: str, cfg: CAVPConfig = CAVPConfig()) -> CAVPEncoder:
    """Build ``CAVPEncoder`` from the released ``cavp_epoch66.ckpt`` (eval mode, frozen).

    The checkpoint is read and checked first; a refused file costs no model. The model is then built on
    the meta device and given the checkpoint's tensors (float32, as CAVP runs), so the weights are
    held once."""
    state = read_cavp_checkpoint(path, cfg)
    state = {key: value.float() if value.is_floating_point() else value for key, value in state.items()}
    with torch.device("meta"):
        model = CAVPEncoder(cfg)
    load_strict(model, state, path, CAVP_LAYOUT)
    return model.eval().requires_grad_(False)


def load_released(model: CAVPEncoder, weights_dir: str) -> None:
    """``cavp_epoch66.ckpt`` from ``weights_dir``, converted and strictly checked (``check_released``
    refuses a bad file the same way before ``model`` is built)."""
    path = os.path.join(weights_dir, CAVP_CHECKPOINT)
    load_strict(model, read_cavp_checkpoint(path, model.cfg), path, CAVP_LAYOUT)


register_encoder(CAVPConfig, CAVPEncoder, RELEASED_FILES, load_released)
