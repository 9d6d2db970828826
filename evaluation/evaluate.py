"""Scoring a folder of generated audio against its references: embed (cached), pair, compute.

Which rows enter which metric follows av-benchmark's ``av_bench/evaluate.py`` (paired mode):
FD-PANN, FD-VGG and ISC-PANNS use every generated and every reference file; FD-PASST, KL-*,
ISC-PASST, IB-Score and DeSync use the pairs. Rows are in the order of the generated files'
names (what av-benchmark's sorted glob gives; IS depends on the order through its shuffle).

Where this differs from av-benchmark, on purpose: files pair by exact name (or the explicit
``vggsound`` rule), never by slicing names by length; a file that cannot be read or is too short
for an embedder is reported by name and left out, never replaced by the next file; FD returns
NaN with a warning where av-benchmark returns -1.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from evaluation import metrics as maths
from evaluation.audio import AudioReadError, load_audio
from evaluation.embedders import AudioEmbedder
from evaluation.embedding_cache import EmbeddingCache, embedder_key
from evaluation.pairing import Pairing
from extractors.file_hash import file_sha256

# metric name (the --metrics choice) -> the embedder it needs; the keys of metrics.json follow av-benchmark
METRICS = {
    "fd_passt": "passt", "fd_panns": "panns", "fd_vggish": "vggish",
    "kl_panns": "panns", "kl_passt": "passt", "is_panns": "panns", "is_passt": "passt",
}  # fmt: skip
AUDIO_METRICS = tuple(METRICS)
# the paper's column order first (FD-PaSST, IS, IB-score, DeSync), then the rest av-benchmark reports
TABLE_ORDER = ("FD-PASST", "ISC-PANNS-mean", "IB-Score-x100", "DeSync", "FD-PANN", "FD-VGG",
               "KL-PANNS-softmax", "KL-PASST-softmax", "ISC-PANNS-std", "ISC-PASST-mean", "ISC-PASST-std")


@dataclass
class Embedded:
    """One embedder's outputs for a list of files."""

    outputs: dict[Path, dict[str, np.ndarray]] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)  # file -> one-line reason
    embedded: int = 0  # files run through the model now
    cached: int = 0  # files found in the embedding cache


# load(files) -> ({file: input tensor}, {file: one-line reason}); run(inputs) -> the same with outputs
Load = Callable[[list[Path]], tuple[dict[Path, torch.Tensor], dict[Path, str]]]
Run = Callable[[dict[Path, torch.Tensor]], tuple[dict[Path, dict[str, np.ndarray]], dict[Path, str]]]
LOADING_THREADS = 4  # files decoded and resampled at once (soundfile and torch release the GIL)


def cached_embed(files: list[Path], hashes: dict[Path, str], cache: EmbeddingCache | None, load: Load, run: Run,
                 batch_size: int) -> Embedded:
    """Outputs for ``files``: from the cache where their content was seen before, else loaded and
    run one batch of distinct contents at a time, each batch added to the cache as soon as it is
    done (an interrupted run keeps it). The next batch loads while the model runs this one, so the
    model does not wait for files. Failures are not cached: a rerun tries them again."""
    stored = cache.load() if cache is not None else {}
    result = Embedded()
    todo: dict[str, list[Path]] = {}  # content -> the files holding it
    for path in files:
        if hashes[path] in stored:
            result.cached += 1
        else:
            todo.setdefault(hashes[path], []).append(path)
    contents = list(todo)
    batches = [contents[i: i + batch_size] for i in range(0, len(contents), batch_size)]
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        pending = prefetch.submit(load, [todo[c][0] for c in batches[0]]) if batches else None
        for index, batch in enumerate(batches):
            loaded, failed = pending.result()
            if index + 1 < len(batches):
                pending = prefetch.submit(load, [todo[c][0] for c in batches[index + 1]])
            outputs, run_failed = run(loaded)
            failed = {**failed, **run_failed}
            new = {}
            for content in batch:
                first = todo[content][0]
                if first in failed:
                    result.failed.update({p: failed[first] for p in todo[content]})
                else:
                    new[content] = outputs[first]
                    result.embedded += len(todo[content])
            if cache is not None:
                cache.add(new)
            stored.update(new)
    result.outputs = {p: stored[hashes[p]] for p in files if p not in result.failed}
    return result


def load_each(paths: list[Path], read: Callable[[Path], torch.Tensor], errors=(AudioReadError,)) -> tuple[dict, dict]:
    """``read`` every file (a few at once); the ones that raise ``errors`` are failures, with their line."""
    loaded, failed = {}, {}

    def attempt(path: Path):
        try:
            return path, read(path), None
        except errors as error:
            return path, None, str(error).splitlines()[0]

    with ThreadPoolExecutor(max_workers=LOADING_THREADS) as pool:
        for path, tensor, reason in pool.map(attempt, paths):
            if reason is None:
                loaded[path] = tensor
            else:
                failed[path] = reason
    return loaded, failed


def run_by_shape(loaded: dict[Path, torch.Tensor], call, name: str) -> tuple[dict, dict]:
    """``call`` on batches of equal-shaped inputs (av-benchmark does not pad, so a batch is one
    shape); a ValueError (e.g. too short for a front end) fails that batch's files, naming ``name``."""
    groups: dict[tuple, list[Path]] = {}
    for path, tensor in loaded.items():
        groups.setdefault(tuple(tensor.shape), []).append(path)
    outputs, failed = {}, {}
    for group in groups.values():
        try:
            out = call(torch.stack([loaded[p] for p in group]))
        except ValueError as error:
            failed.update({p: f"{p}: {name}: {str(error).splitlines()[0]}" for p in group})
            continue
        outputs.update({p: {k: v[i].cpu().numpy() for k, v in out.items()} for i, p in enumerate(group)})
    return outputs, failed


def embedding_cache(cache_root, name: str, preset: str, config: dict, protocol: dict) -> EmbeddingCache | None:
    return EmbeddingCache(cache_root, embedder_key(name, preset, config, protocol)) if cache_root is not None else None


def lazy(build: Callable[[], torch.nn.Module]) -> Callable[[], torch.nn.Module]:
    """The model, built on first use: a run that finds everything cached builds nothing."""
    built = []

    def get():
        if not built:
            built.append(build())
        return built[0]

    return get


def embed_audio_files(embedder: AudioEmbedder, preset: str, files: list[Path], hashes: dict[Path, str], *,
                      audio_length: float | None, cache_root=None, device="cpu", batch_size: int = 16,
                      weights_dir=None) -> Embedded:
    """``embedder``'s outputs for audio files read the av-benchmark way at its rate (cached)."""
    protocol = {"audio_length": audio_length, "loader": "av-benchmark: mono, mean removed, resampled, truncated"}
    cache = embedding_cache(cache_root, embedder.name, preset, embedder.config_dict(preset), protocol)
    model = lazy(lambda: embedder.build(preset, weights_dir, device))
    sample_rate = embedder.sample_rate(preset)
    return cached_embed(
        files, hashes, cache,
        load=lambda paths: load_each(paths, lambda p: load_audio(p, sample_rate, audio_length)),  # (S,) each
        run=lambda loaded: run_by_shape(loaded, lambda x: embedder.call(model(), x.to(device)), embedder.name),
        batch_size=batch_size,
    )  # fmt: skip


def _stack(outputs: dict[Path, dict], files: list[Path], name: str) -> np.ndarray:
    return np.stack([outputs[f][name] for f in files])


def audio_metrics(chosen: list[str], pairing: Pairing, generated: dict[str, Embedded],
                  reference: dict[str, Embedded]) -> dict[str, float]:
    """av-benchmark's audio metrics from embedded files (``generated`` / ``reference``: by embedder)."""
    out: dict[str, float] = {}

    def every(embedder: str, side: dict) -> list[Path]:
        return sorted(side[embedder].outputs, key=lambda p: p.stem)

    def paired(embedder: str) -> tuple[list[Path], list[Path]]:
        ok = [(g, r) for _, g, r in pairing.pairs
              if g in generated[embedder].outputs and r in reference[embedder].outputs]
        return [g for g, _ in ok], [r for _, r in ok]

    if "fd_panns" in chosen:
        g, r = every("panns", generated), every("panns", reference)
        out["FD-PANN"] = maths.frechet_distance(_stack(generated["panns"].outputs, g, "embedding"),
                                                _stack(reference["panns"].outputs, r, "embedding"))
    if "fd_vggish" in chosen:  # every 0.96 s patch of every file is one sample
        g, r = every("vggish", generated), every("vggish", reference)
        out["FD-VGG"] = maths.frechet_distance(
            np.concatenate([generated["vggish"].outputs[f]["embedding"] for f in g]),
            np.concatenate([reference["vggish"].outputs[f]["embedding"] for f in r]))
    if {"fd_passt", "kl_passt", "is_passt"} & set(chosen):
        g, r = paired("passt")
        if "fd_passt" in chosen:
            out["FD-PASST"] = maths.frechet_distance(_stack(generated["passt"].outputs, g, "embedding"),
                                                     _stack(reference["passt"].outputs, r, "embedding"))
        if "kl_passt" in chosen:
            out["KL-PASST-softmax"] = maths.kl_divergence(_stack(generated["passt"].outputs, g, "logits"),
                                                          _stack(reference["passt"].outputs, r, "logits"))["softmax"]
        if "is_passt" in chosen:
            out["ISC-PASST-mean"], out["ISC-PASST-std"] = maths.inception_score(_stack(generated["passt"].outputs, g, "logits"))
    if "kl_panns" in chosen:
        g, r = paired("panns")
        out["KL-PANNS-softmax"] = maths.kl_divergence(_stack(generated["panns"].outputs, g, "logits"),
                                                      _stack(reference["panns"].outputs, r, "logits"))["softmax"]
    if "is_panns" in chosen:
        g = every("panns", generated)
        out["ISC-PANNS-mean"], out["ISC-PANNS-std"] = maths.inception_score(_stack(generated["panns"].outputs, g, "logits"))
    return out


def format_table(values: dict[str, float]) -> str:
    """One markdown row of the metrics present, in the paper's column order."""
    columns = [name for name in TABLE_ORDER if name in values] + sorted(set(values) - set(TABLE_ORDER))
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    row = "| " + " | ".join(f"{values[c]:.4g}" for c in columns) + " |"
    return "\n".join((head, rule, row))


def file_hashes(files: list[Path]) -> dict[Path, str]:
    return {path: file_sha256(path) for path in files}
