"""``python -m lesson_utils.assignments {student,verify,grade} ...``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SOURCE = "notebooks/08_assignment.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lesson_utils.assignments",
        description="Hand the course out as an assignment: student versions and grading.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("student", help="write the student version of every notebook")
    p.add_argument("src_dir", help="folder of instructor notebooks (e.g. notebooks/)")
    p.add_argument("dest_dir", help="where the student notebooks go (must differ from src_dir)")
    p = sub.add_parser("verify", help="check notebooks before handing them out")
    p.add_argument("notebooks", nargs="+")
    p.add_argument("--no-execute", action="store_true", help="static checks only")
    p.add_argument("--full", action="store_true", help="run every cell, not only the cells the "
                   "exercises need")
    p.add_argument("--timeout", type=float, default=600)
    p = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV")
    p.add_argument("submissions", help="folder: <student>.ipynb files, or <student>/ folders")
    p.add_argument("--out", default="grades.csv", help="CSV to write (default: grades.csv)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per notebook")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="the instructor notebook, or a "
                   f"folder of them (default: {DEFAULT_SOURCE})")
    p.add_argument("--isolate", action="store_true", help="run each kernel in its own user, "
                   "network, mount and PID namespaces: no network, a throw-away HOME, the course "
                   "read-only, nothing else of the machine visible (Linux, util-linux unshare)")
    args = parser.parse_args(argv)

    if args.command == "student":
        from lesson_utils.assignments.student import write_student_versions

        try:
            written = write_student_versions(args.src_dir, args.dest_dir)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for w in written:
            print(f"{w.dest}: {w.exercises} exercises, {w.hidden_tests} hidden tests, "
                  f"{w.points:g} points")
        return 0

    if args.command == "verify":
        from lesson_utils.assignments.verify import verify_student_version

        status = 0
        for path in args.notebooks:
            report = verify_student_version(path, execute=not args.no_execute,
                                            fast=not args.full, timeout=args.timeout)
            print(report.summary())
            status |= 0 if report.ok else 1
        return status

    from lesson_utils.assignments.grader import grade_submissions

    if not Path(args.source).exists():
        print(f"error: no instructor notebook at {args.source} (use --source)", file=sys.stderr)
        return 2

    def show(row) -> None:  # noqa: ANN001
        reason = f"  [{row.status}: {row.reason}]" if row.reason else ""
        print(f"{row.student}: {row.points:g}/{row.max_points:g}{reason}", flush=True)

    try:
        rows = grade_submissions(args.submissions, source=args.source, out=args.out,
                                 timeout=args.timeout, progress=show, isolate=args.isolate)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(rows)} students")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
