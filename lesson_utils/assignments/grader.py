"""Grade a folder of submitted notebooks into a CSV of points per exercise.

For each submission the grader

1. reads it as JSON and as a notebook; a file that is not valid JSON or has no cells gets a row
   that says so, and grading goes on with the next one;
2. puts the instructor's grade cells in it: every cell that the *instructor's* notebook marks
   ``"grade": true`` is taken from there by its nbgrader ``grade_id`` (self-check **and** hidden
   tests), never from the submission. A grade cell the student edited is replaced, one they
   deleted is put back after the exercise it belongs to (the row notes it), duplicates are
   dropped. A grade cell whose metadata names a *judge* (``{"lesson_utils": {"judge":
   "name"}}``) becomes a placeholder: it is judged outside the kernel (step 6). A cell that
   reports the interpreter's hooks is put before the first cell (the baseline);
3. prepares a fresh working folder; if the instructor notebook names a grading setup in its
   metadata (``{"lesson_utils": {"grading_setup": "lesson_utils.module:function"}}``), the
   grader calls it there, in its own process; it writes what the notebook needs (the
   capstone's test images) and returns the judges, which keep their secrets (the test labels)
   in the grader's memory (``lesson_utils.assignments.judging``);
4. runs every cell in a fresh offline kernel with one time limit for the notebook
   (``lesson_utils.assignments.kernel``), with an audit hook that reports what the notebook does
   through a FIFO (``_sentinel.py``); with ``isolate=True`` the kernel runs in its own
   namespaces (``lesson_utils.assignments.sandbox``). When the kernel ends, its process group is
   killed and so is any process that escaped it (``lesson_utils.assignments.processes``);
5. gives an in-kernel grade cell its points when the kernel reports it ran without an exception,
   it printed the cell's random pass marker, and its hook report matches the baseline and shows
   the cell's text was not rewritten (``lesson_utils.assignments.integrity``); the checkers are
   re-loaded from verified files for every grade cell (``_runner.py``);
6. calls the judges on the files the notebook left in its working folder (the capstone's
   ``predictions.csv``): those points never depend on anything the kernel says;
7. lists in ``review`` what the student's code does that an instructor should read: static
   findings (``lesson_utils.assignments.review``), audit events, tampering, escaped processes;
8. checks that the course's own files were not changed by the submission, restores them if they
   were, and notes it in that student's row.

Threat model, in one paragraph (the README's "What the grader protects against" has the long
form): the student's code runs with the grader's permissions, in-process with the in-kernel
checks. A hidden test judged outside the kernel cannot be forged from it; tampering with the
interpreter is detected by the hook reports and audit events, or flagged by the static review,
but a student who studies the grader can still forge an in-kernel check. ``isolate=True``
takes away the network, the rest of the file system and the grader's process.
"""

from __future__ import annotations

import ast
import copy
import csv
import hashlib
import importlib
import importlib.util
import io
import json
import os
import re
import secrets as _secrets
import shutil
import site
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from lesson_utils.assignments.integrity import (
    AuditChannel,
    CellEvidence,
    cell_problems,
    clean_start_problems,
    compare,
    event_flags,
    injected_code,
    read_report,
    sentinel_startup,
)
from lesson_utils.assignments.judging import Judge, Verdict, check_judges
from lesson_utils.assignments.kernel import NotebookRun, run_cells
from lesson_utils.assignments.processes import child_pids, grader_guards, kill_escaped
from lesson_utils.assignments.review import review_flags
from lesson_utils.assignments.sandbox import HOME, Sandbox, isolation_problem
from lesson_utils.assignments.student import (
    grade_id_of,
    is_grade_cell,
    nbgrader_meta,
    read_notebook,
    replace_regions,
    source_problems,
)
from lesson_utils.checkpoints import atomic_write_bytes

__all__ = [
    "GradeCell", "GradingPlan", "CellScore", "NotebookGrade", "StudentGrade",
    "grading_plan", "grade_cell_source", "build_grading_notebook", "grade_notebook",
    "find_submissions", "grade_submissions", "write_grades_csv", "review_flags",
    "checker_modules", "baseline_cell_source", "Safeguards",
]

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # lesson_utils/
_NOT_RELOADED = {"lesson_utils", "lesson_utils.offline"}
MAX_SUBMISSION_BYTES = 50 * 2**20
_SUBMITTED = "lesson_utils_submitted_index"  # grading copy's cell metadata: index in submission
_PROCESS_EVENTS = ("starts a process", "runs a shell command", "forks the kernel")


# ----------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class GradeCell:
    """One instructor grade cell: what runs, what it is worth, which checker files it trusts.

    ``judge`` names the grading setup's judge for a cell judged outside the kernel (then the
    cell does not run in the kernel at all).
    """

    grade_id: str
    points: float
    source: str  # the instructor's full cell, hidden tests included
    has_hidden_tests: bool
    modules: tuple[tuple[str, str, str, bool], ...]  # (name, file, sha256, is_package)
    judge: str | None = None


@dataclass(frozen=True)
class GradingPlan:
    """What the grader takes from one instructor notebook, computed before any student runs."""

    name: str  # the notebook's file name, e.g. "08_assignment.ipynb"
    cells: tuple[GradeCell, ...]
    order: tuple[str, ...]  # grade ids of all nbgrader cells, in the instructor's order
    setup: str | None  # "lesson_utils.module:function" or None
    known_sources: tuple[str, ...] = ()  # the instructor's code cells (not flagged in review)

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.cells)


def _transform(source: str) -> str:
    try:
        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def _module_file(name: str) -> tuple[str, bool] | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return spec.origin, spec.submodule_search_locations is not None


def _imported_lesson_modules(tree: ast.AST, package: str) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.append(base)
            for alias in node.names:  # `from lesson_utils.checks import models`
                if _module_file(f"{base}.{alias.name}") is not None:
                    names.append(f"{base}.{alias.name}")
    return [n for n in names if n.startswith("lesson_utils.") and n not in _NOT_RELOADED]


def checker_modules(source: str, package_root: str | os.PathLike | None = None,
                    ) -> tuple[tuple[str, str, str, bool], ...]:
    """The ``lesson_utils`` modules a grade cell imports, with the modules they import, as
    ``(name, file, sha256, is_package)`` in dependency order (dependencies first).

    ``package_root``: a copy of the ``lesson_utils`` folder to point the files into (the grader
    runs kernels on a private copy of the course); default: the installed package.

    Example:
        >>> [m[0] for m in checker_modules("from lesson_utils.checks.models import check_x")]
        ['lesson_utils.checks._core', 'lesson_utils.checks.models']
    """
    try:
        tree = ast.parse(_transform(source))
    except SyntaxError:
        return ()
    ordered: list[tuple[str, str, str, bool]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        found = _module_file(name)
        if found is None:
            return
        path, is_package = found
        if package_root is not None:
            path = str(Path(package_root) / Path(path).resolve().relative_to(_PACKAGE_ROOT))
        data = Path(path).read_bytes()
        package = name if is_package else name.rpartition(".")[0]
        for dep in _imported_lesson_modules(ast.parse(data), package):
            visit(dep)
        ordered.append((name, path, hashlib.sha256(data).hexdigest(), is_package))

    for name in _imported_lesson_modules(tree, ""):
        visit(name)
    return tuple(ordered)


def _judge_of(cell: Any, where: str) -> str | None:
    meta = (cell.get("metadata") or {}).get("lesson_utils") or {}
    judge = meta.get("judge") if isinstance(meta, dict) else None
    if judge is not None and (not isinstance(judge, str) or not judge):
        raise ValueError(f"{where}: metadata lesson_utils.judge must be a judge's name (a "
                         f"non-empty str), got {judge!r}")
    return judge


def grading_plan(path: str | os.PathLike,
                 package_root: str | os.PathLike | None = None) -> GradingPlan:
    """Read an instructor notebook and list its grade cells, points and trusted checker files.

    ``package_root``: see ``checker_modules``.

    Raises:
        ValueError: the notebook has no grade cells, ``source_problems`` finds problems in
            its metadata or markers, or a cell names a judge but the notebook no grading setup.

    Example:
        >>> plan = grading_plan("notebooks/01_models.ipynb")
        >>> [(c.grade_id, c.points) for c in plan.cells][:2]
        [('01-centered-mlp-check', 1), ('01-port-state-dict-check', 1)]
    """
    path = Path(path)
    nb = read_notebook(path)
    problems = source_problems(nb, path.name)
    if problems:
        raise ValueError(f"{path} cannot be graded:\n  " + "\n  ".join(problems))
    cells = []
    order = []
    for i, cell in enumerate(nb.cells):
        gid = grade_id_of(cell)
        if gid is None:
            continue
        order.append(gid)
        if not is_grade_cell(cell) or cell.cell_type != "code":
            continue
        _, hidden = replace_regions(cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", None)
        judge = _judge_of(cell, f"{path.name} cell {i}")
        modules = checker_modules(cell.source, package_root) if judge is None else ()
        cells.append(GradeCell(gid, nbgrader_meta(cell).get("points", 0), cell.source,
                               bool(hidden), modules, judge))
    if not cells:
        raise ValueError(f"{path} has no grade cells (code cells with nbgrader 'grade': true)")
    setup = (nb.metadata.get("lesson_utils") or {}).get("grading_setup")
    if setup is not None and (not isinstance(setup, str) or ":" not in setup
                              or not setup.startswith("lesson_utils.")):
        raise ValueError(f"{path}: metadata lesson_utils.grading_setup must look like "
                         f"'lesson_utils.module:function', got {setup!r}")
    judged = [c.grade_id for c in cells if c.judge is not None]
    if judged and setup is None:
        raise ValueError(f"{path}: grade cells {judged} name a judge, but the notebook's "
                         "metadata names no lesson_utils.grading_setup to make it")
    known = tuple(c.source for c in nb.cells if c.cell_type == "code" and c.source.strip())
    return GradingPlan(path.name, tuple(cells), tuple(order), setup, known)


# ----------------------------------------------------------------------------- one notebook

def grade_cell_source(cell: GradeCell, marker: str, tag: str | None = None) -> str:
    """The code the grader runs in place of a grade cell (see ``_runner.py``).

    ``marker`` is printed when the checks pass, ``tag`` starts the cell's hook report (default:
    the marker followed by ``" report"``). A cell judged outside the kernel becomes a
    placeholder that runs nothing.

    Example:
        >>> cell = GradeCell("g", 1, "assert True", False, ())
        >>> print(grade_cell_source(cell, "M").splitlines()[0])
        # Grade cell 'g' (1 points), restored from the instructor's notebook by the grader.
    """
    if cell.judge is not None:
        return (f"# Grade cell {cell.grade_id!r} ({cell.points:g} points): judged by the "
                f"grader after this notebook has finished,\n# outside this kernel, on the "
                f"files the notebook wrote. Nothing runs here.\npass\n")
    tag = tag if tag is not None else marker + " report"
    call = (f"run_grade_cell({_transform(cell.source)!r}, {list(cell.modules)!r}, {marker!r}, "
            f"{tag!r})")
    return injected_code(f"Grade cell {cell.grade_id!r} ({cell.points:g} points), restored "
                         "from the instructor's notebook by the grader.", call)


def baseline_cell_source(tag: str) -> str:
    """The grader's first cell: the hook report before any student code runs.

    Example:
        >>> baseline_cell_source("[t]").splitlines()[0]
        "# The grader's baseline: the interpreter's hooks before any student code runs."
    """
    return injected_code("The grader's baseline: the interpreter's hooks before any student "
                         "code runs.", f"report({tag!r}, _user_namespace())")


def _placed_cells(submission: Any, plan: GradingPlan) -> tuple[list[Any], dict[str, Any],
                                                                 list[str]]:
    """The submission's cells with every grade cell present once (a placeholder where it was
    missing), ``{grade_id: cell object}`` and notes on what was put back or dropped."""
    graded = {c.grade_id: c for c in plan.cells}
    cells: list[Any] = []
    position_of: dict[str, Any] = {}  # grade id -> the cell object carrying it
    notes: list[str] = []
    for i, cell in enumerate(submission.cells):
        cell = copy.deepcopy(cell)
        if cell.cell_type == "code":
            cell.outputs = []
        gid = grade_id_of(cell)
        if gid in graded:
            if gid in position_of:
                notes.append(f"dropped a duplicate of grade cell {gid}")
                continue
            if cell.cell_type != "code":
                cell = nbformat.v4.new_code_cell("", metadata=cell.get("metadata", {}))
        cell.setdefault("metadata", {})[_SUBMITTED] = i  # where it was in the submission
        if gid is not None and gid not in position_of:
            position_of[gid] = cell
        cells.append(cell)
    for grade in plan.cells:
        if grade.grade_id in position_of:
            continue
        new = nbformat.v4.new_code_cell(
            "", metadata={"nbgrader": {"grade": True, "grade_id": grade.grade_id}})
        k = plan.order.index(grade.grade_id)
        before = [g for g in reversed(plan.order[:k]) if g in position_of]
        after = [g for g in plan.order[k + 1:] if g in position_of]
        if before:
            at = next(i for i, c in enumerate(cells) if c is position_of[before[0]]) + 1
        elif after:
            at = next(i for i, c in enumerate(cells) if c is position_of[after[0]])
        else:
            at = len(cells)
        cells.insert(at, new)
        position_of[grade.grade_id] = new
        notes.append(f"grade cell {grade.grade_id} was missing: put back")
    return cells, position_of, notes


def build_grading_notebook(submission: Any, plan: GradingPlan, markers: dict[str, str],
                           baseline_tag: str | None = None,
                           tags: Mapping[str, str] | None = None,
                           ) -> tuple[Any, dict[str, int], list[str]]:
    """Put the instructor's grade cells into a copy of ``submission``.

    Args:
        submission: the student's notebook (not changed).
        plan: the instructor notebook's grading plan.
        markers: ``{grade_id: pass marker}``.
        baseline_tag: when given, a first cell reports the interpreter's hooks after this tag.
        tags: ``{grade_id: report tag}`` (see ``grade_cell_source``).

    Returns:
        ``(notebook, {grade_id: cell index}, notes)``; notes say which grade cells were missing
        (and put back) or duplicated (and dropped).

    Example:
        >>> plan = GradingPlan("x.ipynb", (GradeCell("g", 1, "assert True", False, ()),), ("g",),
        ...                    None)
        >>> meta = {"nbgrader": {"grade": True, "grade_id": "g"}}
        >>> edited = nbformat.v4.new_code_cell("print('trust me')", metadata=meta)
        >>> nb, index, notes = build_grading_notebook(nbformat.v4.new_notebook(cells=[edited]),
        ...                                           plan, {"g": "MARK"}, "[base]")
        >>> index, notes, "trust me" in nb.cells[1].source, "MARK" in nb.cells[1].source
        ({'g': 1}, [], False, True)
    """
    cells, position_of, notes = _placed_cells(submission, plan)
    for grade in plan.cells:
        position_of[grade.grade_id].source = grade_cell_source(
            grade, markers[grade.grade_id], (tags or {}).get(grade.grade_id))
    if baseline_tag is not None:
        cells.insert(0, nbformat.v4.new_code_cell(baseline_cell_source(baseline_tag)))
    graded = {c.grade_id for c in plan.cells}
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    index = {gid: next(i for i, c in enumerate(cells) if c is position_of[gid])
             for gid in graded}
    return nb, index, notes


@dataclass
class CellScore:
    """The points of one grade cell in one submission."""

    grade_id: str
    points: float
    max_points: float
    message: str = ""  # why points were lost


@dataclass
class NotebookGrade:
    """The result of grading one submitted notebook."""

    notebook: str
    path: str | None
    scores: list[CellScore]
    status: str = "ok"  # "ok" (ran to the end) or "error" (see reason)
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    seconds: float = 0.0
    baseline: dict[str, Any] | None = field(default=None, repr=False)  # the first hook report

    @property
    def points(self) -> float:
        return sum(s.points for s in self.scores)

    @property
    def max_points(self) -> float:
        return sum(s.max_points for s in self.scores)


@dataclass(frozen=True)
class Safeguards:
    """How a submission's kernel runs: isolated or not, and what its audit hook watches.

    Args:
        sandbox: run the kernel in its own namespaces (``grade --isolate``); ``None``: not.
        protected: folders nothing may write into (reported when something does).
        private: folders nothing should read (reported when something does).
        package_root: the ``lesson_utils`` folder the kernel imports (the grader's private copy
            when it grades a folder); the audit sentinel is read from there.
    """

    sandbox: Sandbox | None = None
    protected: tuple[str, ...] = ()
    private: tuple[str, ...] = ()
    package_root: Path = _PACKAGE_ROOT


def _zero(plan: GradingPlan, path: str | None, reason: str, seconds: float = 0.0,
          ) -> NotebookGrade:
    return NotebookGrade(plan.name, path, [CellScore(c.grade_id, 0, c.points, "not graded")
                                           for c in plan.cells], "error", reason,
                         seconds=seconds)


def _load_submission(path: Path) -> Any:
    """The submission as an nbformat v4 notebook, or raise ValueError saying what is wrong."""
    size = path.stat().st_size
    if size > MAX_SUBMISSION_BYTES:
        raise ValueError(f"the file is {size / 2**20:.0f} MB, more than the "
                         f"{MAX_SUBMISSION_BYTES // 2**20} MB a notebook may have")
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid JSON: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}); was the file saved completely?") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ValueError("not a notebook: the JSON has no 'cells' list")
    try:
        with warnings.catch_warnings():  # e.g. cells without ids, from older editors
            warnings.simplefilter("ignore")
            nb = nbformat.reads(json.dumps(data), as_version=4)
    except Exception as exc:
        raise ValueError(f"not a readable notebook ({type(exc).__name__}: {exc})") from None
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown",
                                                                        "raw"):
            raise ValueError(f"not a readable notebook: cell {i} has no valid cell_type")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
        if not isinstance(cell.get("source", ""), str):
            raise ValueError(f"not a readable notebook: cell {i}'s source is not text")
        cell.setdefault("metadata", {})
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    return nb


def _resolve_setup(name: str) -> Callable[[Path], Any]:
    module_name, _, function = name.partition(":")
    return getattr(importlib.import_module(module_name), function)


def _judges(plan: GradingPlan, folder: Path) -> dict[str, Judge]:
    """Run the plan's grading setup in ``folder``; ``{grade_id: judge}`` for judged cells."""
    if not plan.setup:
        return {}
    wanted = {c.grade_id: c.judge for c in plan.cells if c.judge is not None}
    made = _resolve_setup(plan.setup)(folder)
    return check_judges(made, wanted) if wanted else {}


def _first_line(text: str, limit: int = 240) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class _Run:
    """One submission's kernel run and everything observed around it."""

    nb: Any
    index: dict[str, int]  # grade id -> cell index in nb
    markers: dict[str, str]
    tags: dict[str, str]
    baseline_tag: str
    run: NotebookRun | None = None
    audit: list[list[Any]] = field(default_factory=list)
    audit_connected: bool = False
    escaped: list[str] = field(default_factory=list)


def _execute(work: _Run, folder: Path, timeout: float, env: dict[str, str] | None,
             guards: Safeguards) -> None:
    """Run the grading notebook with the audit channel open; kill what outlives the kernel."""
    keep = set(work.index.values()) | {0}
    with tempfile.TemporaryDirectory(prefix="lesson-audit-") as channel_dir, \
            AuditChannel(channel_dir) as channel:
        sandbox = guards.sandbox
        if sandbox is not None:
            sandbox = Sandbox(sandbox.readonly, (*sandbox.writable, channel_dir), sandbox.copies)
        before = child_pids()
        env = {**(env or {}), **channel.env(guards.protected, guards.private)}
        sentinel = sentinel_startup(Path(guards.package_root) / "assignments" / "_sentinel.py")
        work.run = run_cells(work.nb, cwd=folder, timeout=timeout, keep_outputs=keep, env=env,
                             startup=[sentinel], sandbox=sandbox)
        work.escaped = kill_escaped(before)
    work.audit, work.audit_connected = channel.lines, channel.connected


def _kernel_score(cell: GradeCell, work: _Run, baseline: dict[str, Any] | None,
                  ) -> tuple[CellScore, list[str]]:
    """Points of an in-kernel grade cell, and review lines when it was tampered with."""
    assert work.run is not None
    i = work.index[cell.grade_id]
    record = work.run.cells[i]
    marker = work.markers[cell.grade_id]
    problems = cell_problems(CellEvidence(record.status, record.stdout, marker,
                                          work.tags[cell.grade_id], work.nb.cells[i].source),
                             baseline)
    flags = [f"grade cell {cell.grade_id}: {p}" for p in problems]
    if record.status == "ok" and marker in record.stdout and not problems:
        return CellScore(cell.grade_id, cell.points, cell.points), flags
    if problems:
        why = "not trusted: " + "; ".join(problems)
    elif record.status == "error":
        detail = _first_line(record.evalue)
        why = f"{record.ename}: {detail}" if detail else record.ename
    elif record.status == "ok":
        why = "the cell did not finish normally (no pass marker)"
    else:
        why = "not run"
    return CellScore(cell.grade_id, 0, cell.points, why), flags


def _judged_score(cell: GradeCell, judge: Judge, folder: Path) -> CellScore:
    """Points of a grade cell judged outside the kernel, on the files in ``folder``."""
    try:
        verdict = judge(folder)
    except Exception as exc:  # a judge must not stop the grading of the others
        verdict = Verdict(False, f"the grader's judge failed ({type(exc).__name__}: {exc})")
    if not isinstance(verdict, Verdict):
        verdict = Verdict(False, f"the grader's judge returned {type(verdict).__name__}, not "
                                 "a Verdict")
    if verdict.passed:
        return CellScore(cell.grade_id, cell.points, cell.points)
    return CellScore(cell.grade_id, 0, cell.points, verdict.message)


def _observed(work: _Run, baseline: dict[str, Any] | None, known: set[str],
              ) -> tuple[list[str], list[str]]:
    """(review lines, notes) from the baseline, the audit events and escaped processes.

    ``known``: the instructor's code cells (stripped), whose starting of processes is theirs.
    """
    assert work.run is not None
    review, notes = [], []
    if baseline is not None and clean_start_problems(baseline):
        review.append("the kernel started with hooks no clean kernel has (left by an earlier "
                      "submission?): " + "; ".join(clean_start_problems(baseline)))
    # While a cell runs, IPython's count is one more than the one the kernel's reply gives.
    counts = {c.execution_count + 1: work.nb.cells[i].metadata.get(_SUBMITTED)
              for i, c in enumerate(work.run.cells) if c.execution_count is not None}
    # The instructor's own cells may start processes (a library's helper): not the student's.
    own = {c.execution_count + 1 for i, c in enumerate(work.run.cells)
           if c.execution_count is not None and work.nb.cells[i].source.strip() in known}
    audit = [line for line in work.audit
             if not (line[0] in own and line[1] in _PROCESS_EVENTS)]
    review += event_flags(audit, counts)
    if work.escaped:
        review.append("left processes running after the kernel ended (killed): "
                      + ", ".join(work.escaped[:5]))
    if not work.audit_connected and work.run.outcome != "kernel failed to start":
        notes.append("the grader's audit hook did not start in the kernel (no audit events)")
    return review, notes


def _run_status(grade: NotebookGrade, work: _Run, timeout: float) -> None:
    run = work.run
    assert run is not None

    def where(i: int | None) -> str:
        return f"cell {i} ({_first_line(work.nb.cells[i].source, 60)!r})" if i is not None \
            else "?"

    if run.outcome == "timeout":
        grade.status = "error"
        grade.reason = (f"timed out: the notebook ran longer than {timeout:g} s (stopped in "
                        f"{where(run.stopped_at)})")
    elif run.outcome == "kernel died":
        grade.status = "error"
        at = f" in {where(run.stopped_at)}" if run.stopped_at is not None else ""
        grade.reason = (f"the kernel died{at}: the code crashed Python, exited, or ran out of "
                        f"memory" + (f" ({run.message})" if run.message else ""))
    elif run.outcome == "kernel failed to start":
        grade.status = "error"
        grade.reason = f"the kernel failed to start ({run.message})"


def _scores(plan: GradingPlan, work: _Run, judges: Mapping[str, Judge], folder: Path,
            ) -> tuple[list[CellScore], list[str], dict[str, Any] | None]:
    """Every grade cell's score, review lines on tampering, and the baseline report."""
    assert work.run is not None
    baseline = read_report(work.run.cells[0].stdout, work.baseline_tag)
    scores, review = [], []
    for cell in plan.cells:
        if cell.judge is not None:
            scores.append(_judged_score(cell, judges[cell.grade_id], folder))
            continue
        score, flags = _kernel_score(cell, work, baseline)
        scores.append(score)
        review += flags
    return scores, review, baseline


def grade_notebook(submission_path: str | os.PathLike | None, plan: GradingPlan, *,
                   timeout: float = 600, workdir: str | os.PathLike | None = None,
                   env: dict[str, str] | None = None,
                   safeguards: Safeguards | None = None) -> NotebookGrade:
    """Grade one submitted notebook against ``plan`` (see ``grading_plan``).

    Args:
        submission_path: the student's ``.ipynb``.
        plan: the instructor notebook's grading plan.
        timeout: seconds for the whole notebook (kernel start excluded).
        workdir: the kernel's working folder (default: a fresh temporary folder, removed after).
        env: extra environment variables for the kernel.
        safeguards: isolation and what the audit hook watches (default: none of either).

    Returns:
        A ``NotebookGrade``; it never raises for anything the submission contains.

    Example:
        >>> plan = grading_plan("notebooks/01_models.ipynb")
        >>> grade = grade_notebook(None, plan)
        >>> grade.points, grade.status, grade.reason
        (0, 'error', 'no 01_models.ipynb submitted')
    """
    started = time.monotonic()
    if submission_path is None:
        return _zero(plan, None, f"no {plan.name} submitted")
    path = Path(submission_path)
    try:
        submission = _load_submission(path)
    except (OSError, ValueError) as exc:
        return _zero(plan, str(path), str(exc))
    guards = safeguards or Safeguards()
    markers = {c.grade_id: f"[grader] {c.grade_id} passed {_secrets.token_hex(16)}"
               for c in plan.cells}
    tags = {c.grade_id: f"[grader report {_secrets.token_hex(16)}]" for c in plan.cells}
    baseline_tag = f"[grader baseline {_secrets.token_hex(16)}]"
    own_dir = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="lesson-grade-")) if own_dir else Path(workdir)
    try:
        try:
            judges = _judges(plan, folder)
        except Exception as exc:  # the grader's problem, not the student's: say so
            return _zero(plan, str(path), f"grader setup {plan.setup} failed "
                                          f"({type(exc).__name__}: {exc}); grade again",
                         time.monotonic() - started)
        nb, index, notes = build_grading_notebook(submission, plan, markers, baseline_tag, tags)
        work = _Run(nb, index, markers, tags, baseline_tag)
        _execute(work, folder, timeout, env, guards)
        scores, tampered, baseline = _scores(plan, work, judges, folder)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
    review, more_notes = _observed(work, baseline, {t.strip() for t in plan.known_sources})
    graded = [c.grade_id for c in plan.cells]
    grade = NotebookGrade(plan.name, str(path), scores, notes=notes + more_notes,
                          review=review_flags(submission, graded, plan.known_sources)
                          + tampered + review, baseline=baseline)
    _run_status(grade, work, timeout)
    grade.seconds = time.monotonic() - started
    return grade


# ----------------------------------------------------------------------------- a folder

@dataclass
class StudentGrade:
    """One row of ``grades.csv``: a student's notebooks, graded."""

    student: str
    notebooks: list[NotebookGrade]
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> float:
        return sum(n.points for n in self.notebooks)

    @property
    def max_points(self) -> float:
        return sum(n.max_points for n in self.notebooks)

    @property
    def status(self) -> str:
        return "ok" if all(n.status == "ok" for n in self.notebooks) else "error"

    @property
    def reason(self) -> str:
        parts = [f"{n.notebook}: {n.reason}" if len(self.notebooks) > 1 else n.reason
                 for n in self.notebooks if n.reason]
        return "; ".join(parts + self.notes + [x for n in self.notebooks for x in n.notes])


def find_submissions(folder: str | os.PathLike, names: Sequence[str],
                     ) -> list[tuple[str, dict[str, Path | None], list[str]]]:
    """Match the files in ``folder`` to students and notebooks.

    Two layouts: ``folder/<student>.ipynb`` (one notebook per student, when ``names`` has one
    name), and ``folder/<student>/.../<notebook>.ipynb`` (nbgrader's ``submitted/<student>/
    <assignment>/`` works as is). In a student's folder, a single notebook with another file name
    is accepted for a one-notebook assignment (students rename files), and noted.

    Returns:
        ``[(student, {notebook name: path or None}, notes)]`` sorted by student.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "alice.ipynb").write_text("{}")
        >>> (folder / "bob").mkdir()
        >>> _ = (folder / "bob" / "my copy.ipynb").write_text("{}")
        >>> for student, files, notes in find_submissions(folder, ["08.ipynb"]):
        ...     print(student, files["08.ipynb"].name, notes)
        alice alice.ipynb []
        bob my copy.ipynb ['graded my copy.ipynb as 08.ipynb']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"submissions must be a folder, got {folder} (not a folder)")
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            if len(names) == 1:
                found.append((entry.stem, {names[0]: entry}, []))
            else:
                found.append((entry.stem, dict.fromkeys(names), [
                    "a single file was submitted for a multi-notebook assignment: put each "
                    "student's notebooks in a folder named after the student"]))
        elif entry.is_dir():
            notebooks = sorted(p for p in entry.rglob("*.ipynb")
                               if ".ipynb_checkpoints" not in p.parts)
            matched: dict[str, Path | None] = {}
            notes = []
            for name in names:
                exact = [p for p in notebooks if p.name == name]
                if exact:
                    matched[name] = exact[0]
                    if len(exact) > 1:
                        notes.append(f"{len(exact)} copies of {name}: graded "
                                     f"{exact[0].relative_to(entry)}")
                elif len(names) == 1 and len(notebooks) == 1:
                    matched[name] = notebooks[0]
                    notes.append(f"graded {notebooks[0].relative_to(entry)} as {name}")
                else:
                    matched[name] = None
            found.append((entry.name, matched, notes))
    return found


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _restore(root: Path, snapshot: dict[Path, bytes]) -> list[str]:
    """Put back the files under ``root`` a submission changed, deleted or added.

    Only ever called on the grader's private copy of the course.
    """
    changed = []
    for path, data in snapshot.items():
        try:
            same = path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            path.write_bytes(data)
            changed.append(str(path.relative_to(root)))
    for path in sorted(root.rglob("*"), reverse=True):
        if path not in snapshot and (path.is_file() or path.is_symlink()):
            path.unlink()
            changed.append(f"{path.relative_to(root)} (added)")
    return changed


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.py")) if p.is_file()}


def _private_course(folder: Path) -> Path:
    """Copy the course package (and its pretrained weights) into ``folder``; return the copy of
    ``lesson_utils``. Kernels import this copy, so a submission that damages it is undone
    before the next one runs, and the repository's files are never written by the grader."""
    package = folder / "lesson_utils"
    shutil.copytree(_PACKAGE_ROOT, package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    pretrained = _PACKAGE_ROOT.parent / "data" / "pretrained"
    if pretrained.is_dir():
        shutil.copytree(pretrained, folder / "data" / "pretrained")
    return package


def _source_paths(source: Path) -> list[Path]:
    if source.is_dir():
        paths = sorted(p for p in source.glob("*.ipynb") if not p.name.startswith("."))
        paths = [p for p in paths if any(is_grade_cell(c) for c in read_notebook(p).cells)]
        if not paths:
            raise ValueError(f"source folder {source} has no notebook with grade cells")
        return paths
    if source.is_file():
        return [source]
    raise ValueError(f"source must be an instructor notebook or a folder of them, got "
                     f"{source} (it does not exist)")


def _font_cache() -> tuple[tuple[str, str], ...]:
    """matplotlib's font list, copied into a sandbox's fresh home (else it is rebuilt)."""
    home = Path(os.environ.get("MPLCONFIGDIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib")
    return tuple((str(p), f"{HOME}/.matplotlib/{p.name}") for p in home.glob("fontlist-*.json"))


def _safeguards(isolate: bool, private: Path, package: Path, paths: Sequence[Path],
                submissions: Path, out_path: Path | None) -> tuple[Safeguards, dict[str, str]]:
    """What the kernels may not touch, and the sandbox when isolating; with the kernels' env."""
    secret = [str(submissions.resolve()), *(str(p.resolve().parent) for p in paths)]
    if out_path is not None:
        secret.append(str(out_path))
    protected = [str(private), str(_PACKAGE_ROOT.parent), sys.prefix, *site.getsitepackages(),
                 *secret]
    env = {"PYTHONPATH": os.pathsep.join(
        [str(private)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    sandbox = None
    if isolate:
        sandbox = Sandbox(readonly=(str(private),), copies=_font_cache())
        env.update({"MPLCONFIGDIR": f"{HOME}/.matplotlib", "XDG_CACHE_HOME": f"{HOME}/.cache",
                    "XDG_CONFIG_HOME": f"{HOME}/.config", "TORCH_HOME": f"{HOME}/.cache/torch"})
    return Safeguards(sandbox, tuple(protected), tuple(secret), package), env


def _check_start(row: StudentGrade, first: dict[str, dict[str, Any]]) -> None:
    """Note when a kernel started with other hooks than the first submission's kernel did."""
    for grade in row.notebooks:
        if grade.baseline is None:
            continue
        reference = first.setdefault(grade.notebook, grade.baseline)
        changed = compare(reference, grade.baseline, identities=False)
        if changed:
            grade.review.append("the kernel started with other hooks than the first "
                                "submission's kernel (left by an earlier submission?): "
                                + "; ".join(changed))


def grade_submissions(
    submissions: str | os.PathLike,
    *,
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    timeout: float = 600,
    progress: Callable[[StudentGrade], None] | None = None,
    watch_repository: bool = True,
    isolate: bool = False,
) -> list[StudentGrade]:
    """Grade every student in ``submissions`` against the instructor notebook(s) ``source``.

    Kernels run on a private copy of the course package (``PYTHONPATH``), restored after every
    submission, so one submission cannot change what the next one imports. While grading, the
    grader is the subreaper of its kernels' processes and cannot be traced by them
    (``lesson_utils.assignments.processes``).

    Args:
        submissions: a folder (see ``find_submissions`` for the layouts).
        source: an instructor notebook, or a folder of them (then every student has a folder).
        out: where to write the CSV (atomically, after each student, so an interrupted run
            keeps the rows done so far).
        timeout: seconds per notebook.
        progress: called with each student's grade as soon as it is known.
        watch_repository: note in a student's row when the repository's own ``lesson_utils``
            files changed while that submission ran (the grader never writes them; restore
            them with git).
        isolate: run every kernel in its own namespaces (``lesson_utils.assignments.sandbox``).

    Returns:
        One ``StudentGrade`` per student, sorted by name.

    Raises:
        ValueError: bad ``source``, ``submissions`` or ``timeout``.
        RuntimeError: ``isolate=True`` on a machine that cannot isolate (the message says what
            is missing and the fallbacks).

    Example:
        >>> import tempfile
        >>> grade_submissions(tempfile.mkdtemp(), source="notebooks/01_models.ipynb")
        []
        >>> grade_submissions(tempfile.mkdtemp(), source="notebooks/01_models.ipynb", timeout=0)
        Traceback (most recent call last):
        ...
        ValueError: timeout must be > 0 seconds, got 0
    """
    paths = _source_paths(Path(source))
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    if isolate and isolation_problem() is not None:
        raise RuntimeError(isolation_problem())
    for p in paths:
        grading_plan(p)  # fail early, before copying anything, on a bad instructor notebook
    out_path = Path(out).resolve() if out is not None else None
    with tempfile.TemporaryDirectory(prefix="lesson-grader-course-") as private, \
            grader_guards():
        package = _private_course(Path(private))
        plans = _plans(paths, package)
        by_name = {p.name: p for p in plans}
        students = find_submissions(submissions, list(by_name))
        guards, env = _safeguards(isolate, Path(private), package, paths, Path(submissions),
                                  out_path)
        snapshot = _snapshot(Path(private))
        results: list[StudentGrade] = []
        first: dict[str, dict[str, Any]] = {}
        for student, files, notes in students:
            if any(p is not None and p.resolve() == out_path for p in files.values()):
                continue
            before = _digests(_PACKAGE_ROOT) if watch_repository else {}
            grades = [grade_notebook(files[name], plan, timeout=timeout, env=env,
                                     safeguards=guards) for name, plan in by_name.items()]
            row = StudentGrade(student, grades, list(notes))
            _after_student(row, Path(private), snapshot, before if watch_repository else None)
            _check_start(row, first)
            results.append(row)
            if out_path is not None:
                write_grades_csv(results, out_path, plans)
            if progress is not None:
                progress(row)
        if out_path is not None:
            write_grades_csv(results, out_path, plans)
    return results


def _plans(paths: Sequence[Path], package: Path) -> list[GradingPlan]:
    plans = [grading_plan(p, package) for p in paths]
    ids = [c.grade_id for p in plans for c in p.cells]
    duplicated = sorted({g for g in ids if ids.count(g) > 1})
    if duplicated:
        raise ValueError(f"grade ids {duplicated} appear in more than one source notebook")
    for plan in plans:
        if plan.setup:
            _resolve_setup(plan.setup)  # imports the setup (and what judges need) before any
            # student code runs
    return plans


def _after_student(row: StudentGrade, private: Path, snapshot: dict[Path, bytes],
                   before: dict[str, str] | None) -> None:
    """Restore the private course copy and note what the submission changed."""
    changed = _restore(private, snapshot)
    if changed:
        row.notes.append("the submission changed the grader's copy of the course "
                         "(restored): " + ", ".join(changed))
        row.notebooks[0].review.append("changed the grader's copy of the course: "
                                       + ", ".join(changed[:5]))
    if before is not None:
        after = _digests(_PACKAGE_ROOT)
        touched = sorted(k for k in before.keys() | after.keys()
                         if before.get(k) != after.get(k))
        if touched:
            row.notes.append("lesson_utils files in the repository changed while this "
                             "submission ran (check `git status`): " + ", ".join(touched))


def write_grades_csv(rows: Sequence[StudentGrade], path: str | os.PathLike,
                     plans: Sequence[GradingPlan]) -> Path:
    """Write one row per student: points per grade cell, total, status, reason, feedback.

    Columns: ``student``, one per grade id (in the instructor's order), ``total``,
    ``max_points``, ``status`` (``ok``/``error``), ``reason`` (why a notebook could not be
    graded to the end, and notes), ``feedback`` (why points were lost, e.g. the self-check's
    hint), ``review`` (code an instructor may want to read), ``seconds``. The file is written
    atomically.

    Example:
        >>> import tempfile
        >>> plan = GradingPlan("x.ipynb", (GradeCell("g", 2, "", False, ()),), ("g",), None)
        >>> row = StudentGrade("alice", [NotebookGrade("x.ipynb", None, [CellScore("g", 2, 2)])])
        >>> path = write_grades_csv([row], Path(tempfile.mkdtemp()) / "grades.csv", [plan])
        >>> path.read_text().splitlines()[1]
        'alice,2,2,2,ok,,,,0.0'
    """
    ids = [c.grade_id for p in plans for c in p.cells]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *ids, "total", "max_points", "status", "reason", "feedback",
                     "review", "seconds"])
    for row in rows:
        scores = {s.grade_id: s for n in row.notebooks for s in n.scores}
        feedback = "; ".join(f"{s.grade_id}: {s.message}" for s in scores.values()
                             if s.points < s.max_points and s.message != "not graded")
        review = "; ".join(r for n in row.notebooks for r in n.review)
        writer.writerow([row.student, *(f"{scores[g].points:g}" for g in ids),
                         f"{row.points:g}", f"{row.max_points:g}", row.status, row.reason,
                         feedback, review, f"{sum(n.seconds for n in row.notebooks):.1f}"])
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
