"""Check a lesson before handing it out: its student version is clean and stops only at exercises.

"Stops only at exercise cells" means, precisely, that when the student version is run top to
bottom (errors allowed):

* every error happens in an *exercise cell* (a solution cell or a grade cell) or in a cell that
  *depends* on one (it reads a name that an exercise defines, directly or through another
  dependent cell);
* every such error is ``NotImplementedError`` (the stub), a ``NameError`` for a name an exercise
  defines (the stub stopped before defining it), or, in a grade cell, ``CheckFailed`` (a checker
  that turned the stub's error into a hint);
* every grade cell fails: a self-check that passes on the stub could never fail (a grade cell
  whose student version has no code left holds only hidden tests, and is exempt).

Cells that neither depend on an exercise nor feed one are byte-for-byte the instructor's and are
already executed by nbval, so ``fast=True`` skips them: it runs only the backward slice (by
variable names) of the exercise cells and their dependents. Name analysis is approximate
(objects mutated through method calls, files), so when a fast run finds a problem the whole
notebook is run again and only that run's findings count.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lesson_utils.assignments.student import (
    is_grade_cell,
    is_solution_cell,
    make_student_notebook,
    read_notebook,
    solution_leaks,
    source_problems,
)

__all__ = ["CellNames", "cell_names", "exercise_plan", "CellReport", "VerifyReport",
           "verify_student_version"]

Role = Literal["solution", "grade", "dependent", "needed", "other"]


@dataclass(frozen=True)
class CellNames:
    """Global names a code cell reads and binds (``opaque``: cannot be analysed, keep it)."""

    reads: frozenset[str]
    binds: frozenset[str]  # assigned, defined or imported at the top level
    imports: frozenset[str]
    opaque: bool = False
    mutated: frozenset[str] = frozenset()  # changed in place (attribute, item, method call)

    def produces(self, modules: set[str]) -> frozenset[str]:
        """Names this cell creates or changes, leaving out changes to imported modules."""
        return self.binds | (self.mutated - modules)


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def cell_names(source: str) -> CellNames:
    """Over-approximate the global names a cell reads and binds.

    Reads: every name loaded anywhere in the cell, function bodies included (they read globals
    when called). Binds: names bound at the top level (assignments, ``def``/``class``, imports,
    ``for`` targets). Mutated: objects changed in place at the top level (``model.head = ...``,
    ``d[k] = v``, ``model.load_state_dict(...)``); ``produces`` counts them as outputs of the
    cell unless they are modules. Names local to functions, lambdas and comprehensions do not
    count.

    Example:
        >>> names = cell_names("import torch\\nmodel.head = torch.nn.Linear(4, n)\\n"
        ...                    "def f(x):\\n    y = x\\n    return y")
        >>> sorted(names.reads), sorted(names.binds), sorted(names.mutated)
        (['model', 'n', 'torch', 'x', 'y'], ['f', 'torch'], ['model', 'torch'])
    """
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:
        pass
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return CellNames(frozenset(), frozenset(), frozenset(), opaque=True)
    reads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
             and isinstance(n.ctx, ast.Load)}
    binds: set[str] = set()
    imports: set[str] = set()
    mutated: set[str] = set()
    # Code inside a magic (%time, %%capture, ...) is a string to the parser: keep such cells.
    opaque = "run_cell_magic(" in source or "run_line_magic(" in source
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
              ast.SetComp, ast.DictComp, ast.GeneratorExp)

    def top_level(node: ast.AST) -> None:
        nonlocal opaque
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(node.name)
            for d in node.decorator_list:
                top_level(d)
            return
        if isinstance(node, scopes):
            return
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            binds.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    opaque = True
                else:
                    imports.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Global):
            binds.update(node.names)
        elif isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx,
                                                                                 ast.Load):
            base = _base_name(node)
            if base:
                mutated.add(base)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = _base_name(node.func)
            if base:
                mutated.add(base)
        for child in ast.iter_child_nodes(node):
            top_level(child)

    top_level(tree)
    return CellNames(frozenset(reads), frozenset(binds | imports), frozenset(imports),
                     opaque, frozenset(mutated))


@dataclass
class CellReport:
    """One code cell of the student version, after the run."""

    index: int
    role: Role
    status: str  # "ok", "error", "skipped", "not run"
    ename: str = ""
    evalue: str = ""
    problem: str = ""


@dataclass
class VerifyReport:
    """Everything ``verify_student_version`` found; ``ok`` when there is nothing to fix."""

    notebook: str
    problems: list[str] = field(default_factory=list)  # metadata/marker problems
    leaks: list[str] = field(default_factory=list)  # solution lines left in the student version
    cells: list[CellReport] = field(default_factory=list)
    execution_problems: list[str] = field(default_factory=list)
    fast: bool = False  # whether the reported run skipped cells
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.problems or self.leaks or self.execution_problems)

    def summary(self) -> str:
        lines = [f"{self.notebook}: {'OK' if self.ok else 'PROBLEMS'}"]
        for label, items in [("metadata/markers", self.problems),
                             ("solution text left", self.leaks),
                             ("execution", self.execution_problems)]:
            lines += [f"  {label}: {item}" for item in items]
        if self.cells:
            run = [c for c in self.cells if c.status != "skipped"]
            stops = [c.index for c in self.cells if c.status == "error"]
            lines.append(f"  ran {len(run)} of {len(self.cells)} code cells "
                         f"({'fast' if self.fast else 'all'}) in {self.seconds:.1f} s; "
                         f"stopped (as expected) at cells {stops}")
        return "\n".join(lines)


def exercise_plan(instructor: Any, student: Any) -> tuple[dict[int, Role], set[str], set[int]]:
    """Roles of the code cells, the names exercises define, and the cells a fast run needs.

    Returns:
        ``(roles, exercise_names, needed)``: ``roles[i]`` for every code cell; the names that
        the instructor's solution cells bind, grown by the dependents' bindings; the indices
        of the cells a fast run must execute.
    """
    code = [i for i, c in enumerate(student.cells) if c.cell_type == "code"]
    names = {i: cell_names(student.cells[i].source) for i in code}
    modules = set().union(*(n.imports for n in names.values()))
    exercise_names: set[str] = set()
    roles: dict[int, Role] = {}
    for i in code:
        if is_solution_cell(instructor.cells[i]):
            roles[i] = "solution"
            solved = cell_names(instructor.cells[i].source)
            exercise_names |= solved.produces(modules) - solved.imports
        elif is_grade_cell(instructor.cells[i]):
            roles[i] = "grade"
        else:
            roles[i] = "other"
    first = min((i for i in code if roles[i] != "other"), default=len(student.cells))
    for i in code:
        if roles[i] == "other" and i > first and names[i].reads & exercise_names:
            roles[i] = "dependent"
            exercise_names |= names[i].produces(modules) - names[i].imports
    needed: set[int] = set()
    wanted: set[str] = set()
    for i in reversed(code):
        if roles[i] != "other" or names[i].opaque or names[i].produces(modules) & wanted:
            needed.add(i)
            wanted |= names[i].reads
            if roles[i] == "other":
                roles[i] = "needed"
    return roles, exercise_names, needed


_NAME_ERROR = re.compile(r"name '([^']+)' is not defined")


def _has_code(source: str) -> bool:
    try:
        return bool(ast.parse(source).body)
    except SyntaxError:
        return True


def _judge(roles: dict[int, Role], exercise_names: set[str], run: Any, student: Any,
           ) -> tuple[list[CellReport], list[str]]:
    reports: list[CellReport] = []
    problems: list[str] = []
    for i, role in roles.items():
        record = run.cells[i]
        report = CellReport(i, role, record.status, record.ename, record.evalue)
        if record.status == "error":
            missing = _NAME_ERROR.search(record.evalue)
            allowed = role in ("solution", "grade", "dependent") and (
                record.ename == "NotImplementedError"
                or (record.ename == "NameError" and missing is not None
                    and missing.group(1) in exercise_names)
                or (role == "grade" and record.ename == "CheckFailed"))
            if not allowed:
                first_line = record.evalue.strip().splitlines()[0] if record.evalue.strip() \
                    else ""
                report.problem = (f"cell {i} ({role}) stopped with {record.ename}: "
                                  f"{first_line[:200]}")
        elif role == "grade" and record.status == "ok" and _has_code(student.cells[i].source):
            # (a grade cell whose visible part is empty holds only hidden tests)
            report.problem = (f"cell {i} (grade) passed on the stub: its check cannot fail")
        if report.problem:
            problems.append(report.problem)
        reports.append(report)
    if run.outcome != "completed":
        problems.append(f"the run ended early: {run.outcome} at cell {run.stopped_at} "
                        f"{run.message}".strip())
    return reports, problems


def verify_student_version(path: str | os.PathLike, *, execute: bool = True,
                           fast: bool = True, timeout: float = 600,
                           cwd: str | os.PathLike | None = None) -> VerifyReport:
    """Make the student version of the notebook at ``path`` and check it.

    Args:
        path: an instructor notebook.
        execute: run the student version (otherwise only the static checks).
        fast: run only the cells the exercises need (see the module docstring); a problem
            found that way is confirmed by a full run.
        timeout: seconds for the run.
        cwd: the kernel's working folder (default: a fresh temporary folder, as when grading,
            so files left by an earlier run of the instructor notebook cannot make a check pass).

    Returns:
        A ``VerifyReport``; ``report.ok`` is True when there is nothing to fix.

    Example:
        >>> report = verify_student_version("notebooks/01_models.ipynb", execute=False)
        >>> report.ok, report.leaks
        (True, [])
    """
    from lesson_utils.assignments.kernel import run_cells

    path = Path(path)
    instructor = read_notebook(path)
    report = VerifyReport(path.name, problems=source_problems(instructor, path.name))
    try:
        student = make_student_notebook(instructor, path.stem)
    except ValueError as exc:
        report.problems.append(str(exc))
        return report
    report.leaks = solution_leaks(instructor, student)
    if not execute:
        return report
    roles, exercise_names, needed = exercise_plan(instructor, student)
    for attempt_fast in ([True, False] if fast else [False]):
        skip = {i for i in roles if i not in needed} if attempt_fast else set()
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="lesson-verify-") as scratch:
            run = run_cells(copy.deepcopy(student), cwd=cwd if cwd is not None else scratch,
                            timeout=timeout, skip=skip)
        report.seconds = time.monotonic() - start
        report.cells, report.execution_problems = _judge(roles, exercise_names, run, student)
        report.fast = attempt_fast
        if not report.execution_problems:
            break
    return report
