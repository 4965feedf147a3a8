"""Execute every lesson notebook (without writing it) and time it; writes
benchmarks/results/notebook_times.json and prints the Markdown table the README uses.

    python benchmarks/notebook_times.py [notebooks/01_models.ipynb ...]

Budgets (COURSE.md §6): each lesson <= 60 s (goal 30 s), lesson 02 <= 90 s, the capstone <= 120 s, scaling out
<= 90 s, all together <= 8 min (goal 5 min).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from lesson_utils.notebooks import execute_notebook  # noqa: E402

BUDGETS = {"02": 90, "08": 120, "09": 90}


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    rows, failed = [], False
    for path in paths:
        try:
            seconds = execute_notebook(path, write=False)
        except Exception as exc:
            print(f"{path.name}: FAILED ({type(exc).__name__})", file=sys.stderr)
            failed = True
            continue
        budget = BUDGETS.get(path.name[:2], 60)
        rows.append({"notebook": path.name, "seconds": round(seconds, 1), "budget_s": budget,
                     "within_budget": seconds <= budget})
        print(f"{path.name:36s} {seconds:6.1f} s  (budget {budget} s)", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"{'total':36s} {total:6.1f} s  (budget 480 s)")
    print("\n| notebook | measured time (2-core CPU) |\n|---|---|")
    for r in rows:
        print(f"| `{r['notebook']}` | {r['seconds']:.0f} s |")
    write_results("notebook_times", {"notebooks": rows, "total_seconds": round(total, 1)})
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
