"""The input transformer of c01, reached through names assembled at run time so that no hook
name appears in the code: ``globals()['get' + '_ipython']`` and ``getattr`` with a computed
name."""

CELLS = [r'''
import re

MARK = re.compile(r"\[grader\] [\w-]+ passed [0-9a-f]{32}")


def forge(lines):
    found = MARK.findall("".join(lines))
    return [f"print({m!r})\n" for m in found] or lines


shell = globals()["get" + "_ipython"]()
getattr(shell, "input_" + "transformers_post").append(forge)
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0, "fx-answer-check": 0},
    "review": ["builds names at run time: globals, getattr() with a computed name",
               "grade cell fx-items-check: no hook report although the pass marker was printed"],
}
