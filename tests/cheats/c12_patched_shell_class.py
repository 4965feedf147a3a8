"""Patches a method of IPython's shell *class* (``InteractiveShell.transform_cell``) so that a
grade cell becomes a print of its pass marker; the instance looks untouched."""

CELLS = [r'''
import re

from IPython.core.interactiveshell import InteractiveShell

real_transform = InteractiveShell.transform_cell
MARK = re.compile(r"\[grader\] [\w-]+ passed [0-9a-f]{32}")


def transform_cell(self, raw_cell):
    found = MARK.findall(raw_cell)
    if found:
        return "".join(f"print({m!r})\n" for m in found)
    return real_transform(self, raw_cell)


InteractiveShell.transform_cell = transform_cell
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0, "fx-answer-check": 0},
    "review": ["hooks into IPython (transformers, events, shell or kernel internals): "
               "import IPython.core.interactiveshell.InteractiveShell, "
               "InteractiveShell.transform_cell",
               "grade cell fx-double-check: no hook report although the pass marker was printed"],
}
