"""Every lesson's exercises are its own: no exercise function or class, and no checker, appears in
two lessons, and every exercise is followed by the cell that checks it (COURSE.md §2, §5)."""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
BEGIN = re.compile(r"^[ \t]*#+[ \t]*BEGIN SOLUTION[ \t]*$", re.MULTILINE)
CHECKER_CALL = re.compile(r"\b(check_\w+)\s*\(")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _nbgrader(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader") or {}


def _is_exercise(cell: dict) -> bool:
    return cell["cell_type"] == "code" and bool(BEGIN.search(_source(cell)))


def exercise_names(source: str) -> set[str]:
    """The top-level functions and classes an exercise cell defines (what the student writes).

    >>> sorted(exercise_names("import torch\\ndef f(x):\\n    pass\\nclass A:\\n    pass\\ny = 1"))
    ['A', 'f']
    """
    tree = ast.parse(source)
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _by_lesson(found: dict[str, set[str]]) -> dict[str, list[str]]:
    """Names found in more than one lesson, with those lessons."""
    return {name: sorted(lessons) for name, lessons in sorted(found.items()) if len(lessons) > 1}


def test_the_notebooks_have_exercises():
    counts = {p.name: sum(_is_exercise(c) for c in _cells(p)) for p in NOTEBOOKS}
    assert sum(counts.values()) >= 20, counts


def test_exercise_functions_are_unique_across_lessons():
    lessons: dict[str, set[str]] = defaultdict(set)
    for path in NOTEBOOKS:
        for cell in _cells(path):
            if _is_exercise(cell):
                for name in exercise_names(_source(cell)):
                    lessons[name].add(path.name[:2])
    repeated = _by_lesson(lessons)
    assert not repeated, (f"exercises repeated across lessons (name: lessons): {repeated}; give "
                          "each lesson its own exercise")


def test_checkers_are_unique_across_lessons():
    """Two lessons calling the same checker test the same skill the same way."""
    lessons: dict[str, set[str]] = defaultdict(set)
    for path in NOTEBOOKS:
        for cell in _cells(path):
            if _nbgrader(cell).get("grade"):
                for name in CHECKER_CALL.findall(_source(cell)):
                    lessons[name].add(path.name[:2])
    repeated = _by_lesson(lessons)
    assert not repeated, f"checkers used by several lessons (checker: lessons): {repeated}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_exercise_is_followed_by_a_check_cell(path):
    """An exercise cell (or a run of them) is followed at once by a grade cell."""
    cells = _cells(path)
    unchecked = []
    for i, cell in enumerate(cells):
        if not _is_exercise(cell):
            continue
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        if nxt is None or not (_is_exercise(nxt) or _nbgrader(nxt).get("grade")):
            unchecked.append(f"cell {i} ({_nbgrader(cell).get('grade_id')})")
    assert not unchecked, (f"{path.name}: exercise cells not followed by a check (grade) cell: "
                           f"{unchecked}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_check_cells_call_a_checker(path):
    """A visible check cell calls a ``lesson_utils.checks`` function, so it can explain."""
    silent = [f"cell {i} ({_nbgrader(c).get('grade_id')})" for i, c in enumerate(_cells(path))
              if _nbgrader(c).get("grade") and "lesson_utils.checks" not in _source(c)]
    assert not silent, f"{path.name}: grade cells that call no checker: {silent}"
