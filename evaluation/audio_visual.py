"""The two metrics that look at the video too: IB-Score (ImageBind) and DeSync (Synchformer).

As in av-benchmark, the video side is the reference video, the audio side the generated audio:
each is embedded on its own (and cached by content), then pairs are compared.

Inputs, as av-benchmark prepares them (see evaluation/imagebind_inputs.py and synchformer_inputs.py):
- ImageBind video: ffmpeg ``fps=0.5`` frames, the first ``int(0.5 · audio_length)``; audio: the whole
  file, every channel, at 16 kHz (``torchaudio.functional.resample``), no mean removal.
- Synchformer video: ffmpeg ``fps=25`` frames of the first ``audio_length`` seconds; audio: mono
  16 kHz, no mean removal, cut to ``audio_length``. A clip is scored on segments [:14] and [-14:]
  of the segments both streams have, so it needs 14 (4.8 s); av-benchmark instead drops any file
  shorter than ``audio_length``. Frames are picked by ffmpeg's fps-filter rule on decord's frame
  times (``imagebind_inputs.fps_filter_indices``), not decoded through ffmpeg's filter graph.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from evaluation import imagebind, synchformer
from evaluation import metrics as maths
from evaluation.audio import load_audio
from evaluation.evaluate import Embedded, cached_embed, embedding_cache, lazy, load_each, run_by_shape
from evaluation.imagebind_inputs import fps_filter_indices, num_video_frames, to_model_rate
from evaluation.synchformer_inputs import audio_input, video_input
from extractors.video import MediaReadError, read_audio_samples, read_frames


def _frames(path: Path, fps: float, count: int) -> torch.Tensor:
    """(T <= count, H, W, 3) uint8: the first ``count`` frames of ffmpeg's ``fps`` stream."""
    frames = read_frames(path, lambda starts, end: fps_filter_indices(starts.tolist(), float(end), fps)[:count])
    return torch.from_numpy(frames)


def _raw_audio(path: Path) -> torch.Tensor:
    """(C, N) float32 at 16 kHz, every channel, nothing removed: ImageBind's loader."""
    data, rate = read_audio_samples(path)  # (N, C)
    return to_model_rate(torch.from_numpy(np.ascontiguousarray(data.T)), rate)


MEDIA_ERRORS = (MediaReadError, ValueError)  # unreadable or unusable files: skipped and named


def imagebind_embeddings(videos: list[Path], audios: list[Path], hashes: dict[Path, str], preset: str, *,
                         audio_length: float, cache_root=None, device="cpu", batch_size: int = 8,
                         weights_dir=None) -> tuple[Embedded, Embedded]:
    """(reference videos, generated audio) ImageBind embeddings (``embedding``: (1024,) each)."""
    config = dataclasses.asdict(imagebind.PRESETS[preset])
    model = lazy(lambda: imagebind.build(preset, weights_dir).to(device).eval())
    count = num_video_frames(audio_length)

    def load_video(paths):  # (T, 3, H, W) uint8 each
        return load_each(paths, lambda p: _frames(p, 0.5, count).permute(0, 3, 1, 2), MEDIA_ERRORS)

    def run_video(loaded):
        return run_by_shape(loaded, lambda x: {"embedding": imagebind.embed_video(model(), x)["embedding"]}, "imagebind")

    def run_audio(loaded):
        return run_by_shape(loaded, lambda x: {"embedding": imagebind.embed_audio(model(), x)["embedding"]}, "imagebind")

    protocol = {"audio_length": audio_length}
    video = cached_embed(videos, hashes, embedding_cache(cache_root, "imagebind_video", preset, config, protocol),
                         load_video, run_video, batch_size)
    audio = cached_embed(audios, hashes, embedding_cache(cache_root, "imagebind_audio", preset, config, {}),
                         lambda paths: load_each(paths, _raw_audio, MEDIA_ERRORS), run_audio, batch_size)
    return video, audio


def synchformer_features(videos: list[Path], audios: list[Path], hashes: dict[Path, str], preset: str, *,
                         audio_length: float, cache_root=None, device="cpu", batch_size: int = 8,
                         weights_dir=None) -> tuple[Embedded, Embedded, callable]:
    """(reference video features (S, 8, D), generated audio features (S, 6, D), the model getter)."""
    cfg = synchformer.PRESETS[preset]
    config = dataclasses.asdict(cfg)
    model = lazy(lambda: synchformer.build(preset, weights_dir).to(device).eval())
    frames = round(cfg.fps * audio_length)

    def load_video(paths):  # (T, H, W, 3) uint8 each
        return load_each(paths, lambda p: _frames(p, cfg.fps, frames), MEDIA_ERRORS)

    def load_audio_files(paths):  # (S,) each: mono 16 kHz, no mean removal, cut to audio_length
        return load_each(paths, lambda p: load_audio(p, cfg.sample_rate, audio_length, remove_mean=False), MEDIA_ERRORS)

    def run_video(loaded):
        return run_by_shape(loaded, lambda x: {"features": synchformer.video_features(model(), video_input(x, cfg))},
                            "synchformer")

    def run_audio(loaded):
        return run_by_shape(loaded, lambda x: {"features": synchformer.audio_features(model(), audio_input(x, cfg))},
                            "synchformer")

    protocol = {"audio_length": audio_length}
    video = cached_embed(videos, hashes, embedding_cache(cache_root, "synchformer_video", preset, config, protocol),
                         load_video, run_video, batch_size)
    audio = cached_embed(audios, hashes, embedding_cache(cache_root, "synchformer_audio", preset, config, protocol),
                         load_audio_files, run_audio, batch_size)
    return video, audio, model


def ib_score(pairs: list[tuple[Path, Path]], video: Embedded, audio: Embedded) -> float:
    """Mean cosine over (generated audio, reference video) pairs both sides of which were embedded."""
    ok = [(a, v) for a, v in pairs if a in audio.outputs and v in video.outputs]
    return maths.ib_score(np.stack([video.outputs[v]["embedding"] for _, v in ok]),
                          np.stack([audio.outputs[a]["embedding"] for a, _ in ok]))


def desync(pairs: list[tuple[Path, Path]], video: Embedded, audio: Embedded, model, failed: dict[Path, str]) -> float:
    """av-benchmark's DeSync over the pairs; a pair with fewer than 14 common segments goes to ``failed``."""
    window = model().config.window_segments if pairs else 0
    firsts, lasts = [], []
    for a, v in pairs:
        if a not in audio.outputs or v not in video.outputs:
            continue
        vf, af = video.outputs[v]["features"], audio.outputs[a]["features"]
        segments = min(len(vf), len(af))
        if segments < window:
            failed[a] = f"{a}: DeSync needs 4.8 s of audio and video ({window} segments); only {segments} in common"
            continue
        logits = synchformer.window_logits(model(), torch.from_numpy(vf[None, :segments]),
                                           torch.from_numpy(af[None, :segments]))
        firsts.append(logits["first"][0].cpu().numpy())
        lasts.append(logits["last"][0].cpu().numpy())
    if not firsts:
        return float("nan")
    return maths.desync(np.stack(firsts), np.stack(lasts))
