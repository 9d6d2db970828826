"""Training cost of each variant for ``--print-plan``: FLOPs per training sample and estimated GPU hours.

FLOPs per sample are counted by torch's ``FlopCounterMode`` over one forward + backward of the variant's
mapper built on the meta device (shapes only, nothing computed), so every ablation is counted by the
same rule, including those the benchmark's analytic formula does not cover (time concat, Diff-Mapper).
For the paper's mapper that count is checked against ``benchmarks.train_throughput``'s analytic figure.

GPU throughput: no GPU figure has been measured (README, "Mapper training"), so the estimate assumes
the benchmark's goal, ``GPU_TRAIN_GOAL`` samples/s for the paper's mapper on one H100 at bf16, turns it into
a sustained FLOP rate with the analytic FLOPs of that mapper, and applies that rate to every variant.
It covers training only: generating and scoring the test set are not included.
"""
from __future__ import annotations

from dataclasses import dataclass

from mapper.training.flops import GPU_TRAIN_GOAL, train_flops_per_sample
from recipes.tables.run_config import merged_config
from recipes.tables.scales import Scale

PAPER_TRAIN_CLIPS = 77_000  # the paper's VGGSound training set, about 77k clips (README: "77k clips x 40 epochs")


@dataclass(frozen=True)
class Assumption:
    samples_per_second: float  # of the paper's mapper
    flops_per_sample: float  # analytic, of the paper's mapper
    text: str

    @property
    def flop_rate(self) -> float:
        return self.samples_per_second * self.flops_per_sample


def mapper_config(scale: Scale, variant: str):
    from mapper.config import MapperConfig, MapperOptions

    config = merged_config(scale, variant)
    return MapperConfig.from_preset(config["data"]["preset"], MapperOptions(**config["model"]["mapper"]))


def flops_per_sample(scale: Scale, variant: str) -> float:
    """Training FLOPs (forward + backward) of one sample of the variant's mapper, counted on meta tensors."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from extractors.presets import AUDIO_TARGET, get_preset
    from mapper.loading import build_mapper

    config = mapper_config(scale, variant)
    shapes = get_preset(config.extractor_preset).dims.shapes()
    with torch.device("meta"):
        mapper = build_mapper(config)
        features = {name: torch.randn(1, *shapes[name]) for name in mapper.input_streams}
        target = torch.randn(1, *shapes[AUDIO_TARGET])
    counter = FlopCounterMode(display=False)
    with counter:
        mapper.training_loss(features, target).backward()
    return float(counter.get_total_flops())


def gpu_assumption(scale: Scale) -> Assumption:
    analytic = train_flops_per_sample(mapper_config(scale, "full"))["total"]
    text = (f"no measured GPU figure exists; assumed: the training benchmark's goal of {GPU_TRAIN_GOAL:,.0f} samples/s "
            f"for the paper's mapper on one H100 at bf16 (mapper/training/flops.py GPU_TRAIN_GOAL), i.e. "
            f"{GPU_TRAIN_GOAL * analytic / 1e12:.0f} TFLOP/s sustained at its analytic {analytic / 1e9:.2f} GFLOP/sample, "
            f"applied to every variant's counted FLOPs")
    return Assumption(GPU_TRAIN_GOAL, analytic, text)


def training_samples(scale: Scale, variant: str) -> int:
    epochs = merged_config(scale, variant)["trainer"]["max_epochs"]
    return PAPER_TRAIN_CLIPS * epochs


def gpu_hours(flops: float, samples: int, assumption: Assumption) -> float:
    return flops * samples / assumption.flop_rate / 3600
