"""Feature extraction into the datasets cache: rows, shapes, dtype, resume, bad files."""
import json
import shutil

import numpy as np
import pytest

from extractors.cache import CacheMismatchError, FeatureCache
from extractors.clips import list_clips
from extractors.presets import get_preset
from recipes import extract_features


@pytest.fixture(scope="module")
def videos_with_bad_files(toy_world, tmp_path_factory):
    """A copy of the toy world's CSV and videos plus a text file and a truncated mp4 in the list."""
    root, metadata = toy_world
    folder = tmp_path_factory.mktemp("with_bad")
    shutil.copytree(root / "videos", folder / "videos")
    (folder / "videos" / "not_a_video.mp4").write_text("this is not a video\n")
    good = (folder / "videos" / "toy_00000.mp4").read_bytes()
    (folder / "videos" / "truncated.mp4").write_bytes(good[: len(good) // 3])
    rows = metadata.read_text().splitlines()[:6]
    rows += ["not_a_video,0,lamp beeping,train", "truncated,0,drum hitting,train", "missing_file,0,bell ringing,test"]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return folder


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
    assert row["cavp"].shape == (dims.num_frames, dims.cavp_dim)
    assert row["timechat"].shape == (dims.timechat_tokens, dims.timechat_dim)
    assert row["audiomae"].shape == (dims.num_audio_tokens, dims.audio_token_dim)
    assert row["timechat_spans"].tolist() == [list(s) for s in preset.timechat.window_spans(dims.num_frames)]
    assert row["preset"] == "tiny" and row["preset_fingerprint"] == preset.fingerprint()
    np.testing.assert_allclose(np.linalg.norm(row["cavp"].astype(np.float32), axis=-1), 1.0, atol=2e-3)
    meta = json.loads((cache_dir / "cache.json").read_text())
    assert meta["preset_config"]["cavp"]["out_dim"] == dims.cavp_dim and meta["dtype"] == "float16"


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
