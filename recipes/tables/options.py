"""The grid's settings, each checked before any work: a wrong value is one ValueError / FileNotFoundError
line naming the option, and nothing is written (``recipes.paper_tables`` turns it into exit status 2)."""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from recipes.tables.grid import CURVE_TABLE, TABLES, variants_for
from recipes.tables.scales import QUICK, SCALES, Scale

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class GridOptions:
    scale: Scale  # QUICK for --quick
    quick: bool
    out: Path
    cache: Path | None
    videos: Path | None
    seeds: int
    tables: list[str]
    only: list[str] | None  # variants to run (None: all the tables need)
    seed: int | None  # the one seed to run (None: all)
    devices: int | None
    num_nodes: int | None
    device: str  # generation and evaluation
    audioldm2: str | None  # None: the recipe's decoder
    labels: bool  # the clips' labels as the T5 prompt
    curve_every: int  # 0: no convergence figure
    print_plan: bool

    @property
    def variants(self) -> list[str]:
        return [v for v in variants_for(self.tables) if self.only is None or v in self.only]

    @property
    def seed_list(self) -> list[int]:
        return [self.seed] if self.seed is not None else list(range(self.seeds))

    @property
    def figure(self) -> bool:
        return CURVE_TABLE in self.tables and self.curve_every > 0

    def grid_identity(self) -> dict:
        """What makes two invocations the same grid (so one may resume the other's outputs)."""
        return {"scale": self.scale.name, "quick": self.quick, "cache": str(self.cache.resolve()),
                "videos": str(self.videos.resolve()), "audioldm2": self.audioldm2, "labels": self.labels,
                "curve_every": self.curve_every}


def options_from(args) -> GridOptions:
    """GridOptions from recipes.paper_tables' parsed command line, every value checked."""
    from mapper.generation.arguments import check_device

    if args.quick and args.scale != "toy":
        raise ValueError("--quick is the toy grid made small for tests; use it with --scale toy")
    scale = QUICK if args.quick else SCALES[args.scale]
    tables = _names("--tables", args.tables, list(TABLES))
    seeds = args.seeds if args.seeds is not None else scale.seeds
    if args.seed is not None and args.seed >= seeds:
        raise ValueError(f"--seed {args.seed}: the grid's seeds are 0..{seeds - 1} (--seeds {seeds})")
    only = _names("--only", args.only, variants_for(tables)) if args.only is not None else None
    curve_every = args.curve_every if args.curve_every is not None else scale.curve_every
    device = args.device or _default_device()
    check_device(device, "--device")
    if args.audioldm2 is not None:
        from mapper.decoders.audioldm2.loading import check_audioldm2_name

        check_audioldm2_name("--audioldm2", args.audioldm2)
    out = Path(args.out or scale.out)

    def folder(given: str | None, default: str | None) -> Path | None:
        if given or default is None:
            return Path(given) if given else None
        return out / default if scale.data_under_out else Path(default)

    options = GridOptions(
        scale=scale, quick=args.quick, out=out,
        cache=folder(args.cache, scale.cache), videos=folder(args.videos, scale.videos),
        seeds=seeds, tables=tables, only=only, seed=args.seed, devices=args.devices, num_nodes=args.num_nodes,
        device=device, audioldm2=args.audioldm2, labels=not args.no_labels, curve_every=curve_every,
        print_plan=args.print_plan,
    )  # fmt: skip
    runs = len(options.variants) * len(options.seed_list)
    if (args.num_nodes or 1) > 1 and runs != 1:
        raise ValueError(f"--num-nodes {args.num_nodes} trains one run across nodes; pick it with --only VARIANT "
                         f"--seed K ({runs} runs chosen)")
    tasks = launched_tasks()
    if tasks > 1 and runs != 1 and not options.print_plan:
        # every task trains, task 0 alone generates: with several runs the others would start the next
        # run's training without it
        raise ValueError(f"started as {tasks} tasks (SLURM_NTASKS / WORLD_SIZE), which train one run together; "
                         f"pick it with --only VARIANT --seed K ({runs} runs chosen)")
    if options.print_plan:
        return options
    _check_paths(options)
    _check_models(options)
    _check_same_grid(options)
    return options


def launched_tasks() -> int:
    """How many copies of this command a cluster launcher started (SLURM tasks, torchrun's world size)."""
    for name in ("SLURM_NTASKS", "WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def _names(option: str, text: str, allowed: list[str]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names or len(set(names)) != len(names):
        problem = f"unknown {', '.join(unknown)}" if unknown else "empty" if not names else "a name repeated"
        raise ValueError(f"{option} {text!r}: {problem}; allowed: {', '.join(allowed)}")
    return names


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_paths(options: GridOptions) -> None:
    from extractors.cache import FeatureCache
    from recipes.cli import check_folder_option

    check_folder_option("--out", options.out)
    if options.videos is None:
        raise ValueError(f"--videos is required at --scale {options.scale.name} (the test videos)")
    if options.cache is None:
        raise ValueError(f"--cache is required at --scale {options.scale.name}")
    if options.cache.exists() and not options.cache.is_dir():
        raise ValueError(f"--cache {options.cache} is a file; expected a feature cache folder")
    cache_ready = FeatureCache(options.cache).exists()
    if not cache_ready and not options.scale.toy_world:
        raise FileNotFoundError(f"--cache {options.cache}: no feature cache there "
                                "(python -m recipes.extract_features makes one)")
    if not cache_ready:
        _check_world_to_build(options)
        return  # the world is built (and its clips checked) when the grid starts
    if not options.videos.exists():
        raise FileNotFoundError(f"--videos {options.videos}: no such file or folder")
    from recipes.tables.testset import select_test_clips

    clips = select_test_clips(options.videos, options.scale.test_clips)
    if options.scale.toy_world:
        from toy_world import world_root_of

        root = world_root_of(clips[0].path.parent)
        if root is None:
            raise ValueError(f"--videos {options.videos}: not a toy world (no world.json); --scale toy scores "
                             "event sync and classes against one")
        _read_world_option(root)


def _check_world_to_build(options: GridOptions) -> None:
    """--cache is absent at toy scale: the toy world is built into --videos, which must be free or the same world."""
    from recipes.tables.toy_data import planned_world
    from toy_world.layout import world_json

    check_cache = options.cache
    if check_cache.is_dir() and any(check_cache.iterdir()):
        raise ValueError(f"--cache {check_cache}: not empty but not a feature cache (no cache.json)")
    if options.videos.exists() and not options.videos.is_dir():
        raise ValueError(f"--videos {options.videos} is a file; at --scale toy without a cache it is the toy "
                         "world's folder (built if absent)")
    if world_json(options.videos).is_file():  # a world is there already: it must be the recipe's
        if _read_world_option(options.videos).plan != planned_world(options.scale):
            raise ValueError(f"--videos {options.videos} holds another toy world than the recipe's; give its "
                             "cache with --cache, or another folder")


def _read_world_option(root: Path):
    """The toy world --videos names (its world.json checked): ValueError of one line naming the option."""
    from toy_world import read_world

    try:
        return read_world(root)
    except ValueError as error:
        raise ValueError(f"--videos {error}") from None


def _check_models(options: GridOptions) -> None:
    """The weights the grid will need, present before anything is trained."""
    from recipes.tables.run_config import grid_decoder

    decoder = grid_decoder(options.scale, options.audioldm2)
    if decoder == "toy":
        from mapper.decoders.audioldm2.toy import read_provenance

        read_provenance()  # FileNotFoundError naming the missing toy decoder
    from evaluation import imagebind, panns, passt, synchformer, vggish
    from evaluation.evaluate import METRICS
    from evaluation.weights import find_released_file

    modules = {"panns": panns, "vggish": vggish, "passt": passt, "ib_score": imagebind, "desync": synchformer}
    for name in dict.fromkeys(METRICS.get(m, m) for m in options.scale.metrics):
        if options.scale.eval_preset == "paper":
            find_released_file(modules[name].RELEASED, None)
        elif options.scale.eval_preset in getattr(modules[name], "SHIPPED", {}):
            if not modules[name].SHIPPED[options.scale.eval_preset].is_file():
                shipped = modules[name].SHIPPED[options.scale.eval_preset]
                raise FileNotFoundError(f"{shipped}: missing (a broken install)")
    if options.figure and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("the convergence figure needs matplotlib (pip install -e '.[dev]'), or pass --curve-every 0")


def _check_same_grid(options: GridOptions) -> None:
    plan = options.out / PLAN_FILE
    if not plan.is_file():
        return
    recorded = json.loads(plan.read_text()).get("grid", {})
    changed = [key for key, value in options.grid_identity().items() if recorded.get(key) != value]
    if changed:
        key = changed[0]
        raise ValueError(f"--out {options.out} holds a grid with {key}={recorded.get(key)!r}, not "
                         f"{options.grid_identity()[key]!r}; resume it with the same settings or use another --out")
