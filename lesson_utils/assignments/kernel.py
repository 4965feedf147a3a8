"""Run a notebook's code cells in a fresh, offline kernel under one time limit for the notebook.

This is the engine under both ``verify`` (does the student version stop only at exercises?) and
``grade`` (score a submission). It differs from ``lesson_utils.notebooks.execute_notebook`` in
what a grader needs:

* one wall-clock limit for the whole notebook (``timeout``), not one per cell; when it runs out
  the kernel's whole process group is killed (``SIGKILL``), so a student's infinite loop or a
  child process it started cannot outlive the run;
* every cell runs even after an error (``allow_errors``), and the kernel's own reply status is
  recorded per cell: ``"ok"`` or ``"error"`` with the exception's name and message. The reply is
  what counts, not the printed traceback, which student code can hide;
* the kernel starts in ``cwd`` with ``LESSON_OFFLINE_GUARD=1``, ``MPLBACKEND=Agg`` and a fresh,
  temporary ``IPYTHONDIR`` (no startup files or config left by an earlier run), and imports
  ``lesson_utils.offline`` before the first cell, so the offline guard is on even if the
  notebook never imports the course;
* outputs are kept only for the cells the caller asks for (``keep_outputs``), and at most
  ``max_output_chars`` per cell: a notebook that prints forever cannot fill the grader's memory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["CellRun", "NotebookRun", "run_cells"]

Outcome = Literal["completed", "timeout", "kernel died", "kernel failed to start"]


@dataclass
class CellRun:
    """What happened to one code cell."""

    index: int  # position in the executed notebook
    status: Literal["ok", "error", "not run", "skipped"] = "not run"
    ename: str = ""  # exception class name when status == "error"
    evalue: str = ""  # exception message when status == "error"
    stdout: str = ""  # only for cells in keep_outputs
    seconds: float = 0.0


@dataclass
class NotebookRun:
    """The result of ``run_cells``: one ``CellRun`` per cell and how the run ended."""

    cells: list[CellRun]
    outcome: Outcome = "completed"
    stopped_at: int | None = None  # the cell that timed out or killed the kernel
    seconds: float = 0.0  # wall time from kernel ready to the end (kernel start excluded)
    startup_seconds: float = 0.0
    message: str = ""

    def cell(self, index: int) -> CellRun:
        return self.cells[index]


def _client_class() -> type:
    from nbclient import NotebookClient

    class _CappedClient(NotebookClient):
        """Keeps outputs only for chosen cells, and at most ``cap`` characters of them."""

        keep: Collection[int] = ()
        cap: int = 200_000
        _sizes: dict[int, int] = {}

        def output(self, outs: list, msg: dict, display_id: str | None,
                   cell_index: int) -> Any:
            if cell_index not in self.keep:
                return None
            size = len(str(msg.get("content", "")))
            used = self._sizes.get(cell_index, 0)
            if used + size > self.cap:
                return None
            self._sizes[cell_index] = used + size
            return super().output(outs, msg, display_id, cell_index)

    return _CappedClient


def _kernel_env(config_dir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("JPY_PARENT_PID", "PYTEST_CURRENT_TEST"):
        env.pop(key, None)
    ipython_dir = config_dir / "ipython"
    ipython_dir.mkdir(exist_ok=True)
    env.update({
        "LESSON_OFFLINE_GUARD": "1",
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "IPYTHONDIR": str(ipython_dir),  # no startup files from earlier runs or the user
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.update(extra or {})
    return env


def _kill_group(pgid: int | None) -> None:
    if pgid is None or not hasattr(os, "killpg"):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_cells(
    nb: Any,
    *,
    cwd: str | os.PathLike,
    timeout: float,
    keep_outputs: Collection[int] = (),
    skip: Collection[int] = (),
    env: dict[str, str] | None = None,
    max_output_chars: int = 200_000,
    startup_timeout: int = 60,
    on_cell: Callable[[CellRun], None] | None = None,
) -> NotebookRun:
    """Execute the code cells of ``nb`` (an nbformat v4 notebook) in a fresh kernel.

    Args:
        nb: the notebook; it is executed in place (only kept outputs are stored).
        cwd: the kernel's working directory (must exist).
        timeout: seconds for all cells together, counted from the moment the kernel is ready.
        keep_outputs: indices of cells whose outputs are stored (and returned as ``stdout``).
        skip: indices of code cells not to execute (status ``"skipped"``).
        env: extra environment variables for the kernel.
        max_output_chars: cap on the stored output of one cell.
        startup_timeout: seconds allowed for the kernel to start.
        on_cell: called with each ``CellRun`` as soon as the cell finished.

    Returns:
        A ``NotebookRun``; it never raises for anything the notebook's code does.

    Example:
        >>> import nbformat, tempfile
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)"),
        ...                                      nbformat.v4.new_code_cell("1 / 0")])
        >>> run = run_cells(nb, cwd=tempfile.mkdtemp(), timeout=60, keep_outputs={0})
        >>> run.outcome, run.cells[0].stdout, run.cells[1].ename
        ('completed', '42\\n', 'ZeroDivisionError')
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    cwd = Path(cwd)
    if not cwd.is_dir():
        raise ValueError(f"cwd must be an existing folder, got {cwd}")
    cells = [CellRun(i) for i in range(len(nb.cells))]
    run = NotebookRun(cells)
    # nbclient needs the async manager: with a blocking client its output poll never yields, and
    # a cell that never ends could never time out.
    km = AsyncKernelManager(kernel_name="python3")
    client = _client_class()(
        nb, km=km, allow_errors=True, shutdown_kernel="immediate",
        startup_timeout=startup_timeout, iopub_timeout=10, record_timing=False,
        extra_arguments=["--IPKernelApp.exec_lines=import lesson_utils.offline",
                         "--HistoryManager.enabled=False"])
    client.keep = set(keep_outputs)
    client.cap = max_output_chars
    client._sizes = {}
    deadline = float("inf")
    client.timeout_func = lambda cell: max(1, int(deadline - time.monotonic() + 0.999))
    replies: list[dict] = []
    client.on_cell_executed = lambda execute_reply, **_: replies.append(execute_reply)
    pgid: int | None = None
    start = time.monotonic()
    current: int | None = None
    config_dir = Path(tempfile.mkdtemp(prefix="lesson-kernel-config-"))
    try:
        try:
            client.start_new_kernel(cwd=str(cwd), env=_kernel_env(config_dir, env),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pgid = getattr(km.provisioner, "pgid", None)
            client.start_new_kernel_client()
        except Exception as exc:  # e.g. the kernel did not answer within startup_timeout
            run.outcome = "kernel failed to start"
            run.message = f"{type(exc).__name__}: {exc}"
            return run
        ready = time.monotonic()
        run.startup_seconds = ready - start
        deadline = ready + timeout
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            record = cells[index]
            if index in skip:
                record.status = "skipped"
                continue
            if time.monotonic() >= deadline:
                run.outcome, run.stopped_at = "timeout", index
                break
            current = index
            began = time.monotonic()
            replies.clear()
            try:
                client.execute_cell(cell, index, execution_count=None)
            except CellTimeoutError:
                record.seconds = time.monotonic() - began
                run.outcome, run.stopped_at = "timeout", index
                break
            except DeadKernelError:
                record.seconds = time.monotonic() - began
                run.outcome, run.stopped_at = "kernel died", index
                break
            record.seconds = time.monotonic() - began
            content = (replies[-1] or {}).get("content", {}) if replies else {}
            if content.get("status") == "ok":
                record.status = "ok"
            else:
                record.status = "error"
                record.ename = str(content.get("ename", "unknown error"))
                record.evalue = str(content.get("evalue", ""))
            if index in client.keep:
                record.stdout = "".join(
                    o.get("text", "") for o in cell.get("outputs", [])
                    if o.get("output_type") == "stream" and o.get("name") == "stdout")
            if on_cell is not None:
                on_cell(record)
        current = None
    except Exception as exc:  # the engine itself failed (zmq, a closed channel, ...)
        run.outcome = "kernel died"
        run.stopped_at = current
        run.message = f"{type(exc).__name__}: {exc}"
    finally:
        run.seconds = time.monotonic() - (start + run.startup_seconds)
        _kill_group(pgid)  # the kernel and whatever the notebook started in its process group
        try:
            if client.kc is not None:
                client.kc.stop_channels()
        except Exception:
            pass
        try:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
        except Exception:
            pass
        try:
            run_sync(km.cleanup_resources)()
        except Exception:
            pass
        shutil.rmtree(config_dir, ignore_errors=True)
    return run
