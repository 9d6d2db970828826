"""``DIR/tables.md`` and ``DIR/tables.json`` from the runs' evaluation markers: one table per ablation in the
paper's layout (a row per variant, a column per metric), each cell the mean ± sample std over seeds."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from extractors.atomic import atomic_write_text
from recipes.tables.columns import COLUMNS, Column, arrow
from recipes.tables.grid import TABLES
from recipes.tables.markers import read_marker


def summarize(values: list[float]) -> dict:
    """Mean and sample standard deviation (n - 1) of the finite values; None where there are none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return {"mean": statistics.mean(finite) if finite else None,
            "std": statistics.stdev(finite) if len(finite) > 1 else None,
            "n": len(finite), "values": values}


def collect(run_folders: dict[tuple[str, int], Path], scale: str, tables: list[str]) -> dict:
    """{table: {title, row_header, rows: [{label, variant, seeds, metrics: {column key: summary}}]}}."""
    columns = COLUMNS[scale]
    out = {}
    for name in tables:
        table = TABLES[name]
        rows = []
        for label, variant in table.rows:
            records = {seed: read_marker(folder, "evaluate") for (v, seed), folder in sorted(run_folders.items())
                       if v == variant}
            done = {seed: r["metrics"] for seed, r in records.items() if r is not None}
            rows.append({"label": label, "variant": variant, "seeds": sorted(done),
                         "metrics": {c.key: summarize([m.get(c.key) for m in done.values()]) for c in columns}})
        out[name] = {"title": table.title, "row_header": table.row_header, "rows": rows}
    return out


def format_cell(summary: dict, column: Column) -> str:
    if summary["mean"] is None:
        return "n/a"
    mean = f"{summary['mean']:.{column.digits}f}"
    return mean if summary["std"] is None else f"{mean} ± {summary['std']:.{column.digits}f}"


def markdown(tables: dict, scale: str, notes: list[str], paper: dict | None = None) -> str:
    """The tables in markdown; ``paper`` ({table: {row label: {column key: value}}}) adds the paper's own
    number beside each of ours."""
    columns = COLUMNS[scale]
    lines = []
    for name, table in tables.items():
        ours = paper.get(name) if paper else None
        header = [table["row_header"]]
        for column in columns:
            header.append(f"{column.header} {arrow(column)}")
            if ours:
                header.append("paper")
        lines += [f"### {table['title']}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        for row in table["rows"]:
            cells = [row["label"]]
            for column in columns:
                cells.append(format_cell(row["metrics"][column.key], column))
                if ours:
                    value = ours.get(row["label"], {}).get(column.key)
                    cells.append("—" if value is None else f"{value:.{column.digits}f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Notes:", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_report(out: Path, tables: dict, scale: str, notes: list[str], extra: dict,
                 paper: dict | None = None) -> None:
    atomic_write_text(out / "tables.md", markdown(tables, scale, notes, paper))
    columns = [{"key": c.key, "header": c.header, "lower_is_better": c.lower_is_better} for c in COLUMNS[scale]]
    record = {"scale": scale, "columns": columns, "tables": tables, "notes": notes, **extra}
    if paper:
        record["paper"] = paper
    atomic_write_text(out / "tables.json", json.dumps(record, indent=1, default=float) + "\n")
