"""Feature extraction into the datasets cache: rows, shapes, dtype, resume, bad files."""
import json

import numpy as np
import pytest

from extractors.cache import CacheMismatchError, FeatureCache, feature_shapes
from extractors.manifest import list_clips
from extractors.presets import get_preset
from recipes import extract_features


@pytest.fixture(scope="module")
def videos_with_bad_files(world_with_bad_files, tmp_path_factory):
    """Six toy clips plus a text file, a truncated mp4 and a missing file in the CSV."""
    return world_with_bad_files(tmp_path_factory.mktemp("with_bad"), num_good=6).parent


def test_extraction_skips_and_reports_bad_files_then_resumes(videos_with_bad_files, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    argv = ["--videos", str(videos_with_bad_files / "metadata.csv"), "--out", str(cache_dir), "--preset", "tiny", "--num-workers", "0"]
    assert extract_features.main(argv) == 0
    report = capsys.readouterr().out
    assert "extracted 6 clips, 0 already cached, 3 failed" in report
    for name in ("not_a_video.mp4", "truncated.mp4", "missing_file.mp4"):
        line = next(l for l in report.splitlines() if name in l)
        assert line.strip().startswith("failed:") and "\n" not in line
    cache = FeatureCache(cache_dir)
    rows = cache.load(get_preset("tiny"))
    assert sorted(rows["id"]) == sorted(item.id for item in list_clips(videos_with_bad_files / "metadata.csv")[:6])
    assert {f["id"] for f in cache.failures()} == {"not_a_video", "truncated", "missing_file"}

    # A rerun extracts nothing new and duplicates nothing.
    assert extract_features.main(argv) == 0
    assert "extracted 0 clips, 6 already cached" in capsys.readouterr().out
    assert len(cache.load()) == 6


def test_cache_rows_have_preset_shapes_and_float16(videos_with_bad_files, tmp_path):
    cache_dir = tmp_path / "cache"
    argv = ["--videos", str(videos_with_bad_files / "metadata.csv"), "--out", str(cache_dir), "--limit", "2", "--num-workers", "0"]
    assert extract_features.main(argv) == 0
    preset = get_preset("tiny")
    dims = preset.dims
    rows = FeatureCache(cache_dir).load(preset)
    assert {rows.features[name].dtype for name in ("cavp", "timechat", "audiomae")} == {"float16"}  # on disk
    row = rows.with_format("numpy")[0]
    cavp_dim, timechat_dim = preset.visual["cavp"].out_dim, preset.visual["timechat"].hidden
    assert row["cavp"].shape == (dims.num_frames, cavp_dim)
    assert row["timechat"].shape == (dims.streams["timechat"].num_tokens, timechat_dim)
    assert row["audiomae"].shape == (dims.num_audio_tokens, dims.audio_token_dim)
    assert row["preset"] == "tiny" and row["preset_fingerprint"] == preset.fingerprint()
    np.testing.assert_allclose(np.linalg.norm(row["cavp"].astype(np.float32), axis=-1), 1.0, atol=2e-3)
    meta = json.loads((cache_dir / "cache.json").read_text())
    assert meta["preset_config"]["visual"]["cavp"]["out_dim"] == cavp_dim and meta["dtype"] == "float16"
    spans = [list(s) for s in preset.visual["timechat"].window_spans(dims.num_frames)]
    assert meta["streams"]["timechat"]["spans"] == spans and meta["streams"]["cavp"]["spans"] == [[0, dims.num_frames]]


def test_loading_a_cache_with_another_preset_is_a_clear_error(videos_with_bad_files, tmp_path):
    cache_dir = tmp_path / "cache"
    argv = ["--videos", str(videos_with_bad_files / "metadata.csv"), "--out", str(cache_dir), "--limit", "1", "--num-workers", "0"]
    assert extract_features.main(argv) == 0
    with pytest.raises(CacheMismatchError, match="extracted with preset 'tiny'"):
        FeatureCache(cache_dir).load(get_preset("paper"))


def test_extraction_of_a_missing_input_is_a_one_line_error(tmp_path, capsys):
    assert extract_features.main(["--videos", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.csv" in err


def _synthetic_row(clip_id: str, preset) -> dict:
    shapes = {name: tuple(shape) for name, shape in feature_shapes(preset).items()}
    rng = np.random.default_rng(abs(hash(clip_id)) % 2**32)
    row = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    return {"id": clip_id, "label": "", "split": "train", "start": 0.0, "duration": 10.0, "num_valid_frames": 40, **row}


def test_shards_of_all_ranks_merge_sorted_and_a_repeated_id_is_a_clear_error(tmp_path):
    preset = get_preset("tiny")
    cache = FeatureCache(tmp_path / "cache")
    cache.initialise(preset)
    cache.write_shard([_synthetic_row("b", preset), _synthetic_row("d", preset)], rank=1)
    cache.write_shard([_synthetic_row("c", preset), _synthetic_row("a", preset)], rank=0)
    assert list(cache.load(preset)["id"]) == ["a", "b", "c", "d"]
    assert cache.completed_ids() == {"a", "b", "c", "d"}
    second = cache.write_shard([_synthetic_row("c", preset)], rank=1)
    with pytest.raises(ValueError, match=f"clip id 'c' is in more than one row .*{second.name}"):
        cache.load(preset)


def test_failures_are_per_rank_latest_reason_and_forget_clips_extracted_since(tmp_path):
    preset = get_preset("tiny")
    cache = FeatureCache(tmp_path / "cache")
    cache.initialise(preset)
    cache.record_failure("x", "v/x.mp4", "v/x.mp4: no such file", rank=0)
    cache.record_failure("y", "v/y.mp4", "v/y.mp4: no video stream", rank=1)
    cache.record_failure("x", "v/x.mp4", "v/x.mp4: truncated", rank=1)  # a later run, another rank
    assert [(f["id"], f["reason"]) for f in cache.failures()] == [("x", "v/x.mp4: truncated"), ("y", "v/y.mp4: no video stream")]
    cache.write_shard([_synthetic_row("y", preset)])  # the file was fixed and extracted
    assert [f["id"] for f in cache.failures()] == ["x"]


def test_a_cache_of_another_format_or_dtype_is_a_clear_error(tmp_path):
    preset = get_preset("tiny")
    cache = FeatureCache(tmp_path / "cache")
    cache.initialise(preset, dtype="float32")
    with pytest.raises(CacheMismatchError, match="stores float32, not float16"):
        cache.initialise(preset, dtype="float16")
    cache.initialise(preset)  # no dtype: resume with the cache's own
    meta = json.loads(cache.meta_path.read_text())
    assert meta["toolkit_version"] and meta["preset_config"] == json.loads(json.dumps(preset.to_dict()))
    cache.meta_path.write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(CacheMismatchError, match="cache format 1, this toolkit reads format"):
        cache.load(preset)
    # the format before the motion stream says what it lacks, in one line
    cache.meta_path.write_text(json.dumps({**meta, "format": 4}))
    with pytest.raises(CacheMismatchError, match=r"cache format 4 \(no motion stream, .*\), this toolkit reads format 5; "
                                                 r"extract again") as error:
        cache.load(preset)
    assert "\n" not in str(error.value)
