"""Hidden tests judged by the grader process, outside the student's kernel.

Whatever the grader puts into a cell, the student's earlier code can read and rewrite (IPython
hooks see every cell's text before it runs). So a hidden test whose answer key must stay secret
is not run in the kernel at all: the instructor's notebook names, in the grade cell's metadata,
a *judge*, and the grader calls it in its own process after the kernel has finished::

    {"nbgrader": {"grade": true, "grade_id": "08-hidden-test", "points": 3, ...},
     "lesson_utils": {"judge": "hidden_test_f1"}}

The notebook's metadata names the *grading setup* (``{"lesson_utils": {"grading_setup":
"lesson_utils.module:function"}}``). The grader calls it with the submission's working folder
before the kernel starts; it writes what the notebook needs (e.g. test images) and returns the
judges by name, each holding its secret (e.g. the test labels) in the grader's memory only. In
the kernel the grade cell is replaced by a placeholder that says so; a student's own run (no
grader) executes the cell as written, which scores against public data.

A judge reads only files the notebook wrote, through ``read_submitted_text``: a regular file
directly in the working folder (no links, pipes or devices), of bounded size.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Verdict", "Judge", "GradingSetup", "read_submitted_text", "check_judges",
           "MAX_SUBMITTED_BYTES"]

#: The largest file a judge reads from a submission's working folder.
MAX_SUBMITTED_BYTES = 20 * 2**20


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one grade cell: all its points or none, and why."""

    passed: bool
    message: str


#: ``judge(workdir) -> Verdict``: called after the kernel has ended.
Judge = Callable[[Path], Verdict]
#: ``setup(workdir) -> {judge name: judge}``: called before the kernel starts.
GradingSetup = Callable[[Path], Mapping[str, Judge]]


def read_submitted_text(workdir: str | os.PathLike, name: str,
                        max_bytes: int = MAX_SUBMITTED_BYTES) -> str:
    """Read the UTF-8 file ``name`` that a notebook wrote directly in ``workdir``.

    The working folder and the file are opened without following symbolic links, and the file
    must be a regular file of at most ``max_bytes`` bytes: a submission cannot make the grader
    read another file, block on a pipe, or read forever.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: ``name`` is not a plain file name, or the file is missing, not a regular
            file, too large or not UTF-8 (the message says which, for the student's feedback).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "predictions.csv").write_text("id,label\\n")
        >>> read_submitted_text(folder, "predictions.csv")
        'id,label\\n'
        >>> (folder / "link.csv").symlink_to("/etc/hostname")
        >>> read_submitted_text(folder, "link.csv")
        Traceback (most recent call last):
        ...
        ValueError: link.csv is not a regular file in the working folder (a link, pipe or device)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        folder = os.open(workdir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow)
    except OSError:
        raise ValueError("the working folder is gone or was replaced by a link") from None
    try:
        try:
            fd = os.open(name, os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0),
                         dir_fd=folder)
        except FileNotFoundError:
            raise ValueError(f"no file {name}: the notebook did not write it") from None
        except OSError:
            raise ValueError(f"{name} is not a regular file in the working folder (a link, "
                             "pipe or device)") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{name} is not a regular file in the working folder (a link, "
                                 "pipe or device)")
            if info.st_size > max_bytes:
                raise ValueError(f"{name} has {info.st_size} bytes, more than {max_bytes}")
            data = f.read(max_bytes + 1)
    finally:
        os.close(folder)
    if len(data) > max_bytes:
        raise ValueError(f"{name} has more than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} is not UTF-8 text ({exc.reason})") from None


def check_judges(judges: object, wanted: Mapping[str, str]) -> dict[str, Judge]:
    """Check what a grading setup returned against the judges the notebook names.

    Args:
        judges: the setup's return value (must map names to callables).
        wanted: ``{grade_id: judge name}`` from the instructor notebook.

    Returns:
        ``{grade_id: judge}``.

    Raises:
        TypeError: the setup did not return a mapping of callables.
        ValueError: a judge the notebook names is missing.

    Example:
        >>> judge = lambda workdir: Verdict(True, "fine")
        >>> check_judges({"f1": judge}, {"08-hidden": "f1"}) == {"08-hidden": judge}
        True
        >>> check_judges({}, {"08-hidden": "f1"})
        Traceback (most recent call last):
        ...
        ValueError: the grading setup returned no judge 'f1' (grade cell 08-hidden); it returned []
    """
    if not isinstance(judges, Mapping) or not all(callable(j) for j in judges.values()):
        raise TypeError(f"a grading setup must return a mapping of judge names to callables, "
                        f"got {type(judges).__name__}")
    found = {}
    for grade_id, name in wanted.items():
        if name not in judges:
            raise ValueError(f"the grading setup returned no judge {name!r} (grade cell "
                             f"{grade_id}); it returned {sorted(judges)}")
        found[grade_id] = judges[name]
    return found
