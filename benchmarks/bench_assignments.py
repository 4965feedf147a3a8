"""Grading cost (budget: grading one submission <= executing it + 10 s), and the cost of making
and checking the student version.

    python benchmarks/bench_assignments.py                                 # lesson 01 (~30 s)
    python benchmarks/bench_assignments.py notebooks/08_assignment.ipynb   # the capstone (~2 min)

For each notebook: execute the instructor version as the course does (``execute_notebook``,
kernel start included), then grade that same notebook as a submission (``grade_submissions``:
grading setup, fresh kernel, injected grade cells, CSV), and time the student version's
``verify`` (fast mode).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from lesson_utils.assignments import grade_submissions, verify_student_version  # noqa: E402
from lesson_utils.notebooks import execute_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def measure(path: Path) -> dict[str, float]:
    execute_s = execute_notebook(path, write=False)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(path, Path(folder) / "solved.ipynb")
        start = time.perf_counter()
        (row,) = grade_submissions(folder, source=path, timeout=600, watch_repository=False)
        grade_s = time.perf_counter() - start
    if row.points != row.max_points:
        raise RuntimeError(f"{path.name}: the instructor version got {row.points:g}/"
                           f"{row.max_points:g} ({row.reason}; {row.notebooks[0].scores})")
    start = time.perf_counter()
    report = verify_student_version(path)
    verify_s = time.perf_counter() - start
    if not report.ok:
        raise RuntimeError(report.summary())
    return {"execute_s": round(execute_s, 1), "grade_s": round(grade_s, 1),
            "overhead_s": round(grade_s - execute_s, 1), "verify_s": round(verify_s, 1),
            "points": row.points}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="*", default=[str(ROOT / "notebooks" /
                                                             "01_models.ipynb")])
    args = parser.parse_args(argv)
    results = {}
    print(f"{'notebook':24s} {'execute s':>9s} {'grade s':>8s} {'overhead s':>10s} "
          f"{'verify s':>8s}  (budget: overhead <= 10 s)")
    for name in args.notebooks:
        path = Path(name)
        r = measure(path)
        results[path.name] = r
        print(f"{path.name:24s} {r['execute_s']:9.1f} {r['grade_s']:8.1f} {r['overhead_s']:10.1f} "
              f"{r['verify_s']:8.1f}", flush=True)
    write_results("assignments", {"notebooks": results, "budget_overhead_s": 10})
    return 0 if all(r["overhead_s"] <= 10 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
