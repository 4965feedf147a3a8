"""Processes a submission leaves behind, and the grader's own process hardened against them.

A kernel's process group is killed when the notebook ends, but a process that started a new
session (``os.setsid``, a double fork) leaves the group and would survive: it could rewrite
files after the grader has read them, or wait for the next submission. While grading, the
grader makes itself the *child subreaper* of everything it starts (Linux
``PR_SET_CHILD_SUBREAPER``), so every orphan of the kernel becomes the grader's own child
instead of ``init``'s; ``kill_escaped`` then finds and kills each one after the kernel has
ended, and names it in the student's row.

The grader also marks itself not dumpable (``PR_SET_DUMPABLE`` = 0) while grading: a process of
the same user without ``CAP_SYS_PTRACE`` can then neither attach to it nor read
``/proc/<grader>/mem``, where the hidden test's labels live. Root with ``CAP_SYS_PTRACE`` still
can; ``grade --isolate`` hides the grader's process altogether (a PID namespace).

Both are no-ops where ``prctl`` does not exist (macOS, Windows).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Iterator

__all__ = ["grader_guards", "child_pids", "kill_escaped"]

_PR_SET_DUMPABLE, _PR_GET_DUMPABLE = 4, 3
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def _prctl() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def grader_guards() -> Iterator[bool]:
    """Make this process the subreaper of its descendants and not dumpable, then restore.

    Yields:
        Whether the guards are on (False where ``prctl`` is missing).

    Example:
        >>> with grader_guards() as on:
        ...     print(on == sys.platform.startswith("linux"))
        True
    """
    prctl = _prctl()
    if prctl is None:
        yield False
        return
    reaper = ctypes.c_int(0)
    prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(reaper), 0, 0, 0)
    dumpable = prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)
    on = prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    try:
        yield on
    finally:
        prctl(_PR_SET_CHILD_SUBREAPER, reaper.value, 0, 0, 0)
        prctl(_PR_SET_DUMPABLE, max(dumpable, 0), 0, 0, 0)


def child_pids(parent: int | None = None, *, zombies: bool = False) -> set[int]:
    """The live processes whose parent is ``parent`` (default: this process), from ``/proc``.

    ``zombies=True`` lists the children that have ended and wait to be reaped instead.

    Example:
        >>> import subprocess
        >>> child = subprocess.Popen(["sleep", "5"])
        >>> child.pid in child_pids()
        True
        >>> child.kill(); _ = child.wait()
    """
    parent = os.getpid() if parent is None else parent
    found = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 1 and (fields[0] in "ZX") == zombies and int(fields[1]) == parent:
            found.add(int(entry))
    return found


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        cmd = "?"
    return f"pid {pid} ({cmd[:80]})"


def _still_running(before: set[int], grace: float) -> set[int]:
    """New children that are still alive after up to ``grace`` seconds: the processes that the
    kernel's own end takes down (its process group, a PID namespace) need a moment to go."""
    deadline = time.monotonic() + grace
    escaped = child_pids() - before
    while escaped and time.monotonic() < deadline:
        time.sleep(0.05)
        escaped = child_pids() - before
    return escaped


def kill_escaped(before: set[int], rounds: int = 5, grace: float = 1.0) -> list[str]:
    """Kill this process's children that were not there in ``before``; say which they were.

    Call it after the kernel has ended (with ``grader_guards`` on, the kernel's orphans are
    this process's children by then). A new child still alive ``grace`` seconds later is an
    escaped process. Killing one can orphan its own children onto this process, so it looks
    again, up to ``rounds`` times.

    Example:
        >>> kill_escaped(child_pids())
        []
    """
    killed: list[str] = []
    for _ in range(rounds):
        escaped = _still_running(before, grace)
        if not escaped:
            break
        for pid in sorted(escaped):
            killed.append(_describe(pid))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in escaped:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)
    for pid in child_pids(zombies=True) - before:  # orphans that ended on their own
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
    return killed
