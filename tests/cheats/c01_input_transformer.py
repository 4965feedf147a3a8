"""An IPython input transformer rewrites every later grade cell into a print of its pass marker
(the marker is in the grade cell's own text). The hidden test is judged outside: no help there."""

CELLS = [r'''
import re

MARK = re.compile(r"\[grader\] [\w-]+ passed [0-9a-f]{32}")


def forge(lines):
    found = MARK.findall("".join(lines))
    return [f"print({m!r})\n" for m in found] or lines


get_ipython().input_transformers_post.append(forge)
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0, "fx-answer-check": 0},
    "review": ["hooks into IPython (transformers, events, shell or kernel internals): "
               "get_ipython().input_transformers_post, get_ipython()",
               "grade cell fx-double-check: no hook report although the pass marker was printed"],
    "feedback": ["fx-double-check: not trusted: no hook report"],
}
