"""The console of the entry points (``python -m recipes.<name>``): fast, and free of warnings.

* ``--help`` and a wrong option answer before torch, diffusers or transformers are imported (exit 0 with the
  usage; exit 2 with one ``error:`` line). The one exception is ``train_mapper``: LightningCLI builds its parser,
  --help included, from the signatures of Lightning's Trainer and the mapper's classes, so it needs torch to
  answer at all; its module top is light all the same, and it answers with exit 0 / one line and exit 2.
* The main commands, run as a new user runs them (``train_mapper`` on a small toy world, ``generate`` with the
  mapper it trained and the shipped toy AudioLDM-2, ``evaluate`` on toy clips, the demo started and stopped),
  print no warning: no line matching ``warning`` or ``deprecated`` (any case). Warnings are labelled first,
  whoever prints them: ``warnings.warn`` with its category's name (Lightning formats its own without one)
  and every log record at WARNING or above with its level (diffusers and transformers log theirs as bare
  text), so a warning cannot hide behind a library's format. Progress bars and printed figures are no warnings.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers")
WARNING_LINE = re.compile(r"warning|deprecated", re.IGNORECASE)
ENTRY_POINTS = ("train_mapper", "extract_features", "generate", "evaluate", "demo", "paper_tables", "make_toy_data",
                "pretrain_toy_decoder", "pretrain_toy_classifier", "train_envelope_head")  # fmt: skip
NEEDS_TORCH_TO_PARSE = {"train_mapper"}  # LightningCLI: the parser is made of the classes' signatures
REQUIRED = {  # what each needs besides the wrong option, so that the option is what is refused
    "extract_features": ["--out", "cache"], "generate": ["video.mp4", "--out", "out"], "make_toy_data": ["--out", "w"],
    "evaluate": ["--generated", "g", "--reference", "r", "--out", "o"],
    "train_envelope_head": ["--decoder", "toy", "--out", "head"],
}  # fmt: skip
NOT_YET_LIGHT: dict[str, str] = {}  # entry point -> why its --help still imports torch (none left)

# ---------------------------------------------------------------- --help and a wrong option, before torch

# Imports MODULE, then runs `python -m MODULE ARGS` (runpy, as -m does) for each ARGS in turn in one
# interpreter; reports which of HEAVY the import imported and, for each run, the exit status, what it printed
# and which of HEAVY had been imported by then.
PROBE = r"""
import contextlib, importlib, io, json, runpy, sys, time

module, runs, heavy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
importlib.import_module(module)
results = [{"heavy": [m for m in heavy if m in sys.modules]}]
del sys.modules[module]  # runpy executes it afresh, as `python -m` does
for args in runs:
    out, err, began = io.StringIO(), io.StringIO(), time.perf_counter()
    sys.argv = [module, *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    results.append({"args": args, "code": code, "out": out.getvalue(), "err": err.getvalue(),
                    "seconds": round(time.perf_counter() - began, 2), "heavy": [m for m in heavy if m in sys.modules]})
print(json.dumps(results))
"""


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", **extra}  # fmt: skip


def _probe(module: str, *runs: list[str], cwd: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", PROBE, module, json.dumps(runs), json.dumps(HEAVY)], cwd=cwd,
                          env=_env(MFM_HOME=str(cwd / "home")), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_entry_point_is_listed():
    mains = {path.stem for path in (REPO / "recipes").glob("*.py") if '__name__ == "__main__"' in path.read_text()}
    assert mains == set(ENTRY_POINTS)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(reason=NOT_YET_LIGHT[name], strict=True)) if name in NOT_YET_LIGHT
    else name for name in ENTRY_POINTS])  # fmt: skip
def test_help_and_a_wrong_option_answer_before_torch_is_imported(name, tmp_path):
    module = f"recipes.{name}"
    runs = [["--help"], [*REQUIRED.get(name, []), "--no-such-option"]] if name not in NEEDS_TORCH_TO_PARSE else []
    imported, *runs = _probe(module, *runs, cwd=tmp_path)
    assert imported["heavy"] == [], f"import {module} imports {', '.join(imported['heavy'])}"
    if name in NEEDS_TORCH_TO_PARSE:
        return  # test_train_mapper_help_and_a_wrong_option_answer
    help_, wrong = runs
    assert help_["code"] == 0 and help_["out"].startswith("usage:"), help_
    assert wrong["code"] == 2 and wrong["out"] == "", wrong
    assert len(wrong["err"].strip().splitlines()) == 1, wrong["err"]
    assert wrong["err"].startswith("error: ") and "--no-such-option" in wrong["err"], wrong["err"]
    for run in (help_, wrong):
        assert run["heavy"] == [], f"{module} {' '.join(run['args'])} imported {', '.join(run['heavy'])} " \
                                   f"({run['seconds']} s)"  # fmt: skip


def test_the_names_help_lists_are_their_owners():
    """generate and evaluate spell out the choices their --help lists (the owners import torch); the same."""
    from evaluation.embedders import SUITE_PRESETS
    from evaluation.suite import ALL_METRICS
    from mapper.decoders.audioldm2 import NEGATIVE_MODES
    from mapper.generation.long_form import JOIN_MODES
    from mapper.generation.sampling import SAMPLING_PRESETS
    from recipes import evaluate, generate

    assert generate.SAMPLING_PRESETS == tuple(SAMPLING_PRESETS) and generate.NEGATIVE_MODES == tuple(NEGATIVE_MODES)
    assert generate.JOIN_MODES == tuple(JOIN_MODES)
    assert evaluate.SUITE_PRESETS == tuple(SUITE_PRESETS) and evaluate.ALL_METRICS == tuple(ALL_METRICS)


def test_train_mapper_help_and_a_wrong_option_answer(capsys):
    """The documented exception (its parser is made of torch classes' signatures), run here: the classes are
    imported once per test session anyway."""
    from recipes import train_mapper

    with pytest.raises(SystemExit) as exit_:
        train_mapper.main(["--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("usage:")
    assert train_mapper.main(["--no_such_option"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "error: unrecognized arguments: --no_such_option\n"


# ---------------------------------------------------------------- no warnings in the main commands

# Runs `python -m MODULE ARGS` with every warning labelled as one (see the module's docstring).
LABELLED = r"""
import logging, runpy, sys, warnings

def show(message, category, filename, lineno, file=None, line=None):
    print(f"{filename}:{lineno}: {category.__name__}: {message}", file=sys.stderr, flush=True)

warnings.showwarning = show  # Lightning replaces formatwarning (dropping the category), not this
_factory = logging.getLogRecordFactory()

def labelled(*args, **kwargs):
    record = _factory(*args, **kwargs)
    if record.levelno >= logging.WARNING:
        record.msg = f"Warning (logged at {record.levelname} by {record.name}): {record.msg}"
    return record

logging.setLogRecordFactory(labelled)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def test_the_labelling_shows_warnings_that_libraries_print_bare(tmp_path):
    """As Lightning formats its warnings (no category) and diffusers logs its own (a handler of its own,
    the message alone): both come out labelled."""
    (tmp_path / "bare_warnings.py").write_text(
        "import logging, sys, warnings\n"
        "warnings.formatwarning = lambda message, category, filename, lineno, line=None: f'{message}\\n'\n"
        "warnings.warn('the number of batches is small', UserWarning)\n"
        "logger = logging.getLogger('library')\n"
        "logger.addHandler(logging.StreamHandler(sys.stdout))\n"
        "logger.propagate = False\n"
        "logger.warning('Cannot initialize model with %s', 'low cpu memory usage')\n"
        "logger.error('something went wrong')\n"
        "logger.info('an information')\n"
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", LABELLED, "bare_warnings"], cwd=tmp_path, capture_output=True,
                          text=True, env=_env(PYTHONPATH=str(tmp_path)), timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(_warnings(done.stdout + done.stderr)) == {
        f"{tmp_path / 'bare_warnings.py'}:3: UserWarning: the number of batches is small",
        "Warning (logged at WARNING by library): Cannot initialize model with low cpu memory usage",
        "Warning (logged at ERROR by library): something went wrong",
    }


def _warnings(output: str) -> list[str]:
    lines = [line.strip() for line in re.split(r"[\r\n]+", output)]  # progress bars redraw with \r
    return [line for line in lines if WARNING_LINE.search(line)]


class Command:
    """``python -m MODULE ARGS`` started with every warning labelled, its output (stdout and stderr) in a file."""

    def __init__(self, folder: Path, module: str, *args, **env):
        folder.mkdir(parents=True, exist_ok=True)
        self.module, self.log = module, folder / f"{module}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-c", LABELLED, module, *map(str, args)], cwd=folder,
                                            env=_env(MFM_HOME=str(folder / "home"), **env), stdout=log,
                                            stderr=subprocess.STDOUT)  # fmt: skip

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def finish(self, timeout: float = 600) -> Command:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self

    def check(self, *expected: str) -> None:
        """Exited 0, printed each of ``expected`` and no warning."""
        output = self.output
        assert self.process.returncode == 0, f"{self.module} exited with {self.process.returncode}:\n{output[-3000:]}"
        for text in expected:
            assert text in output, f"{self.module} did not print {text!r}:\n{output[-3000:]}"
        assert _warnings(output) == [], f"{self.module} printed warnings; its output:\n{output[-5000:]}"


@pytest.fixture(scope="module")
def commands(toy_world, tmp_path_factory) -> dict[str, Command]:
    """The main commands, side by side: evaluate all along; train_mapper, then generate and the demo with the
    mapper it made."""
    root, metadata = toy_world
    work = tmp_path_factory.mktemp("console")
    short = _write_video(work / "short.mp4", seconds=2.0)  # a short sample: rendering is most of the time
    mapper_dir = work / "train" / "mapper"
    train = Command(
        work / "train", "recipes.train_mapper", "--data.toy_world.root", root, "--data.toy_world.num_clips", 16,
        "--data.cache", work / "train" / "cache", "--trainer.max_epochs", 1,
        "--trainer.log_every_n_steps", 1,  # 2 batches an epoch on 16 clips (the default 5 would be warned about)
        "--trainer.default_root_dir", work / "train", "--trainer.logger.init_args.save_dir", work / "train",
        "--export_dir", mapper_dir, "--sample_video", short, "--sample_steps", 2, "--toy_report_clips", 0,
    )  # fmt: skip
    generated, reference = _evaluation_sets(metadata, work / "evaluate")
    evaluate = Command(work / "evaluate", "recipes.evaluate", "--generated", generated, "--reference", reference,
                       "--videos", root / "videos", "--preset", "toy",
                       "--out", work / "evaluate" / "metrics")  # fmt: skip
    done = {"train_mapper": train.finish()}
    generate = Command(work / "generate", "recipes.generate", short, "--out", work / "generate" / "out.wav",
                       "--mapper", mapper_dir, "--label", "drum hitting", "--preset", "fast", "--steps", 2)  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = Command(work / "demo", "recipes.demo", "--mapper", mapper_dir, "--world", root, "--port", port,
                   GRADIO_TEMP_DIR=str(work / "demo" / "gradio"), TMPDIR=str(work / "demo"))  # fmt: skip
    demo.served = _serves(demo, f"http://127.0.0.1:{port}/", seconds=180)
    demo.process.send_signal(signal.SIGTERM)  # the demo stops as on Ctrl-C
    done.update(generate=generate.finish(), demo=demo.finish(timeout=60), evaluate=evaluate.finish())
    return done


def _serves(demo: Command, url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and demo.process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=10) as page:
                return page.status == 200
        except OSError:
            time.sleep(0.5)
    return False


def _write_video(path: Path, seconds: float, fps: int = 8, size: int = 64) -> Path:
    """A silent video of a moving square."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            frame = np.zeros((size, size, 3), dtype=np.uint8)
            x = i * (size - 8) // round(seconds * fps)
            frame[24:32, x : x + 8] = (255, 160, 40)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def _evaluation_sets(metadata: Path, folder: Path) -> tuple[Path, Path]:
    """(generated, reference): the first 10 toy clips' true audio, and the same delayed by 0.3 s."""
    import numpy as np
    import soundfile as sf

    from extractors.clip import ClipConfig
    from extractors.manifest import list_clips
    from extractors.video import read_clip

    generated, reference = folder / "generated", folder / "reference"
    generated.mkdir(parents=True), reference.mkdir(parents=True)
    clip = ClipConfig()
    for item in list_clips(metadata)[:10]:  # the Inception Score needs >= 10 clips
        audio = read_clip(item.path, clip, start=item.start).audio
        sf.write(reference / f"{item.id}.wav", audio, clip.sample_rate)
        sf.write(generated / f"{item.id}.wav", np.roll(audio, int(0.3 * clip.sample_rate)), clip.sample_rate)
    return generated, reference


def test_train_mapper_prints_no_warning(commands):
    commands["train_mapper"].check("mapper saved to", "sample:")


def test_evaluate_prints_no_warning(commands):
    commands["evaluate"].check("metrics written to", "toy world: event-sync error")


def test_generate_prints_no_warning(commands):
    commands["generate"].check("wrote ")


def test_demo_starts_and_stops_without_a_warning(commands):
    demo = commands["demo"]
    assert demo.served, f"the demo did not serve its page:\n{demo.output[-3000:]}"
    assert "mapper: " in demo.output and "toy examples: " in demo.output
    assert _warnings(demo.output) == [], f"the demo printed warnings; its output:\n{demo.output[-5000:]}"
