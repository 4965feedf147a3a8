"""Grade a folder of submitted notebooks into a CSV of points per exercise.

For each submission the grader

1. reads it as JSON and as a notebook; a file that is not valid JSON or has no cells gets a row
   that says so, and grading goes on with the next one;
2. puts the instructor's grade cells in it: every cell that the *instructor's* notebook marks
   ``"grade": true`` is taken from there by its nbgrader ``grade_id`` (self-check **and** hidden
   tests), never from the submission. A grade cell the student edited is replaced, one they
   deleted is put back after the exercise it belongs to (the row notes it), duplicates are
   dropped;
3. prepares a fresh working folder; if the instructor notebook names a grading setup in its
   metadata (``{"lesson_utils": {"grading_setup": "lesson_utils.module:function"}}``), the
   grader calls it there with a fresh random secret (the capstone writes its hidden test set
   this way, and only the grade cell learns the secret);
4. runs every cell in a fresh offline kernel with one time limit for the notebook
   (``lesson_utils.assignments.kernel``); the kernel's process group is killed on time-out;
5. gives a grade cell its points when the kernel reports it ran without an exception *and* it
   printed the cell's random pass marker (see ``_runner.py``: the checkers are re-loaded from
   verified files for every grade cell);
6. checks that the course's own files were not changed by the submission, restores them if they
   were, and notes it in that student's row.

Threat model, in one paragraph (the README's "For instructors" section has the long form): the
student's code runs with the grader's permissions, in-process with the checkers. The grader
protects against editing, deleting or moving grade cells, redefining checker names,
monkeypatching ``lesson_utils`` modules, hiding exceptions from the notebook, reading the hidden
test labels from disk (they are never written there), infinite loops, crashing the kernel,
endless output, and one submission changing the course files for the next ones. It does **not**
protect against a student who patches Python, torch or IPython themselves, reads the instructor's
notebook from disk, or damages files outside the course package: run it on a copy, as a user who
can write nothing else, or in a container. Suspicious code is listed in the ``review`` column.
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
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesson_utils.assignments.student import (
    grade_id_of,
    is_grade_cell,
    nbgrader_meta,
    read_notebook,
    replace_regions,
    source_problems,
)

__all__ = [
    "GradeCell", "GradingPlan", "CellScore", "NotebookGrade", "StudentGrade",
    "grading_plan", "grade_cell_source", "build_grading_notebook", "grade_notebook",
    "find_submissions", "grade_submissions", "write_grades_csv", "review_flags",
]

_RUNNER_PATH = Path(__file__).with_name("_runner.py")
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # lesson_utils/
_NOT_RELOADED = {"lesson_utils", "lesson_utils.offline"}
MAX_SUBMISSION_BYTES = 50 * 2**20


# ----------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class GradeCell:
    """One instructor grade cell: what runs, what it is worth, which checker files it trusts."""

    grade_id: str
    points: float
    source: str  # the instructor's full cell, hidden tests included
    has_hidden_tests: bool
    modules: tuple[tuple[str, str, str, bool], ...]  # (name, file, sha256, is_package)


@dataclass(frozen=True)
class GradingPlan:
    """What the grader takes from one instructor notebook, computed before any student runs."""

    name: str  # the notebook's file name, e.g. "08_assignment.ipynb"
    cells: tuple[GradeCell, ...]
    order: tuple[str, ...]  # grade ids of all nbgrader cells, in the instructor's order
    setup: str | None  # "lesson_utils.module:function" or None

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.cells)


def _transform(source: str) -> str:
    try:
        from IPython.core.inputtransformer2 import TransformerManager

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


def grading_plan(path: str | os.PathLike,
                 package_root: str | os.PathLike | None = None) -> GradingPlan:
    """Read an instructor notebook and list its grade cells, points and trusted checker files.

    ``package_root``: see ``checker_modules``.

    Raises:
        ValueError: the notebook has no grade cells, or ``source_problems`` finds problems in
            its metadata or markers.

    Example:
        >>> plan = grading_plan("notebooks/01_models.ipynb")
        >>> [(c.grade_id, c.points) for c in plan.cells][:2]
        [('01-count-trainable-check', 1), ('01-buffer-names-check', 1)]
    """
    path = Path(path)
    nb = read_notebook(path)
    problems = source_problems(nb, path.name)
    if problems:
        raise ValueError(f"{path} cannot be graded:\n  " + "\n  ".join(problems))
    cells = []
    order = []
    for cell in nb.cells:
        gid = grade_id_of(cell)
        if gid is None:
            continue
        order.append(gid)
        if not is_grade_cell(cell) or cell.cell_type != "code":
            continue
        _, hidden = replace_regions(cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", None)
        cells.append(GradeCell(gid, nbgrader_meta(cell).get("points", 0), cell.source,
                               bool(hidden), checker_modules(cell.source, package_root)))
    if not cells:
        raise ValueError(f"{path} has no grade cells (code cells with nbgrader 'grade': true)")
    setup = (nb.metadata.get("lesson_utils") or {}).get("grading_setup")
    if setup is not None and (not isinstance(setup, str) or ":" not in setup
                              or not setup.startswith("lesson_utils.")):
        raise ValueError(f"{path}: metadata lesson_utils.grading_setup must look like "
                         f"'lesson_utils.module:function', got {setup!r}")
    return GradingPlan(path.name, tuple(cells), tuple(order), setup)


# ----------------------------------------------------------------------------- one notebook

def grade_cell_source(cell: GradeCell, marker: str,
                      secrets: dict[str, dict[str, Any]] | None = None) -> str:
    """The code the grader runs in place of a grade cell (see ``_runner.py``).

    Only cells with hidden tests receive the grading secrets, and only for modules the cell
    loads fresh, so no secret is left on a module the student's later cells can reach.
    """
    runner = _RUNNER_PATH.read_text()
    names = {m[0] for m in cell.modules}
    given = {m: v for m, v in (secrets or {}).items() if m in names} if cell.has_hidden_tests \
        else {}
    return (f"# Grade cell {cell.grade_id!r} ({cell.points:g} points), restored from the "
            f"instructor's notebook by the grader.\n"
            f"__grader__ = {{}}\n"
            f"exec({runner!r}, __grader__)\n"
            f"__grader__['run_grade_cell']({cell.source!r}, {list(cell.modules)!r}, "
            f"{given!r}, {marker!r}, globals())\n"
            f"del __grader__\n")


def build_grading_notebook(submission: Any, plan: GradingPlan, markers: dict[str, str],
                           secrets: dict[str, dict[str, Any]] | None = None,
                           ) -> tuple[Any, dict[str, int], list[str]]:
    """Put the instructor's grade cells into a copy of ``submission``.

    Returns:
        ``(notebook, {grade_id: cell index}, notes)``; notes say which grade cells were missing
        (and put back) or duplicated (and dropped).
    """
    import nbformat

    graded = {c.grade_id: c for c in plan.cells}
    cells: list[Any] = []
    position_of: dict[str, Any] = {}  # grade id -> the cell object carrying it
    notes: list[str] = []
    for cell in submission.cells:
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
    for grade in plan.cells:
        position_of[grade.grade_id].source = grade_cell_source(
            grade, markers[grade.grade_id], secrets)
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    index = {gid: next(i for i, c in enumerate(cells) if c is position_of[gid])
             for gid in graded}
    return nb, index, notes


_REVIEW_PATTERNS = [
    ("changes how IPython reports errors",
     r"set_custom_exc|showtraceback|\.run_cell\b|\.run_code\b|sys\.excepthook"),
    ("touches the import system", r"sys\.modules|importlib|\breload\(|__import__"),
    ("assigns to an attribute of a library module",
     r"(?m)^\s*(lesson_utils|torch|np|numpy|nn|F|sklearn|builtins|__builtins__|math)"
     r"(\.\w+)+\s*=(?!=)"),
    ("uses setattr/delattr", r"\b(setattr|delattr)\("),
    ("reads cell history or stack frames", r"\b_ih\b|\bIn\[|\b_i\d|_getframe|\binspect\."),
    ("opens notebooks or the course's files", r"\.ipynb|lesson_utils/|site-packages|__file__"),
    ("starts processes or uses the network",
     r"\bsubprocess\b|os\.system|os\.fork|os\.exec|\bsocket\b|urllib|requests\.|http\.client"),
    ("mentions the grader", r"__grader__|run_grade_cell|GRADING_SECRETS|grading_setup"),
    ("uses exec/eval/compile", r"(?<![.\w])(exec|eval|compile)\("),
]


def review_flags(submission: Any, graded_ids: Sequence[str] = ()) -> list[str]:
    """Things in the student's code an instructor may want to look at (never changes points).

    Example:
        >>> import nbformat
        >>> cell = nbformat.v4.new_code_cell("import lesson_utils.checks.models as m\\n"
        ...                                  "m.check_count_trainable = lambda f: True")
        >>> review_flags(nbformat.v4.new_notebook(cells=[cell]))
        ['cell 0 assigns to an attribute of a library module']
    """
    cells = [(i, c) for i, c in enumerate(getattr(submission, "cells", []))
             if c.get("cell_type") == "code" and grade_id_of(c) not in graded_ids]
    trees = {}
    modules: set[str] = set()
    for i, cell in cells:
        try:
            trees[i] = ast.parse(_transform(str(cell.get("source", ""))))
        except SyntaxError:
            continue
        for node in ast.walk(trees[i]):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules.update(a.asname or a.name.split(".")[0] for a in node.names)
    flags = []
    for i, cell in cells:
        source = str(cell.get("source", ""))
        found = [what for what, pattern in _REVIEW_PATTERNS if re.search(pattern, source)]
        for node in ast.walk(trees.get(i, ast.Module(body=[], type_ignores=[]))):
            targets = (node.targets if isinstance(node, ast.Assign) else
                       [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for target in targets:
                if isinstance(target, ast.Attribute) and _root_name(target) in modules:
                    found.append("assigns to an attribute of a library module")
        flags += [f"cell {i} {what}" for what in dict.fromkeys(found)]
    return flags


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


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

    @property
    def points(self) -> float:
        return sum(s.points for s in self.scores)

    @property
    def max_points(self) -> float:
        return sum(s.max_points for s in self.scores)


def _zero(plan: GradingPlan, path: str | None, reason: str, seconds: float = 0.0,
          ) -> NotebookGrade:
    return NotebookGrade(plan.name, path, [CellScore(c.grade_id, 0, c.points, "not graded")
                                           for c in plan.cells], "error", reason,
                         seconds=seconds)


def _load_submission(path: Path) -> Any:
    """The submission as an nbformat v4 notebook, or raise ValueError saying what is wrong."""
    import nbformat

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


def _resolve_setup(name: str) -> Callable[[Path, int], dict[str, dict[str, Any]]]:
    module_name, _, function = name.partition(":")
    return getattr(importlib.import_module(module_name), function)


def _first_line(text: str, limit: int = 240) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def grade_notebook(submission_path: str | os.PathLike | None, plan: GradingPlan, *,
                   timeout: float = 600, workdir: str | os.PathLike | None = None,
                   env: dict[str, str] | None = None) -> NotebookGrade:
    """Grade one submitted notebook against ``plan`` (see ``grading_plan``).

    Args:
        submission_path: the student's ``.ipynb``.
        plan: the instructor notebook's grading plan.
        timeout: seconds for the whole notebook (kernel start excluded).
        workdir: the kernel's working folder (default: a fresh temporary folder, removed after).
        env: extra environment variables for the kernel.

    Returns:
        A ``NotebookGrade``; it never raises for anything the submission contains.
    """
    from lesson_utils.assignments.kernel import run_cells

    started = time.monotonic()
    if submission_path is None:
        return _zero(plan, None, f"no {plan.name} submitted")
    path = Path(submission_path)
    try:
        submission = _load_submission(path)
    except (OSError, ValueError) as exc:
        return _zero(plan, str(path), str(exc))
    markers = {c.grade_id: f"[grader] {c.grade_id} passed {_secrets.token_hex(16)}"
               for c in plan.cells}
    own_dir = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="lesson-grade-")) if own_dir else Path(workdir)
    try:
        secrets: dict[str, dict[str, Any]] = {}
        if plan.setup:
            try:
                secrets = _resolve_setup(plan.setup)(folder, _secrets.randbits(62)) or {}
            except Exception as exc:  # the grader's problem, not the student's: say so
                return _zero(plan, str(path), f"grader setup {plan.setup} failed "
                                              f"({type(exc).__name__}: {exc}); grade again",
                             time.monotonic() - started)
        nb, index, notes = build_grading_notebook(submission, plan, markers, secrets)
        run = run_cells(nb, cwd=folder, timeout=timeout, keep_outputs=set(index.values()),
                        env=env)
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
    scores = []
    for cell in plan.cells:
        record = run.cells[index[cell.grade_id]]
        if record.status == "ok" and markers[cell.grade_id] in record.stdout:
            scores.append(CellScore(cell.grade_id, cell.points, cell.points))
            continue
        if record.status == "error":
            detail = _first_line(record.evalue)
            why = f"{record.ename}: {detail}" if detail else record.ename
        elif record.status == "ok":
            why = "the cell did not finish normally (no pass marker)"
        else:
            why = "not run"
        scores.append(CellScore(cell.grade_id, 0, cell.points, why))
    grade = NotebookGrade(plan.name, str(path), scores, notes=notes,
                          review=review_flags(submission, [c.grade_id for c in plan.cells]))

    def where(i: int | None) -> str:
        return f"cell {i} ({_first_line(nb.cells[i].source, 60)!r})" if i is not None else "?"

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


def grade_submissions(
    submissions: str | os.PathLike,
    *,
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    timeout: float = 600,
    progress: Callable[[StudentGrade], None] | None = None,
    watch_repository: bool = True,
) -> list[StudentGrade]:
    """Grade every student in ``submissions`` against the instructor notebook(s) ``source``.

    Kernels run on a private copy of the course package (``PYTHONPATH``), restored after every
    submission, so one submission cannot change what the next one imports.

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

    Returns:
        One ``StudentGrade`` per student, sorted by name.
    """
    source = Path(source)
    if source.is_dir():
        paths = sorted(p for p in source.glob("*.ipynb") if not p.name.startswith("."))
        paths = [p for p in paths if any(is_grade_cell(c) for c in read_notebook(p).cells)]
        if not paths:
            raise ValueError(f"source folder {source} has no notebook with grade cells")
    elif source.is_file():
        paths = [source]
    else:
        raise ValueError(f"source must be an instructor notebook or a folder of them, got "
                         f"{source} (it does not exist)")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    for p in paths:
        grading_plan(p)  # fail early, before copying anything, on a bad instructor notebook
    out_path = Path(out).resolve() if out is not None else None
    with tempfile.TemporaryDirectory(prefix="lesson-grader-course-") as private:
        package = _private_course(Path(private))
        plans = [grading_plan(p, package) for p in paths]
        ids = [c.grade_id for p in plans for c in p.cells]
        duplicated = sorted({g for g in ids if ids.count(g) > 1})
        if duplicated:
            raise ValueError(f"grade ids {duplicated} appear in more than one source notebook")
        for plan in plans:
            if plan.setup:
                _resolve_setup(plan.setup)
        by_name = {p.name: p for p in plans}
        students = find_submissions(submissions, list(by_name))
        env = {"PYTHONPATH": os.pathsep.join(
            [private] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        snapshot = _snapshot(Path(private))
        results: list[StudentGrade] = []
        for student, files, notes in students:
            if any(p is not None and p.resolve() == out_path for p in files.values()):
                continue
            before = _digests(_PACKAGE_ROOT) if watch_repository else {}
            grades = [grade_notebook(files[name], plan, timeout=timeout, env=env)
                      for name, plan in by_name.items()]
            row = StudentGrade(student, grades, list(notes))
            changed = _restore(Path(private), snapshot)
            if changed:
                row.notes.append("the submission changed the grader's copy of the course "
                                 "(restored): " + ", ".join(changed))
            if watch_repository:
                after = _digests(_PACKAGE_ROOT)
                touched = sorted(k for k in before.keys() | after.keys()
                                 if before.get(k) != after.get(k))
                if touched:
                    row.notes.append("lesson_utils files in the repository changed while this "
                                     "submission ran (check `git status`): "
                                     + ", ".join(touched))
            results.append(row)
            if out_path is not None:
                write_grades_csv(results, out_path, plans)
            if progress is not None:
                progress(row)
        if out_path is not None:
            write_grades_csv(results, out_path, plans)
    return results


def write_grades_csv(rows: Sequence[StudentGrade], path: str | os.PathLike,
                     plans: Sequence[GradingPlan]) -> Path:
    """Write one row per student: points per grade cell, total, status, reason, feedback.

    Columns: ``student``, one per grade id (in the instructor's order), ``total``,
    ``max_points``, ``status`` (``ok``/``error``), ``reason`` (why a notebook could not be
    graded to the end, and notes), ``feedback`` (why points were lost, e.g. the self-check's
    hint), ``review`` (code an instructor may want to read), ``seconds``. The file is written
    atomically.
    """
    from lesson_utils.checkpoints import atomic_write_bytes

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
