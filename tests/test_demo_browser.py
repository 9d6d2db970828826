"""The demo page (`python -m recipes.demo`) in a real browser: headless Debian chromium driven by
selenium against the app started as its own process, with an untrained tiny mapper and a toy
world of short clips.

Checked: a toy video is uploaded and generated with 3 steps; a progress bar shows sampling; the
soundtrack, the muxed video and the spectrogram appear; the served wav lasts as long as the
video and the served mp4 carries the video and an audio track; the page loads nothing from outside
the server; a screenshot is taken (docs/demo.png with MFM_UPDATE_SCREENSHOT=1). A 200-step
generation is stopped with the Stop button: the page says so, and the server's log that it stopped
early. Then a text file named .mp4 gives a one-line error in the page (on upload and on Generate)
and the server keeps serving. The command line's own errors are checked without a browser.

chromium and chromedriver are required (the test fails, it does not skip, without them):
`apt-get install -y --no-install-recommends chromium chromium-driver`.
"""
from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from recipes.demo import main
from toy_world import read_world

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# The README's screenshot is refreshed only when asked (MFM_UPDATE_SCREENSHOT=1), so a test run
# leaves the checkout clean; otherwise the screenshot goes to the test's own folder.
SCREENSHOT = REPO / "docs" / "demo.png"
STEPS = 3


# ---------------------------------------------------------------- the command line (no browser)


def test_bad_options_are_one_line_errors(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--port", "70000"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: argument --port: must be an integer from 1 to 65535, got 70000 (see --help)")
    assert main(["--host", "not a host!"]) == 2
    assert capsys.readouterr().err.strip() == "error: --host must be an IP address or a host name, got 'not a host!'"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["--port", str(port)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --port {port}: cannot listen on 127.0.0.1")
    assert main(["--port", str(_free_port()), "--mapper", "/no/such/mapper"]) == 2
    assert capsys.readouterr().err.strip() == "error: --mapper /no/such/mapper: no such folder"


# ---------------------------------------------------------------- the page in a browser


@pytest.mark.slow
def test_demo_page_in_a_real_browser(tmp_path):
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: the browser test needs Debian's chromium and chromedriver "
                    "(apt-get install -y --no-install-recommends chromium chromium-driver)")  # fmt: skip
    began = time.perf_counter()
    mapper_dir, world = _tiny_mapper(tmp_path), _short_toy_world(tmp_path)
    server, url = _start_demo(tmp_path, mapper_dir, world)
    driver = None
    try:
        driver = _chromium()
        driver.get(url)
        toy = read_world(world)
        clip = max(toy.clips(), key=lambda c: len(c["events"]["times"]))
        _upload(driver, server, toy.video_path(clip["id"]))
        _wait(driver, lambda: "toy example" in _status(driver), "the upload's status line", server)
        _set_text(driver, "#label textarea", clip["label"])
        _set_text(driver, "#steps input[type=number]", str(STEPS))
        _watch_progress(driver)
        driver.find_element("id", "generate").click()
        sources = _wait(driver, lambda: _output_sources(driver), "the soundtrack, the muxed video and the spectrogram",
                        server, timeout=120)  # fmt: skip
        assert "Generated" in _status(driver) and "true events marked" in _status(driver), _status(driver)
        shown = driver.execute_script("return window.seen.progress")
        assert any(text.startswith("sampling window 1 of 1") for text in shown), f"no sampling progress: {shown[:5]}"

        import av
        import soundfile as sf

        audio, rate = sf.read(io.BytesIO(_get(sources["audio"])), dtype="float32")
        assert rate == 16000 and abs(len(audio) / rate - clip["duration"]) < 1e-3, (len(audio), rate, clip["duration"])
        (tmp_path / "muxed.mp4").write_bytes(_get(sources["video"]))
        with av.open(str(tmp_path / "muxed.mp4")) as muxed:
            assert muxed.streams.video and muxed.streams.audio
            assert muxed.streams.audio[0].sample_rate == 16000
        assert _get(sources["spectrogram"])[:8] == b"\x89PNG\r\n\x1a\n"
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        outside = [name for name in resources if not name.startswith((url, "data:", "blob:"))]
        assert not outside, f"the page fetched from outside the server: {outside[:5]}"
        shot = SCREENSHOT if os.environ.get("MFM_UPDATE_SCREENSHOT") == "1" else tmp_path / "demo.png"
        _screenshot(driver, shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # Stop: the generation stops at its next step (the server's log says after how many)
        _set_text(driver, "#steps input[type=number]", "200")
        _watch_progress(driver)
        driver.find_element("id", "generate").click()
        _wait(driver, lambda: driver.execute_script("return window.seen.progress.length"), "sampling progress", server)
        driver.find_element("id", "stop").click()
        _wait(driver, lambda: "Stopped" in _status(driver), "the Stop button's status line", server)
        line = _wait(driver, lambda: re.search(r"Cancelled after (\d+) of 200 steps", server.log_path.read_text()),
                     "the server's line for the stopped generation", server, timeout=30)  # fmt: skip
        assert int(line[1]) < 100, line[0]

        # a text file named .mp4: one line in the page, on upload and on Generate; the server goes on
        bad = tmp_path / "not_a_video.mp4"
        bad.write_text("this is not a video\n")
        driver.get(url)
        _upload(driver, server, bad)
        line = _wait(driver, lambda: "Error" in _status(driver) and _status(driver), "the bad upload's message", server)
        _assert_one_line_error(line, bad.name)
        _watch_progress(driver)
        driver.find_element("id", "generate").click()
        ran = lambda: driver.execute_script("return window.seen.busy") and not _busy(driver)  # noqa: E731
        line = _wait(driver, lambda: ran() and _status(driver), "the message after Generate", server)
        _assert_one_line_error(line, bad.name)
        assert server.poll() is None, "the server stopped"
        assert b"MFM-Mapper" in _get(url)
        driver.get(url)
        _wait(driver, lambda: driver.find_elements("css selector", "#input-video input[type=file]"), "the page", server)
        assert not driver.find_elements("css selector", "#output-audio a[download]")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(f"browser test: {time.perf_counter() - began:.1f} s")


# ---------------------------------------------------------------- helpers


def _tiny_mapper(tmp_path: Path) -> Path:
    """An untrained tiny mapper (its AudioLDM-2 is the tiny one, built offline at load)."""
    from mapper.config import MapperConfig
    from mapper.loading import build_mapper

    path = tmp_path / "mapper"
    build_mapper(MapperConfig.from_preset("tiny", n_layer=2, n_head=2)).save_pretrained(path)
    return path


def _short_toy_world(tmp_path: Path) -> Path:
    """Three toy clips of about 4 s (one sampling window each): quick to render and to generate."""
    from extractors.clip import ClipConfig
    from toy_world import make_toy_world

    root = tmp_path / "world"
    make_toy_world(root, num_clips=3, seed=0, clip=ClipConfig(seconds=4.0))
    return root


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_demo(tmp_path: Path, mapper_dir: Path, world: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "MFM_HOME": str(tmp_path / "home"), "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "TMPDIR": str(tmp_path),  # the demo's own outputs
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    # run from tmp_path with relative folders: the page (and the screenshot) shows "mapper", not a temp path
    command = [sys.executable, "-m", "recipes.demo", "--mapper", mapper_dir.name, "--world", world.name,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    server.log_path = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the demo exited with {server.returncode}:\n{_log_tail(server)}")
        try:
            _get(url)
            return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    pytest.fail(f"the demo did not serve {url} within 90 s:\n{_log_tail(server)}")


def _log_tail(server) -> str:
    return "\n".join(server.log_path.read_text(errors="replace").splitlines()[-30:])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read()


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--hide-scrollbars", "--mute-audio", "--no-first-run"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def _wait(driver, condition, what: str, server, timeout: float = 60):
    """The first truthy value of ``condition()``; fails naming ``what`` (and the server's log) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # the page is (re)rendering
            value = None
        if value:
            return value
        if server.poll() is not None:
            pytest.fail(f"the demo exited with {server.returncode} while waiting for {what}:\n{_log_tail(server)}")
        time.sleep(0.25)
    pytest.fail(f"no {what} within {timeout:g} s; status: {_status(driver)!r}\nserver log:\n{_log_tail(server)}")


def _upload(driver, server, path: Path) -> None:
    field = _wait(driver, lambda: driver.find_elements("css selector", "#input-video input[type=file]"),
                  "video upload field", server)  # fmt: skip
    field[0].send_keys(str(path))


def _set_text(driver, selector: str, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element("css selector", selector)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text, Keys.TAB)


def _status(driver) -> str:
    return driver.execute_script("return (document.querySelector('#status')?.textContent || '').trim()")


BUSY = "#status [data-testid=status-tracker]:not(.hide)"  # Gradio's progress overlay on the status line


def _busy(driver) -> bool:
    return bool(driver.execute_script(f"return document.querySelector('{BUSY}')"))


def _watch_progress(driver) -> None:
    """Record what the progress overlay shows from now on (sampling may be over between two polls):
    ``window.seen.progress``, the "sampling window ..." lines; ``window.seen.busy``, how often it was up."""
    driver.execute_script("""
        const busy = arguments[0];
        window.seen = {progress: [], busy: 0};
        new MutationObserver(() => {
            if (document.querySelector(busy)) window.seen.busy += 1;
            const line = document.body.innerText.match(/sampling window[^\\n]*/);
            if (line) window.seen.progress.push(line[0]);
        }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true,
                                   attributeFilter: ['class']});
    """, BUSY)


def _output_sources(driver) -> dict | None:
    """The served URLs of the soundtrack, the muxed video and the spectrogram, once all three are shown."""
    found = driver.execute_script("""
        const q = s => document.querySelector(s);
        return {audio: q('#output-audio a[download]')?.href, video: q('#output-video video')?.src,
                spectrogram: q('#spectrogram img')?.src};
    """)
    return found if all(found.values()) else None


def _assert_one_line_error(line: str, name: str) -> None:
    assert line.startswith("Error:") and name in line, line
    assert "\n" not in line and "Traceback" not in line and len(line) < 300, line


def _screenshot(driver, path: Path) -> None:
    """The whole page (beyond the window), as a small palette PNG (commit-ready)."""
    import base64

    from PIL import Image

    driver.execute_script("window.scrollTo(0, 0)")
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"format": "png", "captureBeyondViewport": True, "clip": clip})  # fmt: skip
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    path.parent.mkdir(exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    assert path.stat().st_size < 400_000, path.stat().st_size
