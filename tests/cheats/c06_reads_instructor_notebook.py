"""Reads the instructor's notebook from disk (its path guessed, built from pieces) and runs its
solutions. The code it runs is correct, so in-kernel checks pass: the submission is flagged,
named, by the audit hook, which saw the notebook being opened (``--isolate`` hides the file)."""

AFTER_CELL = "fx-double"
CELLS = [r'''
import json

path = {source_stem!r} + ".ip" + "ynb"
with open(path) as f:
    notebook = json.load(f)
for cell in notebook["cells"]:
    text = "".join(cell["source"])
    if "BEGIN SOLUTION" in text:
        exec(text.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
''']
EXPECT = {
    "review": ["opens a private file (a notebook, another submission) (seen while it ran)",
               "runs code that is not in the notebook"],
}
