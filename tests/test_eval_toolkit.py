"""The evaluation plumbing: pairing by name, the embedding cache, the toy world's event-sync error."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from evaluation.embedding_cache import EmbeddingCache, embedder_key
from evaluation.pairing import pair_files, sample_name
from evaluation.toy_sync import load_world_events, sync_offset, toy_sync
from extractors.file_hash import file_sha256


def _wav(path, seconds=0.5, sr=16000, seed=0):
    sf.write(path, np.random.default_rng(seed).standard_normal(int(sr * seconds)).astype(np.float32) * 0.1, sr)
    return path


def test_files_pair_by_exact_stem_and_unpaired_ones_are_named(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    for name in ("a", "b", "only_generated"):
        _wav(gen / f"{name}.wav")
    for name in ("a", "b", "only_reference"):
        _wav(ref / f"{name}.flac")
    (gen / ".a.123.tmp.wav").write_bytes(b"half written")  # a writer's temporary: not a sample
    pairing = pair_files(gen, ref)
    assert [name for name, _, _ in pairing.pairs] == ["a", "b"]
    assert [p.name for p in pairing.unpaired_generated] == ["only_generated.wav"]
    assert [p.name for p in pairing.unpaired_reference] == ["only_reference.flac"]


def test_two_files_with_one_name_are_an_error(tmp_path):
    _wav(tmp_path / "a.wav"), _wav(tmp_path / "a.flac")
    with pytest.raises(ValueError, match="a.flac and a.wav have the same name"):
        pair_files(tmp_path, tmp_path)


@pytest.mark.parametrize("stem, name", [
    ("000000014_zxpo56cpUBU_000007-0", "zxpo56cpUBU_000007"),
    ("zxpo56cpUBU_000007-0", "zxpo56cpUBU_000007"),
    ("Y---g-f_I2yQ_000001_0", "---g-f_I2yQ_000001"),
    ("zxpo56cpUBU_000007", "zxpo56cpUBU_000007"),
    ("my_clip_v2", "my_clip_v2"),  # any other name is left as it is, never sliced
])  # fmt: skip
def test_the_vggsound_rule_matches_whole_names_or_nothing(stem, name):
    assert sample_name(stem, "vggsound") == name
    assert sample_name(stem, "exact") == stem


def test_cache_returns_what_was_stored_and_keys_separate_protocols(tmp_path):
    cache = EmbeddingCache(tmp_path, embedder_key("panns", "tiny", {"width": 4}, {"audio_length": 8.0}))
    outputs = {"h1": {"embedding": np.arange(6, dtype=np.float32).reshape(2, 3), "logits": np.ones(5)},
               "h2": {"embedding": np.zeros((1, 3)), "logits": np.zeros(5)}}
    cache.add(outputs)
    cache.add({"h3": {"embedding": np.ones((3, 3)), "logits": np.ones(5)}})
    loaded = EmbeddingCache(tmp_path, cache.folder.name).load()
    assert sorted(loaded) == ["h1", "h2", "h3"]
    np.testing.assert_array_equal(loaded["h1"]["embedding"], outputs["h1"]["embedding"])
    assert loaded["h3"]["embedding"].shape == (3, 3)
    other = embedder_key("panns", "tiny", {"width": 4}, {"audio_length": 10.0})
    assert other != cache.folder.name and EmbeddingCache(tmp_path, other).load() == {}


def test_file_sha256_follows_the_bytes_not_the_name(tmp_path):
    a = _wav(tmp_path / "a.wav", seed=1)
    (tmp_path / "b.wav").write_bytes(a.read_bytes())
    _wav(tmp_path / "c.wav", seed=2)
    assert file_sha256(a) == file_sha256(tmp_path / "b.wav") != file_sha256(tmp_path / "c.wav")


def test_sync_offset_finds_a_known_shift():
    sr, events = 16000, np.array([1.0, 2.5, 4.2, 6.0])
    audio = np.random.default_rng(0).standard_normal(sr * 8) * 1e-3
    for t in events + 0.2:  # every sound 200 ms late
        audio[int(t * sr): int(t * sr) + 800] += np.hanning(800)
    assert sync_offset(audio, sr, events) == pytest.approx(0.2, abs=0.011)
    assert sync_offset(audio, sr, events + 0.2) == pytest.approx(0.0, abs=0.011)


def test_toy_world_audio_is_in_sync_and_the_wrong_video_is_not(toy_world):
    from extractors.clip import ClipConfig
    from extractors.manifest import list_clips
    from extractors.video import read_clip

    root, metadata = toy_world
    events = load_world_events(root)
    clips = list_clips(metadata)[:8]
    audio = {c.id: read_clip(c.path, ClipConfig(), start=c.start).audio for c in clips}
    result = toy_sync(audio, ClipConfig().sample_rate, events)
    assert result.error <= 0.02 and result.baseline_error >= 0.15, (result.per_clip, result.baseline)


def _arrow_files(folder):
    return sorted(folder.rglob("*.arrow"))


def test_cache_drops_an_entry_edited_in_place_and_names_its_shard(tmp_path, capsys):
    cache = EmbeddingCache(tmp_path, embedder_key("panns", "tiny", {"width": 4}, {"audio_length": 8.0}))
    marker = np.full((4, 3), 1.2345, dtype=np.float32)
    cache.add({"edited": {"embedding": marker}, "kept": {"embedding": np.zeros((4, 3))}})
    (arrow,) = _arrow_files(cache.folder)
    data = arrow.read_bytes()
    assert marker.tobytes() in data
    arrow.write_bytes(data.replace(marker.tobytes(), np.full((4, 3), 9.0, dtype=np.float32).tobytes()))  # same size

    loaded = cache.load()
    assert list(loaded) == ["kept"]  # the edited numbers are not served
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 of 2 entries fail their checksum" in err and cache.folder.name in err
    assert list(cache.load()) == ["kept"] and capsys.readouterr().err == ""  # repaired: said once, kept good rows


def test_cache_sets_aside_a_truncated_shard_and_keeps_the_others(tmp_path, capsys):
    cache = EmbeddingCache(tmp_path, embedder_key("panns", "tiny", {"width": 4}, {"audio_length": 8.0}))
    cache.add({"a": {"embedding": np.ones((2, 3))}})
    (victim,) = _arrow_files(cache.folder)
    cache.add({"b": {"embedding": np.zeros((2, 3))}})
    victim.write_bytes(victim.read_bytes()[:100])
    capsys.readouterr()

    loaded = cache.load()
    assert list(loaded) == ["b"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable" in err and str(victim.parent) in err
    assert list(cache.load()) == ["b"] and capsys.readouterr().err == ""  # set aside: not read again
    assert any(p.name.startswith(".rejected-") for p in cache.folder.iterdir())  # kept for inspection
