"""Extract features for many clips into a `FeatureCache`: batched, resumable, one or many processes.

Why it is shaped this way:

* Decoding runs in DataLoader workers and the frozen models in the main process, so decoding the
  next batch overlaps the models' work on this one (one clip per worker task, arrays handed over
  as tensors in shared memory). A batch is `batch_size` clips; clips of the same
  decoded resolution go through each model in one call (frames stacked), others fall back to
  smaller calls, so a folder of mixed resolutions still works.
* When both video models take the same square size (the paper preset: 224), the workers also do
  the models' resize (`resize_frames`, the same uint8 kernel, so the features are identical): it
  runs once per clip instead of once per model, off the main process, as the frames are decoded (a
  clip never holds 40 full-size frames), and fewer bytes cross from the workers and to the GPU
  (4.6x fewer for 360p video). Otherwise each model resizes the decoded frames itself.
* Finished clips are flushed to a new cache shard every `shard_size` clips (written atomically), so
  a killed job (even `kill -9`) loses at most one shard of work per process, and a rerun skips every
  clip already in the cache: nothing is lost, nothing is duplicated.
* One job writes a cache at a time: rank 0 takes the cache's lock (`FeatureCache.lock`) for the
  whole job, so a second extraction into the same folder is refused (`CacheBusyError`) instead of
  writing every clip again beside the first and deleting its half-written shards. Only the lock
  holder cleans temporaries and moves unreadable shards aside (their clips are extracted again).
  Given a preset instead of models, the models are built only once the cache is claimed, so a busy
  or mismatched cache fails in seconds.
* Many processes (Lightning Fabric, DDP: `--devices N --num-nodes M`): rank 0 claims and prepares the
  cache and reads which clips are done while the other ranks wait, then every rank takes its
  deterministic share of the rest (`todo[rank::world_size]`, no sampler padding, so no clip is
  processed twice) and writes its own shards and failure log; rank 0 releases the lock after every
  rank has finished. The cache merges the shards of all ranks when loaded.
* A bad file is data, not a bug: it is recorded with its one-line reason, skipped, and listed in the
  report, which rank 0 returns for all ranks. Frames too small or too large (extractors/media_limits.py)
  are refused from the file's header, before anything is decoded. Training extraction
  (`require_audio=True`) needs the audio target and skips clips without an audio track (reported);
  inference extraction keeps them and stores no AudioMAE target for them (see extractors/cache.py).
"""
from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from extractors.cache import FeatureCache
from extractors.frames import shared_frame_size, square_frames  # noqa: F401 (square_frames: benchmarks import it here)
from extractors.envelope import audio_envelope
from extractors.manifest import ClipItem
from extractors.motion import MOTION_FEATURE
from extractors.presets import AUDIO_TARGET, ENVELOPE_TARGET, TARGETS, ExtractorPreset
from extractors.video import DecodedClip, VideoReadError, read_clip

log = logging.getLogger(__name__)


@dataclass
class ExtractionReport:
    extracted: int = 0
    skipped_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason)
    duplicate_ids: int = 0  # input rows ignored because an earlier row has the same id
    quarantined: list[str] = field(default_factory=list)  # unreadable shards moved to CACHE/corrupt/
    seconds: float = 0.0  # wall time of the slowest process
    processes: int = 1

    def summary(self, max_listed: int = 50) -> str:
        """One line of counts, then one line per failed clip (at most `max_listed`)."""
        rate = f", {self.extracted / self.seconds:.2f} clips/s" if self.seconds > 0 and self.extracted else ""
        text = (f"extracted {self.extracted} clips, {self.skipped_done} already cached, {len(self.failed)} failed "
                f"({self.processes} process{'es' if self.processes > 1 else ''}, {self.seconds:.1f} s{rate})")
        if self.duplicate_ids:
            text += f"\n  ignored {self.duplicate_ids} input rows whose id repeats an earlier row (ids must be unique)"
        text += "".join(f"\n  moved unreadable shard to {path} (its clips are extracted again)" for path in self.quarantined)
        text += "".join(f"\n  failed: {reason}" for _, reason in self.failed[:max_listed])
        if len(self.failed) > max_listed:
            text += f"\n  ... and {len(self.failed) - max_listed} more failed (all in the cache's failures-rank*.jsonl)"
        return text

    @classmethod
    def combine(cls, reports: list["ExtractionReport"]) -> "ExtractionReport":
        """One report for all ranks (each rank reports the same skipped/duplicate counts)."""
        return cls(
            extracted=sum(r.extracted for r in reports),
            skipped_done=reports[0].skipped_done,
            failed=[f for r in reports for f in r.failed],
            duplicate_ids=reports[0].duplicate_ids,
            quarantined=reports[0].quarantined,
            seconds=max(r.seconds for r in reports),
            processes=len(reports),
        )


# ----------------------------------------------------------------------------------------------
# decoding (DataLoader workers)


@dataclass
class Decoded:
    item: ClipItem
    clip: DecodedClip | None  # frames (T, H, W, 3) uint8 and audio (S,) as tensors; None when decoding failed
    error: str | None  # one line "{path}: {reason}"


class DecodeDataset(Dataset):
    """Decodes one clip per item in a worker; a bad file comes back as an error string, never raises.

    Audio is decoded when the file has a track (`with_audio="optional"`); whether a missing track is
    an error is the caller's decision (training vs inference extraction).
    """

    def __init__(self, items: list[ClipItem], clip_config, frame_size: int | None = None):
        self.items, self.clip_config, self.frame_size = items, clip_config, frame_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded:
        item = self.items[index]
        try:
            clip = read_clip(item.path, self.clip_config, start=item.start, with_audio="optional", size=self.frame_size,
                             motion=True)
            # As tensors the arrays reach the main process through shared memory, not a pickle
            # through a pipe (~2x less copying; 27 MB of frames per 360p clip).
            clip.frames = torch.from_numpy(clip.frames)
            clip.audio = torch.from_numpy(clip.audio) if clip.audio is not None else None
            clip.motion = torch.from_numpy(clip.motion)
        except VideoReadError as error:
            return Decoded(item, None, str(error))
        except Exception as error:  # an input no check anticipated must not end a 200k-clip job
            log.warning("unexpected error decoding %s:\n%s", item.path, traceback.format_exc())
            return Decoded(item, None, f"{item.path}: unexpected decoding error ({type(error).__name__}: "
                                       f"{str(error).splitlines()[0] if str(error) else ''})")
        return Decoded(item, clip, None)


def _one(decoded: Decoded) -> Decoded:
    return decoded  # no collation: frames are stacked per resolution later, in encode_clips


def decoded_batches(items: list[ClipItem], clip_config, batch_size: int, num_workers: int,
                    frame_size: int | None = None) -> Iterator[list[Decoded]]:
    """Lists of `batch_size` `Decoded`, in `items` order, decoded by `num_workers` worker processes
    (frames resized to `frame_size` squared there, if given).

    Each worker task is one clip, not one batch: the first batch is decoded by all workers at once
    (a batch-per-task loader makes one worker decode it alone while the models wait), and about two
    batches stay in flight, so the workers keep decoding while the models run.
    """
    in_flight = -(-2 * batch_size // num_workers) if num_workers else None  # ceil(2 batches / workers) per worker
    loader = DataLoader(
        DecodeDataset(items, clip_config, frame_size),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_one,
        prefetch_factor=max(2, in_flight) if num_workers else None,
    )
    batch: list[Decoded] = []
    for decoded in loader:
        batch.append(decoded)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# ----------------------------------------------------------------------------------------------
# encoding (main process, the models' device)


def encode_clips(extractors, clips: list[DecodedClip]) -> list[dict]:
    """Features of each clip (frames, audio and motion as numpy arrays or tensors): {stream name: (tokens, dim),
    ..., motion: (clip.envelope_frames, MOTION_CHANNELS), audiomae: (N, Da) or None, envelope:
    (clip.envelope_frames, 1) or None}, as float32 numpy arrays (the cache casts them to its dtype).

    Clips whose frames have the same decoded size go through the video models in one call; clips
    with audio go through AudioMAE in one call.
    """
    out: list[dict] = [{MOTION_FEATURE: np.asarray(clip.motion, np.float32)} for clip in clips]  # read with the frames
    by_size: dict[tuple, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        by_size[clip.frames.shape].append(i)
    for indices in by_size.values():
        frames = torch.stack([torch.as_tensor(clips[i].frames) for i in indices])  # (b, T, H, W, 3) uint8
        streams = {name: value.float().cpu().numpy() for name, value in extractors.encode_video(frames).items()}
        for j, i in enumerate(indices):
            out[i].update({name: value[j] for name, value in streams.items()})  # (tokens, dim) each
    with_audio = [i for i, clip in enumerate(clips) if clip.audio is not None]
    if with_audio:
        waveform = torch.stack([torch.as_tensor(clips[i].audio) for i in with_audio])  # (b, num_samples) float32
        tokens = extractors.encode_audio(waveform).float().cpu().numpy()  # (b, N, Da)
        clip = extractors.preset.clip
        envelopes = audio_envelope(waveform.float(), clip.envelope_frame_samples, clip.envelope_frames)  # (b, frames)
        for j, i in enumerate(with_audio):
            out[i][AUDIO_TARGET] = tokens[j]
            out[i][ENVELOPE_TARGET] = envelopes[j].cpu().numpy()[:, None]  # (frames, 1)
    for features in out:
        for name in TARGETS:
            features.setdefault(name, None)
    return out


def _row(item: ClipItem, clip: DecodedClip, features: dict) -> dict:
    return {
        "id": item.id,
        "label": item.label,
        "split": item.split,
        "start": item.start,
        "duration": clip.duration,
        "num_valid_frames": clip.num_valid_frames,
        **features,
    }


def no_audio_reason(path) -> str:
    return (f"{path}: no audio track; a training extraction needs the audio target "
            f"(an inference extraction, --inference, keeps the clip)")


# ----------------------------------------------------------------------------------------------
# processes


class ProcessGroup:
    """This process's place among the extraction processes: alone, or one rank of a Fabric (DDP)."""

    def __init__(self, fabric=None):
        self.fabric = fabric
        self.rank = fabric.global_rank if fabric is not None else 0
        self.world_size = fabric.world_size if fabric is not None else 1

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank."""
        return self.fabric.broadcast(obj, src=0) if self.world_size > 1 else obj

    def gather(self, obj) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world_size == 1:
            return [obj]
        gathered = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, obj)
        return gathered


def _prepare(cache: FeatureCache, preset, dtype, require_audio: bool) -> tuple[set[str], list[str]]:
    """Under the lock: create/check the cache, clean up after killed jobs; the done ids and moved shards."""
    cache.initialise(preset, dtype=dtype, require_audio=require_audio)
    cache.clean_temporaries()  # safe: the lock says no other job is writing
    quarantined = [str(path) for path in cache.quarantine_corrupt()]
    return cache.completed_ids(), quarantined  # DuplicateRowsError: a cache that cannot load is not "done"


def _unique(items: list[ClipItem]) -> tuple[list[ClipItem], int]:
    seen: set[str] = set()
    unique = [item for item in items if not (item.id in seen or seen.add(item.id))]
    return unique, len(items) - len(unique)


# ----------------------------------------------------------------------------------------------
# the job


def extract_to_cache(
    items: list[ClipItem],
    cache: FeatureCache,
    extractors,
    num_workers: int = 0,
    shard_size: int = 64,
    batch_size: int = 8,
    require_audio: bool = True,
    dtype: str | None = None,
    progress: bool = True,
    fabric=None,
) -> ExtractionReport:
    """Extract every item not yet in `cache`; returns the report of all processes.

    `extractors`: a FrozenExtractors (moved to the fabric's device when `fabric` is given), or an
    ExtractorPreset to build them from once the cache is claimed. Raises CacheBusyError if another
    job holds the cache, CacheMismatchError / DuplicateRowsError if it cannot be resumed.
    `batch_size`: clips per model call. `require_audio`: training extraction (True) or inference
    extraction (False). `dtype`: stored feature dtype of a new cache (default float16).
    `fabric`: a launched `lightning.Fabric`; every rank calls this with the same arguments.
    """
    group = ProcessGroup(fabric)
    started = time.perf_counter()
    preset = extractors if isinstance(extractors, ExtractorPreset) else extractors.preset
    with _claimed(cache, preset, dtype, require_audio, group) as (done, quarantined):
        if isinstance(extractors, ExtractorPreset):
            from extractors.frozen import FrozenExtractors

            extractors = FrozenExtractors.from_preset(preset)
        if fabric is not None:
            extractors.to(fabric.device)
        report = _extract(items, done, cache, extractors, group, num_workers, shard_size, batch_size,
                          require_audio, progress)
        report.quarantined = quarantined
        report.seconds = time.perf_counter() - started
        return ExtractionReport.combine(group.gather(report))  # every rank has written: the lock may go


@contextlib.contextmanager
def _claimed(cache: FeatureCache, preset, dtype, require_audio: bool, group: ProcessGroup):
    """Rank 0 alone locks the cache for the block, creates or checks it and reads what is done, while
    the other ranks wait here, before anyone writes; every rank gets (done ids, moved shards)."""
    with contextlib.ExitStack() as held:
        result, error = None, None
        if group.rank == 0:
            try:
                held.enter_context(cache.lock())
                result = _prepare(cache, preset, dtype, require_audio)
            except Exception as e:  # re-raised on every rank below, so no rank waits forever
                error = e
        result, error = group.broadcast((result, error))
        if error is not None:
            raise error
        yield result


def _extract(items: list[ClipItem], done: set[str], cache: FeatureCache, extractors, group: ProcessGroup,
             num_workers: int, shard_size: int, batch_size: int, require_audio: bool, progress: bool) -> ExtractionReport:
    """This rank's share of the clips not `done`, extracted into its own shards; this rank's report."""
    preset = extractors.preset
    unique, duplicates = _unique(items)
    todo = [item for item in unique if item.id not in done]
    mine = todo[group.rank :: group.world_size]  # deterministic share; no padding, no overlap
    report = ExtractionReport(skipped_done=len(unique) - len(todo), duplicate_ids=duplicates)

    bar = tqdm(
        total=len(mine), unit="clip", desc="extract" if group.world_size == 1 else f"extract (rank 0 x {group.world_size})",
        unit_scale=group.world_size if group.world_size > 1 else False,  # rank 0's share, scaled: all ranks
        disable=not progress or group.rank != 0, dynamic_ncols=True,
    )
    rows: list[dict] = []
    batches = decoded_batches(mine, preset.clip, batch_size, num_workers, shared_frame_size(preset)) if mine else []
    for batch in batches:
        good = []
        for decoded in batch:
            if decoded.error is None and require_audio and decoded.clip.audio is None:
                decoded.error = no_audio_reason(decoded.item.path)
            if decoded.error is None:
                good.append(decoded)
                continue
            report.failed.append((str(decoded.item.path), decoded.error))
            cache.record_failure(decoded.item.id, str(decoded.item.path), decoded.error, rank=group.rank)
            log.warning("skipped %s", decoded.error)
        if good:
            features = encode_clips(extractors, [d.clip for d in good])
            rows += [_row(d.item, d.clip, f) for d, f in zip(good, features)]
            report.extracted += len(good)
        bar.update(len(batch))
        if len(rows) >= shard_size:
            cache.write_shard(rows, rank=group.rank)
            rows = []
    if rows:
        cache.write_shard(rows, rank=group.rank)
    bar.close()
    return report
