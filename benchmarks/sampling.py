"""How few steps: every sampler setting of the frozen decoder, scored on held-out toy clips, against its time.

    python -m benchmarks.sampling --quick                    # a few minutes: 3 schedulers x 3 steps x 2 guidance
    python -m benchmarks.sampling                            # the whole grid (hours on 2 CPU cores; resumable)
    python -m benchmarks.sampling --report-only              # the table, the frontier plot and the choice, from
                                                             # what is measured
    python -m benchmarks.sampling --seed-check --also euler/25/5   # the chosen presets at other sampling seeds

Clips: the held-out (test) clips of the toy recipe's world (``--world``), rendered from their *video* by a
trained toy mapper (``--mapper``, default the last one trained) with their label, through the pipeline's
own sampling path (``render_tokens``: the mapper's tokens, row i seeded i). The grid: every diffusers
scheduler that runs AudioLDM-2's epsilon schedule (``SCHEDULERS``: DDIM, DPM-Solver++ 2M and its Karras and
SDE variants, UniPC, Euler, Euler ancestral, Heun, DEIS) x steps {4, 6, 8, 12, 16, 25, 50, 100} x
classifier-free guidance {1, 2, 3.5, 5}. Each setting is scored like the toy report
(``evaluation.toy_report.score``): FD of the toy classifier's embeddings against the true audio, class
accuracy, event-sync error, and the inception score of the toy classifier's logits; and timed: seconds per
clip of that render in this run, and UNet evaluations per clip counted by a hook on the UNet (a guided step
is two: its conditional and unconditional rows; Heun's second-order steps count twice).

Every finished setting is one line of ``OUT/results.jsonl`` (appended, flushed): a rerun skips what is
there, so a killed run resumes; each line records the mapper's weights (sha256), and a rerun with another
mapper is refused. The DDIM-100 guided setting (the paper's decoding) runs first, as the
reference, then the rest from the cheapest. ``--report-only`` (and the end of every run) writes
``OUT/sampling.md`` (the table, the machine, the choice), ``OUT/frontier.png`` (FD against seconds per
clip, the Pareto frontier drawn) and ``OUT/choice.json``, the presets chosen from the measurement:

    fast   the cheapest setting (fewest UNet evaluations per clip, then the best FD) within 5 % of the best FD
           and 0.02 of the best class accuracy
    turbo  the setting with the best FD at <= 8 UNet evaluations per clip (class accuracy breaks ties)

The grid renders each clip with one seed, and on 30 clips FD moves with the seed by more than the grid's
differences between good settings. So the grid is a screen: ``--seed-check`` renders the settings it
shortlists (``sampling_grid.shortlist``: within 25 % of the best FD and 0.07 of the best class accuracy among
those, and the same among the cheap ones), the chosen presets, the reference and ``--also`` settings with clip
i seeded i + offset (``--offsets``, default 0, 100, 200) into ``OUT/seeds.json`` (of the mapper given, which
may be newer than the grid's: offset 0 is then rendered again), and the report applies the rules to the
shortlist's means over those seeds once all are measured, and adds the per-seed scores and means.

``mapper.generation.sampling.SAMPLING_PRESETS`` carries them by hand; ``tests/test_sampling_presets.py`` checks
that they resolve to ``docs/sampling/choice.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import seed_offsets
from benchmarks.sampling_grid import GUIDANCE, QUICK, SCHEDULERS, STEPS, Setting, grid, shortlist
from recipes.machine import machine_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "sampling"


def read_results(out: Path) -> dict[str, dict]:
    """The finished settings in ``out/results.jsonl`` (a last line cut by a kill is ignored)."""
    path = out / "results.jsonl"
    results = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            results[row["key"]] = row
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mapper", type=Path, default=None, help="a trained toy mapper folder (default: the last trained)")
    p.add_argument("--world", type=Path, default=None, help="its toy world (default: the toy recipe's)")
    p.add_argument("--clips", type=int, default=30, help="held-out clips (default: all 30 of the recipe's world)")
    p.add_argument("--quick", action="store_true", help="a small grid on 8 clips, into OUT/quick")
    p.add_argument("--schedulers", default=",".join(SCHEDULERS), help="comma-separated SCHEDULERS names")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results.jsonl, sampling.md, frontier.png, choice.json")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: a shared machine's cores)")
    p.add_argument("--report-only", action="store_true", help="no rendering: the report from results.jsonl")
    p.add_argument("--time-check", action="store_true",
                   help="time the reference and the chosen presets side by side (interleaved rounds) into timing.json")
    p.add_argument("--seed-check", action="store_true",
                   help="score the chosen presets, the reference and --also at other sampling seeds into seeds.json")
    p.add_argument("--offsets", type=seed_offsets, default=[0, 100, 200],
                   help="--seed-check: seed offsets, comma-separated (clip i is seeded i + offset; 0 is the grid's own)")
    p.add_argument("--also", default="", help="--seed-check: more setting keys, comma-separated (e.g. euler/25/5)")
    args = p.parse_args(argv)
    schedulers = QUICK["schedulers"] if args.quick else tuple(args.schedulers.split(","))
    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown:
        p.error(f"--schedulers: unknown {', '.join(unknown)}; known: {', '.join(SCHEDULERS)}")
    out = args.out / "quick" if args.quick else args.out
    settings = grid(schedulers, QUICK["steps"] if args.quick else STEPS, QUICK["guidance"] if args.quick else GUIDANCE)
    torch.set_num_threads(args.threads)
    if args.seed_check:
        try:
            extra = [Setting.of(key).key for key in args.also.split(",") if key]
        except ValueError as error:
            p.error(f"--also: {error}")
        unknown = [key for key in extra if Setting.of(key).scheduler not in SCHEDULERS]
        if unknown:
            p.error(f"--also: unknown scheduler in {', '.join(unknown)}; known: {', '.join(SCHEDULERS)}")
        seed_check(out, args.mapper, args.world, args.offsets, extra, QUICK["clips"] if args.quick else args.clips)
    elif not args.report_only and not args.time_check:
        measure(settings, out, args.mapper, args.world, QUICK["clips"] if args.quick else args.clips)
    from benchmarks.sampling_report import write_report

    print(write_report(out, read_results(out), [s.key for s in settings]))
    if args.time_check:
        time_check(out, args.mapper, args.world)
        print(write_report(out, read_results(out), [s.key for s in settings]))
    return 0


def _chosen_keys(out: Path) -> dict[str, str]:
    """{preset name: setting key} of the settings ``out/choice.json`` names (fast, turbo, reference)."""
    choice = json.loads((out / "choice.json").read_text())
    return {name: f"{entry['name']}/{entry['num_inference_steps']}/{entry['guidance_scale']:g}"
            for name, entry in choice.items() if isinstance(entry, dict) and "num_inference_steps" in entry}


def _mapper_identity(mapper: Path | None) -> tuple[Path, str]:
    """The mapper folder (default: the last trained) and its weights' sha256 prefix, which every row records so
    that rows of another mapper are never mixed in."""
    from extractors.file_hash import file_sha256
    from mapper.last_mapper import last_mapper

    mapper_dir = Path(mapper) if mapper is not None else last_mapper()
    return mapper_dir, file_sha256(mapper_dir / "model.safetensors")[:16]


def _held_out(mapper: Path | None, world: Path | None, clips: int):
    """(pipeline, the world's first ``clips`` held-out clips, their mapper tokens (B, N, D))."""
    from evaluation.toy_report import held_out_clips
    from mapper.generation.loading import load_pipeline
    from toy_world.folders import WORLD_DIR

    pipe = load_pipeline(mapper=mapper)
    held_out = held_out_clips(world or Path(WORLD_DIR), pipe.clip, limit=clips)
    tokens = pipe.map_features([pipe.visual_features(v, s) for v, s in zip(held_out.videos, held_out.starts)])
    return pipe, held_out, tokens


def _render(pipe, tokens: torch.Tensor, held_out, setting: Setting, seed_offset: int = 0) -> np.ndarray:
    """(B, samples): every held-out clip rendered with ``setting``, in batches of 8, clip i seeded i + ``seed_offset``."""
    return np.concatenate([pipe.render_tokens(tokens[i:i + 8], held_out.labels[i:i + 8], setting.config(),
                                              seed=i + seed_offset) for i in range(0, len(held_out.ids), 8)])


def time_check(out: Path, mapper: Path | None, world: Path | None, clips: int = 8, rounds: int = 3) -> None:
    """Seconds per clip of the reference and of the settings ``choice.json`` names, in interleaved rounds on
    ``clips`` clips (medians: a shared machine's load falls on all of them alike) -> ``out/timing.json``."""
    import statistics

    keys = _chosen_keys(out)
    pipe, held_out, tokens = _held_out(mapper, world, clips)
    times: dict[str, list[float]] = {name: [] for name in keys}
    for _ in range(rounds):
        for name, key in keys.items():
            began = time.perf_counter()
            pipe.render_tokens(tokens, held_out.labels, Setting.of(key).config(), seed=0)
            times[name].append((time.perf_counter() - began) / len(held_out.ids))
    timing = {"clips": len(held_out.ids), "rounds": rounds, "machine": machine_line(torch.device("cpu")),
              "seconds_per_clip": {name: statistics.median(values) for name, values in times.items()},
              "settings": keys}
    (out / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")


def seed_check(out: Path, mapper: Path | None, world: Path | None, offsets: list[int], extra: list[str],
               clips: int) -> None:
    """FD, class accuracy and event-sync error of the settings ``choice.json`` names, the grid's shortlist
    (``sampling_grid.shortlist``: the settings the presets are chosen among) and ``extra`` keys with
    clip i seeded i + offset, for each offset -> ``out/seeds.json`` (rewritten after each setting: a rerun skips
    what is there). Offset 0 is the grid's own render, taken from ``results.jsonl`` when it is there and of the
    same mapper and clips."""
    from evaluation.toy_classifier import load_toy_classifier
    from evaluation.toy_report import real_embedding, score
    from extractors.atomic import atomic_write_text

    mapper_dir, identity = _mapper_identity(mapper)
    path, grid = out / "seeds.json", read_results(out)
    keys = list(_chosen_keys(out).values())
    screened = [row for row in grid.values() if row["clips"] == clips]  # the screen may be another mapper's grid
    keys += [key for key in (shortlist(screened) if screened else []) + extra if key not in keys]
    done = json.loads(path.read_text()) if path.is_file() else {}
    if done and (done.get("clips"), done.get("mapper_sha256")) != (clips, identity):
        raise SystemExit(f"{path} holds {done.get('clips')} clips per setting of mapper {done.get('mapper_sha256')}, "
                         f"not {clips} of {mapper_dir} ({identity}): pass another --out")
    pipe, held_out, tokens = _held_out(mapper_dir, world, clips)
    classifier = load_toy_classifier()
    real = real_embedding(held_out, pipe.sample_rate, classifier)
    rows = done.get("rows", {})
    for offset in offsets:
        for key in keys:
            if str(offset) in rows.get(key, {}):
                continue
            if offset == 0 and key in grid and (grid[key]["clips"], grid[key].get("mapper_sha256")) == (clips, identity):
                row = grid[key]
            else:
                row = score(_render(pipe, tokens, held_out, Setting.of(key), offset), held_out, pipe.sample_rate,
                            classifier, real=real)
            rows.setdefault(key, {})[str(offset)] = {name: row[name] for name in
                                                     ("fd", "class_accuracy", "event_sync_error_s")}
            print(f"seed offset {offset}, {key}: FD {row['fd']:.2f}, class {row['class_accuracy']:.2f}, "
                  f"sync {row['event_sync_error_s']:.3f} s", flush=True)
            atomic_write_text(path, json.dumps({"clips": clips, "mapper_sha256": identity,
                                                "machine": machine_line(torch.device("cpu")), "rows": rows},
                                               indent=1) + "\n")


def measure(settings: list[Setting], out: Path, mapper: Path | None, world: Path | None, clips: int) -> None:
    from evaluation import panns
    from evaluation.metrics import inception_score
    from evaluation.protocol import SCORED_SECONDS
    from evaluation.toy_classifier import load_toy_classifier
    from evaluation.toy_report import real_embedding, score

    mapper_dir, identity = _mapper_identity(mapper)
    other = {row.get("mapper_sha256") for row in read_results(out).values()} - {identity}
    if other:
        raise SystemExit(f"{out}/results.jsonl holds settings measured with another mapper ({', '.join(sorted(other))});"
                         f" {mapper_dir} is {identity}: pass that mapper, or another --out")
    pipe, held_out, tokens = _held_out(mapper_dir, world, clips)
    classifier = load_toy_classifier()
    real = real_embedding(held_out, pipe.sample_rate, classifier)
    calls = []
    pipe.unet.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    done = read_results(out)
    out.mkdir(parents=True, exist_ok=True)
    machine = machine_line(torch.device("cpu"))
    with open(out / "results.jsonl", "a") as log:
        for number, setting in enumerate(settings, 1):
            if setting.key in done:
                continue
            calls.clear()
            began = time.perf_counter()
            audio = _render(pipe, tokens, held_out, setting)
            seconds = (time.perf_counter() - began) / len(held_out.ids)
            row = score(audio, held_out, pipe.sample_rate, classifier, real=real)
            scored = round(SCORED_SECONDS * pipe.sample_rate)
            logits = panns.embed(classifier, torch.from_numpy(np.ascontiguousarray(audio[:, :scored])))["logits"]
            row.update(key=setting.key, scheduler=setting.scheduler, steps=setting.steps, guidance=setting.guidance,
                       inception_score=inception_score(logits.numpy())[0], seconds_per_clip=seconds,
                       unet_evaluations_per_clip=sum(calls) / len(held_out.ids), clips=len(held_out.ids),
                       machine=machine, mapper_sha256=identity)
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"[{number}/{len(settings)}] {setting.key}: FD {row['fd']:.2f}, class {row['class_accuracy']:.2f}, "
                  f"sync {row['event_sync_error_s']:.3f} s, IS {row['inception_score']:.2f}, "
                  f"{seconds:.2f} s/clip, {row['unet_evaluations_per_clip']:.0f} UNet evaluations/clip", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
