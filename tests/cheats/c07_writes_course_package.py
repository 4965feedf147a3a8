"""Writes into the course package the kernel imports (the grader's private copy), which would
change what the next student's kernel runs. The grader restores the copy after every submission
and names the change."""

CELLS = [r'''
import importlib.util
import os

package = importlib.util.find_spec("lesson_utils").submodule_search_locations[0]
with open(os.path.join(package, "offline.py"), "a") as f:
    f.write("\nPLANTED_BY_A_SUBMISSION = True\n")
''']
EXPECT = {
    "review": ["writes into a protected folder (seen while it ran)",
               "changed the grader's copy of the course: lesson_utils/offline.py"],
    "notes": ["the submission changed the grader's copy of the course (restored): "
              "lesson_utils/offline.py"],
}
