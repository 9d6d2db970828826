"""The convergence figure: each metric against training epochs, autoregressive mapper vs Diff-Mapper
(the paper's Figure 3). A point is a mapper exported every k epochs, generated and evaluated like the
final one; lines are the mean over seeds with a ±1 std band."""
from __future__ import annotations

import math
from pathlib import Path

from extractors.atomic import atomic_path
from recipes.tables.columns import COLUMNS, arrow
from recipes.tables.grid import CURVE_VARIANTS
from recipes.tables.markers import read_marker
from recipes.tables.report import summarize


def collect_curves(run_folders: dict[tuple[str, int], Path], scale: str) -> dict:
    """{variant: {column key: {epoch: summary over seeds}}} from the runs' ``curve`` markers."""
    curves = {}
    for variant in CURVE_VARIANTS:
        points: dict[int, list[dict]] = {}
        for (v, _), folder in sorted(run_folders.items()):
            record = read_marker(folder, "curve") if v == variant else None
            for epoch, metrics in (record or {}).get("points", {}).items():
                points.setdefault(int(epoch), []).append(metrics)
        curves[variant] = {c.key: {epoch: summarize([m.get(c.key) for m in runs])
                                   for epoch, runs in sorted(points.items())} for c in COLUMNS[scale]}
    return curves


def draw_convergence(path: Path, curves: dict, scale: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = COLUMNS[scale]
    figure, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.4), squeeze=False)
    for axis, column in zip(axes[0], columns):
        for variant, label in CURVE_VARIANTS.items():
            series = [(e, s) for e, s in curves.get(variant, {}).get(column.key, {}).items() if s["mean"] is not None]
            if not series:
                continue
            epochs = [e for e, _ in series]
            mean = [s["mean"] for _, s in series]
            std = [s["std"] if s["std"] is not None and math.isfinite(s["std"]) else 0.0 for _, s in series]
            line, = axis.plot(epochs, mean, marker="o", label=label)
            axis.fill_between(epochs, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)],
                              color=line.get_color(), alpha=0.2)
        axis.set_title(f"{column.header} {arrow(column)}")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        if not axis.lines:
            axis.text(0.5, 0.5, "n/a", ha="center", va="center", transform=axis.transAxes)
        else:
            axis.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)
