"""The small assignment the cheat corpus attacks (fast to grade: no torch, no course import).

Three exercises:

* ``fx-double``: ``double(x)``; its grade cell (1 point) has a visible and a hidden test;
* ``fx-items``: ``items``, the first three multiples of ``BASE``; its grade cell (2 points) uses
  the builtins ``len`` and ``sum``;
* ``fx-answer``: write ``answer.txt`` with ``double(N)`` for the ``N`` in ``question.txt``. Its
  grade cell (3 points) is *judged outside the kernel*: the grading setup writes a random
  ``question.txt`` and keeps the expected answer in the grader's process. In a student's own
  run the cell checks a public question.
"""

from __future__ import annotations

import secrets
import sys
import types
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lesson_utils.assignments.judging import Verdict, read_submitted_text

SETUP_MODULE = "lesson_utils._grading_fixture_for_tests"


def _solution(gid: str) -> dict:
    return {"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": gid,
                         "schema_version": 3}}


def _grade(gid: str, points: float, judge: str | None = None) -> dict:
    meta = {"nbgrader": {"grade": True, "solution": False, "locked": True, "points": points,
                         "grade_id": gid, "schema_version": 3}}
    if judge is not None:
        meta["lesson_utils"] = {"judge": judge}
    return meta


def instructor_notebook() -> nbformat.NotebookNode:
    """The fixture's instructor notebook (solutions, hidden test, a judged grade cell)."""
    return new_notebook(cells=[
        new_markdown_cell("# Fixture assignment"),
        new_code_cell("import os\nBASE = 10\nif not os.path.exists('question.txt'):\n"
                      "    with open('question.txt', 'w') as f:\n        f.write('21')"),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
                      "    ### END SOLUTION", metadata=_solution("fx-double")),
        new_code_cell("assert double(21) == 42, 'double(21) should be 42'\n"
                      "### BEGIN HIDDEN TESTS\nassert double(-3) == -6, 'double(-3)'\n"
                      "### END HIDDEN TESTS", metadata=_grade("fx-double-check", 1)),
        new_code_cell("### BEGIN SOLUTION\nitems = [BASE, 2 * BASE, 3 * BASE]\n"
                      "### END SOLUTION", metadata=_solution("fx-items")),
        new_code_cell("assert len(items) == 3, 'three items'\n"
                      "assert sum(items) == 60, 'the multiples of BASE'",
                      metadata=_grade("fx-items-check", 2)),
        new_code_cell("### BEGIN SOLUTION\nwith open('question.txt') as f:\n"
                      "    question = int(f.read())\nwith open('answer.txt', 'w') as f:\n"
                      "    f.write(str(double(question)))\n### END SOLUTION",
                      metadata=_solution("fx-answer")),
        new_code_cell("# The grader judges answer.txt outside this kernel, on a secret question.\n"
                      "assert open('answer.txt').read() == str(double(21)), 'answer.txt'",
                      metadata=_grade("fx-answer-check", 3, judge="answer")),
        new_code_cell("print('the end')"),
    ], metadata={"lesson_utils": {"grading_setup": f"{SETUP_MODULE}:setup"}})


def setup(workdir: Path) -> dict:
    """The fixture's grading setup: a random question on disk, its answer only in here."""
    question = secrets.randbelow(10**9) + 100

    def judge(folder: Path) -> Verdict:
        try:
            answer = read_submitted_text(folder, "answer.txt").strip()
        except ValueError as exc:
            return Verdict(False, f"answer: {exc}")
        if answer == str(2 * question):
            return Verdict(True, "answer: right")
        return Verdict(False, f"answer: {answer[:20]!r} is not double the question")

    (Path(workdir) / "question.txt").write_text(str(question))
    return {"answer": judge}


def install_setup() -> None:
    """Make ``setup`` importable under the name the fixture's metadata gives."""
    module = types.ModuleType(SETUP_MODULE)
    module.setup = setup
    sys.modules[SETUP_MODULE] = module
