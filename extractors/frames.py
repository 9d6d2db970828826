"""Resizing decoded frames for the video models, one kernel for all of them (and for extraction's workers)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_frames(frames_uint8: torch.Tensor, size: int) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, T, 3, size, size) float32 holding whole numbers in [0, 255].

    Squash resize (aspect ratio not kept), antialiased bilinear, computed on uint8 and therefore
    quantised to uint8 like the originals' frames: Diff-Foley resizes a PIL image
    (``transforms.Resize((224, 224))``, PIL BILINEAR) before ``ToTensor``; torch's uint8 kernel follows
    PIL's (``tests/test_fidelity.py``: equal up to +-1 on a few % of the pixels). It runs on the CPU
    whatever the frames' device (the uint8 kernel is CPU-only; one code path keeps cached and
    generation-time features identical). TimeChat resizes inside decord (ffmpeg swscale) instead; on
    a lossless test video that differs from this by 0.2 grey levels on average (at most 3), which we
    accept in exchange for decoding each clip once for both models.
    """
    if frames_uint8.dim() != 5 or frames_uint8.shape[-1] != 3 or frames_uint8.dtype != torch.uint8:
        raise ValueError(f"expected (B, T, H, W, 3) uint8 frames, got {tuple(frames_uint8.shape)} "
                         f"{frames_uint8.dtype}")
    b, t, h, w, _ = frames_uint8.shape
    x = frames_uint8.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w)  # (B*T, 3, H, W)
    if (h, w) != (size, size):
        device = x.device
        on = device if device.type == "meta" else torch.device("cpu")  # meta: shapes only
        x = F.interpolate(x.to(on), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = x.to(device)
    return x.float().reshape(b, t, 3, size, size)
