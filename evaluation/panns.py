"""PANNs Cnn14 at 16 kHz, the audio tagger behind av-benchmark's FD-PANN, KL-PANNS and ISC-PANNS.

The architecture is the one av-benchmark builds (``av_bench/extraction_models.py``: the class
``Cnn14`` of its vendored ``av_bench/panns/models.py`` with sample_rate 16000, window 512, hop 160,
64 mel bins, 50-8000 Hz, 527 classes; ``Cnn14_16k`` is not used), with the key names of the released
``Cnn14_16k_mAP=0.438.pth`` (zenodo record 3987831, under ``["model"]``):

    waveform (B, L) at 16 kHz
    -> power STFT (512, hop 160, periodic hann, centred, reflect) -> slaney mel 64 -> 10 log10(max(., 1e-10))
    -> bn0 (BatchNorm over the 64 mel bins) -> 6 conv blocks (2x [3x3 conv, BN, ReLU], 2x2 average pool;
       the last block does not pool) -> mean over mel -> max + mean over time
    -> fc1 + ReLU = "embedding" (2048) -> fc_audioset = "logits" (527, before the sigmoid)

What av-benchmark takes (``av_bench/extract.py``, ``av_bench/evaluate.py``): FD-PANN uses the output
named "2048" (``embedding`` here); KL-PANNS-softmax and ISC-PANNS use "logits", the pre-sigmoid
``fc_audioset`` output, through a softmax over the 527 classes. The clip is one forward pass over the
whole (8 s) waveform: no windowing, no padding. Dropout and SpecAugment exist only in training and the
model is always in eval mode here, so neither appears.

Faithfulness: ``tests/test_eval_panns.py`` against fixtures made by running av-benchmark's code
(``tests/fixtures/eval/panns.md``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation.panns_frontend import LogMel, PowerSpectrogram, min_samples
from evaluation.weights import ReleasedFile, build_embedder, find_released_file
# renamed here: this module's own read_checkpoint (the released file's layout) is built on it
from extractors.checkpoint import load_strict, read_checkpoint as read_weights_only


@dataclass(frozen=True)
class PannsConfig:
    sample_rate: int = 16000  # the rate the waveform must have (the mel matrix is built for it)
    window_size: int = 512  # FFT size = window length (32 ms)
    hop_size: int = 160  # 10 ms
    mel_bins: int = 64  # also bn0's width: it normalises each mel bin
    fmin: float = 50.0
    fmax: float = 8000.0
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)  # conv_block1..6; fc1 is channels[-1] wide
    classes_num: int = 527  # AudioSet

    def __post_init__(self):
        if self.mel_bins < 2 ** self.pools:
            raise ValueError(f"mel_bins={self.mel_bins}: {self.pools} 2x2 pools need at least {2 ** self.pools}")

    @property
    def pools(self) -> int:
        """2x2 average pools: after every conv block but the last."""
        return len(self.channels) - 1

    @property
    def embed_dim(self) -> int:
        return self.channels[-1]

    @property
    def min_samples(self) -> int:
        """Shortest waveform the network accepts: one frame left after the pools (4960 = 0.31 s)."""
        return min_samples(self.window_size, self.hop_size, 2 ** self.pools)


PRESETS: dict[str, PannsConfig] = {
    "tiny": PannsConfig(channels=(4, 8, 8, 16, 16, 32)),  # the real front end, narrow blocks
    # the real front end, narrow blocks, one output per toy-world class (toy_world.CLASSES
    # order): a classifier trained on toy-world audio (evaluation/toy_classifier.py); its weights ship in
    # SHIPPED. Narrow enough that the file (the fixed STFT kernels alone are 1 MB of it) stays small.
    "toy": PannsConfig(channels=(8, 16, 32, 32, 32, 32), classes_num=5),
    "paper": PannsConfig(),
}

# presets whose weights ship with the package (made by `python -m recipes.pretrain_toy_classifier`,
# facts in PROVENANCE.json beside the file)
SHIPPED: dict[str, Path] = {"toy": Path(__file__).parent / "toy_weights" / "panns_toy.safetensors"}

RELEASED = ReleasedFile(name="Cnn14_16k_mAP=0.438.pth",
                        source="https://zenodo.org/record/3987831 (Cnn14_16k_mAP%3D0.438.pth)",
                        md5="362fc5ff18f1d6ad2f6d464b45893f2c")


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each followed by BatchNorm and ReLU, then an average pool."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)  # floors odd sizes: the last frame / bin is dropped


class PannsModel(nn.Module):
    """Cnn14 (inference only: always in eval mode). ``forward(waveform (B, L))`` -> dict of
    ``embedding`` (B, channels[-1]) and ``logits`` (B, classes_num)."""

    def __init__(self, config: PannsConfig):
        super().__init__()
        self.config = config
        self.spectrogram_extractor = PowerSpectrogram(config.window_size, config.hop_size)
        self.logmel_extractor = LogMel(config.sample_rate, config.window_size, config.mel_bins, config.fmin,
                                       config.fmax)
        self.bn0 = nn.BatchNorm2d(config.mel_bins)
        for i, (c_in, c_out) in enumerate(zip((1,) + config.channels[:-1], config.channels), start=1):
            setattr(self, f"conv_block{i}", ConvBlock(c_in, c_out))
        self.fc1 = nn.Linear(config.embed_dim, config.embed_dim)
        self.fc_audioset = nn.Linear(config.embed_dim, config.classes_num)
        self.eval()

    def train(self, mode: bool = True) -> "PannsModel":
        return super().train(False)  # frozen embedder: BatchNorm always uses the released statistics

    def logmel(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, L) -> (B, 1, frames, mel_bins) log-mel after bn0, frames = L // hop + 1."""
        x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # (B, 1, T, M)
        return self.bn0(x.transpose(1, 3)).transpose(1, 3)  # bn0 runs on (B, M, T, 1): one channel per mel bin

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.logmel(waveform)  # (B, 1, T, M)
        blocks = len(self.config.channels)
        for i in range(1, blocks + 1):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < blocks else 1)  # (B, C_i, T / 2^i, M / 2^i)
        x = x.mean(dim=3)  # (B, C, T'): over mel
        x = x.max(dim=2).values + x.mean(dim=2)  # (B, C): over time
        embedding = F.relu(self.fc1(x))  # (B, C) av-benchmark's "2048"
        return {"embedding": embedding, "logits": self.fc_audioset(embedding)}  # logits (B, classes_num)


def build(preset: str = "tiny", weights_dir: str | os.PathLike | None = None, seed: int = 0) -> PannsModel:
    """tiny: seeded random weights (the front end is real); toy: the toy-world classifier shipped with
    the package (``SHIPPED``), strictly loaded; paper: the released file, strictly loaded."""
    return build_embedder("PANNs", PannsModel, PRESETS, load_released, preset, weights_dir, seed, shipped=SHIPPED)


def load_released(model: PannsModel, weights_dir: str | os.PathLike | None) -> None:
    """``Cnn14_16k_mAP=0.438.pth`` from ``weights_dir`` into ``model``: every key and shape, or one-line error."""
    path = find_released_file(RELEASED, weights_dir)
    load_checked(model, read_checkpoint(path), path)


def read_checkpoint(path) -> dict:
    """The ``["model"]`` state dict of a released-format file, read weights-only.

    audioset_tagging_cnn's ``pytorch/main.py`` saves its checkpoints as ``{"iteration", "model",
    "sampler"}``, and the sampler state holds numpy int64 arrays, which ``torch.load(weights_only=True)``
    refuses (every known loader of this file uses ``weights_only=False``; no copy of the file was at
    hand to confirm its layout). Rebuilding numpy arrays and scalars is allowlisted for this read
    (under numpy 1.x's pickle names too) and nothing else, so no code from the file runs.
    ``tests/test_eval_panns.py`` reads a file of that layout written with numpy 1.x's names.
    """
    reconstruct = np.arange(1).__reduce__()[0]  # numpy._core.multiarray._reconstruct (numpy 2)
    scalar = np.int64(0).__reduce__()[0]  # numpy._core.multiarray.scalar
    allowed = [reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct"),
               scalar, (scalar, "numpy.core.multiarray.scalar"), np.ndarray, np.dtype]
    allowed += [type(np.dtype(code)) for code in "?" + np.typecodes["AllInteger"] + np.typecodes["Float"]]
    with torch.serialization.safe_globals(allowed):
        checkpoint = read_weights_only(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ValueError(f"{path}: not a PANNs checkpoint (no 'model' state dict)")
    return checkpoint["model"]


def load_checked(model: PannsModel, state: dict, source) -> None:
    """Load ``state`` strictly; a mismatch is one line naming ``source`` and the first offending keys."""
    load_strict(model, state, source, "the PANNs Cnn14 16 kHz state dict")


@torch.inference_mode()
def embed(model: PannsModel, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
    """Batched Cnn14 outputs for (B, L) waveforms at ``model.config.sample_rate``, on the model's device.

    Returns float32 ``{"embedding": (B, channels[-1]), "logits": (B, classes_num)}``: the FD-PANN
    features and the pre-sigmoid logits KL-PANNS / ISC-PANNS take. Each row is one clip, used whole
    (av-benchmark: the first 8 s, not padded); rows of one batch must have the same length.
    """
    if waveform.dim() != 2 or not waveform.is_floating_point():
        raise ValueError(f"waveform: expected a float (batch, samples) tensor, got {tuple(waveform.shape)} "
                         f"{waveform.dtype}")
    config = model.config
    if waveform.shape[1] < config.min_samples:
        raise ValueError(f"waveform: {waveform.shape[1]} samples; Cnn14 needs at least {config.min_samples} "
                         f"({config.min_samples / config.sample_rate:.2f} s at {config.sample_rate} Hz)")
    device = next(model.parameters()).device
    out = model(waveform.to(device=device, dtype=torch.float32))
    return {name: value.float() for name, value in out.items()}
