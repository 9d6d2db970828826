"""``benchmarks.sampling``'s report: the presets chosen from the measured settings, the table and the frontier.

The rules (``benchmarks.sampling``'s docstring): ``fast`` is the cheapest setting (fewest UNet evaluations per
clip, then the best FD) within 5 % of the best FD and 0.02 of the best class accuracy (when no setting is within
both, 0.02 of the best accuracy among those within 5 % of the best FD: on 30 clips a cheap setting far in FD can
top the accuracy by one clip); ``turbo`` the best FD at <= 8 UNet evaluations per clip; both are also compared
with the reference (DDIM, 100 steps, guidance 3.5: the paper's decoding), against the turbo goals (FD <= 1.2x,
class accuracy >= 0.9x, >= 8x less time per clip).

The rules are applied to the means over sampling seeds (``seeds.json``, ``benchmarks.sampling --seed-check``)
of the settings the one-seed grid shortlists (``sampling_grid.shortlist``) once every one of them is measured
at every offset there; until then to the grid's own seed.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.sampling_grid import (CLASS_TOLERANCE, FD_TOLERANCE, SCHEDULERS, SHORTLIST_CLASS, SHORTLIST_FD,
                                      TURBO_EVALUATIONS, Setting, is_cheap, is_reference, shortlist)
from extractors.atomic import atomic_write_text

TURBO_GOALS = {"fd": 1.2, "class_accuracy": 0.9, "speedup": 8.0}
SEED_SCORES = ("fd", "class_accuracy", "event_sync_error_s")  # what seeds.json holds per setting and offset


def pareto_frontier(rows: list[dict]) -> list[dict]:
    """The rows no other row beats on both seconds per clip and FD, from the fastest."""
    frontier, best = [], float("inf")
    for row in sorted(rows, key=lambda r: (r["seconds_per_clip"], r["fd"])):
        if row["fd"] < best:
            frontier.append(row)
            best = row["fd"]
    return frontier


def choose(rows: list[dict]) -> dict:
    """{"fast": row, "turbo": row or None, "reference": row or None} by the module's rules."""
    best_fd = min(r["fd"] for r in rows)
    best_accuracy = max(r["class_accuracy"] for r in rows)
    close_fd = [r for r in rows if r["fd"] <= (1 + FD_TOLERANCE) * best_fd]
    close = [r for r in close_fd if r["class_accuracy"] >= best_accuracy - CLASS_TOLERANCE]
    if not close:  # the best accuracy is a setting far in FD: the bound is then the best among the FD-close ones
        close = [r for r in close_fd if r["class_accuracy"] >= max(c["class_accuracy"] for c in close_fd) - CLASS_TOLERANCE]
    cheap = [r for r in rows if is_cheap(r)]
    reference = next((r for r in rows if is_reference(r)), None)
    return {"fast": min(close, key=lambda r: (r["unet_evaluations_per_clip"], r["fd"])) if close else None,
            "turbo": min(cheap, key=lambda r: (r["fd"], -r["class_accuracy"])) if cheap else None,
            "reference": reference, "best_fd": best_fd, "best_class_accuracy": best_accuracy}


def across_seeds(rows: list[dict], seeds: dict | None) -> list[dict] | None:
    """The grid's shortlisted ``rows`` and the reference, each with its scores (``SEED_SCORES``) replaced by
    their means over the offsets of ``seeds`` (seeds.json), those offsets as "seed_offsets" and no inception score
    (seeds.json has none); UNet evaluations and seconds stay the grid's. None until every one of them is measured
    at every offset of ``seeds``, on the grid's number of clips."""
    if not seeds or not rows or seeds.get("clips") != rows[0]["clips"]:
        return None
    per = seeds["rows"]
    offsets = sorted({offset for scores in per.values() for offset in scores}, key=int)
    keys = shortlist(rows) + [r["key"] for r in rows if is_reference(r)]
    if any(set(per.get(key, {})) != set(offsets) for key in keys):
        return None
    by_key = {r["key"]: r for r in rows}
    means = []
    for key in dict.fromkeys(keys):
        row = {name: value for name, value in by_key[key].items() if name != "inception_score"}
        row.update({name: statistics.fmean(per[key][offset][name] for offset in offsets) for name in SEED_SCORES},
                   seed_offsets=[int(offset) for offset in offsets])
        means.append(row)
    return means


def against_reference(row: dict, reference: dict) -> dict:
    return {"fd": row["fd"] / reference["fd"],
            "class_accuracy": row["class_accuracy"] / reference["class_accuracy"] if reference["class_accuracy"] else None,
            "speedup": reference["seconds_per_clip"] / row["seconds_per_clip"]}


def _setting(row: dict) -> dict:
    cls, options = SCHEDULERS[row["scheduler"]]
    return {"scheduler": cls, "scheduler_kwargs": options, "num_inference_steps": row["steps"],
            "guidance_scale": row["guidance"], "name": row["scheduler"]}


def _line(row: dict) -> str:
    return (f"| {row['scheduler']} | {row['steps']} | {row['guidance']:g} | {row['unet_evaluations_per_clip']:.0f} | "
            f"{row['seconds_per_clip']:.2f} | {row['fd']:.2f} | {row['class_accuracy']:.2f} | "
            f"{row['event_sync_error_s']:.3f} | {row['inception_score']:.2f} |")


def write_report(out: Path, results: dict[str, dict], planned: list[str]) -> str:
    """Write sampling.md, frontier.png and choice.json into ``out`` from the measured rows of the ``planned``
    setting keys; returns the summary. ``choice.json``'s "complete" says whether every planned setting is
    measured: ``fast`` (whose rule needs the best FD of all) is final only then; ``turbo`` (the best of the
    cheap settings, which run first) as soon as those are."""
    rows = [results[key] for key in planned if key in results]
    if not rows:
        return f"{out}: nothing measured yet (run python -m benchmarks.sampling)"
    missing = [key for key in planned if key not in results]
    seeds_file = out / "seeds.json"
    seeds = json.loads(seeds_file.read_text()) if seeds_file.is_file() else None
    means = None if missing else across_seeds(rows, seeds)
    chosen = choose(means or rows)
    if means:
        chosen_from = (f"means over seed offsets {', '.join(map(str, means[0]['seed_offsets']))} of the "
                       f"{len(means)} settings the grid shortlists (mapper sha256 {seeds.get('mapper_sha256')})")
    else:
        chosen_from = "the grid's one seed" + (" (python -m benchmarks.sampling --seed-check chooses from seed means)"
                                               if not missing else "")
    cheap_done = not any(Setting.of(key).unet_evaluations <= TURBO_EVALUATIONS for key in missing)
    summary = [f"{len(rows)} of {len(planned)} settings measured ({rows[0]['clips']} clips; {rows[0]['machine']})"
               + (f"; still to measure: {len(missing)}, the most expensive (resume: python -m benchmarks.sampling)"
                  if missing else "")]
    timing_file = out / "timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    summary.append(f"chosen from {chosen_from}")
    choice = {"clips": rows[0]["clips"], "settings_measured": len(rows), "settings_planned": len(planned),
              "complete": not missing, "cheap_settings_complete": cheap_done, "machine": rows[0]["machine"],
              "chosen_from": chosen_from}
    for name in ("fast", "turbo", "reference"):
        row = chosen[name]
        if row is None:
            summary.append(f"{name}: none measured")
            continue
        if name == "fast" and missing:  # its rule needs the best FD of the whole grid
            name = "fast_so_far"
        choice[name] = {**_setting(row), "measured": {k: row[k] for k in ("fd", "class_accuracy", "event_sync_error_s",
                                                                         "inception_score", "seconds_per_clip",
                                                                         "unet_evaluations_per_clip") if k in row}}
        text = (f"{name}: {row['key']} ({'mean ' if means else ''}FD {row['fd']:.2f}, class {row['class_accuracy']:.2f}, "
                f"{row['unet_evaluations_per_clip']:.0f} UNet evaluations and {row['seconds_per_clip']:.2f} s per clip)")
        if chosen["reference"] is not None and name != "reference":
            ratios = against_reference(row, chosen["reference"])
            timed = timing.get("settings", {})
            if timed.get(name) == row["key"] and timed.get("reference") == chosen["reference"]["key"]:
                # measured side by side (benchmarks.sampling --time-check), not across the grid's hours
                ratios["speedup"] = timing["seconds_per_clip"]["reference"] / timing["seconds_per_clip"][name]
                ratios["speedup_measured"] = "side by side"
            choice[name]["against_reference"] = ratios
            text += (f"; vs DDIM-100: FD x{ratios['fd']:.2f}, class x{ratios['class_accuracy']:.2f}, "
                     f"{ratios['speedup']:.1f}x faster")
            if name == "turbo" and cheap_done:
                met = (ratios["fd"] <= TURBO_GOALS["fd"] and ratios["class_accuracy"] >= TURBO_GOALS["class_accuracy"]
                       and ratios["speedup"] >= TURBO_GOALS["speedup"])
                choice[name]["goals_met"] = met
                text += f" -> turbo goals {'met' if met else 'missed'}"
        summary.append(text)
    atomic_write_text(out / "choice.json", json.dumps(choice, indent=1) + "\n")
    # the chosen settings are drawn where the grid measured them (the plot is the grid's one seed)
    _plot(out / "frontier.png", rows, {("fast (so far)" if missing and name == "fast" else name):
                                       results[chosen[name]["key"]] if chosen[name] else None
                                       for name in ("fast", "turbo", "reference")})
    table = ["| scheduler | steps | guidance | UNet evals / clip | s / clip | FD | class acc | sync err (s) | IS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = sorted(rows, key=lambda r: (r["scheduler"], r["steps"], r["guidance"]))
    frontier = pareto_frontier(rows)
    mapper = rows[0].get("mapper_sha256", "not recorded")
    about = ("Written by `python -m benchmarks.sampling` (resume it with the same command; `--report-only` rewrites this "
             "page, `--time-check` times the chosen presets side by side). Each setting renders the held-out (test) "
             "clips of the toy recipe's world from their video, with their label, by the toy recipe's mapper (weights "
             f"sha256 {mapper}...) and the shipped `toy` AudioLDM-2, row i seeded i; FD and class accuracy are the toy "
             "classifier's, the event-sync error is against the world's events, IS is the classifier's inception score. "
             "Seconds per clip are timed once per setting over a run of hours on a shared 2-core machine: compare them "
             "loosely. The speed-ups quoted against DDIM-100 for the chosen presets are timed side by side "
             "(`timing.json`). Rules: `fast` is the cheapest setting (fewest UNet evaluations per clip, then the best "
             "FD) within 5 % of the best FD and 0.02 of the best class accuracy (final only once every setting is "
             "measured); `turbo` the best FD at <= 8 UNet evaluations per clip (a guided step counts two). Both are "
             "applied to the means over the seeds of `seeds.json` of the settings this one-seed grid shortlists "
             f"(within {SHORTLIST_FD * 100:g} % of its best FD and, among those, {SHORTLIST_CLASS:g} of their best class "
             f"accuracy; the same among the settings of <= {TURBO_EVALUATIONS} UNet evaluations) once `--seed-check` "
             "has measured them all. Schedulers other than DDIM take the toy decoder's saved "
             "`timestep_spacing` (\"leading\").")
    text = "\n".join(["# Sampling settings, measured", "", about, "", *[f"- {line}" for line in summary], "",
                      *_seeds_section(out / "seeds.json", chosen["reference"]),
                      "![FD against seconds per clip](frontier.png)", "",
                      "## The Pareto frontier (no setting is both faster and closer)", "", *table,
                      *map(_line, frontier), "", "## Every setting", "", *table, *map(_line, order), ""])
    atomic_write_text(out / "sampling.md", text)
    return "\n".join(summary)


def _seeds_section(path: Path, reference: dict | None) -> list[str]:
    """Lines of the report for ``seeds.json`` (``benchmarks.sampling --seed-check``): each setting's FD and class
    accuracy per seed offset, their means and, over the offsets the reference has too, the ratios of the means."""
    if not path.is_file():
        return []
    seeds = json.loads(path.read_text())
    rows = seeds["rows"]
    offsets = sorted({int(offset) for per in rows.values() for offset in per})
    reference_key = reference["key"] if reference else None
    lines = ["## Across sampling seeds", "",
             f"`--seed-check` ({seeds['clips']} clips; mapper sha256 {seeds.get('mapper_sha256', 'not recorded')}; "
             f"{seeds['machine']}): FD / class accuracy with clip i seeded i + offset; offset 0 is the grid's own "
             "seed (its rows are the grid's when the mapper is the grid's).", "",
             "| setting | " + " | ".join(f"offset {o}" for o in offsets) + " | mean | mean vs DDIM-100 |",
             "|---|" + "---|" * (len(offsets) + 2)]
    def mean(per: dict, name: str, over) -> float:  # a score's mean over the given offsets (keys of per)
        return statistics.fmean(per[offset][name] for offset in over)

    for key, per in rows.items():
        cells = [f"{per[str(o)]['fd']:.2f} / {per[str(o)]['class_accuracy']:.2f}" if str(o) in per else "" for o in offsets]
        ratio = ""
        if reference_key in rows and key != reference_key:
            reference_row = rows[reference_key]
            shared = [offset for offset in per if offset in reference_row]
            ratio = (f"FD x{mean(per, 'fd', shared) / mean(reference_row, 'fd', shared):.2f}, class "
                     f"x{mean(per, 'class_accuracy', shared) / mean(reference_row, 'class_accuracy', shared):.2f}")
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {mean(per, 'fd', per):.2f} / "
                     f"{mean(per, 'class_accuracy', per):.2f} | {ratio} |")
    return [*lines, ""]


def _plot(path: Path, rows: list[dict], chosen: dict) -> None:
    """FD against seconds per clip, every setting by scheduler, the frontier, ``chosen`` ({label: row}) named."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for scheduler in sorted({r["scheduler"] for r in rows}):
        mine = [r for r in rows if r["scheduler"] == scheduler]
        axes.scatter([r["seconds_per_clip"] for r in mine], [r["fd"] for r in mine], s=14, label=scheduler)
    frontier = pareto_frontier(rows)
    axes.plot([r["seconds_per_clip"] for r in frontier], [r["fd"] for r in frontier], color="black", lw=1,
              label="frontier")
    for name, row in chosen.items():
        if row is not None:
            axes.annotate(name, (row["seconds_per_clip"], row["fd"]), textcoords="offset points", xytext=(6, 6))
    axes.set(xscale="log", xlabel="seconds per clip (log)", ylabel="FD (toy classifier, lower is better)",
             title="Sampler settings on held-out toy clips")
    axes.legend(fontsize=7, ncols=2)
    figure.savefig(path, format="png")
