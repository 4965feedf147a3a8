"""A corpus of cheating submissions, each with the outcome the grader must give it.

Every ``*.py`` file here (except ``fixture.py``) is one cheat against the small fixture
assignment in ``fixture.py``: its docstring says what it tries, ``CELLS`` are the code cells it
puts at the top of the student's notebook, ``BASE`` says which notebook it starts from
(``"unsolved"``: the student version; ``"solved"``: the instructor's solutions), and ``EXPECT``
is the outcome ``tests/test_grading_integrity.py`` asserts:

* ``points``: ``{grade_id: points}`` for the cells named (the others are not checked);
* ``review``: substrings that must each appear in the ``review`` column;
* ``notes``: substrings that must each appear in the ``reason`` column;
* ``feedback``: substrings that must each appear in the ``feedback`` column.

``AFTER_CELL`` (optional) names the solution cell (by grade id) after which ``CELLS`` go instead
of the top. ``{source_stem!r}`` in a cell is replaced by the instructor notebook's path without
``.ipynb`` (what a student would guess).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Cheat:
    """One cheating submission and what the grader must make of it."""

    name: str
    doc: str
    cells: tuple[str, ...]
    base: str
    expect: dict[str, Any]
    after_cell: str | None = None  # grade id of the cell the cheat's cells follow


def load_corpus() -> list[Cheat]:
    """Every cheat in this folder, by file name."""
    cheats = []
    for path in sorted(HERE.glob("*.py")):
        if path.name in ("__init__.py", "fixture.py"):
            continue
        spec = importlib.util.spec_from_file_location(f"cheat_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cheats.append(Cheat(path.stem, (module.__doc__ or "").strip(), tuple(module.CELLS),
                            getattr(module, "BASE", "unsolved"), module.EXPECT,
                            getattr(module, "AFTER_CELL", None)))
    return cheats
