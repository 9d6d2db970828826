"""The demo (`python -m recipes.demo`) under load and abuse, served in this process on 127.0.0.1 (an
ephemeral port) with an untrained tiny mapper and a 2-second toy clip; clients are gradio_client's
(what the page's own JavaScript client does: queue/join, the SSE stream, /cancel) or plain HTTP.

Checked:
- the queue is bounded: while one generation runs, 6 clients at once get QUEUE_SIZE places and the
  rest one line each ("Queue is full"); every accepted client is answered in one line; the
  server's memory is flat (RSS after within RSS_GROWTH of before); it all takes bounded time;
- a cancelled request (Stop, gradio_client's cancel: /cancel) stops its generation at its next
  denoising step, and the next request waits for it (never two generations at once); the server
  then goes back to idle (CPU);
- a request whose page is closed (its SSE stream dropped) stops in the same way;
- a video longer than the demo's limit (a 1.5 KB mp4 whose two frames are 10 hours apart) is
  refused in one line, from its container's metadata, before the model is loaded;
- an unreadable reference audio is named by its file name, not by the server's upload path.

The UNet's forward and the sampling loop (`denoise`) are wrapped to count steps per thread and
generations in flight; at teardown the wrapper stops any generation still running.
"""
from __future__ import annotations

import concurrent.futures
import fractions
import gc
import inspect
import json
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

import recipes.demo as demo_module
from recipes.demo import Demo, build_app

QUEUE_SIZE = 2  # the served app's (recipes.demo.QUEUE_SIZE, patched smaller for the test)
CLIENTS = 6
LONG_STEPS = 200  # a generation that runs until it is cancelled (the Steps slider's maximum)
STEPS_AFTER_CANCEL = 1  # UNet calls a generation may still begin once the server has set its cancel flag (the next step)
NOTICE_SECONDS = 3.0  # how long the server may take to set the flag after a Stop or a closed page
RSS_GROWTH = 96 * 2**20  # bytes
BURST_SECONDS = 60


# ---------------------------------------------------------------- fixtures


class Probe:
    """Wraps the UNet's forward (steps per thread) and the sampling loop (generations in flight)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: list[tuple[int, float]] = []  # (thread id, start time) of every UNet call
        self.sampling = 0  # sampling loops running now
        self.most_sampling = 0  # the most at once
        self.stop = False  # teardown: any generation still running raises at its next step
        self.cancelled_at: list[float] = []  # when the server set a generation's cancel flag
        self.loops_began: list[float] = []  # when each sampling loop began

    def wrap_generate(self, generate):
        """Records when the server sets the ``cancel`` flag it hands a generation.

        Steps are counted from that moment, not from the client's request: how long the request takes to
        reach the server depends on the machine's load, how fast the generation stops once told does not."""

        signature = inspect.signature(generate)

        def watched(*args, **kwargs):
            cancel = signature.bind(*args, **kwargs).arguments.get("cancel")
            if cancel is not None:  # served: note the moment the server sets it (at once if it already has)
                set_flag = cancel.set

                def noted_set():
                    with self.lock:
                        self.cancelled_at.append(time.monotonic())
                    set_flag()

                cancel.set = noted_set
                if cancel.is_set():
                    noted_set()
            return generate(*args, **kwargs)

        return watched

    def cancelled_after(self, after: float) -> float | None:
        """When the server first set a cancel flag after ``after`` (None if it has not)."""
        with self.lock:
            return min((at for at in self.cancelled_at if at > after), default=None)

    def wrap_unet(self, unet):
        forward = unet.forward

        def counted(*args, **kwargs):
            if self.stop:
                raise RuntimeError("the test is over")
            with self.lock:
                self.calls.append((threading.get_ident(), time.monotonic()))
            return forward(*args, **kwargs)

        unet.forward = counted

    def wrap_denoise(self, denoise):
        def counted(*args, **kwargs):
            with self.lock:
                self.sampling += 1
                self.most_sampling = max(self.most_sampling, self.sampling)
                self.loops_began.append(time.monotonic())
            try:
                return denoise(*args, **kwargs)
            finally:
                with self.lock:
                    self.sampling -= 1

        return counted

    def steps(self, thread: int | None = None, after: float = 0.0) -> int:
        with self.lock:
            return sum(1 for ident, start in self.calls if (thread is None or ident == thread) and start > after)

    def steps_of_cancelled(self, thread: int, cancelled: float) -> int:
        """UNet calls on ``thread`` after ``cancelled`` by the generation that was running then: the
        worker thread may run the next generation once it stops, and those calls are not counted."""
        with self.lock:
            next_loop = min((began for began in self.loops_began if began > cancelled), default=float("inf"))
            return sum(1 for ident, start in self.calls if ident == thread and cancelled < start < next_loop)

    def stepping_thread(self, after: float) -> int | None:
        """The thread that made the last UNet call after ``after`` (None if none did)."""
        with self.lock:
            late = [ident for ident, start in self.calls if start > after]
        return late[-1] if late else None

    def quiet(self, thread: int, seconds: float, timeout: float) -> bool:
        """Wait until ``thread`` has made no UNet call for ``seconds`` (False after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                last = max((start for ident, start in self.calls if ident == thread), default=0.0)
            if time.monotonic() - last > seconds and self.sampling == 0:
                return True
            time.sleep(0.1)
        return False


class Served:
    def __init__(self, url, app, demo, probe, video, fn_index):
        self.url, self.app, self.demo, self.probe, self.video = url, app, demo, probe, video
        self.fn_index = fn_index

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False)

    def submit(self, client, steps: int):
        return client.submit(*_inputs(self, steps), api_name="/run")

    def sampling(self, after: float) -> int | None:
        """The thread of a generation that has made 2 steps since ``after`` (None while none has)."""
        thread = self.probe.stepping_thread(after)
        return thread if thread is not None and self.probe.steps(thread, after) >= 2 else None

    def wait_sampling(self, after: float, timeout: float = 60) -> int:
        """The thread of the generation that starts stepping after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            thread = self.sampling(after)
            if thread is not None:
                return thread
            time.sleep(0.05)
        pytest.fail(f"no generation started sampling within {timeout:g} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tiny_mapper(folder: Path) -> Path:
    from mapper.config import MapperConfig
    from mapper.loading import build_mapper

    path = folder / "mapper"
    build_mapper(MapperConfig.from_preset("tiny", n_layer=2, n_head=2)).save_pretrained(path)
    return path


def _short_video(folder: Path) -> Path:
    from extractors.clip import ClipConfig
    from toy_world import make_toy_world, read_world

    make_toy_world(folder / "world", num_clips=1, seed=0, clip=ClipConfig(seconds=2.0))
    world = read_world(folder / "world")
    return world.video_path(world.clips()[0]["id"])


def _ten_hour_video(path: Path) -> Path:
    """A 1.5 KB mp4 of two 64x64 frames, the second 10 hours after the first."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, pts in enumerate([0, 36_000_000]):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import mapper.generation.pipeline as pipeline_module

    folder = tmp_path_factory.mktemp("demo_load")
    probe = Probe()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo_module, "QUEUE_SIZE", QUEUE_SIZE)
        patch.setattr(pipeline_module, "denoise", probe.wrap_denoise(pipeline_module.denoise))
        demo = Demo(_tiny_mapper(folder), "cpu", None)
        probe.wrap_unet(demo.pipeline().unet)  # loaded now: the clients time generation, not loading
        demo.generate = probe.wrap_generate(demo.generate)
        app = build_app(demo)
        port = _free_port()
        app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                   show_error=False, ssr_mode=False, mcp_server=False, pwa=False, share=False)  # fmt: skip
        try:
            fn_index = next(i for i, fn in app.fns.items() if fn.api_name == "run")
            yield Served(f"http://127.0.0.1:{port}/", app, demo, probe, _short_video(folder), fn_index)
        finally:
            probe.stop = True
            app.close()
            deadline = time.monotonic() + 30
            while probe.sampling and time.monotonic() < deadline:
                time.sleep(0.1)


def _cpu_seconds(wall: float) -> float:
    """CPU seconds this process uses over ``wall`` seconds of waiting."""
    import psutil

    me = psutil.Process()
    before = me.cpu_times()
    time.sleep(wall)
    after = me.cpu_times()
    return (after.user - before.user) + (after.system - before.system)


def _inputs(served, steps):
    from gradio_client import handle_file

    # the page's inputs, in order; the last is the sync guidance (the tiny mapper has no envelope predictor)
    return handle_file(str(served.video)), "", "fast", steps, 2.5, 0, "inpaint", None, 0.0


def _one_line(text: str) -> bool:
    return bool(text) and "\n" not in text.strip() and "Traceback" not in text and len(text) < 300


# ---------------------------------------------------------------- without a server


def test_a_video_longer_than_the_demo_limit_is_refused_in_one_line_before_any_work(tmp_path):
    video = _ten_hour_video(tmp_path / "ten_hours.mp4")
    demo = Demo(tmp_path / "mapper", "cpu", None)  # never loaded: the limit is checked first
    calls = []

    def progress(*args, **kwargs):  # the first progress report is "loading the model": work began
        calls.append((args, kwargs))
        raise RuntimeError("the demo began working on a 10-hour video")

    import mapper.generation.pipeline  # noqa: F401  (imported, not timed)

    began = time.perf_counter()
    status, *outputs = demo.generate(str(video), "", "fast", 1, 2.5, 0, "inpaint", None, progress)
    took = time.perf_counter() - began
    assert not calls and demo._pipeline is None, status
    assert outputs == [None, None, None]
    assert status.startswith("**Error:** “ten_hours.mp4”") and _one_line(status), status
    assert "36000" in status and f"{demo_module.MAX_VIDEO_SECONDS:g} s" in status, status
    assert str(tmp_path) not in status, status
    assert took < 5, took
    line = demo.describe(str(video))  # said on upload too, in the same words
    assert line == status, line


def test_an_unreadable_reference_audio_is_named_by_its_file_name_only(served, tmp_path):
    upload = tmp_path / "gradio" / "0123456789abcdef" / "voice.wav"  # where Gradio keeps an upload
    upload.parent.mkdir(parents=True)
    upload.write_text("not audio\n")

    def progress(*args, **kwargs):
        pass

    status, *outputs = served.demo.generate(str(served.video), "", "fast", 1, 2.5, 0, "inpaint", str(upload), progress)
    assert outputs == [None, None, None], status
    assert "“voice.wav”" in status and status.startswith("**Error:** Reference audio") and _one_line(status), status
    assert str(upload.parent) not in status and str(tmp_path) not in status, status


# ---------------------------------------------------------------- served


def test_the_queue_is_bounded_memory_flat_and_every_client_answered_in_one_line(served):
    import psutil
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    probe = served.probe
    clients = [served.client() for _ in range(CLIENTS + 1)]
    warm = clients[0].predict(*_inputs(served, 1), api_name="/run")  # one generation: buffers allocated
    assert warm[0].startswith("Generated"), warm[0]
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    began = time.monotonic()
    long = served.submit(clients[0], LONG_STEPS)  # runs while the others arrive
    thread = served.wait_sampling(began)
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        jobs = list(pool.map(lambda client: served.submit(client, 1), clients[1:]))
    deadline = time.monotonic() + 10  # a refusal comes at once; the accepted wait for the long one
    while sum(job.done() for job in jobs) < CLIENTS - QUEUE_SIZE and time.monotonic() < deadline:
        time.sleep(0.05)
    long.cancel()  # let the queued ones run
    answered, refused = [], []
    for job in jobs:
        try:
            answered.append(job.result(timeout=BURST_SECONDS)[0])
        except QueueError as error:
            refused.append(str(error))
        except AppError as error:
            pytest.fail(f"a client got an error: {error}")
    took = time.monotonic() - began
    assert probe.quiet(thread, 1.0, timeout=30), f"the cancelled generation still steps: {probe.steps(thread)} steps"
    gc.collect()
    rss_after = psutil.Process().memory_info().rss
    print(f"\nload: {CLIENTS} clients beside 1 running, queue {QUEUE_SIZE}: {len(answered)} answered, "
          f"{len(refused)} refused; RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB; {took:.1f} s")
    assert len(refused) == CLIENTS - QUEUE_SIZE, (answered, refused)
    assert all(_one_line(line) and "Queue is full" in line for line in refused), refused
    assert len(answered) == QUEUE_SIZE, (answered, refused)
    assert all(_one_line(line) and line.startswith("Generated") for line in answered), answered
    assert probe.most_sampling == 1, f"{probe.most_sampling} generations ran at once"
    assert rss_after - rss_before < RSS_GROWTH, (rss_before, rss_after)
    assert took < BURST_SECONDS, took


def test_a_cancelled_generation_stops_at_its_next_step_and_the_next_one_waits_for_it(served):
    stops = [fn for fn in served.app.fns.values() if served.fn_index in (fn.cancels or [])]
    assert len(stops) == 1 and not stops[0].queue, "no Stop button cancels the generation (outside the queue)"
    probe = served.probe
    first, second = served.client(), served.client()
    began = time.monotonic()
    job = served.submit(first, LONG_STEPS)
    thread = served.wait_sampling(began)
    cancelled = time.monotonic()
    assert job.cancel()
    after = served.submit(second, 2)  # the slot is free at once; it must wait for the cancelled one
    status = after.result(timeout=60)[0]
    stopped = probe.quiet(thread, 1.0, timeout=20)
    flagged = probe.cancelled_after(cancelled)
    assert flagged is not None and flagged - cancelled < NOTICE_SECONDS, f"the server set the cancel flag {flagged}"
    late = probe.steps_of_cancelled(thread, flagged)
    assert stopped and late <= STEPS_AFTER_CANCEL, f"{late} steps after the cancel; still stepping: {not stopped}"
    assert probe.most_sampling == 1, f"{probe.most_sampling} generations ran at once"
    assert status.startswith("Generated") and _one_line(status), status
    cpu = _cpu_seconds(2.0)
    print(f"\ncancel: {late} steps after it; idle CPU {cpu / 2.0:.0%}")
    assert cpu < 0.5, f"the idle server used {cpu:.2f} CPU seconds in 2 s"


def test_a_closed_page_stops_its_generation(served):
    import httpx

    probe = served.probe
    session = uuid.uuid4().hex
    began = time.monotonic()
    with httpx.Client(base_url=served.url + "gradio_api/", timeout=30) as http:
        with served.video.open("rb") as file:
            uploaded = http.post("upload", files={"files": (served.video.name, file, "video/mp4")})
        uploaded.raise_for_status()
        video = {"path": uploaded.json()[0], "orig_name": served.video.name, "meta": {"_type": "gradio.FileData"}}
        joined = http.post("queue/join", json={
            "data": [video, "", "fast", LONG_STEPS, 2.5, 0, "inpaint", None, 0.0], "fn_index": served.fn_index,
            "session_hash": session, "event_data": None, "trigger_id": None})  # fmt: skip
        joined.raise_for_status()
        thread = None
        with http.stream("GET", "queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                assert message.get("msg") != "process_completed", message
                thread = served.sampling(began)
                if message.get("msg") == "progress" and thread is not None:
                    break  # the page is closed while it samples
    closed = time.monotonic()
    assert thread is not None, "the stream ended before sampling began"
    stopped = probe.quiet(thread, 1.0, timeout=20)
    # the server notices the closed stream at its next look (every POLL_SECONDS) and sets the flag
    flagged = probe.cancelled_after(closed)
    assert flagged is not None and flagged - closed < NOTICE_SECONDS, f"the server set the cancel flag {flagged}"
    late = probe.steps_of_cancelled(thread, flagged)
    why = f"{late} steps after the server saw the page closed; still stepping: {not stopped}"
    assert stopped and late <= STEPS_AFTER_CANCEL, why
    cpu = _cpu_seconds(2.0)
    assert cpu < 0.5, f"the idle server used {cpu:.2f} CPU seconds in 2 s"
