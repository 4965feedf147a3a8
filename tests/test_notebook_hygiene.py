"""Every lesson notebook is committed executed, clean and small (COURSE.md §5)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted(p for p in (Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
ABSOLUTE_PATH = re.compile(r"(/root/|/home/|/tmp/|/Users/|/work/|[A-Za-z]:\\\\)")
MAX_BYTES = 2 * 2**20


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks under notebooks/"


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    path = request.param
    return path, json.loads(path.read_text())


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_has_outputs(notebook):
    path, nb = notebook
    assert any(c.get("outputs") for c in _code_cells(nb)), f"{path.name} has no stored outputs"


def test_no_error_outputs(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"{path.name} cell {i}: {out.get('ename')}"
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out.get("text", ""))
                assert "Traceback" not in text, f"{path.name} cell {i} printed a traceback"


def test_execution_counts_in_order(notebook):
    path, nb = notebook
    counts = [c.get("execution_count") for c in _code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts} are not 1..n (run `make notebooks`)")


def test_python3_kernelspec(notebook):
    path, nb = notebook
    assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name


def test_no_absolute_paths_in_outputs(notebook):
    path, nb = notebook
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            text = json.dumps(out.get("text", "")) + json.dumps(
                {k: v for k, v in out.get("data", {}).items() if not k.startswith("image/")})
            match = ABSOLUTE_PATH.search(text)
            assert not match, f"{path.name} cell {i}: absolute path {match.group(0)!r} in output"


def test_size(notebook):
    path, _ = notebook
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size / 2**20:.2f} MB"


def test_has_title_glossary_and_exercises(notebook):
    path, nb = notebook
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert markdown.lstrip().startswith("# "), f"{path.name} must start with a title"
    assert "glossary" in markdown.lower(), f"{path.name} has no glossary"
    sources = "\n".join("".join(c["source"]) for c in nb["cells"])
    assert "### BEGIN SOLUTION" in sources, f"{path.name} has no exercise"
