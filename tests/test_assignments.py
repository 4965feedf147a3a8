"""lesson_utils.assignments: student versions, the pre-hand-out check, the grader, the capstone.

The expensive tests start kernels: the per-notebook student run (``verify``, fast mode: only the
cells the exercises need) and the grading of a folder of synthetic submissions.
"""

from __future__ import annotations

import ast
import copy
import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lesson_utils.assignments import capstone
from lesson_utils.assignments.__main__ import main as cli
from lesson_utils.assignments.grader import (
    _restore,
    _snapshot,
    build_grading_notebook,
    checker_modules,
    find_submissions,
    grade_submissions,
    grading_plan,
    review_flags,
)
from lesson_utils.assignments.kernel import run_cells
from lesson_utils.assignments.student import (
    CODE_STUB,
    MarkerError,
    grade_id_of,
    is_grade_cell,
    make_student_notebook,
    replace_regions,
    solution_leaks,
    source_problems,
    write_student_versions,
)
from lesson_utils.assignments.verify import cell_names, exercise_plan, verify_student_version
from lesson_utils.checks import CheckFailed
from lesson_utils.checks import capstone as checks

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXERCISE_NOTEBOOKS = [p for p in NOTEBOOKS
                      if "### BEGIN SOLUTION" in p.read_text(encoding="utf-8")]


def _solution_meta(gid: str) -> dict:
    return {"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": gid,
                         "schema_version": 3}}


def _grade_meta(gid: str, points: float) -> dict:
    return {"nbgrader": {"grade": True, "solution": False, "locked": True, "points": points,
                         "grade_id": gid, "schema_version": 3}}


# ----------------------------------------------------------------------------- markers

def test_stub_keeps_indentation_and_code_outside_the_markers():
    src = ("class MLP(nn.Sequential):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n"
           "    @classmethod\n    def from_sizes(cls, sizes):\n        return cls()\n"
           "    ### END SOLUTION\n\nprint('after')")
    out, n = replace_regions(src, "BEGIN SOLUTION", "END SOLUTION", CODE_STUB)
    assert n == 1
    assert out == ("class MLP(nn.Sequential):\n    \"\"\"Doc.\"\"\"\n    # YOUR CODE HERE\n"
                   "    raise NotImplementedError()\n\nprint('after')")


def test_several_regions_in_one_cell_and_removal():
    src = "a = 1\n### BEGIN SOLUTION\nb = 2\n### END SOLUTION\nc = 3\n# BEGIN SOLUTION\nd = 4\n" \
          "# END SOLUTION"
    out, n = replace_regions(src, "BEGIN SOLUTION", "END SOLUTION", None)
    assert (out, n) == ("a = 1\nc = 3", 2)


@pytest.mark.parametrize("src, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
    ("x = 1  ### BEGIN SOLUTION\n### END SOLUTION", "not a marker line"),
    ("print('BEGIN HIDDEN TESTS')", "not a marker line"),
])
def test_bad_markers_are_errors(src, message):
    with pytest.raises(MarkerError, match=message):
        replace_regions(src, "BEGIN SOLUTION", "END SOLUTION", CODE_STUB)


def _exercise_notebook() -> nbformat.NotebookNode:
    """A tiny instructor notebook: two exercises, one grade cell with hidden tests."""
    return new_notebook(cells=[
        new_markdown_cell("# Tiny lesson\n\nA glossary."),
        new_code_cell("BASE = 10", execution_count=1),
        new_code_cell("def double(x):\n    \"\"\"Twice x.\"\"\"\n    ### BEGIN SOLUTION\n"
                      "    return 2 * x\n    ### END SOLUTION", metadata=_solution_meta("t-double"),
                      execution_count=2),
        new_code_cell("from lesson_utils.checks import check_equal\n\n"
                      "check_equal('double(21)', double(21), 42)\n"
                      "### BEGIN HIDDEN TESTS\ncheck_equal('double(-3)', double(-3), -6)\n"
                      "### END HIDDEN TESTS", metadata=_grade_meta("t-double-check", 1),
                      execution_count=3,
                      outputs=[nbformat.v4.new_output("stream", text="✅ double(21)\n")]),
        new_code_cell("### BEGIN SOLUTION\ntotal = BASE + double(5)\n### END SOLUTION",
                      metadata=_solution_meta("t-total"), execution_count=4),
        new_code_cell("from lesson_utils.checks import check_equal\n\n"
                      "check_equal('total', total, 20)", metadata=_grade_meta("t-total-check", 2),
                      execution_count=5),
        new_code_cell("print('the end', total)", execution_count=6),
        new_markdown_cell("### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
                          metadata={"nbgrader": {"solution": True, "grade": True, "locked": False,
                                                 "points": 0, "grade_id": "t-why",
                                                 "schema_version": 3}}),
    ])


def test_student_notebook_of_the_tiny_lesson():
    nb = _exercise_notebook()
    before = copy.deepcopy(nb)
    student = make_student_notebook(nb, "tiny")
    assert nb == before, "the instructor notebook must not change"
    cells = student.cells
    assert cells[2].source == ("def double(x):\n    \"\"\"Twice x.\"\"\"\n    # YOUR CODE HERE\n"
                               "    raise NotImplementedError()")
    assert cells[3].source == ("from lesson_utils.checks import check_equal\n\n"
                               "check_equal('double(21)', double(21), 42)")
    assert cells[4].source == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert cells[7].source == "YOUR ANSWER HERE"
    assert cells[1].source == "BASE = 10"
    for cell in cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert cells[3].metadata["editable"] is False and cells[3].metadata["deletable"] is False
    assert cells[2].metadata["deletable"] is False and "editable" not in cells[2].metadata
    assert grade_id_of(cells[3]) == "t-double-check" and cells[3].metadata.nbgrader.points == 1
    assert solution_leaks(nb, student) == []
    assert "double(-3)" not in json.dumps(student)


def test_solution_cell_without_markers_is_replaced_whole_as_in_nbgrader():
    nb = new_notebook(cells=[new_code_cell("x = 41 + 1", metadata=_solution_meta("a"))])
    assert make_student_notebook(nb).cells[0].source == "\n".join(CODE_STUB)


def test_missing_solution_metadata_is_added_with_a_unique_grade_id():
    nb = new_notebook(cells=[
        new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
        new_code_cell("y = 2", metadata=_solution_meta("nb-solution-1")),
    ])
    assert source_problems(nb, "nb") == [
        "nb cell 0: has a solution region but no nbgrader metadata with 'solution': true"]
    student = make_student_notebook(nb, "nb")
    meta = student.cells[0].metadata.nbgrader
    assert meta["solution"] is True and meta["grade_id"] == "nb-solution-2"
    assert source_problems(student, "nb") == []


@pytest.mark.parametrize("cell, message", [
    (new_code_cell("### BEGIN HIDDEN TESTS\nassert 1\n### END HIDDEN TESTS"), "grade cells"),
    (new_code_cell("x = [\n### BEGIN SOLUTION\n1,\n### END SOLUTION\n]",
                   metadata=_solution_meta("a")), "does not parse"),
    (new_code_cell("if True:\n### BEGIN SOLUTION\n    x = 1\n### END SOLUTION",
                   metadata=_solution_meta("a")), "does not parse"),
    (new_code_cell("for i in range(3):\n    ### BEGIN HIDDEN TESTS\n    assert i >= 0\n"
                   "    ### END HIDDEN TESTS", metadata=_grade_meta("g", 1)), "does not parse"),
])
def test_student_version_refuses_what_it_cannot_do_safely(cell, message):
    nb = new_notebook(cells=[cell])
    with pytest.raises(MarkerError, match=message):
        make_student_notebook(nb)


@pytest.mark.parametrize("meta, problem", [
    ({"grade": True, "solution": False, "grade_id": "a b", "points": 1, "schema_version": 3},
     "grade_id must be"),
    ({"grade": True, "solution": False, "grade_id": "a", "schema_version": 3}, "points"),
    ({"grade": True, "solution": False, "grade_id": "a", "points": -1, "schema_version": 3},
     "points"),
    ({"grade": True, "solution": False, "grade_id": "a", "points": 1}, "schema_version"),
])
def test_source_problems_names_the_cell_and_the_rule(meta, problem):
    nb = new_notebook(cells=[new_code_cell("x = 1", metadata={"nbgrader": meta})])
    problems = source_problems(nb, "nb")
    assert len(problems) == 1 and problems[0].startswith("nb cell 0:") and problem in problems[0]


def test_duplicate_grade_ids_and_markdown_rules():
    nb = new_notebook(cells=[
        new_code_cell("x = 1", metadata=_solution_meta("same")),
        new_code_cell("y = 1", metadata=_solution_meta("same")),
        new_markdown_cell("text", metadata=_grade_meta("md", 1)),
    ])
    problems = source_problems(nb, "nb")
    assert any("also used by cell 0" in p for p in problems)
    assert any("markdown answer" in p for p in problems)


def test_solution_leaks_ignores_lines_that_also_appear_outside_solutions():
    nb = new_notebook(cells=[
        new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    secret = 7\n"
                      "    ### END SOLUTION", metadata=_solution_meta("f")),
        new_code_cell("def g(x):\n    return x"),
    ])
    leaky = copy.deepcopy(nb)
    leaky.cells[0].source = "def f(x):\n    secret = 7"
    assert solution_leaks(nb, leaky) == ["secret = 7"]
    assert solution_leaks(nb, make_student_notebook(nb)) == []


def test_write_student_versions(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    nbformat.write(_exercise_notebook(), src / "tiny.ipynb")
    with pytest.raises(ValueError, match="must differ"):
        write_student_versions(src, src)
    written = write_student_versions(src, dest)
    assert [(w.dest.name, w.exercises, w.hidden_tests, w.points) for w in written] == [
        ("tiny.ipynb", 3, 1, 3)]
    assert "### BEGIN" not in (dest / "tiny.ipynb").read_text()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")], "no temp files left"
    shutil.copy(src / "tiny.ipynb", dest / "tiny.ipynb")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        write_student_versions(src, dest)


def test_cli_student(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(_exercise_notebook(), src / "tiny.ipynb")
    assert cli(["student", str(src), str(tmp_path / "out")]) == 0
    assert "tiny.ipynb: 3 exercises, 1 hidden tests, 3 points" in capsys.readouterr().out
    assert cli(["student", str(src), str(src)]) == 2


# ----------------------------------------------------------------------------- every lesson

def test_there_are_exercise_notebooks():
    assert EXERCISE_NOTEBOOKS


@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=[p.name for p in EXERCISE_NOTEBOOKS])
def test_lesson_is_ready_to_hand_out(path):
    """Static: nbgrader metadata valid, student version made with no solution text left, every
    grade cell imports the checkers it calls (so the grader can load them fresh), and the stored
    (nbval-checked) outputs show every instructor grade cell passing."""
    nb = nbformat.read(path, as_version=4)
    assert source_problems(nb, path.name) == []
    student = make_student_notebook(nb, path.stem)
    assert solution_leaks(nb, student) == []
    assert any(is_grade_cell(c) for c in nb.cells)
    for i, cell in enumerate(nb.cells):
        if not is_grade_cell(cell):
            continue
        tree = ast.parse(cell.source)
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Name) and n.func.id.startswith("check_")}
        imported = {a.asname or a.name for n in ast.walk(tree)
                    if isinstance(n, ast.ImportFrom) and (n.module or "").startswith(
                        "lesson_utils.") for a in n.names}
        assert called <= imported, f"cell {i} calls {called - imported} without importing them"
        assert checker_modules(cell.source), f"cell {i} imports no lesson_utils checker"
        outputs = cell.get("outputs", [])
        assert not any(o.get("output_type") == "error" for o in outputs)
        text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
        assert "✅" in text, f"{path.name} cell {i}: the stored output shows no pass"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISE_NOTEBOOKS, ids=[p.name for p in EXERCISE_NOTEBOOKS])
def test_student_version_stops_only_at_exercise_cells(path):
    """Runs the student version once (only the cells the exercises need; a full run confirms
    any problem): every error is an exercise's stub, and every grade cell fails on it."""
    report = verify_student_version(path, timeout=300)
    assert report.ok, report.summary()
    assert any(c.role == "grade" and c.status == "error" for c in report.cells)


# ----------------------------------------------------------------------------- verify's analysis

def test_cell_names():
    names = cell_names("import torch as t\nfrom x import y\nmodel.fc = t.nn.Linear(2, k)\n"
                       "for i in range(3):\n    pass\nf = lambda z: z\n"
                       "squares = [j * j for j in range(3)]")
    assert names.imports == {"t", "y"}
    assert names.binds == {"t", "y", "i", "f", "squares"}
    assert "model" in names.mutated and "t" in names.mutated
    assert {"k", "model", "range", "z", "j"} <= names.reads
    assert cell_names("%%capture\nx = 1").opaque and cell_names("%time w = 1").opaque
    assert cell_names("from os import *").opaque
    assert cell_names("def broken(:").opaque


def test_exercise_plan_roles_and_slice():
    nb = _exercise_notebook()
    nb.cells.insert(2, new_code_cell("import time\nSLOW = time.sleep(0)  # an unrelated experiment"))
    student = make_student_notebook(nb)
    roles, names, needed = exercise_plan(nb, student)
    # BASE is read only by the solution, which the stub replaced: the student run needs no
    # cell 1, and never the unrelated experiment in cell 2.
    assert roles == {1: "other", 2: "other", 3: "solution", 4: "grade", 5: "solution",
                     6: "grade", 7: "dependent"}
    assert {"double", "total"} <= names
    assert needed == {3, 4, 5, 6, 7}
    student.cells[3].source = "def double(x):\n    return BASE"  # now the stub reads BASE
    assert exercise_plan(nb, student)[2] == {1, 3, 4, 5, 6, 7}


# ----------------------------------------------------------------------------- the kernel engine

def test_run_cells_timeout_kills_the_kernel_and_its_children(tmp_path, alive):
    nb = new_notebook(cells=[
        new_code_cell("import subprocess, sys\n"
                      "child = subprocess.Popen([sys.executable, '-c', "
                      "'import time; time.sleep(600)'])\nprint(child.pid)"),
        new_code_cell("while True:\n    pass"),
        new_code_cell("print('never')"),
    ])
    start = time.monotonic()
    run = run_cells(nb, cwd=tmp_path, timeout=6, keep_outputs={0})
    assert time.monotonic() - start < 60
    assert run.outcome == "timeout" and run.stopped_at == 1
    assert run.cells[2].status == "not run"
    pid = int(run.cells[0].stdout)
    time.sleep(0.5)
    assert not alive(pid), "the child process outlived the kernel"


def test_run_cells_offline_guard_reply_status_and_output_cap(tmp_path):
    nb = new_notebook(cells=[
        new_code_cell("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), "
                      "timeout=2)\nexcept Exception as e:\n    print(type(e).__name__)"),
        new_code_cell("get_ipython().set_custom_exc((Exception,), lambda *a, **k: None)\n"),
        new_code_cell("raise ValueError('hidden from the notebook')"),
        new_code_cell("print('x' * 1000)\nprint('y' * 1000)"),
        new_code_cell("import os\nos._exit(3)"),
    ])
    run = run_cells(nb, cwd=tmp_path, timeout=60, keep_outputs={0, 3}, max_output_chars=1500)
    assert run.cells[0].stdout.strip() == "NetworkAccessError"
    assert run.cells[2].status == "error" and run.cells[2].ename == "ValueError"
    assert len(run.cells[3].stdout) < 1500
    assert run.outcome == "kernel died" and run.stopped_at == 4


# ----------------------------------------------------------------------------- the grader

def test_checker_modules_are_hashed_in_dependency_order():
    modules = checker_modules("from lesson_utils.checks.capstone import check_make_criterion")
    names = [m[0] for m in modules]
    assert names[-1] == "lesson_utils.checks.capstone"
    assert names.index("lesson_utils.checks._core") < names.index("lesson_utils.checks.capstone")
    assert names.index("lesson_utils.checkpoints") < names.index("lesson_utils.data")
    import hashlib

    for _name, path, digest, _ in modules:
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
    assert "lesson_utils.offline" not in names


def test_build_grading_notebook_replaces_restores_and_dedupes(tmp_path):
    path = tmp_path / "tiny.ipynb"
    nbformat.write(_exercise_notebook(), path)
    plan = grading_plan(path)
    student = make_student_notebook(_exercise_notebook())
    student.cells[3].source = "print('✅ trust me')"  # edited grade cell
    del student.cells[5]  # deleted grade cell t-total-check
    student.cells.append(copy.deepcopy(student.cells[3]))  # duplicated grade cell
    markers = {"t-double-check": "M1", "t-total-check": "M2"}
    nb, index, notes = build_grading_notebook(student, plan, markers)
    assert index == {"t-double-check": 3, "t-total-check": 5}
    assert "double(-3)" in nb.cells[3].source and "M1" in nb.cells[3].source
    assert "trust me" not in json.dumps(nb)
    assert notes == ["dropped a duplicate of grade cell t-double-check",
                     "grade cell t-total-check was missing: put back"]


def test_find_submissions_layouts(tmp_path):
    (tmp_path / "alice.ipynb").write_text("{}")
    (tmp_path / "bob" / "08").mkdir(parents=True)
    (tmp_path / "bob" / "08" / "08_assignment.ipynb").write_text("{}")
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "08_assignment (1).ipynb").write_text("{}")
    (tmp_path / "dave").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "notes.txt").write_text("")
    found = {s: (files, notes) for s, files, notes in
             find_submissions(tmp_path, ["08_assignment.ipynb"])}
    assert sorted(found) == ["alice", "bob", "carol", "dave"]
    assert found["bob"][0]["08_assignment.ipynb"].name == "08_assignment.ipynb"
    assert found["carol"][1] == ["graded 08_assignment (1).ipynb as 08_assignment.ipynb"]
    assert found["dave"][0] == {"08_assignment.ipynb": None}


def test_restore_undoes_changes_to_the_private_copy(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("B = 1\n")
    snapshot = _snapshot(tmp_path)
    (tmp_path / "pkg" / "a.py").write_text("A = 2\n")
    (tmp_path / "pkg" / "b.py").unlink()
    (tmp_path / "pkg" / "evil.pth").write_text("import os")
    assert sorted(_restore(tmp_path, snapshot)) == ["pkg/a.py", "pkg/b.py",
                                                    "pkg/evil.pth (added)"]
    assert (tmp_path / "pkg" / "a.py").read_text() == "A = 1\n"
    assert (tmp_path / "pkg" / "b.py").exists() and not (tmp_path / "pkg" / "evil.pth").exists()


def test_review_flags_point_at_suspicious_code():
    nb = new_notebook(cells=[
        new_code_cell("import lesson_utils.checks as c\nc.check_equal = print"),
        new_code_cell("get_ipython().set_custom_exc((Exception,), None)"),
        new_code_cell("import sys\nsys.modules.pop('lesson_utils.checks')"),
        new_code_cell("model.eval()\ntorch.compile(model)\nx = y.attr"),
    ])
    assert review_flags(nb) == [
        "cell 0 patches builtins or a library: c.check_equal = ...",
        "cell 1 hooks into IPython (transformers, events, shell or kernel internals): "
        "get_ipython()",
        "cell 1 changes how errors are reported: get_ipython().set_custom_exc",
        "cell 2 touches the import system: sys.modules",
    ]


def _submissions(folder: Path, source: Path) -> None:
    """Solved, unsolved, crashing, hanging, corrupt, cheating and tidied-up submissions."""
    solved = nbformat.read(source, as_version=4)
    unsolved = make_student_notebook(solved)
    nbformat.write(solved, folder / "solved.ipynb")
    nbformat.write(unsolved, folder / "unsolved.ipynb")
    crash = copy.deepcopy(solved)
    crash.cells.insert(2, new_code_cell("import os\nos._exit(1)"))
    nbformat.write(crash, folder / "crash.ipynb")
    hang = copy.deepcopy(solved)
    hang.cells.insert(2, new_code_cell("import time\ntime.sleep(3600)"))
    nbformat.write(hang, folder / "hang.ipynb")
    (folder / "corrupt.ipynb").write_text(json.dumps(nbformat.v4.writes(solved))[:200])
    (folder / "nocells.ipynb").write_text('{"metadata": {}, "nbformat": 4}')
    cheat = copy.deepcopy(unsolved)
    cheat.cells[2].source = "def double(x):\n    return 42"  # passes the visible check only
    cheat.cells[4].source = (  # the name the checker looks at, and the checker itself
        "total = 0\nimport lesson_utils.checks as c, lesson_utils.checks._core as core\n"
        "c.check_equal = core.check_equal = lambda *a, **k: True\n"
        "def check_equal(*a, **k):\n    return True\n"
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)")
    cheat.cells[5].source = "print('✅ total')"
    nbformat.write(cheat, folder / "cheat.ipynb")
    tidy = copy.deepcopy(solved)
    del tidy.cells[5]  # deleted a grade cell, and renamed the file
    (folder / "tidy").mkdir()
    nbformat.write(tidy, folder / "tidy" / "my copy.ipynb")


@pytest.mark.slow
def test_grade_a_folder_of_submissions(tmp_path):
    source = tmp_path / "tiny.ipynb"
    nbformat.write(_exercise_notebook(), source)
    folder = tmp_path / "submitted"
    folder.mkdir()
    _submissions(folder, source)
    out = tmp_path / "grades.csv"
    timeout = 15
    start = time.monotonic()
    status = cli(["grade", str(folder), "--out", str(out), "--timeout", str(timeout),
                  "--source", str(source)])
    elapsed = time.monotonic() - start
    assert status == 0
    with open(out, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert list(next(csv.reader(out.open()))) == [
        "student", "t-double-check", "t-total-check", "total", "max_points", "status", "reason",
        "feedback", "review", "seconds"]
    assert sorted(rows) == ["cheat", "corrupt", "crash", "hang", "nocells", "solved", "tidy",
                            "unsolved"]
    solved = rows["solved"]
    assert (solved["total"], solved["max_points"], solved["status"], solved["reason"]) == (
        "3", "3", "ok", "")
    unsolved = rows["unsolved"]
    assert (unsolved["total"], unsolved["status"]) == ("0", "ok")
    assert "NotImplementedError" in unsolved["feedback"]
    assert rows["crash"]["status"] == "error" and "kernel died" in rows["crash"]["reason"]
    assert rows["hang"]["status"] == "error" and "timed out" in rows["hang"]["reason"]
    assert float(rows["hang"]["seconds"]) < timeout + 30
    assert "not valid JSON" in rows["corrupt"]["reason"] and rows["corrupt"]["total"] == "0"
    assert "no 'cells' list" in rows["nocells"]["reason"]
    cheat = rows["cheat"]
    # a wrong total despite redefining and monkeypatching the checker; a double() that passes
    # the visible check but not the hidden test
    assert cheat["total"] == "0", cheat
    assert "double(-3)" in cheat["feedback"]
    assert "changes how errors are reported" in cheat["review"]
    tidy = rows["tidy"]
    assert tidy["total"] == "3" and "t-total-check was missing: put back" in tidy["reason"]
    assert "graded my copy.ipynb" in tidy["reason"]
    assert elapsed < 8 * 60
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".grades.csv")]


@pytest.mark.slow
def test_grading_lesson_01_instructor_gets_full_points_student_version_none(tmp_path):
    source = ROOT / "notebooks" / "01_models.ipynb"
    solved = nbformat.read(source, as_version=4)
    nbformat.write(solved, tmp_path / "instructor.ipynb")
    nbformat.write(make_student_notebook(solved), tmp_path / "student.ipynb")
    rows = {r.student: r for r in grade_submissions(tmp_path, source=source, timeout=120,
                                                    watch_repository=False)}
    plan = grading_plan(source)
    assert rows["instructor"].points == plan.max_points > 0 and rows["instructor"].reason == ""
    assert rows["student"].points == 0 and rows["student"].status == "ok"


@pytest.mark.skipif(importlib.util.find_spec("nbgrader") is None,
                    reason="nbgrader is not installed (optional)")
def test_nbgrader_generate_assignment_gives_the_same_student_notebook(tmp_path):
    course = tmp_path / "course"
    (course / "source" / "lesson").mkdir(parents=True)
    source = ROOT / "notebooks" / "01_models.ipynb"
    shutil.copy(source, course / "source" / "lesson" / source.name)
    (course / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.root = r'{course}'\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lesson", "--force",
                    "--no-db"], cwd=course, env=env, check=True, capture_output=True, timeout=300)
    theirs = nbformat.read(course / "release" / "lesson" / source.name, as_version=4)
    ours = make_student_notebook(nbformat.read(source, as_version=4))
    assert [c.source for c in theirs.cells] == [c.source for c in ours.cells]
    for a, b in zip(theirs.cells, ours.cells, strict=True):
        for key in ("grade", "solution", "locked", "grade_id", "points"):
            assert a.metadata.get("nbgrader", {}).get(key) == b.metadata.get("nbgrader",
                                                                               {}).get(key)
        for key in ("deletable", "editable"):
            assert a.metadata.get(key) == b.metadata.get(key)


# ----------------------------------------------------------------------------- the capstone data

@pytest.fixture(scope="module")
def capstone_root(tmp_path_factory):
    return capstone.make_capstone_data(tmp_path_factory.mktemp("cap") / "data")


def test_capstone_data_layout(capstone_root):
    with open(capstone_root / "train" / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    counts = [sum(int(r["label"]) == k for r in rows) for k in range(len(capstone.CLASSES))]
    assert tuple(counts) == capstone.TRAIN_COUNTS and counts[0] / counts[-1] == 10
    ids = capstone.read_ids(capstone_root / "test" / "ids.csv")
    assert len(ids) == capstone.TEST_PER_CLASS * len(capstone.CLASSES)
    assert sorted(p.name for p in (capstone_root / "test").glob("*.png")) == sorted(ids)
    assert not any(name in json.dumps(ids) for name in capstone.CLASSES), "ids leak labels"
    assert capstone.read_ids(capstone_root / "sample_submission.csv") == ids


def test_capstone_test_labels_match_the_written_images(capstone_root):
    from PIL import Image

    from lesson_utils.data import ShapesDataset

    labels = capstone.capstone_test_labels()
    assert torch.bincount(torch.tensor(labels)).tolist() == [capstone.TEST_PER_CLASS] * 6
    ids = capstone.read_ids(capstone_root / "test" / "ids.csv")
    drawn = ShapesDataset(family="target", image_size=capstone.IMAGE_SIZE,
                          seed=capstone.PUBLIC_TEST_SEED, class_counts=[100] * 6)
    for i in (0, 17, 599):
        written = Image.open(capstone_root / "test" / ids[i]).convert("RGB")
        assert torch.equal(torch.from_numpy(np.array(written)),
                           torch.from_numpy(np.array(drawn.image(i).convert("RGB"))))
        assert drawn.targets[i] == labels[i]
    assert capstone.capstone_test_labels(7) != labels


def test_capstone_keeps_a_complete_folder_and_replaces_a_partial_one(tmp_path):
    judges = capstone.prepare_grading(tmp_path, 99)  # the grader's secret test set
    assert list(judges) == ["hidden_test_f1"]
    assert judges["hidden_test_f1"].labels == tuple(capstone.capstone_test_labels(99))
    data = tmp_path / capstone.DATA_DIR
    before = (data / "test" / "000.png").read_bytes()
    capstone.make_capstone_data(data)  # the notebook's own call: keeps the secret images
    assert (data / "test" / "000.png").read_bytes() == before
    (data / "READY").unlink()  # an interrupted export
    capstone.make_capstone_data(data)
    assert (data / "test" / "000.png").read_bytes() != before
    assert not list(tmp_path.glob(".*partial*"))
    with pytest.raises(ValueError, match="test_seed"):
        capstone.make_capstone_data(tmp_path / "x", test_seed=-1)


def test_capstone_rebuilds_a_folder_written_by_older_data_code(tmp_path):
    # a student's folder from before the shapes were redrawn: complete, but of the old format
    data = capstone.make_capstone_data(tmp_path / "data", test_seed=5)
    (data / "READY").write_text("complete\n")              # what the first format wrote
    stale = data / "test" / "000.png"
    stale.write_bytes(b"old image")
    capstone.make_capstone_data(data, test_seed=5)
    assert stale.read_bytes() != b"old image"
    assert (data / "READY").read_text() == capstone._READY_TEXT


def test_the_course_backbone_takes_the_capstone_images(capstone_root):
    from lesson_utils.pretrained import load_course_backbone

    model = load_course_backbone(len(capstone.CLASSES)).eval()
    x = torch.zeros(2, 3, capstone.IMAGE_SIZE, capstone.IMAGE_SIZE)
    assert model(x).shape == (2, len(capstone.CLASSES))


# ----------------------------------------------------------------------------- capstone checks

def _dataset_class(mistake: str | None = None):
    from PIL import Image
    from torch.utils.data import Dataset

    class Images(Dataset):
        def __init__(self, root, csv_file, transform=None):
            self.root, self.transform = Path(root), transform
            with open(self.root / csv_file, newline="") as f:
                self.rows = list(csv.reader(f))
            self.header = self.rows[0]
            if mistake != "header":
                self.rows = self.rows[1:]

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            row = dict(zip(self.header, self.rows[i], strict=True))
            image = Image.open(self.root / row["id"])
            if mistake != "mode":
                image = image.convert("RGB")
            else:
                image = image.convert("RGBA")
            if self.transform is not None and mistake != "transform":
                image = self.transform(image)
            if mistake == "no-label":
                return image, int(row["label"])
            label = row.get("label", -1)
            return image, (label if mistake == "str" else int(label))

    return Images


def test_check_image_csv_dataset_passes_a_correct_class(capsys):
    assert checks.check_image_csv_dataset(_dataset_class()) is True
    assert "✅ dataset" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, hint", [
    ("header", "header line is not an image"),
    ("str", "convert it with int"),
    ("mode", "convert('RGB')"),
    ("transform", "transform was not applied"),
    ("no-label", "return label -1"),
])
def test_check_image_csv_dataset_hints(mistake, hint):
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        checks.check_image_csv_dataset(_dataset_class(mistake))


def _write_predictions(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


@pytest.mark.parametrize("change, hint", [
    (lambda rows: [["", "id", "label"]] + [[str(i), *r] for i, r in enumerate(rows[1:])],
     "index=False"),
    (lambda rows: [rows[0]] + [[r[0], "0"] for r in rows[1:]], "class names, not class numbers"),
    (lambda rows: rows[:-1], "1 missing"),
    (lambda rows: rows + [rows[1]], "repeated"),
    (lambda rows: [["id", "prediction"]] + rows[1:], "exactly id,label"),
])
def test_check_predictions_file_hints(capstone_root, tmp_path, change, hint):
    ids = capstone.read_ids(capstone_root / "test" / "ids.csv")
    rows = [["id", "label"]] + [[i, "arrow"] for i in ids]
    good = _write_predictions(tmp_path / "good.csv", rows[:1] + rows[:0:-1])  # any order
    assert checks.check_predictions_file(good, capstone_root) is True
    bad = _write_predictions(tmp_path / "bad.csv", change(rows))
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        checks.check_predictions_file(bad, capstone_root)


def test_hidden_test_f1_scores_the_public_test_set(capstone_root, tmp_path):
    ids = capstone.read_ids(capstone_root / "test" / "ids.csv")
    public = capstone.capstone_test_labels()
    perfect = _write_predictions(tmp_path / "p.csv", [["id", "label"]] + [
        [i, capstone.CLASSES[y]] for i, y in zip(ids, public, strict=True)])
    assert checks.check_hidden_test_f1(perfect, bar=0.999, data_root=capstone_root) is True
    shifted = _write_predictions(tmp_path / "q.csv", [["id", "label"]] + [
        [i, capstone.CLASSES[(y + 1) % 6]] for i, y in zip(ids, public, strict=True)])
    with pytest.raises(CheckFailed, match="below the bar 0.5"):
        checks.check_hidden_test_f1(shifted, bar=0.5, data_root=capstone_root)


# ----------------------------------------------------------------------------- the secret test set

def _capstone_like_source(path: Path, setup: str) -> Path:
    """The capstone's two submission checks, without the training (cheap to grade)."""
    nb = new_notebook(cells=[
        new_code_cell("from lesson_utils.assignments.capstone import DATA_DIR, "
                      "make_capstone_data\nDATA = make_capstone_data(DATA_DIR)"),
        new_code_cell("### BEGIN SOLUTION\nimport shutil\n"
                      "shutil.copy(DATA / 'sample_submission.csv', 'predictions.csv')\n"
                      "### END SOLUTION", metadata=_solution_meta("c-predictions")),
        new_code_cell("from lesson_utils.checks.capstone import check_predictions_file\n\n"
                      "check_predictions_file('predictions.csv')",
                      metadata=_grade_meta("c-predictions-check", 1)),
        new_code_cell("from lesson_utils.checks.capstone import check_hidden_test_f1\n\n"
                      "check_hidden_test_f1('predictions.csv', bar=0.99)",
                      metadata={**_grade_meta("c-hidden", 3),
                                "lesson_utils": {"judge": "hidden_test_f1"}}),
    ], metadata={"lesson_utils": {"grading_setup": setup}})
    nbformat.write(nb, path)
    return path


def _prediction_cell(code: str) -> nbformat.NotebookNode:
    return new_code_cell(code, metadata=_solution_meta("c-predictions"))


@pytest.mark.slow
def test_the_hidden_test_is_judged_outside_the_kernel_on_secret_labels(tmp_path):
    """The capstone's grading setup and judge, through the whole grader, on a cheap notebook
    (no training). Its prediction cell hunts for the secret in the environment, the working
    folder, the grader's ``/proc`` entries and, through a ``pre_run_cell`` hook, in every later
    cell's text, and would use any seed it found; failing that it copies the public labels, which
    score at chance on the secret test set (``test_grading_integrity`` checks the judge itself
    against the secret labels). The bar the judge uses is the capstone's, HIDDEN_TEST_BAR."""
    hunt = ("import csv, glob, os, re\nfrom lesson_utils.assignments.capstone import CLASSES, "
            "capstone_test_labels, read_ids\nids = read_ids(DATA / 'test' / 'ids.csv')\n"
            "def write(labels):\n    with open('predictions.csv', 'w', newline='') as f:\n"
            "        csv.writer(f).writerows([['id', 'label']] + [[i, CLASSES[y]] for i, y in "
            "zip(ids, labels)])\n"
            "def attempt(text):\n    for n in re.findall(r'\\d{20,}', text):\n"
            "        write(capstone_test_labels(int(n)))\n"
            "found = repr(dict(os.environ)) + ''.join(open(p, errors='replace').read() "
            "for p in glob.glob('**/*.csv', recursive=True))\n"
            "for name in ('environ', 'cmdline'):\n    try:\n"
            "        found += open(f'/proc/{os.getppid()}/{name}', errors='replace').read()\n"
            "    except OSError:\n        pass\n"
            "write(capstone_test_labels())\nattempt(found)\n"
            "get_ipython().events.register('pre_run_cell', lambda info: attempt(info.raw_cell))")
    source = _capstone_like_source(tmp_path / "cap.ipynb",
                                   "lesson_utils.assignments.capstone:prepare_grading")
    folder = tmp_path / "submitted"
    folder.mkdir()
    nb = nbformat.read(source, as_version=4)
    nb.cells[1] = _prediction_cell(hunt)
    nbformat.write(nb, folder / "hunter.ipynb")
    (row,) = grade_submissions(folder, source=source, timeout=120, watch_repository=False)
    scores = {s.grade_id: s for s in row.notebooks[0].scores}
    assert scores["c-hidden"].points == 0
    assert f"below the bar {capstone.HIDDEN_TEST_BAR}" in scores["c-hidden"].message
    # the hook watched the in-kernel check, so that check is not trusted either
    assert scores["c-predictions-check"].points == 0
    assert "pre_run_cell callbacks gained" in scores["c-predictions-check"].message
    assert any("reads another process's files" in r for r in row.notebooks[0].review)
