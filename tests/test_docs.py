"""The docs cannot drift from the code.

README.md, SECURITY.md and every page under docs/ are read as text, and what they name is checked
against the repository:

* every repository path (``dir/file.py``, ``dir/``, ``recipes/configs/*.yaml``, in backticks, in
  links, or with a file suffix inside a code block) exists; paths that are outputs or the user's
  own files (``runs/``, ``data/``, ``eval/``, ``DIR/...``) are left out by one explicit pattern;
* every ``python -m X`` names a module that exists and whose ``--help`` exits 0 (run in a
  subprocess, all modules in one batch, so torch and its friends are imported once; a failure is
  confirmed in a fresh process of its own before it is reported);
* every dotted name of the toolkit in backticks (``mapper.generation.seams.seam_score``) is a module,
  or a name defined at the top level of its module;
* ``mkdocs build --strict`` passes (a broken link, anchor, snippet or API reference fails it), and
  with the same settings a probe site shows that an annotation naming a type outside the site
  (torch, numpy) does not fail it while a cross-reference the docs make themselves must resolve;
* the built site, served on 127.0.0.1 and opened in headless Debian chromium, shows the navigation
  and the API pages, and loads no script or stylesheet from outside. ``docs/site.png`` and
  ``docs/site-api.png`` are its screenshots, refreshed with ``MFM_UPDATE_SCREENSHOT=1``.

mkdocs, Material and mkdocstrings come with the ``[dev]`` extra (and ``[docs]``); the build tests
skip, naming the fix, only when mkdocs itself is not installed. chromium is required as in
``tests/test_demo_browser.py`` (``.ci/run`` installs it).
"""
from __future__ import annotations

import ast
import functools
import glob
import http.client
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = ("extractors", "toy_world", "mapper", "evaluation", "recipes", "benchmarks")
UPDATE_SCREENSHOTS = os.environ.get("MFM_UPDATE_SCREENSHOT") == "1"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "SECURITY.md", *sorted(DOCS.rglob("*.md"))]


# ------------------------------------------------------------------------------- reading the docs

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PYTHON_M = re.compile(r"python3? -m ([A-Za-z_][\w.]*\w)(?![.\w]*<)")  # not `python -m recipes.<name>`
DOTTED = re.compile(r"^((?:%s)(?:\.[A-Za-z_]\w*)+)" % "|".join(PACKAGES))
PATHLIKE = re.compile(r"^[\w.*-]+(?:/[\w.*-]+)*/?$")
FILE_SUFFIX = re.compile(r"\.(py|ya?ml|md|json|ipynb|png|cfg|toml|safetensors|sh)$")
# Not repository paths: what a command writes or reads (outputs, the user's own files and folders,
# a run's subfolders), Hugging Face hub ids, metric names; an upper-case first part is a placeholder
# (DIR/, CACHE/, OUT/...).
NOT_IN_REPO = re.compile(
    r"^(runs|data|eval|generated|videos|cache|my_cache|site|vggsound\w*|bert-base-uncased"  # outputs, user files
    r"|train|epochs|curve"  # a paper-tables run's subfolders
    r"|cvssp|SimianLuo"  # hub ids
    r"|val"  # val/mse_generated, a logged metric
    r"|[A-Z][A-Z_]*)(/|$)"
)


def split_code(text: str) -> tuple[str, list[str]]:
    """The prose (fenced blocks removed) and the fenced blocks' contents."""
    return FENCE.sub("", text), FENCE.findall(text)


def path_candidates(token: str) -> str | None:
    """`token` as a repository path to check, or None when it is not one (a URL, a placeholder, an
    output, a flag, a name without a folder)."""
    token = token.strip().strip("\"'(),;:").rstrip(".")
    if "://" in token or "/" not in token or token.startswith(("/", "~", "-", ".", "$")):
        return None
    if not PATHLIKE.match(token) or NOT_IN_REPO.match(token):
        return None
    return token


@functools.cache
def named_paths() -> dict[str, set[str]]:
    """Repository path -> the docs that name it (backticks, links, or suffixed words in code blocks)."""
    found: dict[str, set[str]] = {}
    for doc in doc_files():
        prose, blocks = split_code(doc.read_text())
        tokens = INLINE_CODE.findall(prose)
        tokens += [word for block in blocks for word in block.split() if FILE_SUFFIX.search(word.rstrip(".,;:)"))]
        for token in tokens:
            path = path_candidates(token)
            if path:
                found.setdefault(path, set()).add(doc.relative_to(ROOT).as_posix())
    return found


@functools.cache
def links() -> list[tuple[Path, str]]:
    """(doc, target) for every relative link and image in the docs (anchors dropped)."""
    out = []
    for doc in doc_files():
        prose, _ = split_code(doc.read_text())
        for target in LINK.findall(prose):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL (https:, mailto:) or an anchor on the same page
            out.append((doc, target.split("#", 1)[0]))
    return out


@functools.cache
def python_m_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in doc_files():
        for module in PYTHON_M.findall(doc.read_text()):
            found.setdefault(module, set()).add(doc.relative_to(ROOT).as_posix())
    return found


@functools.cache
def dotted_names() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in doc_files():
        prose, blocks = split_code(doc.read_text())
        for span in INLINE_CODE.findall(prose):
            match = DOTTED.match(span.strip())
            if match:
                found.setdefault(match.group(1), set()).add(doc.relative_to(ROOT).as_posix())
    return found


# ------------------------------------------------------------------------------------ the checks


def test_the_docs_name_paths_commands_and_names_at_all():
    """The readers below found what they should (a broken regex would make every check pass)."""
    assert "recipes/configs/paper.yaml" in named_paths()
    assert "mapper/fusion.py" in named_paths()
    assert "recipes.train_mapper" in python_m_modules()
    assert "mapper.generation.seams.seam_score" in dotted_names()
    assert any(target == "docs/index.md" for _, target in links())


def test_every_repository_path_in_the_docs_exists():
    missing = []
    for path, docs in sorted(named_paths().items()):
        exists = glob.glob(str(ROOT / path)) if "*" in path else (ROOT / path).exists()
        if not exists:
            missing.append(f"{path}  (named in {', '.join(sorted(docs))})")
    assert not missing, "paths named in the docs that are not in the repository:\n" + "\n".join(missing)


def test_every_relative_link_in_the_docs_resolves():
    broken = [f"{doc.relative_to(ROOT)}: {target}" for doc, target in links()
              if not (doc.parent / target).exists()]  # fmt: skip
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def _module_path(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def _top_level_names(path: Path) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
    return names


def _undefined(dotted: str) -> str | None:
    """Why `dotted` does not name a module or a top-level name of one (None when it does)."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        path = _module_path(parts[:split])
        if path is None:
            continue
        rest = parts[split:]
        if not rest:
            return None
        names = _top_level_names(path)
        if rest[0] not in names:
            return f"{'.'.join(parts[:split])} ({path.relative_to(ROOT)}) defines no {rest[0]!r}"
        node = names[rest[0]]
        if len(rest) > 1 and isinstance(node, ast.ClassDef):
            members = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            members |= {t.id for n in node.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                        for t in ast.walk(n.targets[0] if isinstance(n, ast.Assign) else n.target)
                        if isinstance(t, ast.Name)}  # fmt: skip
            if rest[1] not in members:
                return f"class {rest[0]} in {path.relative_to(ROOT)} has no {rest[1]!r}"
        return None
    return f"no module {parts[0]}"


def test_every_dotted_name_of_the_toolkit_in_the_docs_is_defined():
    wrong = [f"{name}: {why}  (named in {', '.join(sorted(docs))})"
             for name, docs in sorted(dotted_names().items()) if (why := _undefined(name))]  # fmt: skip
    assert not wrong, "names in the docs that the code does not define:\n" + "\n".join(wrong)


# One interpreter runs every `python -m X --help` in turn (runpy, as `python -m` does), so the heavy
# imports are paid once. It prints one JSON line: module -> [exit status, the output's tail].
HELP_RUNNER = r"""
import contextlib, io, json, runpy, sys, traceback
results = {}
for module in list(sys.argv[1:]):
    out = io.StringIO()
    code = 0
    sys.argv = [module, "--help"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        code = 1
        out.write(traceback.format_exc())
    results[module] = [code, out.getvalue()[-3000:]]
sys.__stdout__.write("\n@@HELP@@" + json.dumps(results) + "\n")
"""


def _help_exit_codes(modules: list[str], tmp_path: Path) -> dict[str, tuple[int, str]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MFM_HOME": str(tmp_path / "mfm_home"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", HELP_RUNNER, *modules], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    marker = done.stdout.rfind("@@HELP@@")
    if marker < 0:
        tail = (done.stdout + done.stderr)[-3000:]
        return {module: (done.returncode or 1, tail) for module in modules}
    return {module: (code, out) for module, (code, out) in json.loads(done.stdout[marker + 8:]).items()}


def test_every_python_m_command_in_the_docs_answers_help(tmp_path):
    named = python_m_modules()
    missing = [f"{m}  (named in {', '.join(sorted(named[m]))})" for m in sorted(named) if _find_spec(m) is None]
    assert not missing, "python -m modules that do not exist:\n" + "\n".join(missing)
    results = _help_exit_codes(sorted(named), tmp_path)
    failed = [m for m, (code, _) in results.items() if code != 0]
    for module in failed:  # confirmed alone, in a fresh interpreter: no module is blamed for another's state
        results.update(_help_exit_codes([module], tmp_path))
    failed = [f"python -m {m} --help -> exit {code}  (named in {', '.join(sorted(named[m]))})\n{out[-1500:]}"
              for m, (code, out) in sorted(results.items()) if code != 0]  # fmt: skip
    assert not failed, "commands in the docs whose --help fails:\n" + "\n\n".join(failed)


def _find_spec(module: str):
    try:
        return importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None


# ------------------------------------------------------------------------------- the built site


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed: pip install -e ".[docs]" (it is in [dev] too)')
    site = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, "mkdocs build --strict failed:\n" + (done.stdout + done.stderr)[-6000:]
    return site


def test_mkdocs_build_strict_passes(built_site):
    assert (built_site / "index.html").exists()
    assert (built_site / "security" / "index.html").read_text().count("weights_only=True") >= 1  # SECURITY.md included
    api = (built_site / "api" / "mapper" / "index.html").read_text()
    assert 'id="mapper.generation.pipeline.VideoToAudioPipeline"' in api  # the API pages are rendered
    for page in built_site.rglob("*.html"):  # nothing fetched from outside: the site works offline
        text = page.read_text()
        assert not re.search(r"<script[^>]+src=\"https?://", text), page
        assert not re.search(r"<link[^>]+rel=\"stylesheet\"[^>]+href=\"https?://", text), page


def _build_probe(tmp_path: Path, page: str) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of a one-page site with this repository's mkdocs.yml settings, whose
    page documents a small module (`probe`) annotated with types from outside the site."""
    import yaml

    (tmp_path / "src").mkdir(parents=True)
    (tmp_path / "src" / "probe.py").write_text(
        '"""A probe module."""\n'
        "import numpy\nimport torch\n\n\n"
        "def embed(x: torch.Tensor, table: 'somewhere.Missing') -> numpy.ndarray:\n"
        '    """Annotations name torch, numpy and a type that exists nowhere."""\n'
    )  # fmt: skip
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(page)
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config.update(docs_dir=str(tmp_path / "docs"), site_dir=str(tmp_path / "site"), nav=["index.md"])
    config.pop("watch", None)
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(tmp_path / "src")]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_strict_build_passes_on_outside_types_and_fails_on_broken_references(tmp_path):
    """The settings of mkdocs.yml: an annotation whose type the site does not document (torch, numpy,
    a missing module) stays plain text, but a cross-reference the docs make themselves must resolve."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed: pip install -e ".[docs]" (it is in [dev] too)')
    good = _build_probe(tmp_path / "good", "# Probe\n\n::: probe\n")
    assert good.returncode == 0, (good.stdout + good.stderr)[-3000:]
    bad = _build_probe(tmp_path / "bad", "# Probe\n\nSee [probe.nothing][].\n\n::: probe\n")
    assert bad.returncode != 0 and "probe.nothing" in bad.stdout + bad.stderr, (bad.stdout + bad.stderr)[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_served(port: int, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "python -m http.server exited"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the site was not served within 30 s")


def _chromium(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--mute-audio", "--no-first-run", "--window-size=1280,900",
                           *arguments], cwd=cwd, capture_output=True, text=True, timeout=120)  # fmt: skip


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_built_site_in_headless_chromium(built_site, tmp_path):
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium missing: the site test needs Debian's chromium "
                    "(apt-get install -y --no-install-recommends chromium)")  # fmt: skip
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(built_site)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_until_served(port, server)
        pages = {"site.png": ("", "Getting started"), "site-api.png": ("api/mapper/", "VideoToAudioPipeline")}
        for name, (path, expected) in pages.items():
            url = f"http://127.0.0.1:{port}/{path}"
            dom = _chromium("--dump-dom", url, cwd=tmp_path).stdout
            assert "md-nav" in dom and "API reference" in dom and "Performance" in dom, f"no navigation at {url}"
            assert expected in dom, f"{expected!r} not on {url}"
            shot = (DOCS if UPDATE_SCREENSHOTS else tmp_path) / name
            done = _chromium(f"--screenshot={shot}", url, cwd=tmp_path)
            assert shot.exists(), f"no screenshot of {url}:\n{done.stderr[-2000:]}"
            assert _png_size(shot) == (1280, 900)
            if UPDATE_SCREENSHOTS:  # commit-ready: a small palette PNG, as docs/demo.png
                from PIL import Image

                Image.open(shot).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
                    shot, optimize=True)  # fmt: skip
                assert shot.stat().st_size < 400_000, shot.stat().st_size
    finally:
        server.terminate()
        server.wait(timeout=10)
    for name in pages:  # the committed screenshots are there and are what the docs show
        assert _png_size(DOCS / name) == (1280, 900), name
