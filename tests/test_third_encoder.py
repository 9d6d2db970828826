"""Adding a visual encoder is a module (config + model + loading contract), a preset entry and a
config name: nothing in extraction, the cache, fusion, training or generation changes.

The toy encoder here measures motion: per frame, the mean absolute frame difference in a 4 x 4 grid,
pooled to 4 tokens per 20-frame window (so the mapper's alignment rule is exercised too). Its stream is
named "movement": "motion" is the cache's own motion-energy column (extractors.motion), a reserved name."""
import os
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from extractors.cache import FeatureCache
from extractors.encoders import StreamSpec, load_encoder_weights, missing_released_files, register_encoder
from extractors.extraction import extract_to_cache
from extractors.frozen import FrozenExtractors
from extractors.manifest import list_clips
from extractors.presets import get_preset, register_preset
from mapper.loading import load_mapper
from recipes import train_mapper
from test_training import run_args

pytestmark = [pytest.mark.slow]


# ---- the encoder module: config, model, released-file loading, registration ----------------------
@dataclass(frozen=True)
class MotionConfig:
    grid: int = 4  # motion energy in grid x grid cells
    window: int = 20  # frames per window
    queries: int = 4  # tokens per window

    def stream(self, num_frames: int) -> StreamSpec:
        spans = tuple((s, min(s + self.window, num_frames)) for s in range(0, num_frames, self.window))
        return StreamSpec(self.grid**2, spans, self.queries)


class MotionEncoder(nn.Module):
    def __init__(self, config: MotionConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.grid**2, config.grid**2)

    def encode(self, frames_uint8: torch.Tensor, clip) -> torch.Tensor:
        grey = frames_uint8.float().mean(-1) / 255  # (B, T, H, W)
        motion = F.pad((grey[:, 1:] - grey[:, :-1]).abs(), (0, 0, 0, 0, 1, 0))  # (B, T, H, W), frame 0 still
        cells = F.adaptive_avg_pool2d(motion, self.config.grid).flatten(2)  # (B, T, grid^2)
        spans = self.config.stream(frames_uint8.shape[1]).spans
        windows = [F.adaptive_avg_pool1d(cells[:, a:b].transpose(1, 2), self.config.queries) for a, b in spans]
        return self.proj(torch.cat(windows, dim=2).transpose(1, 2))  # (B, W*Q, grid^2)


def load_released(model: MotionEncoder, weights_dir: str) -> None:
    model.load_state_dict(load_file(os.path.join(weights_dir, "motion.safetensors")), strict=True)


register_encoder(MotionConfig, MotionEncoder, ("motion.safetensors",), load_released)
# ---- the preset entry -----------------------------------------------------------------------------
TINY = get_preset("tiny")
THREE = register_preset(replace(TINY, name="tiny-motion", visual={**TINY.visual, "movement": MotionConfig()}), overwrite=True)


def test_a_third_encoder_is_extracted_cached_and_fused_by_the_mapper(toy_world, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    report = extract_to_cache(list_clips(toy_world[1]), cache, FrozenExtractors.from_preset(THREE), progress=False)
    assert report.extracted == 16 and not report.failed
    rows = cache.load(THREE, require_audio=True).with_format("numpy")
    assert rows[0]["movement"].shape == (8, 16) and rows[0]["cavp"].shape == (40, 32)
    assert cache.meta()["streams"]["movement"] == {"dim": 16, "spans": [[0, 20], [20, 40]], "queries": 4}
    motion = np.stack(rows["movement"]).astype(np.float32)  # (clips, 8, 16): videos differ in when things move
    assert motion.std(axis=0).mean() > 0

    # ---- the config name: train on all three streams, and on the new one alone
    metrics = train_mapper.main(run_args(cache.root, tmp_path, "--data.preset", "tiny-motion", "--trainer.max_epochs", "2"))
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    mapper = load_mapper(tmp_path / "mapper")
    assert list(mapper.config.selected_streams) == ["cavp", "timechat", "movement"]
    assert mapper.fusion.proj.in_features == 32 + 32 + 16  # concat_proj over the three streams
    alone = run_args(cache.root, tmp_path / "alone", "--data.preset", "tiny-motion", "--trainer.max_epochs", "1",
                     "--model.mapper.encoders", "movement")  # fmt: skip
    train_mapper.main(alone)
    assert list(load_mapper(tmp_path / "alone" / "mapper").config.selected_streams) == ["movement"]


def test_a_third_encoder_loads_its_released_file_through_the_shared_contract(tmp_path):
    source = MotionEncoder(MotionConfig())
    save_file(source.state_dict(), str(tmp_path / "motion.safetensors"))
    assert missing_released_files(MotionConfig(), str(tmp_path)) == []
    assert missing_released_files(MotionConfig(), str(tmp_path / "nowhere")) == ["motion.safetensors"]
    target = MotionEncoder(MotionConfig())
    load_encoder_weights(target, MotionConfig(), str(tmp_path))
    torch.testing.assert_close(target.proj.weight, source.proj.weight, rtol=0, atol=0)
