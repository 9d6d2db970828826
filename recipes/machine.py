"""The machine a figure came from: CPU, usable cores, torch and its threads, package versions, GPU.

Printed by every benchmark and recorded by the paper tables, so a figure always names its machine.
"""
from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def machine_line(device: torch.device, packages: tuple[str, ...] = ()) -> str:
    """CPU, usable cores, torch and its threads, the versions of ``packages``, and the GPU if used."""
    line = (f"cpu: {cpu_model()} ({os.cpu_count()} logical, {len(os.sched_getaffinity(0))} usable), "
            f"torch {torch.__version__} threads={torch.get_num_threads()}")
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    if versions:
        line += "\n" + ", ".join(versions)
    if device.type == "cuda":
        line += f"\ngpu: {torch.cuda.get_device_name(device)}"
    return line
