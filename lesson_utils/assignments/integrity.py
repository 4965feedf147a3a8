"""The grader's dynamic checks on a kernel that runs a submission (grader side).

Two sources of evidence, both judged in the grader's process:

* **Hook reports.** Before the first student cell the grader injects a cell that prints a
  summary of everything that could observe or rewrite later cells (``_runner.summary``: IPython
  transformers, event callbacks, trace/profile functions, import hooks, builtins, shell, kernel
  and stream methods). Every grade cell prints the same summary before it runs its checks,
  after a tag that is random per cell and per run. ``compare`` names what changed; a grade cell
  whose report differs from the baseline, is missing, or whose own stored text is not what the
  grader sent, gets no points.
* **Audit events.** ``_sentinel.py`` runs at kernel start-up and reports, through a FIFO the
  grader reads while the notebook runs, what the submission does that no in-kernel state shows
  afterwards: opening the instructor's notebooks or other submissions, writing into the course,
  starting processes, setting a trace function for a moment, patching IPython classes.
  ``event_flags`` turns them into ``review`` lines.

Neither is proof against a student who studies this module and forges the reports from inside
the kernel; the README's threat model says what remains possible.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

__all__ = ["RUNNER_PATH", "SENTINEL_PATH", "CellEvidence", "injected_code", "sentinel_startup",
           "read_report", "compare", "clean_start_problems", "cell_problems", "AuditChannel",
           "event_flags"]

RUNNER_PATH = Path(__file__).with_name("_runner.py")
SENTINEL_PATH = Path(__file__).with_name("_sentinel.py")
#: How a cell reaches the real ``exec`` without looking up any name in the notebook's namespace.
_REAL_BUILTINS = ('[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '
                  '"BuiltinImporter"][0].find_spec.__func__.__globals__["__builtins__"]')
_MAX_CHANNEL_BYTES = 512 * 1024


def injected_code(comment: str, call: str) -> str:
    """The text of a cell that runs ``_runner.py`` followed by ``call`` with the real builtins.

    Example:
        >>> code = injected_code("a probe", "report('[tag]')")
        >>> code.splitlines()[0], "BuiltinImporter" in code
        ('# a probe', True)
    """
    program = RUNNER_PATH.read_text(encoding="utf-8") + "\n" + call + "\n"
    return (f"# {comment}\n"
            f"(lambda b: b['exec']({program!r}, {{'__builtins__': b, '__name__': '__grader__'}}))"
            f"(\n    {_REAL_BUILTINS})\n")


def sentinel_startup(path: str | os.PathLike = SENTINEL_PATH) -> str:
    """One line for IPython's ``exec_lines`` that runs the audit sentinel at kernel start-up.

    Example:
        >>> sentinel_startup("/x/_sentinel.py")[:51]
        "exec(compile(open('/x/_sentinel.py', 'rb').read(), "
    """
    p = os.fspath(path)
    return (f"exec(compile(open({p!r}, 'rb').read(), {p!r}, 'exec'), "
            f"{{'__name__': '__lesson_sentinel__'}})")


def read_report(stdout: str, tag: str) -> dict[str, Any] | None:
    """The JSON summary printed after ``tag`` in a cell's output, or ``None``.

    Example:
        >>> read_report("hello\\n[t1] {\\"trace\\": [null]}\\n", "[t1]")
        {'trace': [None]}
    """
    for line in stdout.splitlines():
        if line.startswith(tag + " "):
            try:
                value = json.loads(line[len(tag) + 1:])
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _library(name: Any) -> bool:
    """Not defined by the notebook (``_runner._name`` marks those with ``!``)."""
    return isinstance(name, str) and not name.endswith("!")


def _list_changes(what: str, before: Sequence[Any], after: Sequence[Any],
                  tolerant: bool) -> list[str]:
    """Entries added to or removed from a list of hooks (tolerant: library additions pass)."""
    added = [x for x in after if x not in before and not (tolerant and _library(x))]
    removed = [x for x in before if x not in after]
    out = []
    if added:
        out.append(f"{what} gained {', '.join(map(str, added[:3]))}")
    if removed:
        out.append(f"{what} lost {', '.join(map(str, removed[:3]))}")
    return out


def _dict_changes(what: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changed = sorted(k for k in before if before[k] is not None and after.get(k) != before[k])
    return [f"{what} replaced: {', '.join(changed[:5])}"] if changed else []


def compare(baseline: Mapping[str, Any], report: Mapping[str, Any], *,
            identities: bool = True) -> list[str]:
    """What changed between the baseline report and a grade cell's report, in words.

    Library event callbacks, finders and new builtins may appear (``%matplotlib inline``
    registers one); anything a notebook defined (a cell, or a file in its working folder), any
    transformer, trace or profile function, replaced builtin, module, shell, kernel or stream
    method counts. ``identities=False``
    compares names only (object ids differ between two kernels).

    Example:
        >>> base = {"trace": [None, None], "transformers": {"post": []}, "builtins": {"len": 1}}
        >>> compare(base, {"trace": ["__main__.tracer!", None], "transformers": {"post": []},
        ...                "builtins": {"len": 2}})
        ['sys.settrace/setprofile changed', 'builtins replaced: len']
    """
    out: list[str] = []
    if baseline.get("trace") != report.get("trace"):
        out.append("sys.settrace/setprofile changed")
    before_t, after_t = baseline.get("transformers") or {}, report.get("transformers") or {}
    for key in sorted(set(before_t) | set(after_t)):
        if before_t.get(key) != after_t.get(key):
            out += _list_changes(f"IPython's {key} transformers", before_t.get(key) or [],
                                 after_t.get(key) or [], False) or [
                f"IPython's {key} transformers changed"]
    before_e, after_e = baseline.get("events") or {}, report.get("events") or {}
    for event in sorted(set(before_e) | set(after_e)):
        out += _list_changes(f"IPython {event} callbacks", before_e.get(event) or [],
                             after_e.get(event) or [], True)
    for key in ("meta_path", "path_hooks"):
        out += _list_changes(f"sys.{key}", baseline.get(key) or [], report.get(key) or [], True)
    if not identities:
        return out
    out += _dict_changes("builtins", baseline.get("builtins") or {}, report.get("builtins") or {})
    out += _dict_changes("modules in sys.modules", baseline.get("modules") or {},
                         report.get("modules") or {})
    for key, what in (("shell", "IPython shell methods"), ("kernel", "kernel methods"),
                      ("streams", "sys.stdout/stderr or excepthook")):
        if baseline.get(key) != report.get(key):
            out.append(f"{what} replaced")
    if report.get("namespace_builtins") is False:
        out.append("the notebook's __builtins__ replaced")
    return out


def clean_start_problems(baseline: Mapping[str, Any]) -> list[str]:
    """What a kernel that no student code has touched yet should not have, in words.

    Example:
        >>> clean_start_problems({"trace": [None, None], "transformers": {"post": ["x.f!"],
        ...                       "ast": []}})
        ["IPython's post transformers: x.f!"]
    """
    out = []
    if any(t is not None for t in baseline.get("trace") or []):
        out.append("a trace or profile function")
    for key in ("post", "ast"):
        found = (baseline.get("transformers") or {}).get(key) or []
        if found:
            out.append(f"IPython's {key} transformers: {', '.join(map(str, found[:3]))}")
    return out


@dataclass(frozen=True)
class CellEvidence:
    """What the grader saw of one in-kernel grade cell (from its run and its output)."""

    status: str  # the kernel's reply: "ok", "error", "not run", "skipped"
    stdout: str
    marker: str  # printed only when the cell's checks passed
    tag: str  # starts the line with the cell's hook report
    sent: str  # the cell's text, as the grader sent it


def cell_problems(evidence: CellEvidence, baseline: Mapping[str, Any] | None) -> list[str]:
    """Why a grade cell's pass cannot be trusted (empty: it can), judged in the grader.

    A pass needs the cell's hook report, equal to the baseline (``compare``), and the cell's
    text as IPython stored it equal to what the grader sent (an input transformer changes it).

    Example:
        >>> base = {"trace": [None, None]}
        >>> sent = "pass"
        >>> digest = hashlib.sha256(b"pass").hexdigest()
        >>> report = '{"trace": [null, null], "cell": "%s"}' % digest
        >>> stdout = "[t] " + report + chr(10) + "M"
        >>> cell_problems(CellEvidence("ok", stdout, "M", "[t]", sent), base)
        []
        >>> cell_problems(CellEvidence("ok", "M", "M", "[t]", sent), base)[0][:46]
        'no hook report although the pass marker was pr'
    """
    report = read_report(evidence.stdout, evidence.tag)
    if report is None:
        if evidence.marker in evidence.stdout:
            return ["no hook report although the pass marker was printed: the cell was "
                    "replaced before it ran"]
        if evidence.status == "ok":
            return ["the grader's code in this cell did not run: the cell was replaced before "
                    "it ran"]
        return []  # it failed before reporting: no points anyway, and the error says why
    if baseline is None:
        return ["the grader has no baseline report to compare with (the kernel misbehaved "
                "before the first cell)"]
    stored = TransformerManager().transform_cell(evidence.sent).rstrip("\n")  # as IPython does
    expected = hashlib.sha256(stored.encode("utf-8", "replace")).hexdigest()
    problems = []
    if report.get("cell") != expected:
        problems.append("the cell's code was rewritten before it ran (an input transformer)")
    problems += compare(baseline, report)
    return problems


class AuditChannel:
    """A FIFO the kernel's audit hook writes into, read by a thread of the grader.

    Use it as a context manager around the kernel's run; ``lines`` then holds the decoded
    ``[execution_count, what, detail]`` records, and ``connected`` whether the sentinel said
    hello.

    Example:
        >>> import tempfile
        >>> with AuditChannel(tempfile.mkdtemp()) as channel:
        ...     fd = os.open(channel.path, os.O_WRONLY)
        ...     _ = os.write(fd, b'[null, "hello", "1"]\\n[3, "sends a signal", "(1, 9)"]\\n')
        ...     os.close(fd)
        >>> channel.connected, channel.lines
        (True, [[3, 'sends a signal', '(1, 9)']])
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / "audit.fifo"
        self.lines: list[list[Any]] = []
        self.connected = False
        self._data = bytearray()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    def env(self, protected: Sequence[str | os.PathLike] = (),
            private: Sequence[str | os.PathLike] = ()) -> dict[str, str]:
        """The environment variables that tell the sentinel where to report and what to watch."""
        def norm(paths: Sequence[str | os.PathLike]) -> str:
            return json.dumps([os.path.normpath(os.path.abspath(p)) for p in paths])

        return {"LESSON_GRADER_CHANNEL": str(self.path),
                "LESSON_GRADER_PROTECTED": norm(protected), "LESSON_GRADER_PRIVATE": norm(private)}

    def __enter__(self) -> AuditChannel:
        os.mkfifo(self.path, 0o600)
        # Read and write: the FIFO then never reports end-of-file, and select() waits for data.
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _drain(self) -> None:
        assert self._fd is not None
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            if len(self._data) < _MAX_CHANNEL_BYTES:
                self._data += chunk

    def _read(self) -> None:
        assert self._fd is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if ready:
                self._drain()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._fd is not None:
            self._drain()
            os.close(self._fd)
        self.path.unlink(missing_ok=True)
        for raw in bytes(self._data).decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if not (isinstance(record, list) and len(record) == 3):
                continue
            if record[1] == "hello":
                self.connected = True
            else:
                self.lines.append(record)


def event_flags(lines: Sequence[Sequence[Any]],
                cell_of_count: Mapping[int, int | None]) -> list[str]:
    """``review`` lines from the audit records, one per cell and kind of event.

    Args:
        lines: ``[execution_count, what, detail]`` records (``AuditChannel.lines``).
        cell_of_count: execution count -> the cell's index in the submission (``None`` for a
            cell the grader put there, such as a grade cell).

    Example:
        >>> event_flags([[4, "starts a process", "('ls',)"], [4, "starts a process", "x"]],
        ...             {4: 7})
        ["cell 7 starts a process (seen while it ran): ('ls',), x"]
    """
    grouped: dict[tuple[Any, str], list[str]] = {}
    for count, what, detail in lines:
        cell: Any = "?"
        if isinstance(count, int) and count in cell_of_count:
            cell = cell_of_count[count]
        details = grouped.setdefault((cell, str(what)), [])
        if detail and str(detail) not in details:
            details.append(str(detail))
    out = []
    for (cell, what), details in grouped.items():
        where = f"cell {cell}" if isinstance(cell, int) else \
            "a grade cell" if cell is None else "the notebook"
        shown = ", ".join(details[:3]) + (f" (+{len(details) - 3} more)" if len(details) > 3
                                          else "")
        out.append(f"{where} {what} (seen while it ran)" + (f": {shown}" if shown else ""))
    return out
