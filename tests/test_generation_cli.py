"""`python -m recipes.generate`: folders and CSVs in batches, a broken file reported and skipped,
labels from the CSV, `--mp4` with the video stream copied, resuming."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import shutil  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
from test_generation import SR, tiny_mapper_dir, tiny_pipeline, write_video  # noqa: E402, F401, F811 (fixtures)

from extractors.clip import ClipConfig  # noqa: E402
from extractors.manifest import list_clips  # noqa: E402
from extractors.video import probe_duration, read_clip  # noqa: E402
from recipes import generate  # noqa: E402

FAST = ["--preset", "fast", "--steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two good videos and one broken file."""
    root = tmp_path_factory.mktemp("inputs")
    write_video(root / "a.mp4", 3.0, seed=1)
    write_video(root / "b.mp4", 12.0, seed=2)
    (root / "c_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    return root


def test_folder_batch_writes_every_good_video_and_reports_the_broken_one(folder, tiny_mapper_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = generate.main([str(folder), "--out", str(out), "--mapper", str(tiny_mapper_dir), "--label", "dog barking", *FAST])
    assert code == 1  # something failed, and everything else was written
    captured = capsys.readouterr()
    for name, seconds in (("a", 3.0), ("b", 12.0)):
        audio, rate = sf.read(out / f"{name}.wav")
        assert rate == SR and len(audio) == round(seconds * SR) and audio.std() > 1e-3
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"]  # no leftovers of the broken one
    assert f"1 of 3 videos failed:\n  {folder / 'c_broken.mp4'}: not a readable video" in captured.err
    assert f"wrote {out / 'a.wav'}: 3.00 s at 16000 Hz" in captured.out


def test_rerun_with_skip_existing_does_nothing_more(folder, tiny_mapper_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b"):
        sf.write(out / f"{name}.wav", np.zeros(10), SR)
    args = [str(folder), "--out", str(out), "--mapper", str(tiny_mapper_dir), "--skip-existing", *FAST]
    assert generate.main(args) == 1  # only the broken file was left to do, and it fails again
    assert sf.info(str(out / "a.wav")).frames == 10 and sf.info(str(out / "b.wav")).frames == 10


def test_csv_labels_are_the_prompts(toy_world, tiny_mapper_dir, tiny_pipeline, tmp_path):
    root, metadata = toy_world
    rows = [c for c in list_clips(metadata) if c.start == 0][:2]
    csv = tmp_path / "two.csv"
    csv.write_text("".join(f"{c.id},0,{c.label},test\n" for c in rows))
    out = tmp_path / "out"
    args = [str(csv), "--video-dir", str(root / "videos"), "--out", str(out), "--mapper", str(tiny_mapper_dir), *FAST]
    assert generate.main(args) == 0
    for clip in rows:
        written, _ = sf.read(out / f"{clip.id}.wav", dtype="float32")
        expected = tiny_pipeline(clip.path, clip.label, preset="fast", num_inference_steps=2).audio
        np.testing.assert_allclose(written, expected, rtol=0, atol=2 / 2**15)  # PCM-16 rounding
        unlabelled = tiny_pipeline(clip.path, "", preset="fast", num_inference_steps=2).audio
        assert np.abs(written - unlabelled).max() > 1e-2  # the label made a difference


def test_mp4_keeps_the_video_stream_and_carries_the_generated_audio(tiny_mapper_dir, tmp_path):
    source = write_video(tmp_path / "clip.mp4", 6.0, fps=8, seed=5)
    out = tmp_path / "out" / "clip.wav"
    assert generate.main([str(source), "--out", str(out), "--mp4", "--mapper", str(tiny_mapper_dir), *FAST]) == 0
    muxed = out.with_suffix(".mp4")
    with av.open(str(source)) as original, av.open(str(muxed)) as result:
        assert [s.type for s in result.streams] == ["video", "audio"]
        assert result.streams.audio[0].codec_context.name == "aac" and result.streams.audio[0].rate == SR
        originals = [bytes(p) for p in original.demux(original.streams.video[0]) if p.size]
        copied = [bytes(p) for p in result.demux(result.streams.video[0]) if p.size]
        assert copied == originals  # the video stream was copied, not re-encoded
    clip = read_clip(muxed, ClipConfig(), with_audio=True)  # reads back with both streams
    assert clip.num_valid_frames == 6 * 4 and abs(probe_duration(muxed) - 6.0) < 1e-6
    wav, _ = sf.read(out, dtype="float32")
    track = clip.audio[: len(wav)]
    assert np.corrcoef(track[2048:-2048], wav[2048:-2048])[0, 1] > 0.9  # AAC of the generated audio


def test_mp4_never_overwrites_its_input(tiny_mapper_dir, tmp_path, capsys):
    source = write_video(tmp_path / "clip.mp4", 2.0)
    before = source.read_bytes()
    assert generate.main([str(source), "--out", str(tmp_path), "--mp4", "--mapper", str(tiny_mapper_dir), *FAST]) == 1
    assert "refusing to overwrite the input video" in capsys.readouterr().err
    assert source.read_bytes() == before and (tmp_path / "clip.wav").is_file()


def test_wav_out_needs_a_single_video(folder, tiny_mapper_dir, tmp_path, capsys):
    # a wrong command line: exit 2, as every entry point (recipes/cli.py)
    assert generate.main([str(folder), "--out", str(tmp_path / "x.wav"), "--mapper", str(tiny_mapper_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a .wav file but" in err and "holds 3 videos" in err


def test_missing_mapper_is_one_line(folder, tmp_path, capsys):
    shutil.rmtree(tmp_path / "none", ignore_errors=True)
    assert generate.main([str(folder), "--out", str(tmp_path / "o"), "--mapper", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --mapper {tmp_path / 'none'}: not a saved mapper (no config.json)"
