"""The paper's three ablation tables as data: (table, row label, variant), and what each variant trains.

A variant is the scale's recipe (``toy.yaml`` or ``paper.yaml``) plus the ablation overlays in
``recipes/configs/ablations/``; the row that is the paper's full model (CAVP + TimeChat, channel
concat + projection, autoregressive GPT-2) appears in all three tables and is trained once. A fourth
table goes beyond the paper: the full model's mapper rendered again with timing control (a guided
variant: no training of its own, ``GUIDED_VARIANTS``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ABLATIONS_DIR = Path(__file__).resolve().parents[2] / "recipes" / "configs" / "ablations"

# variant name -> the ablation overlays it layers on the recipe, in order (names of ABLATIONS_DIR/*.yaml)
VARIANTS: dict[str, tuple[str, ...]] = {
    "full": (),
    "cavp_only": ("cavp_only",),
    "timechat_only": ("timechat_only",),
    "fusion_add": ("fusion_add",),
    "fusion_time_cat": ("fusion_time_cat",),
    "diff_mapper": ("diff_mapper",),
}
# Guided variants: the mapper of another variant (the value), rendered with sync guidance (recipes.generate
# --sync-guidance: the mapper folder's default scale, or envelope_guidance.DEFAULT_SCALE where that is 0)
GUIDED_VARIANTS: dict[str, str] = {"full_sync": "full"}


@dataclass(frozen=True)
class Table:
    name: str  # the --tables choice
    title: str
    row_header: str
    rows: tuple[tuple[str, str], ...]  # (row label as the paper prints it, variant)


TABLES: dict[str, Table] = {
    "encoders": Table("encoders", "Visual encoders", "Visual encoder",
                      (("CAVP + TimeChat", "full"), ("CAVP", "cavp_only"), ("TimeChat", "timechat_only"))),
    "fusion": Table("fusion", "Fusion of the two streams", "Fusion",
                    (("Channel concat + projection", "full"), ("Add", "fusion_add"),
                     ("Time concat", "fusion_time_cat"))),
    "mapper": Table("mapper", "Mapper", "Mapper",
                    (("Autoregressive (GPT-2)", "full"), ("Diff-Mapper", "diff_mapper"))),
    "timing": Table("timing", "Timing control (beyond the paper)", "Decoding",
                    (("Paper decoding", "full"), ("+ sync guidance", "full_sync"))),
}

# The convergence figure compares these two (the mapper table's rows): variant -> its line's label.
CURVE_VARIANTS: dict[str, str] = {"full": "Autoregressive (GPT-2)", "diff_mapper": "Diff-Mapper"}
CURVE_TABLE = "mapper"


def variants_for(tables: list[str]) -> list[str]:
    """The variants the chosen tables need, each once, in table order."""
    return list(dict.fromkeys(variant for name in tables for _, variant in TABLES[name].rows))


def ablation_files(variant: str) -> list[Path]:
    return [ABLATIONS_DIR / f"{name}.yaml" for name in VARIANTS[GUIDED_VARIANTS.get(variant, variant)]]
