"""What every benchmark needs besides the machine line (``recipes.machine``): device synchronisation."""
from __future__ import annotations

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on CPU), so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
