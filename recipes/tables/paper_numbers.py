"""The paper's own numbers, shown beside ours in ``tables.md`` at ``--scale paper``.

Empty on purpose: the ablation tables of "Efficient Video-to-Audio Generation via Multiple Foundation
Models Mapper" (Chen et al., arXiv 2509.04957) could not be read and checked where this was written,
and a number that is not checked against the paper must not be printed as the paper's. To add them,
copy them from the paper's tables as {table: {row label: {column key: value}}}, with the row labels of
``recipes.tables.grid.TABLES`` and the column keys of ``recipes.tables.columns.PAPER_COLUMNS``
(e.g. ``{"encoders": {"CAVP": {"FD-PASST": ...}}}``); the table then gets a "paper" column per metric.
"""
from __future__ import annotations

PAPER_NUMBERS: dict[str, dict[str, dict[str, float]]] = {}
SOURCE = "arXiv 2509.04957 (MFM-Mapper)"
