"""The tables' columns at each scale, and the key each is read from in a run's evaluation record.

Keys are ``recipes.evaluate``'s (av-benchmark's names in metrics.json), plus, on the toy world,
``event_sync_error_s`` (the suite's toy-world output) and ``class_accuracy`` (the toy classifier
through ``evaluation.toy_report.score``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str  # in the evaluation record
    header: str
    lower_is_better: bool
    digits: int


PAPER_COLUMNS = (
    Column("FD-PASST", "FD (PaSST)", True, 2),
    Column("ISC-PANNS-mean", "IS", False, 2),
    Column("IB-Score-x100", "IB-score", False, 2),
    Column("DeSync", "DeSync", True, 3),
)
TOY_COLUMNS = (
    Column("FD-PANN", "FD (toy PANNs)", True, 2),
    Column("ISC-PANNS-mean", "IS (toy PANNs)", False, 2),
    Column("event_sync_error_s", "Event-sync error (s)", True, 3),
    Column("class_accuracy", "Class accuracy", False, 2),
)
COLUMNS = {"toy": TOY_COLUMNS, "paper": PAPER_COLUMNS}


def arrow(column: Column) -> str:
    return "↓" if column.lower_is_better else "↑"
