"""Grading cost (budget: grading one submission <= executing it + 10 s), and the cost of making
and checking the student version.

    python benchmarks/bench_assignments.py                                 # lesson 01 (~30 s)
    python benchmarks/bench_assignments.py notebooks/08_assignment.ipynb   # the capstone (~2 min)

For each notebook: execute the instructor version as the course does (``execute_notebook``,
kernel start included), then grade that same notebook as a submission (``grade_submissions``:
grading setup, fresh kernel with the audit hook, baseline and hook reports, judges outside the
kernel, static review, CSV), grade it again with ``isolate=True`` where this machine can isolate
kernels, and time the student version's ``verify`` (fast mode). Both gradings must give full
points and an empty ``review`` column (an honest notebook is not flagged).
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

from lesson_utils.assignments import (  # noqa: E402
    grade_submissions,
    isolation_problem,
    verify_student_version,
)
from lesson_utils.notebooks import execute_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def grade_once(path: Path, isolate: bool) -> tuple[float, float]:
    """Seconds to grade the instructor notebook as a submission, and its points."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(path, Path(folder) / "solved.ipynb")
        start = time.perf_counter()
        (row,) = grade_submissions(folder, source=path, timeout=600, watch_repository=False,
                                   isolate=isolate)
        seconds = time.perf_counter() - start
    review = [r for n in row.notebooks for r in n.review]
    if row.points != row.max_points or review:
        raise RuntimeError(f"{path.name} (isolate={isolate}): the instructor version got "
                           f"{row.points:g}/{row.max_points:g} ({row.reason}; "
                           f"{row.notebooks[0].scores}; review {review})")
    return seconds, row.points


def measure(path: Path) -> dict[str, float | None]:
    execute_s = execute_notebook(path, write=False)
    grade_s, points = grade_once(path, isolate=False)
    isolated_s = grade_once(path, isolate=True)[0] if isolation_problem() is None else None
    start = time.perf_counter()
    report = verify_student_version(path)
    verify_s = time.perf_counter() - start
    if not report.ok:
        raise RuntimeError(report.summary())
    return {"execute_s": round(execute_s, 1), "grade_s": round(grade_s, 1),
            "overhead_s": round(grade_s - execute_s, 1),
            "grade_isolated_s": round(isolated_s, 1) if isolated_s is not None else None,
            "verify_s": round(verify_s, 1), "points": points}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("notebooks", nargs="*", default=[str(ROOT / "notebooks" /
                                                             "01_models.ipynb")])
    args = parser.parse_args(argv)
    results = {}
    print(f"{'notebook':24s} {'execute s':>9s} {'grade s':>8s} {'overhead s':>10s} "
          f"{'isolated s':>10s} {'verify s':>8s}  (budget: overhead <= 10 s)")
    for name in args.notebooks:
        path = Path(name)
        r = measure(path)
        results[path.name] = r
        isolated = f"{r['grade_isolated_s']:10.1f}" if r["grade_isolated_s"] is not None \
            else f"{'n/a':>10s}"
        print(f"{path.name:24s} {r['execute_s']:9.1f} {r['grade_s']:8.1f} {r['overhead_s']:10.1f} "
              f"{isolated} {r['verify_s']:8.1f}", flush=True)
    write_results("assignments", {"notebooks": results, "budget_overhead_s": 10})
    return 0 if all(r["overhead_s"] <= 10 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
