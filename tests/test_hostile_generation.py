"""Generation under hostile input: every bad value of every `python -m recipes.generate` option is
refused before any model loads, as exactly one line `error: ...` naming the option, exit status 2;
the Python API (`VideoToAudioPipeline.__call__`, `stream`, `mapper.generate`) refuses bad arguments
with a one-line ValueError naming them before any video is read; `--batch-size 0` no longer spins
forever; and the temporaries a killed run leaves are removed by the next run, those of a live run
kept."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from deadline import deadline  # noqa: E402 (tests/deadline.py)
from test_generation import SR, tiny_mapper_dir, tiny_pipeline, write_video  # noqa: E402, F401, F811 (fixtures)

import mapper  # noqa: E402
from extractors.atomic import remove_stale_temporaries, temporary_path  # noqa: E402
from mapper.generation import GenerationRequest, VideoToAudioPipeline, loading  # noqa: E402
from mapper.generation import pipeline as pipeline_module  # noqa: E402
from mapper.generation.long_form import LongFormConfig  # noqa: E402
from recipes import generate  # noqa: E402

FAST = ["--preset", "fast", "--steps", "2", "--no-progress"]


# ---------------------------------------------------------------- inputs and helpers


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_mapper_dir):
    """Everything the bad command lines point at, as {name: path}."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "videos").mkdir()
    video = write_video(root / "videos" / "clip.mp4", 2.0)
    (root / "list.csv").write_text("clip,0,dog barking,test\n")
    (root / "not_audio.wav").write_text("this is not audio\n")
    (root / "a_file").write_text("a file, not a folder\n")
    (root / "folder.wav").mkdir()
    (root / "no_audioldm2").mkdir()
    return {"root": root, "video": video, "mapper": tiny_mapper_dir}


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: a bad command line must be refused before."""

    def refuse(*args, **kwargs):
        raise AssertionError("model loaded")

    monkeypatch.setattr(loading, "load_pipeline", refuse)
    monkeypatch.setattr(mapper.generation, "load_pipeline", refuse)  # the package's name for it, too


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    """generate.main's exit status (returned or raised) and the non-empty lines of its stderr."""
    try:
        with deadline(60):  # --batch-size 0 used to spin forever
            code = generate.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ---------------------------------------------------------------- the command line

# (option the error must name, the bad arguments); "{x}" is a path of the `files` fixture
BAD_OPTIONS = [
    ("--steps", ["--steps", "0"]),
    ("--steps", ["--steps", "-3"]),
    ("--steps", ["--steps", "1.5"]),
    ("--steps", ["--steps", "many"]),
    ("--steps", ["--steps", "1001"]),  # more than AudioLDM-2's 1000 training timesteps
    ("--guidance", ["--guidance", "nan"]),
    ("--guidance", ["--guidance", "inf"]),
    ("--guidance", ["--guidance", "-2"]),
    ("--guidance", ["--guidance", "0.5"]),  # below 1 would silently mean "no guidance"
    ("--guidance", ["--guidance", "strong"]),
    ("--overlap", ["--overlap", "-1"]),
    ("--overlap", ["--overlap", "nan"]),
    ("--overlap", ["--overlap", "inf"]),
    ("--overlap", ["--overlap", "10"]),  # the whole clip window
    ("--overlap", ["--overlap", "1e9"]),
    ("--duration", ["--duration", "0"]),
    ("--duration", ["--duration", "-5"]),
    ("--duration", ["--duration", "nan"]),
    ("--duration", ["--duration", "inf"]),
    ("--duration", ["--duration", "long"]),
    ("--batch-size", ["--batch-size", "0"]),  # used to spin forever at full CPU
    ("--batch-size", ["--batch-size", "-1"]),
    ("--batch-size", ["--batch-size", "2.5"]),
    ("--seed", ["--seed", "-1"]),
    ("--seed", ["--seed", str(2**64)]),  # beyond torch.Generator.manual_seed
    ("--seed", ["--seed", "1.5"]),
    ("--seed", ["--seed", "lucky"]),
    ("--device", ["--device", "foo"]),
    ("--device", ["--device", "cuda:99"]),
    ("--device", ["--device", "meta"]),
    ("--device", ["--device", ""]),
    ("--scheduler", ["--scheduler", "NoSuchScheduler"]),
    ("--scheduler", ["--scheduler", "FlowMatchEulerDiscreteScheduler"]),  # another noise schedule
    ("--preset", ["--preset", "warp"]),
    ("--negative-mode", ["--negative-mode", "random"]),
    ("--negative-prompt", ["--negative-prompt", "noise", "--guidance", "1"]),  # ignored without guidance
    ("--negative-mode", ["--negative-mode", "zeros", "--guidance", "1"]),
    ("--mode", ["--mode", "blend"]),
    ("--dtype", ["--dtype", "fp8"]),
    ("--reference-audio", ["--reference-audio", "{root}/missing.wav"]),
    ("--reference-audio", ["--reference-audio", "{root}/not_audio.wav"]),
    ("--reference-audio", ["--reference-audio", "{root}/videos"]),
    ("--extractors", ["--extractors", "nope"]),
    ("--audioldm2", ["--audioldm2", "{root}/missing_audioldm2"]),
    ("--audioldm2", ["--audioldm2", "{root}/no_audioldm2"]),  # a folder without model_index.json
    ("--mapper", ["--mapper", "{root}/no_mapper"]),
    ("--video-dir", ["--video-dir", "{root}/videos"]),  # a single video has no CSV to read
    ("--steps", ["--steps"]),  # argparse's own errors: a missing value, an unknown option
    ("--stpes", ["--stpes", "2"]),
]


def _argv(extra, files, input_="{video}", out="{root}/out.wav"):
    argv = [input_, "--out", out, "--mapper", "{mapper}", *FAST, *extra]
    return [a.format(**files) for a in argv]


@pytest.mark.parametrize("named, extra", BAD_OPTIONS, ids=[" ".join(extra) for _, extra in BAD_OPTIONS])
def test_a_bad_option_value_is_one_error_line_naming_it_before_any_model(files, no_model, capsys, named, extra):
    code, lines = run_cli(_argv(extra, files), capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert not (files["root"] / "out.wav").exists()


BAD_PATHS = [  # (what the error names, input, --out, extra options)
    ("INPUT", "{root}/missing.mp4", "{root}/out.wav", []),
    ("INPUT", "{root}/missing_folder", "{root}/out", []),
    ("--out", "{video}", "{root}/folder.wav", []),  # an existing folder where a .wav file is meant
    ("--out", "{video}", "{root}/a_file/out.wav", []),  # its parent is a file
    ("--out", "{video}", "{root}/a_file", []),  # an existing file where a folder is meant
    ("--out", "{video}", "{root}/out.mp3", []),
    ("--out", "{video}", "{root}/out.txt", []),
    ("--video-dir", "{root}/list.csv", "{root}/out", ["--video-dir", "{root}/missing_videos"]),
]


@pytest.mark.parametrize("named, input_, out, extra", BAD_PATHS, ids=[f"{i} {o}" for _, i, o, _ in BAD_PATHS])
def test_a_bad_input_or_output_path_is_one_error_line_before_any_model(files, no_model, capsys, named, input_, out, extra):
    code, lines = run_cli(_argv(extra, files, input_, out), capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert not any(p.name.startswith("out") for p in files["root"].iterdir())


def test_a_wav_with_a_folder_of_several_videos_still_names_the_count(files, no_model, tmp_path, capsys):
    for name in ("a", "b"):
        write_video(tmp_path / f"{name}.mp4", 1.0)
    code, lines = run_cli(_argv([], files, str(tmp_path), str(tmp_path / "x.wav")), capsys)
    assert code == 2 and len(lines) == 1 and "--out" in lines[0] and "holds 2 videos" in lines[0]


def test_an_unwritable_out_folder_is_refused(files, no_model, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    real_access = os.access  # root may write anywhere: the permission check is what is tested
    monkeypatch.setattr("recipes.generate.os.access",
                        lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    code, lines = run_cli(_argv([], files, out=str(locked / "out.wav")), capsys)
    assert code == 2 and len(lines) == 1 and "--out" in lines[0] and "not writable" in lines[0]


def test_a_text_file_named_mp4_is_an_item_failure_not_a_usage_error(files, no_model, tmp_path, capsys):
    bad = tmp_path / "text.mp4"
    bad.write_text("not a video\n")
    code, lines = run_cli(_argv([], files, str(bad), str(tmp_path / "out.wav")), capsys)
    assert code == 1  # the command line was right; the video was not
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]


def test_a_folder_named_with_a_suffix_is_allowed_with_a_trailing_slash(files, monkeypatch, tmp_path, capsys):
    def stop(**kwargs):
        raise FileNotFoundError("stopped at loading")

    monkeypatch.setattr(loading, "load_pipeline", stop)
    assert generate.main(_argv([], files, out=f"{tmp_path / 'renders.v2'}/")) == 2
    assert capsys.readouterr().err.strip() == "error: stopped at loading"  # every check passed


# ---------------------------------------------------------------- the Python API

# keyword arguments of VideoToAudioPipeline.__call__ (and mapper.generate) with bad values, and the name
BAD_KEYWORDS = [
    ("num_inference_steps", {"num_inference_steps": 0}),
    ("num_inference_steps", {"num_inference_steps": -1}),
    ("num_inference_steps", {"num_inference_steps": 2.5}),
    ("num_inference_steps", {"num_inference_steps": True}),
    ("num_inference_steps", {"num_inference_steps": "3"}),
    ("guidance_scale", {"guidance_scale": float("nan")}),
    ("guidance_scale", {"guidance_scale": float("inf")}),
    ("guidance_scale", {"guidance_scale": 0.5}),
    ("eta", {"eta": -0.1}),
    ("eta", {"eta": float("nan")}),
    ("overlap_seconds", {"overlap_seconds": -1.0}),
    ("overlap_seconds", {"overlap_seconds": float("nan")}),
    ("overlap_seconds", {"overlap_seconds": float("inf")}),
    ("duration", {"duration": 0.0}),
    ("duration", {"duration": -1.0}),
    ("duration", {"duration": float("nan")}),
    ("duration", {"duration": float("inf")}),
    ("start", {"start": -1.0}),
    ("start", {"start": float("nan")}),
    ("start", {"start": [0.0, 1.0]}),  # one start per video: two for one video
    ("seed", {"seed": -1}),
    ("seed", {"seed": 2**64}),
    ("seed", {"seed": 1.5}),
    ("batch_size", {"batch_size": 0}),
    ("batch_size", {"batch_size": -2}),
    ("mode", {"mode": "blend"}),
    ("negative_mode", {"negative_mode": "random"}),
    ("negative_prompt", {"negative_prompt": "noise", "guidance_scale": 1.0}),
    ("negative_prompt", {"negative_prompt": 3}),
    ("preset", {"preset": "warp"}),
    ("reference_audio", {"reference_audio": "/no/such/reference.wav"}),
    ("reference_audio", {"reference_audio": np.zeros((2, 100), np.float32)}),
    ("reference_audio", {"reference_audio": np.zeros(0, np.float32)}),
    ("reference_audio", {"reference_audio": np.full(100, np.nan, np.float32)}),
    ("reference_audio", {"reference_audio": np.zeros(100, np.int16)}),
    ("reference_audio", {"reference_audio": 5}),
    ("keep_reference", {"keep_reference": "yes"}),
]
NEEDS_A_MODEL = [  # bounds only the loaded pipeline knows
    ("num_inference_steps", {"num_inference_steps": 1001}),  # its scheduler has 1000 timesteps
    ("overlap_seconds", {"overlap_seconds": 10.0}),  # its clip window is 10 s
    ("scheduler", {"scheduler": "NoSuchScheduler"}),
    ("scheduler", {"scheduler": "FlowMatchEulerDiscreteScheduler"}),
]


@pytest.fixture
def no_work(monkeypatch, tiny_pipeline):
    """Reading a video or running a model on one fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("work started")

    for name in ("probe_duration", "read_clip", "denoise"):
        monkeypatch.setattr(pipeline_module, name, refuse)
    return tiny_pipeline


@pytest.mark.parametrize("named, kwargs", BAD_KEYWORDS + NEEDS_A_MODEL, ids=lambda x: str(x)[:40])
def test_pipeline_call_refuses_a_bad_argument_before_any_work(no_work, files, named, kwargs):
    with deadline(60), pytest.raises(ValueError) as raised:  # batch_size=0 used to spin forever
        no_work(files["video"], "dog barking", **kwargs)
    message = str(raised.value)
    assert named in message and "\n" not in message


@pytest.mark.parametrize("video, label, named", [
    (5, "dog", "video"),
    (["{video}", 3], "dog", "video"),
    (["{video}", "{video}"], ["dog"], "label"),  # one label for two videos
    ("{video}", 7, "label"),
    (["{video}"], ["dog", None, 3], "label"),
])  # fmt: skip
def test_pipeline_call_refuses_bad_videos_and_labels(no_work, files, video, label, named):
    fill = lambda v: str(v).format(**files) if isinstance(v, str) else v  # noqa: E731
    video = [fill(v) for v in video] if isinstance(video, list) else fill(video)
    with pytest.raises(ValueError, match=named):
        no_work(video, label, num_inference_steps=2)


@pytest.mark.parametrize("named, kwargs", BAD_KEYWORDS, ids=lambda x: str(x)[:40])
def test_mapper_generate_refuses_a_bad_argument_before_loading_a_model(monkeypatch, files, named, kwargs):
    monkeypatch.setattr(mapper, "load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(ValueError) as raised:
        mapper.generate(files["video"], "dog barking", **kwargs)
    assert named in str(raised.value) and "\n" not in str(raised.value)


def test_mapper_generate_refuses_an_unknown_keyword_before_loading_a_model(monkeypatch, files):
    monkeypatch.setattr(mapper, "load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(TypeError, match="num_steps"):
        mapper.generate(files["video"], "dog barking", num_steps=2)


def test_batch_size_zero_is_refused_instead_of_spinning_forever(no_work, files):
    requests = [GenerationRequest(files["video"], "dog")]
    with deadline(60), pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        no_work.stream(requests, "fast", LongFormConfig(), batch_size=0)  # raises when called, not when iterated
    with deadline(60), pytest.raises(ValueError, match="batch_size"):
        no_work(files["video"], "dog", num_inference_steps=2, batch_size=0)


def test_a_sliver_of_duration_still_renders_one_sample(tiny_pipeline, files):
    result = tiny_pipeline(files["video"], "dog", preset="fast", num_inference_steps=2, duration=1e-6)
    assert result.audio.shape == (1,) and np.isfinite(result.audio).all()


def test_good_arguments_still_pass_the_checks(tiny_pipeline, files):
    VideoToAudioPipeline.check_call(files["video"], None, seed=2**64 - 1, batch_size=1, overlap_seconds=0.0,
                                    reference_audio=np.zeros(SR, np.float32), guidance_scale=1.0, eta=1.0)  # fmt: skip
    torch.Generator().manual_seed(2**64 - 1)  # the largest seed allowed is one torch takes


# ---------------------------------------------------------------- temporaries of killed runs


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid now names no process
    return child.pid


def _temporary_of(target: Path, pid: int) -> Path:
    """A temporary of ``target`` as process ``pid`` on this machine names it."""
    mine = temporary_path(target)
    return mine.with_name(mine.name.replace(f".{os.getpid()}@", f".{pid}@"))


def test_only_temporaries_of_dead_processes_on_this_machine_are_removed(tmp_path):
    target = tmp_path / "clip.wav"
    stale = _temporary_of(target, _dead_pid())
    live = temporary_path(target)  # this process: a concurrent run writing it
    elsewhere = tmp_path / f".clip.{_dead_pid()}@00000000.0123abcd.tmp.wav"  # another machine's: cannot be checked
    other_target = _temporary_of(tmp_path / "other.wav", _dead_pid())
    for path in (stale, live, elsewhere, other_target):
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path, {"clip.wav"}) == [stale]
    assert live.exists() and elsewhere.exists() and other_target.exists()  # not ours to judge / not asked
    assert remove_stale_temporaries(tmp_path) == [other_target]


def test_a_rerun_removes_what_a_killed_run_left_and_keeps_a_live_runs(files, no_model, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for done in (out / "clip.wav", out / "clip.mp4"):  # done already: --skip-existing has nothing to render
        done.write_bytes(b"finished")
    stale = _temporary_of(out / "clip.wav", _dead_pid())
    stale_mp4 = _temporary_of(out / "clip.mp4", _dead_pid())
    live = temporary_path(out / "clip.wav")
    for path in (stale, stale_mp4, live):
        path.write_bytes(b"partial")
    assert generate.main(_argv(["--skip-existing", "--mp4"], files, out=str(out))) == 0
    assert not stale.exists() and not stale_mp4.exists() and live.exists()
    assert "removed 2 temporary file(s) a killed run left" in capsys.readouterr().out
    assert (out / "clip.wav").read_bytes() == b"finished"


@pytest.mark.slow  # a real process killed mid-run, then a full rerun: about 20 s
def test_sigkill_mid_run_then_rerun_with_skip_existing_leaves_no_temporaries(files, tmp_path):
    video = write_video(tmp_path / "long.mp4", 11.0, seed=3)  # two windows: the wav is open during the second
    out = tmp_path / "out"
    argv = [str(video), "--out", str(out), "--mapper", str(files["mapper"]), *FAST, "--skip-existing"]
    job = subprocess.Popen([sys.executable, "-m", "recipes.generate", *argv], cwd=Path(generate.__file__).parents[1],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        end = time.monotonic() + 180
        while not list(out.glob(".*.tmp.wav")) and job.poll() is None and time.monotonic() < end:
            time.sleep(0.01)
        assert job.poll() is None, f"the run ended before it could be killed:\n{job.stderr.read().decode()[-2000:]}"
        os.killpg(job.pid, signal.SIGKILL)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait()
        job.stderr.close()
    assert list(out.glob(".*.tmp.wav")) and not (out / "long.wav").exists()  # the kill left a partial temporary

    assert generate.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["long.wav"]  # the soundtrack, and nothing hidden
    assert sf.info(str(out / "long.wav")).frames == 11 * SR
