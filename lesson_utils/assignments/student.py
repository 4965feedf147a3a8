"""Student versions of the lesson notebooks: solutions out, hidden tests out, outputs cleared.

The markers and the cell metadata are nbgrader's (schema version 3), so ``nbgrader
generate_assignment`` accepts the instructor notebooks as they are and gives the same student
notebooks as ``make_student_notebook``:

* ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` in a code cell becomes ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()``, indented like the ``BEGIN`` line; code outside the markers (a
  ``def`` line, a docstring) stays. In a markdown cell the region becomes ``YOUR ANSWER HERE``. A
  solution cell without markers is replaced whole by the stub (as nbgrader does).
* ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``: **the unit is the region, not the
  cell.** The marked lines are removed from the grade cell that holds them; the cell itself, with
  its visible self-check and its nbgrader metadata (grade id, points), stays, so the student sees
  where the hidden tests run and the grader finds the cell by its grade id. Hidden-test regions
  are allowed only in grade cells.
* Outputs and execution counts are cleared, and nbgrader's locks are set: solution cells cannot
  be deleted, grade cells can be neither deleted nor edited in Jupyter (a convenience for
  students; the grader never trusts the submitted copy of a grade cell anyway).

Markers must sit alone on their line (any number of ``#``, then the words). A line that mentions
a marker in any other way is an error rather than a guess, so a solution can never leak through a
typo.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BEGIN_SOLUTION", "END_SOLUTION", "BEGIN_HIDDEN_TESTS", "END_HIDDEN_TESTS",
    "CODE_STUB", "TEXT_STUB", "MarkerError", "nbgrader_meta", "is_solution_cell",
    "is_grade_cell", "grade_id_of", "replace_regions", "solution_blocks", "source_problems",
    "make_student_notebook", "solution_leaks", "write_student_versions", "read_notebook",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN_TESTS = "### BEGIN HIDDEN TESTS"
END_HIDDEN_TESTS = "### END HIDDEN TESTS"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)

_MARKER_WORDS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_MARKER_LINE = re.compile(r"^(?P<indent>[ \t]*)#+[ \t]*(?P<words>BEGIN SOLUTION|END SOLUTION|"
                          r"BEGIN HIDDEN TESTS|END HIDDEN TESTS)[ \t]*$")
_GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]+$")


class MarkerError(ValueError):
    """Markers that cannot be processed safely (unclosed, nested, in the wrong kind of cell)."""


def _source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def nbgrader_meta(cell: Any) -> dict[str, Any]:
    """The cell's ``nbgrader`` metadata (an empty dict when it has none).

    Example:
        >>> nbgrader_meta({"metadata": {"nbgrader": {"grade": True}}})
        {'grade': True}
    """
    meta = (cell.get("metadata") or {}).get("nbgrader") or {}
    return meta if isinstance(meta, dict) else {}


def is_solution_cell(cell: Any) -> bool:
    """True for a cell marked ``"solution": true`` in its nbgrader metadata."""
    return bool(nbgrader_meta(cell).get("solution"))


def is_grade_cell(cell: Any) -> bool:
    """True for a cell marked ``"grade": true`` (an autograded test cell, with points)."""
    return bool(nbgrader_meta(cell).get("grade"))


def grade_id_of(cell: Any) -> str | None:
    """The cell's nbgrader ``grade_id``, or ``None``."""
    gid = nbgrader_meta(cell).get("grade_id")
    return str(gid) if gid is not None else None


def _marker(line: str) -> tuple[str, str] | None:
    """``(indent, words)`` if ``line`` is a marker line; raises on a malformed marker."""
    match = _MARKER_LINE.match(line)
    if match:
        return match.group("indent"), match.group("words")
    for words in _MARKER_WORDS:
        if words in line:
            raise MarkerError(f"the line {line.strip()!r} mentions {words!r} but is not a marker "
                              f"line: write the marker alone on its line, e.g. '### {words}'")
    return None


def replace_regions(source: str, begin: str, end: str,
                    stub: Iterable[str] | None) -> tuple[str, int]:
    """Replace every ``begin``/``end`` region of ``source`` by ``stub`` (or remove it).

    Args:
        source: a cell's text.
        begin, end: the marker words, e.g. ``"BEGIN SOLUTION"`` / ``"END SOLUTION"``.
        stub: lines put in place of each region, indented like its ``begin`` line; ``None``
            removes the region.

    Returns:
        ``(new_source, number_of_regions)``.

    Example:
        >>> src = "def f(x):\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n    ### END SOLUTION\\n"
        >>> print(replace_regions(src, "BEGIN SOLUTION", "END SOLUTION", CODE_STUB)[0])
        def f(x):
            # YOUR CODE HERE
            raise NotImplementedError()
        <BLANKLINE>
    """
    stub_lines = list(stub) if stub is not None else None
    out: list[str] = []
    inside = False
    count = 0
    for line in source.split("\n"):
        found = _marker(line)
        words = found[1] if found else None
        if words == begin:
            if inside:
                raise MarkerError(f"nested '{begin}': close the first region with '### {end}'")
            inside = True
            count += 1
            if stub_lines is not None:
                out.extend(found[0] + s for s in stub_lines)  # type: ignore[index]
        elif words == end:
            if not inside:
                raise MarkerError(f"'### {end}' without a '### {begin}' before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"'### {begin}' is never closed with '### {end}'")
    return "\n".join(out), count


def solution_blocks(source: str, begin: str = "BEGIN SOLUTION",
                    end: str = "END SOLUTION") -> list[str]:
    """The text inside each ``begin``/``end`` region of ``source`` (markers excluded).

    Example:
        >>> solution_blocks("a\\n### BEGIN SOLUTION\\nb = 1\\n### END SOLUTION\\nc")
        ['b = 1']
    """
    blocks: list[str] = []
    current: list[str] | None = None
    for line in source.split("\n"):
        found = _marker(line)
        words = found[1] if found else None
        if words == begin:
            current = []
        elif words == end and current is not None:
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _code_compiles(source: str) -> str | None:
    """None if ``source`` (IPython syntax allowed) parses as Python, else the error."""
    import ast

    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:  # IPython missing or a transform error: parse the raw text
        pass
    try:
        ast.parse(source)
    except SyntaxError as exc:
        return f"{exc.msg} (line {exc.lineno})"
    return None


def source_problems(nb: Any, name: str = "notebook") -> list[str]:
    """What would stop nbgrader (or this module) from using an instructor notebook.

    Checks: markers closed and not nested; solution regions only in solution cells and hidden
    tests only in grade cells; every nbgrader cell has a valid, unique ``grade_id``; grade cells
    have ``points >= 0``; markdown answers are both solution and grade cells; raw cells are
    neither; each exercise has at least one grade cell.

    Returns:
        A list of problems, each naming the cell (empty when the notebook is fine).

    Example:
        >>> import nbformat
        >>> cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION\\nx = 1\\n### END SOLUTION")
        >>> source_problems(nbformat.v4.new_notebook(cells=[cell]), "nb")
        ["nb cell 0: has a solution region but no nbgrader metadata with 'solution': true"]
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb.get("cells", [])):
        where = f"{name} cell {i}"
        src = _source(cell)
        meta = nbgrader_meta(cell)
        try:
            _, n_solution = replace_regions(src, "BEGIN SOLUTION", "END SOLUTION", None)
            _, n_hidden = replace_regions(src, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", None)
        except MarkerError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if n_solution and not meta.get("solution"):
            problems.append(f"{where}: has a solution region but no nbgrader metadata with "
                            "'solution': true")
        if n_hidden and not meta.get("grade"):
            problems.append(f"{where}: has a hidden-test region but is not a grade cell "
                            "('grade': true with points)")
        if not meta:
            continue
        grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
        gid = meta.get("grade_id")
        if grade or solution or meta.get("locked") or meta.get("task"):
            if not isinstance(gid, str) or not _GRADE_ID.match(gid):
                problems.append(f"{where}: grade_id must be letters, digits, '-' or '_', got "
                                f"{gid!r}")
            elif gid in seen:
                problems.append(f"{where}: grade_id {gid!r} is also used by cell {seen[gid]}")
            else:
                seen[gid] = i
        if grade:
            points = meta.get("points")
            if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
                problems.append(f"{where}: a grade cell needs 'points' >= 0, got {points!r}")
        if cell.get("cell_type") == "markdown" and grade != solution:
            problems.append(f"{where}: a markdown answer must be both a solution and a grade cell")
        if cell.get("cell_type") == "raw" and (grade or solution):
            problems.append(f"{where}: raw cells cannot be solution or grade cells")
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader schema_version must be 3, got "
                            f"{meta.get('schema_version')!r}")
    return problems


def _lock(cell: Any, *, editable: bool) -> None:
    cell.setdefault("metadata", {})
    cell["metadata"]["deletable"] = False
    if not editable:
        cell["metadata"]["editable"] = False


def make_student_notebook(nb: Any, name: str = "notebook") -> Any:
    """Return the student version of the instructor notebook ``nb`` (``nb`` is not changed).

    Raises:
        MarkerError: unclosed or nested markers, a solution region outside a solution cell that
            cannot be given metadata, a hidden-test region outside a grade cell, or a cell that
            no longer parses as Python after the replacement.

    Example:
        >>> import nbformat
        >>> meta = {"nbgrader": {"solution": True, "grade": False, "locked": False,
        ...                      "grade_id": "double", "schema_version": 3}}
        >>> cell = nbformat.v4.new_code_cell(
        ...     "def double(x):\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n    ### END SOLUTION",
        ...     metadata=meta, execution_count=3)
        >>> student = make_student_notebook(nbformat.v4.new_notebook(cells=[cell]))
        >>> print(student.cells[0].source)
        def double(x):
            # YOUR CODE HERE
            raise NotImplementedError()
        >>> student.cells[0].execution_count is None
        True
    """
    out = copy.deepcopy(nb)
    used_ids = {grade_id_of(c) for c in out.get("cells", [])} - {None}
    for i, cell in enumerate(out.get("cells", [])):
        where = f"{name} cell {i}"
        cell_type = cell.get("cell_type")
        src = _source(cell)
        meta = nbgrader_meta(cell)
        stub = CODE_STUB if cell_type == "code" else TEXT_STUB
        try:
            src, n_solution = replace_regions(src, "BEGIN SOLUTION", "END SOLUTION", stub)
            src, n_hidden = replace_regions(src, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", None)
        except MarkerError as exc:
            raise MarkerError(f"{where}: {exc}") from None
        if n_hidden and not meta.get("grade"):
            raise MarkerError(f"{where}: hidden tests are only allowed in grade cells (nbgrader "
                              "metadata 'grade': true with points)")
        if n_solution and not meta.get("solution"):
            if meta.get("grade"):
                raise MarkerError(f"{where}: a solution region inside a grade cell")
            # nbgrader refuses solution regions outside solution cells: give the cell the
            # metadata it needs, with a grade id that is unique in this notebook.
            k = 1
            while f"{name}-solution-{k}" in used_ids:
                k += 1
            gid = re.sub(r"[^a-zA-Z0-9_\-]", "-", f"{name}-solution-{k}")
            used_ids.add(gid)
            meta = {"grade": False, "grade_id": gid, "locked": False, "schema_version": 3,
                    "solution": True}
            cell.setdefault("metadata", {})["nbgrader"] = meta
        if meta.get("solution") and not n_solution and cell_type in ("code", "markdown"):
            src = "\n".join(stub)  # nbgrader: a solution cell without markers is all answer
        if cell_type == "code" and (n_solution or n_hidden):
            error = _code_compiles(src)
            if error:
                raise MarkerError(f"{where}: the student version does not parse ({error}); "
                                  "put the markers around whole statements")
        cell["source"] = src
        if cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        if meta.get("grade") or meta.get("locked"):
            _lock(cell, editable=bool(meta.get("solution")))
        elif meta.get("solution"):
            _lock(cell, editable=True)
    leftovers = [i for i, c in enumerate(out.get("cells", []))
                 if any(w in _source(c) for w in _MARKER_WORDS)]
    if leftovers:  # cannot happen after replace_regions; a last guard against leaking
        raise MarkerError(f"{name}: markers left in cells {leftovers}")
    return out


def _solution_lines(nb: Any) -> tuple[set[str], set[str]]:
    """(lines inside solution/hidden regions, lines outside them), stripped and non-empty."""
    inside: set[str] = set()
    outside: set[str] = set()
    for cell in nb.get("cells", []):
        src = _source(cell)
        hidden = set()
        for block in (solution_blocks(src) + solution_blocks(src, "BEGIN HIDDEN TESTS",
                                                             "END HIDDEN TESTS")):
            hidden.update(line.strip() for line in block.split("\n") if line.strip())
        rest, _ = replace_regions(src, "BEGIN SOLUTION", "END SOLUTION", None)
        rest, _ = replace_regions(rest, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", None)
        outside.update(line.strip() for line in rest.split("\n") if line.strip())
        inside |= hidden
    return inside, outside


def solution_leaks(instructor: Any, student: Any) -> list[str]:
    """Lines of solutions or hidden tests that are still in the student notebook.

    A line counts only if it is not also written outside the marked regions of the instructor
    notebook (``return x`` may legitimately appear elsewhere). Markers count as leaks too.

    Example:
        >>> import nbformat
        >>> cell = nbformat.v4.new_code_cell("### BEGIN SOLUTION\\nanswer = 42\\n### END SOLUTION")
        >>> nb = nbformat.v4.new_notebook(cells=[cell])
        >>> solution_leaks(nb, nb)
        ['### BEGIN SOLUTION', '### END SOLUTION', 'answer = 42']
    """
    inside, outside = _solution_lines(instructor)
    secret = inside - outside
    leaks = set()
    for cell in student.get("cells", []):
        for line in _source(cell).split("\n"):
            stripped = line.strip()
            if stripped in secret or any(w in stripped for w in _MARKER_WORDS):
                leaks.add(stripped)
    return sorted(leaks)


def read_notebook(path: str | os.PathLike) -> Any:
    """Read an ``.ipynb`` file as an nbformat v4 notebook."""
    import nbformat

    return nbformat.read(os.fspath(path), as_version=4)


@dataclass
class StudentVersion:
    """One written student notebook."""

    source: Path
    dest: Path
    exercises: int  # solution regions replaced
    hidden_tests: int  # hidden-test regions removed
    points: float  # total points of the grade cells


def write_student_versions(src_dir: str | os.PathLike, dest_dir: str | os.PathLike,
                           ) -> list[StudentVersion]:
    """Write the student version of every ``*.ipynb`` in ``src_dir`` into ``dest_dir``.

    Files are written atomically. ``dest_dir`` must not be ``src_dir``, and an existing file
    in ``dest_dir`` that contains solution markers is never overwritten (it looks like an
    instructor notebook).

    Returns:
        One ``StudentVersion`` per notebook, in file-name order.

    Example:
        >>> import tempfile
        >>> write_student_versions(tempfile.mkdtemp(), tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        ValueError: src_dir ... has no .ipynb files
    """
    import nbformat

    from lesson_utils.checkpoints import atomic_write_bytes

    src, dest = Path(src_dir), Path(dest_dir)
    if not src.is_dir():
        raise ValueError(f"src_dir must be a folder of notebooks, got {src} (not a folder)")
    if dest.exists() and dest.resolve() == src.resolve():
        raise ValueError(f"dest_dir must differ from src_dir ({src}): writing the student "
                         "version there would delete the solutions")
    paths = sorted(p for p in src.glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise ValueError(f"src_dir {src} has no .ipynb files")
    planned: list[tuple[Path, Path, Any, StudentVersion]] = []
    for path in paths:  # build everything first: one bad notebook writes nothing
        nb = read_notebook(path)
        student = make_student_notebook(nb, path.stem)
        target = dest / path.name
        if target.exists() and BEGIN_SOLUTION in target.read_text(errors="replace"):
            raise ValueError(f"refusing to overwrite {target}: it contains solution markers, so "
                             "it looks like an instructor notebook")
        exercises = sum(len(solution_blocks(_source(c))) for c in nb.cells)
        hidden = sum(len(solution_blocks(_source(c), "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"))
                     for c in nb.cells)
        points = sum(float(nbgrader_meta(c).get("points", 0) or 0)
                     for c in nb.cells if is_grade_cell(c))
        planned.append((path, target, student,
                        StudentVersion(path, target, exercises, hidden, points)))
    written = []
    for _, target, student, info in planned:
        atomic_write_bytes(target, (nbformat.writes(student) + "\n").encode("utf-8"))
        written.append(info)
    return written
