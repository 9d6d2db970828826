"""The toy-world audio classifier: PANNs Cnn14 at its ``toy`` preset, trained on toy-world sound.

Why: on the toy world, FD-PANN, KL-PANNS and ISC-PANNS from random (``tiny``) weights measure
nothing, and the released Cnn14 knows AudioSet, not five synthetic classes. The same architecture,
narrow, with one output per toy class (``TOY_LABELS``, the order of
``toy_world.CLASSES``) and trained on toy audio, makes them mean something:
KL and IS read its 5-class logits, FD its embedding (``relu(fc1)``).

Training (``train_toy_classifier``; ``python -m recipes.pretrain_toy_classifier`` is its command line):
a toy world *plan* of its own seed (2; seed 0 is the mapper's toy world, seed 1 the toy decoder's),
rendered as sound only (``clip_window_audio``: the 10 s window extraction reads, zero-padded).
Every step takes a random crop of every clip (one length per batch, 4-10 s, holding at least one
event onset, so its label is audible) and augments it: a random gain (the class must not be read
from loudness), white noise at a random level, sometimes a low-pass or a short decaying-noise smear
(what a decoder + vocoder does to the spectrum and to transients). Everything random comes from
the seed: the same seed gives the same weights (on the same torch build and thread count).

The shipped file (``panns.SHIPPED["toy"]``, loaded strictly by ``panns.build("toy")``) and its
``PROVENANCE.json`` (command, seed, clips, epochs, held-out accuracy, sha256, torch version) are
written by ``save_classifier``, atomically.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evaluation import panns
from evaluation.panns import PRESETS, PannsModel
from evaluation.protocol import SCORED_SECONDS
from extractors.atomic import atomic_path, atomic_write_text
from extractors.clip import ClipConfig
from extractors.file_hash import file_sha256
from toy_world import CLASSES, clip_window_audio, plan_world

TOY_LABELS: tuple[str, ...] = tuple(c.label for c in CLASSES)  # logit k is TOY_LABELS[k]
WEIGHTS_FILE: Path = panns.SHIPPED["toy"]
PROVENANCE_NAME = "PROVENANCE.json"
PROVENANCE_FILE: Path = WEIGHTS_FILE.with_name(PROVENANCE_NAME)
DEFAULT_SEED = 2  # toy-world plan seeds: 0 the mapper's world, 1 the toy decoder's, 2 this classifier's


@dataclass(frozen=True)
class TrainConfig:
    seed: int = DEFAULT_SEED  # the plan's seed and every other random choice
    num_clips: int = 400  # clips planned (about 70% train, 15% val, 15% test)
    epochs: int = 8
    batch_size: int = 16
    crop_seconds: tuple[float, float] = (4.0, 10.0)  # range of the per-batch crop length
    learning_rate: float = 2e-3  # Adam, cosine decay to 0 over the run
    # soft targets keep the logit margins moderate, so KL over the softmax grades a wrong clip instead
    # of exploding on it
    label_smoothing: float = 0.1


@dataclass
class TrainedClassifier:
    model: PannsModel  # in eval mode
    config: TrainConfig
    accuracy: dict[str, float]  # held-out (the plan's test split): clean 10 s, clean 8 s, augmented 8 s
    split_sizes: dict[str, int]
    seconds: float  # wall time of the training loop
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch


@dataclass(frozen=True)
class ToyAudio:
    """A plan's clips as sound: ``audio`` (N, S) float32 at 16 kHz, ``labels`` (N,) class indices,
    ``splits`` (N,) train/val/test, ``onsets`` per clip (seconds from the window's start)."""

    audio: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    onsets: list[np.ndarray]

    def subset(self, split: str) -> "ToyAudio":
        keep = np.flatnonzero(self.splits == split)
        return ToyAudio(self.audio[keep], self.labels[keep], self.splits[keep], [self.onsets[i] for i in keep])


def render_toy_audio(num_clips: int, seed: int, clip: ClipConfig = ClipConfig()) -> ToyAudio:
    """Plan a toy world and render every clip's window (sound only, no video: about 2.5 ms a clip)."""
    if clip.sample_rate != PRESETS["toy"].sample_rate:
        raise ValueError(f"clip.sample_rate {clip.sample_rate}: the classifier reads {PRESETS['toy'].sample_rate} Hz")
    plan = plan_world(num_clips, seed, clip)
    specs = plan["clips"]
    index = {label: k for k, label in enumerate(TOY_LABELS)}
    onsets = []
    for spec in specs:  # event times are from the file's beginning; the window starts at spec["start"]
        times = np.asarray(spec["events"]["times"]) - spec["start"]
        onsets.append(times[(times >= 0) & (times < clip.seconds)])
    return ToyAudio(audio=np.stack([clip_window_audio(spec, clip) for spec in specs]),  # (N, S)
                    labels=np.array([index[spec["label"]] for spec in specs]),
                    splits=np.array([spec["split"] for spec in specs]), onsets=onsets)


# --------------------------------------------------------------------------------------------
# Crops and augmentation (numpy, from one Generator: reproducible by seed)
# --------------------------------------------------------------------------------------------


def crop_starts(onsets: list[np.ndarray], total: int, length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """(B,) start samples of ``length``-sample crops of ``total``-sample windows, each holding one of its
    clip's onsets and at least 0.1 s after it (uniform over the crops that do; any crop if none)."""
    starts = []
    for times in onsets:
        if len(times) == 0:
            starts.append(int(rng.integers(0, total - length + 1)))
            continue
        onset = round(float(rng.choice(times)) * rate)
        lo, hi = max(0, onset + rate // 10 - length), min(onset, total - length)
        starts.append(int(rng.integers(lo, max(lo, hi) + 1)))
    return np.minimum(np.array(starts), total - length)


def augment(batch: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """(B, L) float32 -> (B, L) float32, each row changed on its own:

    gain        -24 to +6 dB: loudness carries no class
    noise       white, 5-45 dB below the crop's RMS: a decoder's hiss (half the time added before the
                filters, so it is band-limited too, half after: a noise floor over a dull signal)
    low-pass    p 0.4, cutoff 2-7.5 kHz (500-Hz ramp): a vocoder's dull top end
    smear       p 0.3, direct sound + decaying noise (time constant 5-40 ms): smeared transients
    """
    rows, length = batch.shape
    freqs = np.fft.rfftfreq(length, 1 / rate)  # (L // 2 + 1,)
    out = np.empty((rows, length), np.float32)
    for i in range(rows):
        x = batch[i].astype(np.float64) * 10 ** (rng.uniform(-24, 6) / 20)  # (L,)
        rms = np.sqrt(np.mean(x ** 2)) + 1e-8
        noise = rms * 10 ** (-rng.uniform(5, 45) / 20) * rng.standard_normal(length)
        noise_first = rng.random() < 0.5
        if noise_first:
            x = x + noise
        spectrum = np.fft.rfft(x)
        if rng.random() < 0.4:
            cutoff = rng.uniform(2000, 7500)
            spectrum *= np.clip((cutoff + 250 - freqs) / 500, 0, 1)
        if rng.random() < 0.3:
            tau = rng.uniform(0.005, 0.04)
            t = np.arange(round(5 * tau * rate)) / rate
            tail = rng.standard_normal(len(t)) * np.exp(-t / tau) * rng.uniform(0.1, 0.5) / np.sqrt(tau * rate)
            response = np.zeros(length)
            response[0] = 1.0
            response[1: 1 + len(tail)] += tail[: length - 1]
            spectrum *= np.fft.rfft(response)  # circular: the tail (<= 0.2 s) wraps into the crop's start only
        x = np.fft.irfft(spectrum, n=length)
        out[i] = x if noise_first else x + noise
    return out


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train_toy_classifier(config: TrainConfig = TrainConfig(), log: Callable[[str], None] = print) -> TrainedClassifier:
    """Train PANNs at its toy preset on the train split of ``config.seed``'s plan; held-out accuracy
    on its test split. Deterministic: the same config (and torch build and thread count) gives the same
    weights."""
    rate = PRESETS["toy"].sample_rate
    data = render_toy_audio(config.num_clips, config.seed)
    train, test = data.subset("train"), data.subset("test")
    if len(train.labels) == 0 or len(test.labels) == 0:
        raise ValueError(f"{config.num_clips} clips leave an empty train or test split; plan more")
    rng = np.random.default_rng([config.seed, 1])  # crops and augmentation, from the seed
    with torch.random.fork_rng(devices=[]):  # the initial weights, without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = PannsModel(PRESETS["toy"])
    trainable = [p for p in model.parameters() if p.requires_grad]  # not the fixed STFT kernels and mel matrix
    optimizer = torch.optim.Adam(trainable, lr=config.learning_rate)
    batches_per_epoch = -(-len(train.labels) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * batches_per_epoch)
    total = train.audio.shape[1]
    lo, hi = (round(s * rate) for s in config.crop_seconds)
    losses, started = [], time.perf_counter()
    for epoch in range(config.epochs):
        # PannsModel.train() pins eval mode (a frozen embedder); training is the one place BatchNorm
        # must use batch statistics, so the module's own switch is called past that override.
        nn.Module.train(model, True)
        order, epoch_loss = rng.permutation(len(train.labels)), 0.0
        for b in range(batches_per_epoch):
            rows = order[b * config.batch_size: (b + 1) * config.batch_size]
            length = min(total, int(rng.integers(lo, hi + 1)))  # one crop length per batch: equal rows
            starts = crop_starts([train.onsets[i] for i in rows], total, length, rate, rng)
            crops = np.stack([train.audio[i, s: s + length] for i, s in zip(rows, starts)])  # (B, L)
            waveform = torch.from_numpy(augment(crops, rate, rng))
            logits = model(waveform)["logits"]  # (B, classes)
            loss = F.cross_entropy(logits, torch.from_numpy(train.labels[rows]), label_smoothing=config.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            epoch_loss += loss.item() * len(rows)
        losses.append(epoch_loss / len(train.labels))
        log(f"epoch {epoch + 1}/{config.epochs}: loss {losses[-1]:.4f} ({time.perf_counter() - started:.0f} s)")
    seconds = time.perf_counter() - started
    model.eval()
    scored = round(SCORED_SECONDS * rate)
    held_out_rng = np.random.default_rng([config.seed, 2])  # a fixed augmentation of the test clips
    accuracy = {
        "clean_10s": _accuracy(model, test.audio, test.labels),
        "clean_8s": _accuracy(model, test.audio[:, :scored], test.labels),
        "augmented_8s": _accuracy(model, augment(test.audio[:, :scored], rate, held_out_rng), test.labels),
    }
    sizes = {split: int(np.sum(data.splits == split)) for split in ("train", "val", "test")}
    return TrainedClassifier(model, config, accuracy, sizes, seconds, losses)


def _accuracy(model: PannsModel, audio: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(classify(model, audio) == labels))


# --------------------------------------------------------------------------------------------
# The shipped file and its provenance
# --------------------------------------------------------------------------------------------


def save_classifier(trained: TrainedClassifier, out_dir: str | Path, command: str) -> tuple[Path, Path]:
    """Write ``out_dir/panns_toy.safetensors`` and ``out_dir/PROVENANCE.json``, each atomically (the
    weights first: a provenance file always describes the weights beside it). Returns both paths."""
    from safetensors.torch import save

    out_dir = Path(out_dir)
    weights, provenance = out_dir / WEIGHTS_FILE.name, out_dir / PROVENANCE_NAME
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in trained.model.state_dict().items()}
    # one metadata key: safetensors keeps them in a hash map, so the order of two (and the file's sha256)
    # would change from run to run; the bytes are written as any file's (save_file makes it owner-only)
    with atomic_path(weights) as tmp:
        tmp.write_bytes(save(state, metadata={"labels": json.dumps(TOY_LABELS)}))
    facts = {
        "command": command,
        "what": "PANNs Cnn14 at the 'toy' preset (evaluation/panns.py), trained on toy-world audio",
        "labels": list(TOY_LABELS),
        "seed": trained.config.seed,
        "num_clips": trained.config.num_clips,
        "split_sizes": trained.split_sizes,
        "epochs": trained.config.epochs,
        "train_config": asdict(trained.config),
        "architecture": asdict(PRESETS["toy"]),
        "held_out_accuracy": trained.accuracy,
        "held_out": "the plan's test split; clean 10 s windows, their first 8 s, and those augmented once",
        "epoch_losses": [round(x, 5) for x in trained.losses],
        "training_seconds": round(trained.seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sha256": file_sha256(weights),
    }
    atomic_write_text(provenance, json.dumps(facts, indent=2) + "\n")
    return weights, provenance


# --------------------------------------------------------------------------------------------
# Using it
# --------------------------------------------------------------------------------------------


def load_toy_classifier() -> PannsModel:
    """The shipped classifier, in eval mode (``panns.build("toy")``: strict load of the package's file)."""
    return panns.build("toy")


def classify(model: PannsModel, waveforms_16k: np.ndarray | torch.Tensor) -> np.ndarray:
    """(B, S) float waveforms at 16 kHz -> (B,) int64 class indices into ``TOY_LABELS`` (argmax of the logits)."""
    waveform = torch.as_tensor(np.asarray(waveforms_16k, np.float32) if isinstance(waveforms_16k, np.ndarray)
                               else waveforms_16k)
    return panns.embed(model, waveform)["logits"].argmax(dim=1).cpu().numpy()
