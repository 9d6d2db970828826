"""How a global batch is split across devices: devices x per-device batch x accumulation steps."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is split: global = devices x per-device batch x accumulation steps."""

    global_batch: int
    world_size: int
    device_batch: int
    accumulation: int

    def describe(self) -> str:
        return (
            f"global batch {self.global_batch} = {self.world_size} device(s) x {self.device_batch} "
            f"per device x {self.accumulation} accumulation step(s)"
        )


def plan_batches(global_batch: int, world_size: int, max_device_batch: int | None = None) -> BatchPlan:
    """Keep the global batch whatever the device count (the paper's 48 on 3 GPUs or on 1)."""
    if global_batch % world_size:
        raise ValueError(f"global batch {global_batch} is not divisible by {world_size} devices")
    per_device = global_batch // world_size
    accumulation = 1
    if max_device_batch:
        accumulation = -(-per_device // max_device_batch)
        while per_device % accumulation:
            accumulation += 1
    return BatchPlan(global_batch, world_size, per_device // accumulation, accumulation)
