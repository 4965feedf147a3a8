"""Execute the lesson notebooks in place (``make notebooks``) and time them.

Usage::

    python -m lesson_utils.notebooks execute notebooks/01_models.ipynb [...]

Each notebook runs in a fresh ``python3`` kernel with the notebook's folder as working
directory, so stored outputs are real and execution counts are 1..n. The notebook file is
replaced atomically, only after a successful run: a failing cell leaves the stored notebook
as it was and the command exits non-zero, naming the cell.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["execute_notebook"]


def execute_notebook(path: str | os.PathLike, *, timeout: int = 600,
                     write: bool = True) -> float:
    """Execute one notebook top to bottom and (by default) store the outputs in place.

    Args:
        path: the ``.ipynb`` file.
        timeout: seconds allowed per cell.
        write: replace the file with the executed notebook.

    Returns:
        The wall time in seconds of the execution (kernel start included).

    Example:
        >>> execute_notebook("missing.ipynb")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no notebook at missing.ipynb
    """
    import nbformat
    from nbclient import NotebookClient

    from lesson_utils.checkpoints import atomic_write_bytes

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python",
                                          "name": "python3"})
    if write:
        atomic_write_bytes(path, (nbformat.writes(nb) + "\n").encode("utf-8"))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lesson_utils.notebooks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="execute notebooks in place")
    run.add_argument("paths", nargs="+")
    run.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args(argv)
    status = 0
    for p in args.paths:
        try:
            seconds = execute_notebook(p, timeout=args.timeout)
            print(f"{p}: executed in {seconds:.1f} s")
        except Exception as exc:  # report and go on with the others
            print(f"{p}: FAILED: {type(exc).__name__}: {str(exc)[-2000:]}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
