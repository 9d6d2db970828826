"""What differs between the toy grid, the paper grid and the quick (CI) grid: recipe, data, decoding, metrics.

toy    the toy recipe (``toy.yaml``: tiny extractors, toy world, toy AudioLDM-2) on the toy world's test
       split; scored with ``recipes.evaluate --preset toy`` (PANNs = the toy classifier) plus the
       toy world's event-sync error and class accuracy. IB-score and DeSync are left out: at this scale
       their embedders (ImageBind, Synchformer) are random tiny models, which measure nothing.
paper  the paper recipe (``paper.yaml``) on a VGGSound cache; the paper's columns with the released
       embedders (``--preset paper``): FD-PaSST, IS, IB-score, DeSync.
quick  the toy grid made small enough for a test on 2 CPU cores: 1 seed, 2 epochs, 3 test clips,
       4 sampling steps, a 24-clip world.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toy_world.folders import CACHE_DIR, WORLD_DIR

CONFIG_DIR = Path(__file__).resolve().parents[2] / "recipes" / "configs"


@dataclass(frozen=True)
class Scale:
    name: str
    recipe: Path  # the LightningCLI YAML every variant starts from
    cache: str | None  # default --cache
    videos: str | None  # default --videos
    sampling_preset: str  # recipes.generate --preset
    eval_preset: str  # recipes.evaluate --preset
    metrics: tuple[str, ...]  # recipes.evaluate --metrics
    toy_world: bool  # scored also by the toy world's event times and classes
    out: str  # default --out
    curve_every: int = 10  # epochs between the convergence figure's points
    seeds: int = 3
    # the quick grid's reductions (None: the recipe's own)
    max_epochs: int | None = None
    test_clips: int | None = None
    sampling_steps: int | None = None
    world_clips: int | None = None  # the toy world built when --cache is absent (None: the recipe's)
    data_under_out: bool = False  # default --cache / --videos are inside --out (the quick grid writes nothing else)


SCALES = {
    "toy": Scale("toy", CONFIG_DIR / "toy.yaml", CACHE_DIR, WORLD_DIR, "fast", "toy",
                 ("fd_panns", "is_panns"), toy_world=True, out="runs/tables/toy"),
    "paper": Scale("paper", CONFIG_DIR / "paper.yaml", "data/vggsound/cache", None, "paper", "paper",
                   ("fd_passt", "is_panns", "ib_score", "desync"), toy_world=False, out="runs/tables/paper"),
}
QUICK = Scale("toy", CONFIG_DIR / "toy.yaml", "toy_data/cache", "toy_data/world", "fast", "toy",
              ("fd_panns", "is_panns"), toy_world=True, out="runs/tables/quick", curve_every=1, seeds=1, max_epochs=2, test_clips=3,
              sampling_steps=4, world_clips=24, data_under_out=True)
