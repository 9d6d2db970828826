"""Extract features for many clips into a `FeatureCache`, resumably.

Decoding runs in DataLoader workers, overlapped with the frozen models in the main process.
Finished clips are flushed to a new cache shard every `shard_size` clips, so an interrupted job
loses at most one shard's worth of work, and a rerun skips every clip already in the cache. A bad
file is recorded with its reason and skipped; the job carries on.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from extractors.cache import FeatureCache
from extractors.clips import ClipItem
from extractors.video import VideoReadError, read_clip

log = logging.getLogger(__name__)


@dataclass
class ExtractionReport:
    extracted: int = 0
    skipped_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def summary(self) -> str:
        text = f"extracted {self.extracted} clips, {self.skipped_done} already cached, {len(self.failed)} failed"
        return text + "".join(f"\n  failed: {reason}" for _, reason in self.failed)


class _DecodeDataset(Dataset):
    """Decodes one clip per item in a worker; errors travel back as data, never as exceptions."""

    def __init__(self, items: list[ClipItem], clip_config, need_audio: bool):
        self.items, self.clip_config, self.need_audio = items, clip_config, need_audio

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        try:
            return item, read_clip(item.path, self.clip_config, start=item.start, with_audio=self.need_audio), None
        except VideoReadError as error:
            return item, None, str(error)


def extract_to_cache(
    items: list[ClipItem],
    cache: FeatureCache,
    extractors,
    num_workers: int = 0,
    shard_size: int = 64,
    progress: bool = True,
) -> ExtractionReport:
    """Extract every item not yet in `cache` (training extraction: the audio target is required)."""
    preset = extractors.preset
    cache.initialise(preset)
    cache.clean_temporaries()
    report = ExtractionReport()
    done = cache.completed_ids()
    todo = [item for item in items if item.id not in done]
    report.skipped_done = len(items) - len(todo)
    loader = DataLoader(
        _DecodeDataset(todo, preset.clip, need_audio=True),
        batch_size=None,  # one clip per item; the models batch its frames
        num_workers=num_workers,
        collate_fn=lambda sample: sample,
    )
    rows: list[dict] = []
    for item, clip, error in tqdm(loader, total=len(todo), unit="clip", disable=not progress, desc="extract"):
        if error is not None:
            report.failed.append((str(item.path), error))
            cache.record_failure(item.id, str(item.path), error)
            log.warning("skipped %s", error)
            continue
        rows.append(_features_row(item, clip, extractors))
        report.extracted += 1
        if len(rows) >= shard_size:
            cache.write_shard(rows)
            rows = []
    if rows:
        cache.write_shard(rows)
    return report


def _features_row(item: ClipItem, clip, extractors) -> dict:
    frames = torch.from_numpy(clip.frames)[None]  # (1, T, H, W, 3) uint8
    visual = extractors.encode_video(frames)
    audio = extractors.encode_audio(torch.from_numpy(clip.audio)[None])  # (1, N, Da)
    return {
        "id": item.id,
        "label": item.label,
        "split": item.split,
        "start": item.start,
        "duration": clip.duration,
        "cavp": _array(visual["cavp"][0]),
        "timechat": _array(visual["timechat"][0]),
        "timechat_spans": visual["timechat_spans"].numpy().astype(np.int32),
        "audiomae": _array(audio[0]),
    }


def _array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()  # the cache casts to its dtype on write
