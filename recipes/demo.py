"""`python -m recipes.demo [--mapper DIR] [--world DIR] [--host 127.0.0.1] [--port 7860] [--device cpu]`

A Gradio page: upload a video (or pick a toy example), optionally give a sound label, and get its
soundtrack as an audio player, the video with the soundtrack muxed in, and a spectrogram with the
window joins and, for a toy example, the true events marked.

Without --mapper the last trained mapper is used (on a fresh install the page says how to train
one). The toy examples come from --world, else the world the default toy training builds
(``toy_world.folders.WORLD_DIR`` under the current folder), else a small world built on first start
in $MFM_HOME/demo_world. The model is loaded on the first generation, once. Nothing reaches the
network: Gradio's analytics are off and the models are read from disk. Every option is checked
before anything is loaded (exit 2 with one `error:` line).

One generation runs at a time, in this process (a lock, not only Gradio's concurrency limit), and at
most QUEUE_SIZE requests wait (the rest are refused in one line). A request that is stopped (the
**Stop** button) or whose page is closed stops its generation at the next denoising step; the next
request waits for that. Videos longer than MAX_VIDEO_SECONDS are refused before any work.
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import filecmp
import ipaddress
import math
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recipes.cli import OneLineArgumentParser, int_in_range, usage_error

if TYPE_CHECKING:  # for the annotations; toy_world (av, numpy) is imported where it is used
    from toy_world import ToyWorld

# Offline: before gradio or huggingface_hub is imported (they read these at import).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
for _name, _value in {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}.items():
    os.environ.setdefault(_name, _value)

TRAIN_COMMAND = "python -m recipes.train_mapper"
DEMO_WORLD = {"num_clips": 5, "seed": 0}  # built in $MFM_HOME/demo_world when no toy world is found
MAX_EXAMPLES = 8
DEFAULT_PRESET = "fast"
MAX_VIDEO_SECONDS = 120.0  # the demo's own limit per request, below the pipeline's (extractors.media_limits)
QUEUE_SIZE = 8  # requests waiting behind the one generating; more are refused ("Queue is full")
DEMO_LIMIT_HINT = "this demo's limit: trim the video, or render it with `python -m recipes.generate`"
POLL_SECONDS = 0.25  # how often a waiting request looks whether it was cancelled or its page closed
SYNC_GUIDANCE_MAX = 0.2  # the slider's end: past ~0.1 the toy decoder follows the envelope but loses the class
# the page's words for the pipeline's arguments, in its one-line errors
PAGE_NAMES = {"reference_audio": "Reference audio", "num_inference_steps": "Steps", "guidance_scale": "Guidance",
              "seed": "Seed", "label": "Sound label", "mode": "Window join", "preset": "Preset"}  # fmt: skip
_HOST_NAME = re.compile(r"(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


# ---------------------------------------------------------------- command line


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog="python -m recipes.demo", description="The video-to-audio demo page (Gradio).")
    parser.add_argument("--mapper", default=None, help="saved mapper or pipeline folder (default: the last trained)")
    parser.add_argument("--world", default=None, help="toy world folder for the examples (world.json, videos/)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int_in_range(1, 65535), default=7860, help="port to serve on")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    return parser.parse_args(argv)


def check_host(host: str) -> None:
    """An IP address or a host name that resolves here (ValueError naming --host)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"--host must be an IP address or a host name, got {host!r}") from None
        try:
            socket.getaddrinfo(host, None)
        except OSError:
            raise ValueError(f"--host {host}: cannot be resolved") from None


def check_port_free(host: str, port: int) -> None:
    """ValueError naming --port if nothing can listen on ``host``:``port`` now."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(f"--port {port}: cannot listen on {host} ({error.strerror or error})") from None


def find_mapper(option: str | None) -> tuple[Path | None, str]:
    """(the mapper folder, "") or, when none was named and none was trained, (None, why)."""
    if option is not None:
        folder = Path(option)
        if not folder.is_dir():
            raise ValueError(f"--mapper {folder}: no such folder")
        if not ((folder / "config.json").is_file() or (folder / "model_index.json").is_file()):
            raise ValueError(f"--mapper {folder}: not a saved mapper or pipeline (no config.json or model_index.json)")
        return folder, ""
    from mapper.last_mapper import last_mapper  # imports torch: after the cheap checks

    try:
        return last_mapper(), ""
    except FileNotFoundError as error:
        return None, str(error)


def find_world(option: str | None) -> tuple[Path, ToyExamples | None]:
    """(toy world folder, its examples, or None while it is not built): --world, the toy training's
    world, or $MFM_HOME/demo_world. ValueError of one line if --world is not a toy world."""
    from toy_world import read_world
    from toy_world.folders import WORLD_DIR
    from toy_world.layout import is_complete

    if option is not None:
        root = Path(option)
        try:
            world = read_world(root)
        except ValueError as error:
            raise ValueError(f"--world {error}") from None
        if not world.videos_dir.is_dir():
            raise ValueError(f"--world {root}: not a toy world (no {world.videos_dir.name}/ folder)")
        return root, ToyExamples.of(world)
    trained = Path(WORLD_DIR)
    if is_complete(trained):
        return trained, ToyExamples.of(read_world(trained))
    from mapper.last_mapper import home

    demo = home() / "demo_world"
    return demo, ToyExamples.of(read_world(demo)) if is_complete(demo) else None


# ---------------------------------------------------------------- the toy world


@dataclass(frozen=True)
class ToyExamples:
    """The clips of a toy world (``toy_world.ToyWorld``) whose videos are on disk: the page's examples."""

    world: ToyWorld
    clips: list[dict]

    @classmethod
    def of(cls, world: ToyWorld) -> "ToyExamples":
        return cls(world, [clip for clip in world.clips() if world.video_path(clip["id"]).is_file()])

    @property
    def root(self) -> Path:
        return self.world.root

    def video(self, clip: dict) -> Path:
        return self.world.video_path(clip["id"])

    def examples(self) -> list[dict]:
        """Up to MAX_EXAMPLES clips, held-out ones first (a trained mapper has not seen them)."""
        order = {"test": 0, "val": 1}
        return sorted(self.clips, key=lambda clip: (order.get(clip["split"], 2), clip["id"]))[:MAX_EXAMPLES]

    def clip_of(self, video: str | os.PathLike) -> dict | None:
        """The clip ``video`` is a copy of (same name, same bytes: uploads and examples are copies)."""
        video = Path(video)
        for clip in self.clips:
            if clip["id"] == video.stem and filecmp.cmp(self.video(clip), video, shallow=False):
                return clip
        return None


def build_world(root: Path) -> ToyExamples | None:
    """A small toy world in ``root`` for the examples (None, said on stderr, if it cannot be built)."""
    from toy_world import make_toy_world, read_world

    print(f"building a small toy world in {root} (first start only) ...", flush=True)
    try:
        make_toy_world(root, **DEMO_WORLD)
        return ToyExamples.of(read_world(root))
    except (OSError, ValueError) as error:
        print(f"no toy examples: {one_line(error)}", file=sys.stderr)
        return None


# ---------------------------------------------------------------- generation


class Cancelled(Exception):
    """The request was stopped or its page closed; str(): what the status line says."""


# One generation at a time in this process, held until the pipeline returns: a cancelled request's
# generation still running to its next step holds it too (Gradio frees the request's slot at once).
GENERATION = threading.Lock()


@contextmanager
def generation_turn(cancel: threading.Event, progress):
    """Hold GENERATION; while a cancelled generation still holds it, wait (Cancelled if this one is cancelled)."""
    if not GENERATION.acquire(blocking=False):
        progress(0.0, desc="waiting for the previous generation to stop")
        while not GENERATION.acquire(timeout=POLL_SECONDS):
            if cancel.is_set():
                raise Cancelled("Cancelled before it started.")
    try:
        if cancel.is_set():
            raise Cancelled("Cancelled before it started.")
        yield
    finally:
        GENERATION.release()


class StepCounter:
    """Stands in for the pipeline's tqdm bar (``DiffusionPipeline.progress_bar``, which the
    sampling loop enters once per window and updates once per step) and reports to ``report``."""

    def __init__(self, report):
        self.report, self.steps, self.windows = report, 0, 0

    def bar(self, iterable=None, total=None):
        self.windows += 1
        self.report(self)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1):
        self.steps += n
        self.report(self)


class Demo:
    """What the page's events run: one lazily loaded pipeline, outputs in a folder of this server."""

    def __init__(self, mapper_dir: Path | None, device: str, world: ToyExamples | None):
        self.mapper_dir, self.device, self.world = mapper_dir, device, world
        self._pipeline = None
        self._lock = threading.Lock()
        self.out = Path(tempfile.mkdtemp(prefix="mfm-demo-"))
        atexit.register(shutil.rmtree, self.out, ignore_errors=True)
        self._calls = 0

    def pipeline(self):
        with self._lock:
            if self._pipeline is None:
                from mapper.generation.loading import load_pipeline

                self._pipeline = load_pipeline(mapper=self.mapper_dir, device=self.device)
            return self._pipeline

    def sync_guidance_default(self) -> float:
        """The slider's start: the mapper folder's default (generation_config.json), 0 where it cannot guide."""
        from mapper.generation_defaults import read_generation_defaults

        return read_generation_defaults(self.mapper_dir).sync_guidance if self.can_guide() else 0.0

    def can_guide(self) -> bool:
        """Whether the mapper folder has the video envelope predictor that timing control needs."""
        from mapper.envelope_predictor import FOLDER

        return self.mapper_dir is not None and (self.mapper_dir / FOLDER).is_dir()

    def describe(self, video: str | None) -> str:
        """The status line for a newly chosen video: its length, or why it cannot be used."""
        from extractors.video import MediaReadError

        if not video:
            return ""
        try:
            seconds = video_seconds(video)
        except MediaReadError as error:
            return error_line(error)
        clip = self.world.clip_of(video) if self.world else None
        toy = f" — toy example “{clip['label']}”, {len(clip['events']['times'])} events" if clip else ""
        return f"“{Path(video).name}”: {seconds:.2f} s{toy}. Press **Generate**."

    def generate(self, video, label, preset, steps, guidance, seed, mode, reference, progress, cancel=None,
                 sync_guidance=0.0):
        """(status, audio path, muxed video path, spectrogram path); on a bad input the status says why.

        ``cancel`` (a ``threading.Event``), once set, stops the generation at its next denoising step
        (or, still waiting for its turn, before it starts): the status then says so, in one line.
        ``sync_guidance``: timing control's scale (0: off)."""
        from extractors.video import MediaReadError
        from mapper.generation.arguments import check_reference_audio
        from mapper.generation.long_form import LongFormConfig

        nothing = (None, None, None)
        if self.mapper_dir is None:
            return (no_mapper_notice(), *nothing)
        if not video:
            return ("Upload a video or pick a toy example first.", *nothing)
        if seed is None:
            return ("**Error:** seed must be a whole number >= 0", *nothing)
        cancel = threading.Event() if cancel is None else cancel
        began, steps, guidance, seed = time.perf_counter(), int(steps), float(guidance), int(seed)
        sync_guidance = float(sync_guidance or 0.0)
        uploads = (video, reference)
        try:
            # a bad or too long upload is named before the model is loaded
            seconds = video_seconds(video)
            check_reference_audio(reference or None)  # its header
            with generation_turn(cancel, progress):
                progress(0.0, desc="loading the model")
                pipeline = self.pipeline()
                windows = estimated_windows(seconds, pipeline.clip.seconds, LongFormConfig().overlap_seconds)

                def report(counter: StepCounter) -> None:  # once per window and once per step
                    shown = max(windows, counter.windows)
                    if cancel.is_set():
                        raise Cancelled(f"Cancelled after {counter.steps} of {steps * shown} steps.")
                    progress((counter.steps, steps * shown), desc=f"sampling window {counter.windows} of {shown}",
                             unit="steps")  # fmt: skip

                # diffusers' DiffusionPipeline.progress_bar, which the sampling loop opens once per window,
                # replaced on this instance for this call (one generation at a time: GENERATION is held)
                pipeline.progress_bar = StepCounter(report).bar
                try:
                    result = pipeline(
                        video, label=(label or "").strip() or None, preset=preset, num_inference_steps=steps,
                        guidance_scale=guidance, seed=seed, mode=mode, reference_audio=reference or None,
                        sync_guidance=sync_guidance,
                    )  # fmt: skip
                finally:
                    pipeline.__dict__.pop("progress_bar", None)
        except Cancelled as stopped:  # the page is gone or was told to stop: said here and in the log
            print(f"{Path(video).name}: {stopped}", file=sys.stderr, flush=True)
            return (str(stopped), *nothing)
        except (MediaReadError, ValueError) as error:  # a bad file or setting: one line, outputs cleared
            return (error_line(error, uploads), *nothing)
        except Exception as error:  # anything else: one line here, the traceback in the server's log
            import traceback

            traceback.print_exc()
            return (error_line(error, uploads), *nothing)
        progress(1.0, desc="writing the outputs")
        wav, mp4, png, notes = self.write_outputs(video, result)
        took = time.perf_counter() - began
        status = (f"Generated {len(result.audio) / result.sample_rate:.2f} s of audio for “{Path(video).name}” "
                  f"({preset}, {steps} steps, guidance {guidance:g}, seed {seed}, sync guidance {sync_guidance:g}) "
                  f"in {took:.1f} s"
                  + "".join(f"; {note}" for note in notes) + ".")  # fmt: skip
        return status, wav, mp4, png

    def write_outputs(self, video: str, result) -> tuple[str, str | None, str, list[str]]:
        """The wav, the video with it muxed in (None if that fails), the spectrogram; notes for the status."""
        from mapper.generation.mux import mux_audio
        from mapper.generation.wav import write_wav
        from recipes.demo_plots import spectrogram_png

        with self._lock:
            self._calls += 1
            folder = self.out / f"{self._calls:04d}"
        folder.mkdir()
        stem, notes = Path(video).stem, []
        parts = ("soundtrack.wav", "with_soundtrack.mp4", "spectrogram.png")
        wav, mp4, png = (folder / f"{stem}_{part}" for part in parts)
        write_wav(wav, result.audio, result.sample_rate)
        try:
            mux_audio(video, wav, mp4)
        except Exception as error:  # the soundtrack is still shown
            notes.append(f"no muxed video ({one_line(error)})")
            mp4 = None
        clip = self.world.clip_of(video) if self.world else None
        events = list(zip(clip["events"]["times"], clip["events"]["lengths"])) if clip else []
        envelope = None if result.envelope is None else (result.envelope, result.envelope_frame_seconds)
        spectrogram_png(png, result.audio, result.sample_rate, result.joins, events,
                        title=f"{Path(video).name} — {result.label or 'no label'}", envelope=envelope)  # fmt: skip
        if envelope is not None:
            notes.append("the envelope predicted from the video drawn in white")
        if clip:
            notes.append(f"toy example: {len(events)} true events marked")
        if result.joins:
            notes.append(f"{len(result.joins)} window join{'s' * (len(result.joins) > 1)} shaded")
        return str(wav), None if mp4 is None else str(mp4), str(png), notes


def video_seconds(video: str | os.PathLike) -> float:
    """Seconds of ``video``; VideoReadError (one line) if it cannot be read, its frames are too small or
    too large, or it is longer than MAX_VIDEO_SECONDS, the demo's own limit (``extractors.media_limits``'
    checks: from the container's header and frame index, nothing decoded)."""
    from extractors.video import check_media_limits

    return check_media_limits(video, MAX_VIDEO_SECONDS, hint=DEMO_LIMIT_HINT)


def estimated_windows(seconds: float, window: float, overlap: float) -> int:
    """How many clip windows a video of ``seconds`` is rendered in (for the progress bar only)."""
    return 1 if seconds <= window else 1 + math.ceil((seconds - window) / (window - overlap))


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def error_line(error: BaseException, uploads=()) -> str:
    """``**Error:** ...`` in one line; a media file is named by its name, not the server's upload path
    (nor is any of ``uploads``, the request's files, wherever the message names it); a refused argument
    by the page's name for it."""
    from extractors.video import MediaReadError
    from mapper.arguments import ArgumentError

    if isinstance(error, MediaReadError):
        line = f"“{Path(error.path).name}”: {error.reason}"
    elif isinstance(error, ArgumentError):
        line = one_line(error.spelled(PAGE_NAMES))
    else:
        line = one_line(error)
    for path in sorted({str(path) for path in uploads if path}, key=len, reverse=True):
        line = line.replace(path, f"“{Path(path).name}”")
    return f"**Error:** {line}"


def no_mapper_notice() -> str:
    return (f"**No trained mapper yet.** Train one with `{TRAIN_COMMAND}` (the toy world, a few minutes on a "
            "CPU), then restart this demo, or start it with `--mapper DIR`.")  # fmt: skip


# ---------------------------------------------------------------- the page


def build_app(demo: Demo):
    import anyio
    import gradio as gr

    from mapper.generation.long_form import JOIN_MODES
    from mapper.generation.sampling import SAMPLING_PRESETS

    default = SAMPLING_PRESETS[DEFAULT_PRESET]
    examples = demo.world.examples() if demo.world else []
    with gr.Blocks(title="MFM-Mapper demo", analytics_enabled=False, delete_cache=(3600, 86400)) as app:
        gr.Markdown("## MFM-Mapper: a soundtrack for a silent video\nUpload a video or pick a toy example, "
                    "optionally name the sound, and press **Generate**.")  # fmt: skip
        if demo.mapper_dir is None:
            gr.Markdown(no_mapper_notice(), elem_id="no-mapper")
        else:
            gr.Markdown(f"Mapper: `{demo.mapper_dir}` · device: `{demo.device}`", elem_id="mapper")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], height=300, elem_id="input-video")
                label = gr.Textbox(label="Sound label (optional)", placeholder="e.g. dog barking", elem_id="label")
                if examples:
                    gr.Examples(
                        [[str(demo.world.video(clip)), clip["label"]] for clip in examples], [video, label],
                        label="Toy examples", example_labels=[f"{clip['id']} · {clip['label']}" for clip in examples],
                    )  # fmt: skip
                with gr.Accordion("Sampling", open=True):
                    preset = gr.Radio(list(SAMPLING_PRESETS), value=DEFAULT_PRESET, label="Preset",
                                      info="paper: DDIM 100 steps; fast: Euler 25 steps; turbo: Euler ancestral 4 steps")  # fmt: skip
                    with gr.Row():
                        steps = gr.Slider(1, 200, value=default.num_inference_steps, step=1, label="Steps",
                                          elem_id="steps")  # fmt: skip
                        guidance = gr.Slider(1.0, 10.0, value=default.guidance_scale, step=0.1,
                                             label="Guidance (1: none)")  # fmt: skip
                    sync = gr.Slider(0.0, SYNC_GUIDANCE_MAX, value=demo.sync_guidance_default(), step=0.005,
                                     label="Sync guidance (0: off)", elem_id="sync-guidance",
                                     info="pulls the sound onto the loudness envelope predicted from the video",
                                     interactive=demo.can_guide())  # fmt: skip
                    with gr.Row():
                        seed = gr.Number(0, precision=0, minimum=0, label="Seed")
                        mode = gr.Radio(list(JOIN_MODES), value=JOIN_MODES[0], label="Long videos: window join")
                with gr.Accordion("Reference audio (optional)", open=False):
                    reference = gr.Audio(label="A sound the soundtrack continues", sources=["upload"], type="filepath")
                with gr.Row():
                    button = gr.Button("Generate", variant="primary", interactive=demo.mapper_dir is not None,
                                       elem_id="generate")  # fmt: skip
                    stop = gr.Button("Stop", variant="stop", interactive=demo.mapper_dir is not None, elem_id="stop")
            with gr.Column():
                status = gr.Markdown(elem_id="status")
                audio = gr.Audio(label="Soundtrack", type="filepath", interactive=False, elem_id="output-audio")
                muxed = gr.Video(label="Video with the soundtrack", interactive=False, height=300,
                                 elem_id="output-video")  # fmt: skip
                spectrogram = gr.Image(label="Spectrogram", type="filepath", interactive=False, elem_id="spectrogram")

        async def run(video, label, preset, steps, guidance, seed, mode, reference, sync_guidance,
                      progress=gr.Progress()):
            # In a worker thread, watched from here: Gradio cancels this coroutine on Stop (/cancel) but
            # cannot stop a thread, and only marks the request dead when its page is closed; either way
            # `cancel` is set and the generation stops at its next step (it holds GENERATION till then).
            cancel, wanted = threading.Event(), request_watch()
            inputs = (video, label, preset, steps, guidance, seed, mode, reference, progress, cancel, sync_guidance)
            work = asyncio.ensure_future(anyio.to_thread.run_sync(demo.generate, *inputs))
            work.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved, even when abandoned
            try:
                while not work.done():
                    await asyncio.wait({work}, timeout=POLL_SECONDS)
                    if not wanted():
                        cancel.set()
                return work.result()
            except asyncio.CancelledError:
                cancel.set()
                raise

        def stopped():
            return "Stopped: the generation ends at its next step."

        def preset_defaults(name):
            return SAMPLING_PRESETS[name].num_inference_steps, SAMPLING_PRESETS[name].guidance_scale

        video.change(demo.describe, video, status, show_progress="hidden")
        preset.change(preset_defaults, preset, [steps, guidance], show_progress="hidden")
        generation = button.click(run, [video, label, preset, steps, guidance, seed, mode, reference, sync],
                                  [status, audio, muxed, spectrogram], concurrency_limit=1)  # fmt: skip
        stop.click(stopped, None, status, cancels=[generation], queue=False)  # not refused when the queue is full
    app.queue(max_size=QUEUE_SIZE)  # waiting requests beyond it are refused in one line
    return app


def request_watch():
    """In a queued Gradio event: a function that is False once the request is gone (its page closed,
    or cancelled). It reads the installed Gradio's queue (the event's ``alive`` flag, which Gradio sets
    when the page's event stream drops, but cancels nothing); without that queue, always True."""
    from gradio.context import LocalContext

    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    events = getattr(getattr(blocks, "_queue", None), "event_ids_to_events", None)
    if event_id is None or not isinstance(events, dict):
        return lambda: True

    def wanted() -> bool:
        event = events.get(event_id)
        return event is not None and getattr(event, "alive", True)

    return wanted


def main(argv=None) -> int:
    args = parse_args(argv)
    try:  # every option, before anything is loaded
        check_host(args.host)
        check_port_free(args.host, args.port)
        mapper_dir, why = find_mapper(args.mapper)
        world_root, world = find_world(args.world)
        from mapper.generation.arguments import check_device  # imports torch

        device = str(check_device(args.device, "--device"))
    except ValueError as error:
        return usage_error(error)
    if mapper_dir is None:
        print(f"no mapper: {why.split(';')[0]}; train one with `{TRAIN_COMMAND}` or pass --mapper DIR", file=sys.stderr)
    if world is None and mapper_dir is not None:
        world = build_world(world_root)
    demo = Demo(mapper_dir, device, world)
    app = build_app(demo)
    print(f"mapper: {mapper_dir or 'none'}; toy examples: {world.root if world else 'none'}", flush=True)
    served = [str(demo.out)] + ([str(world.root)] if world else [])  # outputs and example videos only
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as Ctrl-C does: outputs removed
    app.launch(server_name=args.host, server_port=args.port, allowed_paths=served, show_error=False,
               ssr_mode=False, mcp_server=False, pwa=False, share=False)  # fmt: skip
    return 0


def console() -> None:
    """The `mfm-demo` command."""
    sys.exit(main())


if __name__ == "__main__":
    console()
