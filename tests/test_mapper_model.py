"""The mapper: alignment rule, fusion ablations, teacher forcing vs cached generation, save/load."""
import warnings

import torch
import torch.nn.functional as F
import pytest

from extractors.encoders import StreamSpec
from extractors.presets import feature_dims
from mapper.config import MapperConfig
from mapper.fusion import alignment_matrix
from mapper.model import MapperModel


def small_config(**kwargs) -> MapperConfig:
    streams = {"cavp": StreamSpec.per_frame(16, 40).to_dict(), "timechat": StreamSpec(24, ((0, 32), (32, 40)), 8).to_dict()}
    base = dict(n_layer=2, n_head=2, dropout=0.0, streams=streams, audio_token_dim=32)
    return MapperConfig(**{**base, **kwargs})


def test_alignment_matrix_is_adaptive_average_pooling_per_window():
    spans, queries, frames = [[0, 32], [32, 40]], 32, 40
    matrix = alignment_matrix(spans, queries, frames)
    tokens = torch.randn(2 * queries, 5)  # (W*Q, D)
    expected = torch.cat(
        [F.adaptive_avg_pool1d(tokens[w * queries : (w + 1) * queries].T[None], end - start)[0].T for w, (start, end) in enumerate(spans)]
    )
    torch.testing.assert_close(matrix @ tokens, expected)
    # paper numbers: frames 0..31 take one token each, frames 32..39 average four tokens
    assert matrix[0].count_nonzero() == 1 and matrix[39].count_nonzero() == 4


def test_alignment_rejects_uncovered_frames():
    with pytest.raises(ValueError, match="uncovered"):
        alignment_matrix([[0, 32]], 32, 40)


@pytest.mark.parametrize(
    "encoders,fusion,prefix",
    [("all", "concat_proj", 40), ("all", "add", 40), ("all", "time_cat", 40 + 16), ("cavp", "concat_proj", 40), ("timechat", "concat_proj", 40)],
)
def test_teacher_forcing_matches_cached_generation(encoders, fusion, prefix):
    torch.manual_seed(0)
    mapper = MapperModel(small_config(encoders=encoders, fusion=fusion)).eval()
    features = {"cavp": torch.randn(3, 40, 16), "timechat": torch.randn(3, 16, 24)}
    assert mapper.fuse(features).shape == (3, prefix, 32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generated = mapper.generate(features)  # (B, 8, D) through the KV cache
    assert generated.shape == (3, 8, 32)
    assert not [w for w in caught if "deprecated" in str(w.message)]  # the cache goes in as transformers wants it
    # Fed its own outputs as teacher-forcing targets, one forward over the prefix gives the same tokens.
    torch.testing.assert_close(mapper(features, generated), generated, atol=1e-5, rtol=1e-5)


def test_predictions_are_causal_in_the_targets():
    torch.manual_seed(0)
    mapper = MapperModel(small_config()).eval()
    features, target = {"cavp": torch.randn(2, 40, 16), "timechat": torch.randn(2, 16, 24)}, torch.randn(2, 8, 32)
    changed = target.clone()
    changed[:, 5] += torch.randn(2, 32)  # not a constant shift: LayerNorm would remove that
    a, b = mapper(features, target), mapper(features, changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])  # token k sees targets < k only
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_invalid_ablation_values_name_the_field():
    with pytest.raises(ValueError, match="fusion must be one of concat_proj, add, time_cat, got 'sum'"):
        small_config(fusion="sum")
    with pytest.raises(ValueError, match="combines several streams"):
        small_config(encoders="cavp", fusion="add")


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(0)
    mapper = MapperModel(small_config(extractor_preset="tiny", audioldm2="tiny")).eval()
    mapper.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors"}
    loaded = MapperModel.from_pretrained(tmp_path).eval()
    assert loaded.config.extractor_preset == "tiny" and loaded.config.audioldm2 == "tiny"
    features = {"cavp": torch.randn(1, 40, 16), "timechat": torch.randn(1, 16, 24)}
    torch.testing.assert_close(loaded.generate(features), mapper.generate(features))


def test_paper_shapes_on_meta_device():
    config = MapperConfig()  # paper: 12 x 768 GPT-2, cavp 512, timechat 2 windows x 32 x 768
    with torch.device("meta"):
        mapper = MapperModel(config)
        features = {"cavp": torch.empty(2, 40, 512), "timechat": torch.empty(2, 64, 768)}
        fused = mapper.fuse(features)
        out = mapper(features, torch.empty(2, 8, 768))
    assert fused.shape == (2, 40, 768) and out.shape == (2, 8, 768)
    trainable = sum(p.numel() for p in mapper.gpt2.parameters()) - mapper.gpt2.wte.weight.numel()
    assert 85e6 < trainable < 86e6  # GPT-2 small without its token table (124M with it)


def test_diffusion_mapper_denoises_and_round_trips(tmp_path):
    from mapper.loading import build_mapper, load_mapper

    torch.manual_seed(0)
    config = small_config(mapper_type="diffusion", diffusion_inference_steps=4)
    mapper = build_mapper(config)
    features, target = {"cavp": torch.randn(4, 40, 16), "timechat": torch.randn(4, 16, 24)}, torch.randn(4, 8, 32)
    optimizer = torch.optim.AdamW(mapper.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):  # a fixed batch: the denoiser must be able to fit it
        loss = mapper.training_loss(features, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    mapper.eval()
    sample = mapper.generate(features, generator=torch.Generator().manual_seed(1))
    assert sample.shape == (4, 8, 32) and torch.isfinite(sample).all()
    again = mapper.generate(features, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sample, again)
    mapper.save_pretrained(tmp_path)
    loaded = load_mapper(tmp_path).eval()
    assert type(loaded).__name__ == "DiffusionMapperModel"
    torch.testing.assert_close(loaded.generate(features, generator=torch.Generator().manual_seed(1)), sample)


def test_default_shapes_are_the_paper_presets():
    """MapperConfig() repeats no number: its shapes are read from the paper preset (clip timing, encoders, AudioMAE)."""
    config, dims = MapperConfig(), feature_dims("paper")
    assert (config.num_frames, config.num_audio_tokens, config.audio_token_dim) == (dims.num_frames,
                                                                                      dims.num_audio_tokens,
                                                                                      dims.audio_token_dim)
    assert config.streams == MapperConfig.from_preset("paper").streams
    assert MapperConfig(num_frames=20).streams["cavp"]["queries"] == 20  # the paper's streams at the given length
