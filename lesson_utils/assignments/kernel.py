"""Run a notebook's code cells in a fresh, offline kernel under one time limit for the notebook.

This is the engine under both ``verify`` (does the student version stop only at exercises?) and
``grade`` (score a submission). It differs from ``lesson_utils.notebooks.execute_notebook`` in
what a grader needs:

* one wall-clock limit for the whole notebook (``timeout``), not one per cell; when it runs out
  the kernel's whole process group is killed (``SIGKILL``), so a student's infinite loop or a
  child process it started cannot outlive the run;
* every cell runs even after an error (``allow_errors``), and the kernel's own reply status is
  recorded per cell: ``"ok"`` or ``"error"`` with the exception's name and message, and the
  execution count. The reply is what counts, not the printed traceback, which student code can
  hide;
* the kernel starts in ``cwd`` with ``LESSON_OFFLINE_GUARD=1``, ``MPLBACKEND=Agg``,
  ``PYTHONNOUSERSITE=1`` and a fresh, temporary ``IPYTHONDIR`` (no startup files or config left
  by an earlier run), and loads ``lesson_utils/offline.py`` before the first cell (without
  importing the ``lesson_utils`` package, so a notebook that never imports torch starts fast),
  so the offline guard is on even if the notebook never imports the course. ``startup`` lines
  run next (the grader's audit sentinel);
* outputs are kept only for the cells the caller asks for (``keep_outputs``), and at most
  ``max_output_chars`` per cell: a notebook that prints forever cannot fill the grader's memory;
* with ``sandbox=`` the kernel runs in its own namespaces (``lesson_utils.assignments.sandbox``)
  and talks to this process through Unix sockets in its private connection folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from lesson_utils.assignments.sandbox import Sandbox

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
    execution_count: int | None = None  # the kernel's count for the cell (its history index)


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
        "PYTHONNOUSERSITE": "1",  # no .pth or usercustomize from the user's site folder
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


#: Loads ``lesson_utils/offline.py`` from the kernel's path without importing the package.
OFFLINE_STARTUP = "exec(" + repr(
    "import importlib.machinery as m, importlib.util as u, sys\n"
    "p = u.find_spec('lesson_utils')\n"
    "s = p and m.PathFinder.find_spec('lesson_utils.offline', "
    "list(p.submodule_search_locations or []))\n"
    "if s:\n"
    "    mod = u.module_from_spec(s); sys.modules[s.name] = mod; s.loader.exec_module(mod)\n"
    "else:\n"
    "    import lesson_utils.offline\n") + ", {})"


@dataclass
class _Engine:
    """One kernel's client, manager and bookkeeping while ``run_cells`` runs."""

    client: Any
    km: Any
    config_dir: Path
    run: NotebookRun
    replies: list[dict] = field(default_factory=list)
    deadline: float = float("inf")
    pgid: int | None = None
    root_dir: Path | None = None


def _manager(config_dir: Path, sandbox: Sandbox | None, cwd: Path) -> tuple[Any, Path | None]:
    """The kernel manager: the plain ``python3`` kernel, or one wrapped in the sandbox."""
    if sandbox is None:
        return AsyncKernelManager(kernel_name="python3"), None
    root_dir = Path(tempfile.mkdtemp(prefix="lesson-sandbox-root-"))
    box = Sandbox(sandbox.readonly, (*sandbox.writable, str(cwd), str(config_dir)),
                  sandbox.copies)
    spec_dir = config_dir / "kernels" / "lesson-isolated"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": box.command(argv, root_dir), "display_name": "isolated", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(config_dir / "kernels")],
                              ensure_native_kernel=False)
    km = AsyncKernelManager(kernel_name="lesson-isolated", kernel_spec_manager=specs,
                            transport="ipc", ip=str(config_dir / "ipc"),
                            connection_file=str(config_dir / "connection.json"))
    return km, root_dir


def _start(engine: _Engine, cwd: Path, env: dict[str, str] | None) -> bool:
    """Start the kernel and its client; False (and the run says why) if it did not start."""
    run = engine.run
    try:
        engine.client.start_new_kernel(cwd=str(cwd), env=_kernel_env(engine.config_dir, env),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        engine.pgid = getattr(engine.km.provisioner, "pgid", None)
        engine.client.start_new_kernel_client()
    except Exception as exc:  # e.g. the kernel did not answer within startup_timeout
        run.outcome = "kernel failed to start"
        run.message = f"{type(exc).__name__}: {exc}"
        return False
    return True


def _execute_one(engine: _Engine, cell: Any, index: int) -> bool:
    """Run one cell and record it; False when the run must stop (time-out, dead kernel)."""
    run, client = engine.run, engine.client
    record = run.cells[index]
    began = time.monotonic()
    engine.replies.clear()
    try:
        client.execute_cell(cell, index, execution_count=None)
    except CellTimeoutError:
        record.seconds = time.monotonic() - began
        run.outcome, run.stopped_at = "timeout", index
        return False
    except DeadKernelError:
        record.seconds = time.monotonic() - began
        run.outcome, run.stopped_at = "kernel died", index
        return False
    record.seconds = time.monotonic() - began
    content = (engine.replies[-1] or {}).get("content", {}) if engine.replies else {}
    count = content.get("execution_count")
    record.execution_count = count if isinstance(count, int) else None
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
    return True


def _execute_all(engine: _Engine, nb: Any, skip: Collection[int],
                 on_cell: Callable[[CellRun], None] | None) -> None:
    run = engine.run
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        if index in skip:
            run.cells[index].status = "skipped"
            continue
        if time.monotonic() >= engine.deadline:
            run.outcome, run.stopped_at = "timeout", index
            return
        run.stopped_at = index  # until the cell has finished
        if not _execute_one(engine, cell, index):
            return
        run.stopped_at = None
        if on_cell is not None:
            on_cell(run.cells[index])


def _shutdown(engine: _Engine) -> None:
    """Kill the kernel's process group and release everything, whatever state it is in."""
    _kill_group(engine.pgid)  # the kernel and whatever the notebook started in its group
    client, km = engine.client, engine.km
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
    shutil.rmtree(engine.config_dir, ignore_errors=True)
    if engine.root_dir is not None:
        shutil.rmtree(engine.root_dir, ignore_errors=True)


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
    startup: Sequence[str] = (),
    sandbox: Sandbox | None = None,
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
        startup: lines of Python the kernel runs before the first cell (after the offline
            guard); they are not in the input history.
        sandbox: run the kernel isolated (see ``lesson_utils.assignments.sandbox``); ``cwd``
            and the kernel's connection folder are added to its writable paths.

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
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    cwd = Path(cwd)
    if not cwd.is_dir():
        raise ValueError(f"cwd must be an existing folder, got {cwd}")
    if isinstance(startup, str):
        raise TypeError("startup must be a sequence of lines, got a str")
    config_dir = Path(tempfile.mkdtemp(prefix="lesson-kernel-config-"))
    km, root_dir = _manager(config_dir, sandbox, cwd)
    # nbclient needs the async manager: with a blocking client its output poll never yields, and
    # a cell that never ends could never time out.
    client = _client_class()(
        nb, km=km, allow_errors=True, shutdown_kernel="immediate",
        startup_timeout=startup_timeout, iopub_timeout=10, record_timing=False,
        extra_arguments=[f"--IPKernelApp.exec_lines={line}"
                         for line in (OFFLINE_STARTUP, *startup)]
        + ["--HistoryManager.enabled=False"])
    client.keep, client.cap, client._sizes = set(keep_outputs), max_output_chars, {}
    engine = _Engine(client, km, config_dir, NotebookRun([CellRun(i) for i in range(len(
        nb.cells))]), root_dir=root_dir)
    client.timeout_func = lambda cell: max(1, int(engine.deadline - time.monotonic() + 0.999))
    client.on_cell_executed = lambda execute_reply, **_: engine.replies.append(execute_reply)
    start = time.monotonic()
    try:
        if _start(engine, cwd, env):
            engine.run.startup_seconds = time.monotonic() - start
            engine.deadline = time.monotonic() + timeout
            _execute_all(engine, nb, skip, on_cell)
    except Exception as exc:  # the engine itself failed (zmq, a closed channel, ...)
        engine.run.outcome = "kernel died"
        engine.run.message = f"{type(exc).__name__}: {exc}"
    finally:
        engine.run.seconds = time.monotonic() - (start + engine.run.startup_seconds)
        _shutdown(engine)
    return engine.run
