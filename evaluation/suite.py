"""One evaluation run: pair the files, embed what is not cached, compute every chosen metric,
report what was skipped and why. ``recipes.evaluate`` is its command line."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.audio import AudioReadError, load_audio
from evaluation.embedders import AUDIO_EMBEDDERS, embedder_preset
from evaluation.evaluate import METRICS, audio_metrics, embed_audio_files, file_hashes, format_table
from evaluation.pairing import Pairing, pair_files, sample_name, unusable_reason
from evaluation.protocol import SCORED_SECONDS
from extractors.atomic import atomic_write_text
from extractors.file_hash import file_sha256
from extractors.manifest import VIDEO_SUFFIXES

VIDEO_METRICS = ("ib_score", "desync")
ALL_METRICS = (*METRICS, *VIDEO_METRICS)


@dataclass
class SuiteOptions:
    generated: Path
    reference: Path
    out: Path
    videos: Path | None = None
    audio_length: float = SCORED_SECONDS
    # tiny (random, offline tests), toy (PANNs trained on the toy world, the rest tiny) or paper (released
    # weights); each embedder's own preset: evaluation.embedders.embedder_preset
    preset: str = "paper"
    metrics: tuple[str, ...] = ALL_METRICS
    name_rule: str = "exact"
    cache: Path | None = None  # embedding cache folder (None: no cache)
    device: str = "cpu"
    batch_size: int = 16
    weights_dir: str | None = None
    # (rank, world size) of a multi-process run: each process embeds every world-size-th file into
    # the shared cache and computes nothing (embed_only); rank 0 then runs again and finds them all
    shard: tuple[int, int] = (0, 1)
    embed_only: bool = False


@dataclass
class SuiteResult:
    metrics: dict[str, float] = field(default_factory=dict)
    pairing: Pairing = field(default_factory=Pairing)
    failed: dict[str, str] = field(default_factory=dict)  # file -> reason (any embedder)
    unpaired_videos: list[str] = field(default_factory=list)
    embedding: dict[str, dict[str, int]] = field(default_factory=dict)  # embedder -> embedded / cached
    toy: dict | None = None

    @property
    def skipped_anything(self) -> bool:
        return bool(self.failed or self.pairing.unpaired_generated or self.pairing.unpaired_reference
                    or self.unpaired_videos)


def list_videos(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}


def run_suite(options: SuiteOptions, log=print) -> SuiteResult:
    result = SuiteResult()
    pairing = result.pairing = pair_files(options.generated, options.reference, options.name_rule)
    generated = sorted({g for _, g, _ in pairing.pairs} | set(pairing.unpaired_generated), key=lambda p: p.stem)
    reference = sorted({r for _, _, r in pairing.pairs} | set(pairing.unpaired_reference), key=lambda p: p.stem)
    rank, world_size = options.shard
    if world_size > 1:
        generated, reference = generated[rank::world_size], reference[rank::world_size]
    hashes = file_hashes(generated + reference)
    common = dict(audio_length=options.audio_length, cache_root=options.cache, device=options.device,
                  batch_size=options.batch_size, weights_dir=options.weights_dir)

    presets = embedder_presets(options)
    by_embedder_gen, by_embedder_ref = {}, {}
    for name in sorted({METRICS[m] for m in options.metrics if m in METRICS}):
        embedder = AUDIO_EMBEDDERS[name]
        by_embedder_gen[name] = embed_audio_files(embedder, presets[name], generated, hashes, **common)
        by_embedder_ref[name] = embed_audio_files(embedder, presets[name], reference, hashes, **common)
        _account(result, name, by_embedder_gen[name], by_embedder_ref[name], log)
    if not options.embed_only:
        result.metrics.update(audio_metrics(list(options.metrics), pairing, by_embedder_gen, by_embedder_ref))

    if options.videos is not None and set(options.metrics) & set(VIDEO_METRICS):
        _video_metrics(options, result, generated, hashes, common, presets, log)
    if options.embed_only:
        return result
    if "IB-Score" in result.metrics:
        result.metrics["IB-Score-x100"] = 100 * result.metrics["IB-Score"]
    world = toy_world_of(options.videos)
    if world is not None:
        result.toy = _toy_sync(world, options, generated, result)
    return result


def toy_world_of(videos: Path | None) -> Path | None:
    """The toy world a videos folder belongs to (world.json in it or beside it), if any."""
    from toy_world import world_root_of

    return None if videos is None else world_root_of(videos)


def embedder_presets(options: SuiteOptions) -> dict[str, str]:
    """Each embedder the chosen metrics use -> the preset it runs at (``--preset toy`` mixes them)."""
    presets = {METRICS[m]: AUDIO_EMBEDDERS[METRICS[m]].module.PRESETS for m in options.metrics if m in METRICS}
    if options.videos is not None:
        from evaluation import imagebind, synchformer

        presets.update({name: module.PRESETS for metric, name, module in
                        (("ib_score", "imagebind", imagebind), ("desync", "synchformer", synchformer))
                        if metric in options.metrics})
    return {name: embedder_preset(options.preset, presets[name]) for name in sorted(presets)}


def _account(result: SuiteResult, name: str, gen, ref, log) -> None:
    result.embedding[name] = {"embedded": gen.embedded + ref.embedded, "cached": gen.cached + ref.cached}
    for embedded in (gen, ref):
        result.failed.update({str(p): reason for p, reason in embedded.failed.items()})
    log(f"{name}: embedded {gen.embedded + ref.embedded} files, found {gen.cached + ref.cached} in the cache")


def _video_metrics(options: SuiteOptions, result: SuiteResult, generated: list[Path], hashes, common, presets,
                   log) -> None:
    from evaluation import audio_visual

    videos = list_videos(options.videos)
    pairs = []
    for path in generated:
        video = videos.get(sample_name(path.stem, options.name_rule))
        if video is None:
            result.unpaired_videos.append(str(path))
        elif (reason := unusable_reason(video, "a video")) is not None:  # the pair is skipped, the rest scored
            result.failed[str(video)] = reason
        else:
            pairs.append((path, video))
    used = sorted({v for _, v in pairs}, key=lambda p: p.stem)
    hashes = {**hashes, **{v: file_sha256(v) for v in used}}
    audios = [a for a, _ in pairs]
    if "ib_score" in options.metrics:
        video, audio = audio_visual.imagebind_embeddings(used, audios, hashes, presets["imagebind"], **common)
        _account(result, "imagebind", audio, video, log)
        if not options.embed_only and any(a in audio.outputs and v in video.outputs for a, v in pairs):
            result.metrics["IB-Score"] = audio_visual.ib_score(pairs, video, audio)
    if "desync" in options.metrics:
        video, audio, model = audio_visual.synchformer_features(used, audios, hashes, presets["synchformer"],
                                                                **common)
        _account(result, "synchformer", audio, video, log)
        if options.embed_only:
            return
        failed: dict[Path, str] = {}
        value = audio_visual.desync(pairs, video, audio, model, failed)
        result.failed.update({str(p): reason for p, reason in failed.items()})
        if value == value:  # not NaN: some pair was scored
            result.metrics["DeSync"] = value


def _toy_sync(world: Path, options: SuiteOptions, generated: list[Path], result: SuiteResult) -> dict:
    """Event-sync error of the generated audio against the toy world's events (and its baseline)."""
    from evaluation.toy_sync import HOP_SECONDS, toy_sync
    from toy_world import read_world

    toy = read_world(world)
    events = toy.event_times()
    audio = {}
    for path in generated:
        name = sample_name(path.stem, options.name_rule)
        if name in events:
            try:
                audio[name] = load_audio(path, toy.sample_rate, None).numpy()  # the world's own rate
            except AudioReadError as error:
                result.failed[str(path)] = str(error)
    sync = toy_sync(audio, toy.sample_rate, events)
    return {"event_sync_error_s": sync.error, "wrong_video_baseline_s": sync.baseline_error,
            "clips": len(sync.per_clip), "resolution_s": HOP_SECONDS, "per_clip_s": sync.per_clip}


def write_report(options: SuiteOptions, result: SuiteResult) -> Path:
    """``OUT/metrics.json`` (av-benchmark's key names, IB-Score also x100, labelled) and ``OUT/metrics.md``."""
    report = {
        "metrics": {name: (value if math.isfinite(value) else None) for name, value in result.metrics.items()},
        "notes": {"IB-Score": "mean cosine (av-benchmark's number); IB-Score-x100 is what papers print",
                  "null": "not computable (FD where av-benchmark returns -1, IS with fewer clips than "
                          "splits); the warning printed says why"},
        "protocol": {"audio_length": options.audio_length, "preset": options.preset,
                     "embedder_presets": embedder_presets(options), "name_rule": options.name_rule,
                     "metrics": list(options.metrics)},
        "counts": {"generated": len({g for _, g, _ in result.pairing.pairs}) + len(result.pairing.unpaired_generated),
                   "reference": len({r for _, _, r in result.pairing.pairs}) + len(result.pairing.unpaired_reference),
                   "paired": len(result.pairing.pairs)},
        "skipped": {"unpaired_generated": [str(p) for p in result.pairing.unpaired_generated],
                    "unpaired_reference": [str(p) for p in result.pairing.unpaired_reference],
                    "generated_without_video": result.unpaired_videos,
                    "failed": result.failed},
        "embedding_cache": result.embedding,
    }
    if result.toy is not None:
        report["toy_world"] = result.toy
    options.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(options.out / "metrics.json", json.dumps(report, indent=2, default=float))
    atomic_write_text(options.out / "metrics.md", format_table(result.metrics) + "\n")
    return options.out / "metrics.json"
