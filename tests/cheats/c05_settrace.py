"""A trace function (``sys.settrace``) that, whenever the instructor's grade cell starts, writes
the right answers into the notebook's namespace, so the checks pass on an unsolved notebook."""

CELLS = [r'''
import sys

ANSWERS = {"double": lambda x: 2 * x, "items": [10, 20, 30]}


def tracer(frame, event, arg):
    if frame.f_code.co_filename == "<instructor grade cell>":
        frame.f_globals.update(ANSWERS)
    return None


sys.settrace(tracer)
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0},
    "review": ["grade cell fx-double-check: sys.settrace/setprofile changed",
               "sets a trace or profile function: sys.settrace",
               "sets a trace function (seen while it ran)"],
    "feedback": ["fx-items-check: not trusted: sys.settrace/setprofile changed"],
}
