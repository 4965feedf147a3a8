"""Self-checks for the exercises.

Each lesson's exercises have a checker in ``lesson_utils.checks.<topic>``. A checker either
prints a short pass message and returns ``True``, or raises ``CheckFailed`` (an
``AssertionError``) whose message is a hint: what is wrong and what to look at. The instructor's
hidden tests and the automatic grader call the very same functions, so a student who passes the
self-check knows what the grader will see.

Example:
    >>> from lesson_utils.checks import check_close
    >>> check_close("answer", 0.5, 0.5)
    ✅ answer: correct
    True
"""

from lesson_utils.checks._core import CheckFailed, check_close, check_equal, fail, passed

__all__ = ["CheckFailed", "check_close", "check_equal", "fail", "passed"]
