"""Resizing decoded frames for the video models, one kernel for all of them (and for extraction's workers)."""
from __future__ import annotations

import numpy as np
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


def square_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8, by the models' own resize (exact: it is uint8 inside)."""
    resized = resize_frames(torch.from_numpy(frames)[None], size)[0]  # (T, 3, S, S) float, whole numbers
    return resized.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def shared_frame_size(preset) -> int | None:
    """The square size every visual encoder resizes to, if they agree (then frames are resized once for
    all of them, as they are decoded: ``read_clip(size=...)``)."""
    sizes = {getattr(config, "image_size", None) for config in preset.visual.values()}
    return sizes.pop() if len(sizes) == 1 else None
