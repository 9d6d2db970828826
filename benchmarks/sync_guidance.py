"""Sync guidance on held-out toy clips: does the sound land on the events, and what does it cost?

    python -m benchmarks.sync_guidance                          # the default settings: about 4 min on 2 cores
    python -m benchmarks.sync_guidance --grid 0.02:0.3,0.045:0.3,0.1:0.3,0.045:1.0 --json grid.json
    python -m benchmarks.sync_guidance --offset 30              # another 30 clips (the default was chosen on 0-29)
    python -m benchmarks.sync_guidance --mapper runs/toy/mapper  # the full pipeline, envelopes from the video
    python -m benchmarks.sync_guidance --mapper runs/toy/mapper --seed-offset 100  # the same clips, other seeds
    python -m benchmarks.sync_guidance --mapper runs/toy/mapper --seed-offset 0,100,200  # and their mean
    python -m benchmarks.sync_guidance --mapper runs/toy/mapper --seed-offset 0,100,200 --own-length  # short clips

Clips: the first ``--clips`` 10 s clips (from ``--offset``) of toy world seed 11 (80 planned clips), unseen by
the toy decoder (seed 1), its envelope head (seed 1) and the toy classifier (seed 2). Each is rendered by
the shipped toy AudioLDM-2 from its true audio's AudioMAE tokens and its label, fast preset (25 steps), row i
of a batch seeded i (i + ``--seed-offset``), three ways per setting (``SCALE:FIRST_FRACTION``):

    unguided    no envelope (once)
    true        guided towards the clip's own envelope (``extractors.envelope.audio_envelope`` of its audio)
    shuffled    guided towards another clip's envelope (the previous clip's): the control. Scored against its
                own events (it should stay at chance) and against the events of the clip whose envelope it got

Scores (``evaluation.toy_report.score``): class accuracy (toy classifier, first 8 s), event-sync error (mean
|lag| of the onsets against the events, +-1 s search; about 0.5 s is chance) and FD of the toy classifier's
embeddings against the true audio. Then seconds per clip, unguided vs the first setting, interleaved over
``--repeats`` rounds on 8 clips (medians: the machine may be shared). A setting meets the goals when its
event-sync error is <= 0.20 s and at most half the shuffled one's, its class accuracy >= 0.90, its FD <= 1.25 x
the unguided FD and its time <= 1.5 x the unguided time (the last only for the timed setting).

With ``--mapper DIR`` (a trained toy mapper with its envelope predictor; ``--world``: its toy world, default
the toy recipe's): the held-out (test) clips of that world, rendered from their *video* (the mapper's
tokens, the label), unguided and, per setting, guided towards the envelope the predictor reads from the
clip's video ("video"), from the previous clip's video ("shuffled video") and the true audio's envelope
("true", the ceiling). The goals are those of the video row, against the shuffled video's; the time is the
whole pipeline (``pipe(videos, labels, preset="fast", sync_guidance=...)``: decoding, extraction, mapper,
predictor, sampling, VAE, vocoder) per clip, unguided and guided interleaved. Every clip is rendered as a
whole clip window (10 s), as the toy report renders it; ``--own-length`` renders a clip shorter than that
(a 5-9 s toy video) at its own length, as the pipeline renders a short video, with its part of the
envelope re-standardised (``VideoToAudioPipeline.render_tokens(seconds=...)``), and scores it with the rest
of its window silent, as its true audio is. When some clips are shorter than the window, a last table splits
every row's class accuracy and event-sync error between the whole-window clips and the shorter ones.

On 30 clips one sampling seed is noisy (the event-sync error moves by about 0.1 s from seed to seed), so
``--seed-offset`` takes a list (``0,100,200``): every row is rendered at each offset, a table is printed per
offset, then the mean over them, which is what the goals are judged on (FD / unguided: the mean FD over the
mean unguided FD); ``--json`` keeps both (``per_seed_offset``, ``rows``: the means). Timing uses the first.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import seed_offsets
from recipes.machine import machine_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORLD = (80, 11)  # planned clips, seed: a toy world none of the toy models was trained on
SYNC_GOAL, SHUFFLED_GOAL, CLASS_GOAL, FD_GOAL, TIME_GOAL = 0.20, 0.5, 0.90, 1.25, 1.5
TIMED_CLIPS = 8


def setting(text: str) -> tuple[float, float]:
    try:
        scale, fraction = (float(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SCALE:FIRST_FRACTION, got {text!r}") from None
    return scale, fraction


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=30)
    p.add_argument("--offset", type=int, default=0, help="skip this many clips of the world first")
    p.add_argument("--grid", type=lambda text: [setting(s) for s in text.split(",")], default=None,
                   help="SCALE:FIRST_FRACTION,... (default: the default setting)")
    p.add_argument("--seed-offset", type=seed_offsets, default=[0],
                   help="render clip i with seed i + this (default 0); a comma-separated list renders every row at "
                        "each and reports the mean too (on 30 clips the sync error and FD move with the seed)")
    p.add_argument("--head", default=None, help="'toy' or an envelope head folder (default: 'toy'; with --mapper, the "
                                                "head of the decoder the mapper names)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (medians)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: a shared machine's cores)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--mapper", type=Path, default=None,
                   help="a trained toy mapper folder: the full pipeline, envelopes predicted from the video")
    p.add_argument("--world", type=Path, default=None, help="with --mapper: its toy world (default: the recipe's)")
    p.add_argument("--own-length", action="store_true",
                   help="with --mapper: render a clip shorter than the clip window at its own length, as the pipeline "
                        "renders a short video (default: every clip as a whole window, as the toy report does)")
    args = p.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run_from_video(args) if args.mapper else run(args)
    finally:
        torch.set_num_threads(threads)


def run(args) -> int:
    from evaluation.toy_classifier import load_toy_classifier
    from evaluation.toy_report import HeldOutClips, score
    from evaluation.toy_sync import sync_offset
    from extractors.clip import ClipConfig
    from extractors.envelope import audio_envelope
    from mapper.config import MapperConfig
    from mapper.decoders.audioldm2 import EnvelopeGuidanceConfig, load_audioldm2, load_envelope_head
    from mapper.generation import VideoToAudioPipeline
    from mapper.generation.extractors_component import VisualExtractors
    from mapper.generation.sampling import sampling_config
    from mapper.loading import build_mapper
    from toy_world import clip_window_audio, plan_world

    grid = args.grid or [(EnvelopeGuidanceConfig().scale, EnvelopeGuidanceConfig().first_fraction)]
    mapper = build_mapper(MapperConfig.from_preset("toy", n_layer=2, n_head=2))  # only its rendering is used
    pipe = VideoToAudioPipeline.from_parts(VisualExtractors.from_preset("toy"), mapper, load_audioldm2("toy"))
    pipe.set_progress_bar_config(disable=True)
    head = args.head or "toy"
    pipe.envelope_head = load_envelope_head(head)
    clip = ClipConfig()
    specs = [c for c in plan_world(*WORLD, clip)["clips"] if c["duration"] >= clip.seconds]
    specs = specs[args.offset:args.offset + args.clips]
    if len(specs) < 2:
        raise SystemExit(f"--offset {args.offset} --clips {args.clips}: {len(specs)} clips; at least 2 are needed")
    audio = np.stack([clip_window_audio(c, clip) for c in specs]).astype(np.float32)  # (N, 10 s)
    tokens = pipe.extractors.frozen.encode_audio(torch.from_numpy(audio))  # (N, 8, D)
    labels = [c["label"] for c in specs]
    events = [np.asarray(c["events"]["times"]) - c["start"] for c in specs]
    clips = HeldOutClips([c["id"] for c in specs], [], [float(c["start"]) for c in specs], labels, events, audio)
    envelope = torch.from_numpy(audio_envelope(audio, pipe.frame_samples, pipe.window_frames))  # (N, 256)
    classifier, sampling = load_toy_classifier(), sampling_config("fast")

    def render(target, config, offset, count=len(specs)):
        return np.concatenate([
            pipe.render_tokens(tokens[i:min(i + 8, count)], labels[i:min(i + 8, count)], sampling, seed=i + offset,
                               envelope=None if target is None else target[i:min(i + 8, count)],
                               sync_guidance=config)
            for i in range(0, count, 8)])

    print(machine_line(torch.device("cpu")))
    print(f"{len(specs)} clips of toy world seed {WORLD[1]} from #{args.offset}, fast preset, head {head}")
    others = np.roll(np.arange(len(specs)), 1)  # clip i gets clip i-1's envelope

    def measure(offset: int) -> dict:
        rows = {"unguided": score(render(None, None, offset), clips, pipe.sample_rate, classifier)}
        for scale, fraction in grid:
            config = EnvelopeGuidanceConfig(scale=scale, first_fraction=fraction)
            rows[f"true {scale:g}:{fraction:g}"] = score(render(envelope, config, offset), clips, pipe.sample_rate,
                                                         classifier)
            shuffled = render(envelope[others], config, offset)
            row = score(shuffled, clips, pipe.sample_rate, classifier)
            row["sync_to_source_s"] = float(np.nanmean([abs(sync_offset(a, pipe.sample_rate, events[j]))
                                                        for a, j in zip(shuffled, others)]))
            rows[f"shuffled {scale:g}:{fraction:g}"] = row
        return rows

    per_seed = {offset: measure(offset) for offset in args.seed_offset}
    timed = EnvelopeGuidanceConfig(scale=grid[0][0], first_fraction=grid[0][1])
    times = {"unguided": [], "guided": []}
    for _ in range(args.repeats):
        for name, target, config in (("unguided", None, None), ("guided", envelope, timed)):
            began = time.perf_counter()
            render(target, config, args.seed_offset[0], count=min(TIMED_CLIPS, len(specs)))
            times[name].append((time.perf_counter() - began) / min(TIMED_CLIPS, len(specs)))
    seconds = {name: statistics.median(values) for name, values in times.items()}
    rows = _print_tables(per_seed, grid)
    print(f"seconds per clip (median of {args.repeats}, {min(TIMED_CLIPS, len(specs))} clips): unguided "
          f"{seconds['unguided']:.2f}, guided {grid[0][0]:g}:{grid[0][1]:g} {seconds['guided']:.2f} "
          f"({seconds['guided'] / seconds['unguided']:.2f} x, goal <= {TIME_GOAL})")
    if args.json:
        args.json.write_text(json.dumps({"clips": len(specs), "offset": args.offset, **_seed_rows(per_seed, rows),
                                         "seconds_per_clip": seconds}, indent=1) + "\n")
    return 0


def run_from_video(args) -> int:
    from evaluation.toy_classifier import load_toy_classifier
    from evaluation.toy_report import condition_envelopes, held_out_clips, real_embedding, score
    from mapper.decoders.audioldm2 import EnvelopeGuidanceConfig
    from mapper.generation.loading import load_pipeline
    from mapper.generation.sampling import sampling_config
    from toy_world.folders import WORLD_DIR

    world = args.world or Path(WORLD_DIR)
    grid = args.grid or [(EnvelopeGuidanceConfig().scale, EnvelopeGuidanceConfig().first_fraction)]
    pipe = load_pipeline(mapper=args.mapper, envelope_head=args.head)
    if pipe.missing_for_sync_guidance():
        raise SystemExit(f"--mapper {args.mapper}: sync guidance needs {pipe.missing_for_sync_guidance()}")
    clips = held_out_clips(world, pipe.clip, limit=args.clips)
    features = [pipe.visual_features(v, s) for v, s in zip(clips.videos, clips.starts)]
    tokens = pipe.map_features(features)
    envelopes = condition_envelopes(pipe, clips, features)
    classifier, sampling = load_toy_classifier(), sampling_config("fast")
    real = real_embedding(clips, pipe.sample_rate, classifier)

    def render(target, config, offset):
        return np.concatenate([
            pipe.render_tokens(tokens[i:i + 8], clips.labels[i:i + 8], sampling, seed=i + offset,
                               envelope=None if target is None else target[i:i + 8], sync_guidance=config,
                               seconds=clips.seconds[i:i + 8] if args.own_length else None)
            for i in range(0, len(clips.ids), 8)])

    print(machine_line(torch.device("cpu")))
    is_short = [s < pipe.clip.seconds for s in clips.seconds]
    subsets = {"whole": [not s for s in is_short], "short": is_short}  # where the sync left is: docs/generation.md
    short = sum(is_short)
    print(f"{len(clips.ids)} held-out clips of {world}, from their video with the label, fast preset; "
          + (f"the {short} shorter than the clip window at their own length" if args.own_length
             else "each rendered as a whole clip window"))
    names = {"guided": "video", "guided_shuffled": "shuffled", "guided_true": "true"}

    def measure(offset: int) -> dict:
        rows = {"unguided": score(render(None, None, offset), clips, pipe.sample_rate, classifier, real=real,
                                  subsets=subsets)}
        for scale, fraction in grid:
            config = EnvelopeGuidanceConfig(scale=scale, first_fraction=fraction)
            for key, name in names.items():
                rows[f"{name} {scale:g}:{fraction:g}"] = score(render(envelopes[key], config, offset), clips,
                                                               pipe.sample_rate, classifier, real=real,
                                                               subsets=subsets)
        return rows

    per_seed = {offset: measure(offset) for offset in args.seed_offset}
    timed = [(v, label) for v, label in zip(clips.videos, clips.labels)][:TIMED_CLIPS]
    times = {"unguided": [], "guided": []}
    for _ in range(args.repeats):
        for name, scale in (("unguided", 0.0), ("guided", grid[0][0])):
            began = time.perf_counter()
            pipe([v for v, _ in timed], [label for _, label in timed], preset="fast", sync_guidance=scale,
                 batch_size=8)
            times[name].append((time.perf_counter() - began) / len(timed))
    seconds = {name: statistics.median(values) for name, values in times.items()}
    rows = _print_tables(per_seed, grid, rows_named=("video", "shuffled", "true"))
    if short:
        print(f"\nby clip length ({len(per_seed)} seed offset{'s' * (len(per_seed) > 1)}): the "
              f"{len(is_short) - short} clips of a whole clip window, the {short} shorter\n"
              f"{_subset_table(rows, list(subsets))}")
    print(f"seconds per clip, whole pipeline (median of {args.repeats}, {len(timed)} clips): unguided "
          f"{seconds['unguided']:.2f}, guided {grid[0][0]:g}:{grid[0][1]:g} {seconds['guided']:.2f} "
          f"({seconds['guided'] / seconds['unguided']:.2f} x, goal <= {TIME_GOAL})")
    if args.json:
        args.json.write_text(json.dumps({"clips": len(clips.ids), "world": str(world), "mapper": str(args.mapper),
                                         "own_length": args.own_length,
                                         **_seed_rows(per_seed, rows), "seconds_per_clip": seconds}, indent=1) + "\n")
    return 0


def mean_rows(per_seed: dict) -> dict:
    """{offset: {row: {metric: value}}} -> {row: {metric: mean over the offsets}} (None where a metric is None)."""
    runs = list(per_seed.values())
    return {name: {metric: (None if any(run[name][metric] is None for run in runs)
                            else float(np.mean([run[name][metric] for run in runs])))
                   for metric in row}
            for name, row in runs[0].items()}


def _print_tables(per_seed: dict, grid, rows_named=("true", "shuffled", None)) -> dict:
    """Print the table of each seed offset (when there are several) and of their mean; return the mean rows."""
    rows = mean_rows(per_seed)
    if len(per_seed) > 1:
        for offset, seed_rows in per_seed.items():
            print(f"\nclip i seeded i + {offset}:\n{_table(seed_rows, grid, rows_named)}")
        print(f"\nmean over the seed offsets {', '.join(map(str, per_seed))} (FD / unguided: of the means):")
    print(_table(rows, grid, rows_named))
    return rows


def _seed_rows(per_seed: dict, rows: dict) -> dict:
    """The JSON's rows: the means, and each offset's own."""
    return {"seed_offsets": list(per_seed), "rows": rows,
            "per_seed_offset": {str(offset): seed_rows for offset, seed_rows in per_seed.items()}}


def _subset_table(rows: dict, subsets: list[str]) -> str:
    """Class accuracy and event-sync error of every row over each subset of the clips (``score``'s subsets)."""
    def cell(value, digits):
        return "n/a" if value is None else f"{value:.{digits}f}"

    header = "".join(f" class acc, {name} | sync err, {name} (s) |" for name in subsets)
    lines = [f"| row |{header}", "|---|" + "---|---|" * len(subsets)]
    for name, row in rows.items():
        cells = "".join(f" {cell(row[f'class_accuracy_{subset}'], 2)} | {cell(row[f'event_sync_error_s_{subset}'], 3)} |"
                        for subset in subsets)
        lines.append(f"| {name} |{cells}")
    return "\n".join(lines)


def _table(rows: dict, grid, rows_named=("true", "shuffled", None)) -> str:
    """Rows (guided, control[, ceiling]) per setting; the goals are the guided row's, against the control (class
    accuracy is n/a, and not a goal, on a world of classes the toy classifier does not know)."""
    guided_name, control_name, ceiling_name = rows_named
    base = rows["unguided"]

    def accuracy(row):
        return "n/a" if row["class_accuracy"] is None else f"{row['class_accuracy']:.2f}"

    def line(name, key, row, source=""):
        return (f"| {name} | {key} | {accuracy(row)} | {row['event_sync_error_s']:.3f} | {source} | {row['fd']:.2f} | "
                f"{row['fd'] / base['fd']:.2f} |")

    lines = ["| envelope | scale:fraction | class acc | sync err (s) | sync to source (s) | FD | FD / unguided | goals |",
             "|---|---|---|---|---|---|---|---|", line("none", "", base) + " |"]
    for scale, fraction in grid:
        key = f"{scale:g}:{fraction:g}"
        guided, control = rows[f"{guided_name} {key}"], rows[f"{control_name} {key}"]
        met = (guided["event_sync_error_s"] <= SYNC_GOAL
               and guided["event_sync_error_s"] <= SHUFFLED_GOAL * control["event_sync_error_s"]
               and (guided["class_accuracy"] is None or guided["class_accuracy"] >= CLASS_GOAL)
               and guided["fd"] <= FD_GOAL * base["fd"])
        lines.append(line(guided_name, key, guided) + f" {'met' if met else 'missed'} |")
        source = f"{control['sync_to_source_s']:.3f}" if "sync_to_source_s" in control else ""
        lines.append(line(control_name, key, control, source) + " |")
        if ceiling_name:
            lines.append(line(ceiling_name, key, rows[f"{ceiling_name} {key}"]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
