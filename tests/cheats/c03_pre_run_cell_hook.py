"""A solved notebook plus a ``pre_run_cell`` hook that reads every later cell's text before it
runs, looking for the hidden test's secret (the old grader put a seed there) to write the answer.
The in-kernel grade cells run in an observed kernel, so they get no points; the judged cell keeps
its points, because it is judged on the file the honest solution wrote."""

BASE = "solved"
CELLS = [r'''
import re

seen = []


def spy(info):
    seen.append(info.raw_cell)
    if "judged by the grader" in info.raw_cell:
        numbers = re.findall(r"\b\d{3,}\b", info.raw_cell)
        if numbers:
            with open("answer.txt", "w") as f:
                f.write(str(2 * int(numbers[0])))


get_ipython().events.register("pre_run_cell", spy)
''']
EXPECT = {
    "points": {"fx-double-check": 0, "fx-items-check": 0, "fx-answer-check": 3},
    "review": ["grade cell fx-double-check: IPython pre_run_cell callbacks gained __main__.spy!",
               "hooks into IPython"],
}
