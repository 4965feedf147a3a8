"""Replaces ``builtins.exec`` (which the grade cell's code uses) by a function that prints the
pass markers it finds in the grader's code instead of running it."""

CELLS = [r'''
import builtins
import re

real_exec = builtins.exec
MARK = re.compile(r"\[grader\] [\w-]+ passed [0-9a-f]{32}")


def fake_exec(source, *args, **kwargs):
    if isinstance(source, str) and "run_grade_cell(" in source:
        for marker in MARK.findall(source):
            print(marker)
        return None
    return real_exec(source, *args, **kwargs)


builtins.exec = fake_exec
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0, "fx-answer-check": 0},
    "review": ["patches builtins or a library: import builtins, builtins.exec = ...",
               "grade cell fx-double-check: no hook report although the pass marker was printed"],
}
