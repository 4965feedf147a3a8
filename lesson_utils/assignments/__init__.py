"""The course as an assignment: student versions, a check before handing out, and a grader.

Three commands (``python -m lesson_utils.assignments --help``)::

    python -m lesson_utils.assignments student notebooks/ student/     # solutions removed
    python -m lesson_utils.assignments verify notebooks/*.ipynb        # stops only at exercises?
    python -m lesson_utils.assignments grade submitted/ --out grades.csv --timeout 600 \\
        --source notebooks/08_assignment.ipynb

* ``student`` (``lesson_utils.assignments.student``): nbgrader-compatible student notebooks:
  solution regions become ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, hidden-test
  regions are removed from their grade cells, outputs are cleared.
* ``verify`` (``lesson_utils.assignments.verify``): no solution text is left, the nbgrader
  metadata is valid, and the student version, when run, stops only at exercise cells.
* ``grade`` (``lesson_utils.assignments.grader``): runs each submission in a fresh offline
  kernel with a time limit, with the instructor's grade cells put back in, judges hidden tests
  on files outside the kernel (``judging``), checks the interpreter's hooks and watches what
  the notebook does (``integrity``, ``review``, ``processes``), optionally in a sandbox
  (``--isolate``, ``sandbox``), and writes ``grades.csv`` atomically. Its threat model is in the
  module's docstring and the README.

The capstone's data and its hidden test set come from ``lesson_utils.assignments.capstone``.
"""

from lesson_utils.assignments.grader import (
    GradingPlan,
    NotebookGrade,
    Safeguards,
    StudentGrade,
    grade_notebook,
    grade_submissions,
    grading_plan,
    write_grades_csv,
)
from lesson_utils.assignments.judging import Verdict
from lesson_utils.assignments.review import review_flags
from lesson_utils.assignments.sandbox import isolation_problem
from lesson_utils.assignments.student import (
    MarkerError,
    make_student_notebook,
    solution_leaks,
    source_problems,
    write_student_versions,
)
from lesson_utils.assignments.verify import VerifyReport, verify_student_version

__all__ = [
    "MarkerError", "make_student_notebook", "solution_leaks", "source_problems",
    "write_student_versions", "GradingPlan", "NotebookGrade", "StudentGrade", "grading_plan",
    "grade_notebook", "grade_submissions", "write_grades_csv", "VerifyReport",
    "verify_student_version", "Safeguards", "Verdict", "review_flags", "isolation_problem",
]
