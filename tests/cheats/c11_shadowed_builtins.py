"""Defines ``len`` and ``sum`` in the notebook so that the grade cell's ``len(items) == 3`` and
``sum(items) == 60`` hold for an empty list. The grader runs the instructor's cell with the real
builtins."""

CELLS = [r'''
def len(x):
    return 3


def sum(x):
    return 60


items = []
''']
EXPECT = {
    "points": {"fx-items-check": 0},
    "review": ["patches builtins or a library: redefines the builtin len"],
    "feedback": ["fx-items-check: AssertionError: three items"],
}
