"""The notebooks: committed with their outputs (so they render on GitHub), listed in the README, and
every one runs top to bottom (offline, tiny models, small sizes) showing the same kinds of output."""
import ast
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_BYTES = 1_500_000  # audio widgets and figures are base64 in the file: keep them short and small
SMALL = {  # what the executing test runs: every notebook reads these (defaults: the committed run)
    "QUICKSTART_CLIPS": "16",  # toy-world clips
    "QUICKSTART_EPOCHS": "2",
    "QUICKSTART_STEPS": "2",  # AudioLDM-2 sampling steps
    "QUICKSTART_LONG_SECONDS": "25",  # 03_long_form's long video (3 windows, 2 joins)
}


def _kinds(outputs) -> set[str]:
    """What outputs show: png, audio (IPython's Audio widget), html, text, error."""
    kinds = set()
    for output in outputs:
        if output.output_type == "error":
            kinds.add("error")
        elif output.output_type == "stream":
            kinds.add("text")
        else:
            data = output.get("data", {})
            kinds |= {"png"} if "image/png" in data else set()
            html = data.get("text/html", "")
            kinds |= {"audio"} if "<audio" in html else {"html"} if html else set()
            kinds |= {"text"} if "text/plain" in data and len(data) == 1 else set()
    return kinds


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _kinds_of(notebook) -> set[str]:
    return set().union(*(_kinds(cell.get("outputs", [])) for cell in _code_cells(notebook)))


def _ends_with_expression(source: str) -> bool:
    """The cell's last statement is a value Jupyter shows (a table, ...), not a call like plt.show()."""
    body = ast.parse(source).body
    if not body or not isinstance(body[-1], ast.Expr):
        return False
    value = body[-1].value
    callee = getattr(value, "func", None)
    name = getattr(callee, "attr", getattr(callee, "id", None))
    return not (isinstance(value, ast.Call) and name in {"show", "display", "print"})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_its_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    cells = _code_cells(notebook)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), (
        f"{path.name}: run it top to bottom in a fresh kernel and save it with its outputs"
    )
    for cell in cells:  # every cell that shows something has its output in the file
        kinds, source = _kinds(cell.outputs), cell.source
        assert "error" not in kinds, source
        assert "plt.show()" not in source or "png" in kinds, source
        assert "display(Audio" not in source or "audio" in kinds, source
        assert "print(" not in source or "text" in kinds, source
        assert not _ends_with_expression(source) or cell.outputs, source
    assert "png" in _kinds_of(notebook)  # at least one figure
    assert path.stat().st_size < MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_listed_in_the_readme(path):
    assert f"notebooks/{path.name}" in (ROOT / "README.md").read_text()


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_DIR", str(tmp_path / "run"))
    for name, value in SMALL.items():
        monkeypatch.setenv(name, value)
    committed = nbformat.read(path, as_version=4)
    notebook = nbformat.read(path, as_version=4)
    for cell in _code_cells(notebook):
        cell.outputs, cell.execution_count = [], None
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    kinds = _kinds_of(notebook)
    errors = [o for cell in _code_cells(notebook) for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    assert "png" in kinds  # a figure rendered
    # what the committed notebook shows (its audio widgets, figures, tables), this run shows too
    assert _kinds_of(committed) - {"error"} <= kinds


def test_there_is_a_quickstart_notebook():
    assert any(p.name == "01_quickstart.ipynb" for p in NOTEBOOKS)
