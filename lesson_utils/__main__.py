"""``python -m lesson_utils doctor``."""

import argparse

from lesson_utils import doctor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lesson_utils",
                                     description="Course helpers' command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check that this machine is ready for the course")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor.main()
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    raise SystemExit(main())
