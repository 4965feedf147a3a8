"""The shape of the house, enforced: no import cycle (module-level or inside functions), no
import in the middle of a module, no function body over 80 lines, one training loop, and a
README module map that names every module."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lesson_utils"
MAX_BODY_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _imported(node: ast.Import | ast.ImportFrom, importer: str) -> list[str]:
    """The ``lesson_utils`` modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer if _is_package(importer) else importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}".rstrip(".")
        # `from pkg import sub` loads the submodule `pkg.sub` when there is one.
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in _modules() else base
                 for a in node.names]
    found = []
    for name in names:
        while name and name not in _modules():
            name = name.rpartition(".")[0]  # `import lesson_utils.x.y` loads lesson_utils.x.y
        if name.startswith("lesson_utils"):
            found.append(name)
    return found


@cache
def _graph() -> dict[str, set[str]]:
    """importer -> imported modules, also for imports inside functions. Importing
    ``pkg.sub`` runs ``pkg/__init__.py`` first, so a module outside ``pkg`` depends on it too
    (the root package excepted: every module is inside it)."""
    graph: dict[str, set[str]] = {name: set() for name in _modules()}
    for importer, path in _modules().items():
        for node in ast.walk(_tree(path)):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _imported(node, importer):
                graph[importer].add(target)
                parent = target.rpartition(".")[0]
                while parent.count("."):  # every package above, below lesson_utils itself
                    if not (importer == parent or importer.startswith(parent + ".")):
                        graph[importer].add(parent)
                    parent = parent.rpartition(".")[0]
    for name, targets in graph.items():
        targets.discard(name)
        targets.discard("lesson_utils")
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions_and_packages():
    graph = _graph()
    assert "lesson_utils.training.loop" in graph["lesson_utils.training.fitting"]
    assert "lesson_utils.training" in graph["lesson_utils.pretrain"]  # its package runs first
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _prefix_statement(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return isinstance(node.value.value, str)  # the docstring
    if isinstance(node, ast.Try):  # try: import x / except ImportError: ...
        return all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass, ast.Assign))
                   for s in node.body + [s for h in node.handlers for s in h.body])
    return False


def _mid_file_imports(tree: ast.Module) -> list[int]:
    lines, started = [], False
    for node in tree.body:
        if not started and _prefix_statement(node):
            continue
        started = True
        lines += [n.lineno for n in ast.walk(node)
                  if isinstance(n, (ast.Import, ast.ImportFrom))
                  and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return lines


def test_no_import_in_the_middle_of_a_module():
    bad = [f"{path.relative_to(ROOT)}:{line}" for path in _modules().values()
           for line in _mid_file_imports(_tree(path))]
    assert not bad, f"imports after the first statement of a module (move them to the top): {bad}"
    assert _mid_file_imports(ast.parse('"""doc"""\nimport os\nX = 1\nimport re\n')) == [4]


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    """Code lines of a function body: no docstring, no blank or comment-only lines."""
    body = node.body
    if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        body = body[1:]
    if not body:
        return 0
    first, last = body[0].lineno, max(n.end_lineno or n.lineno for n in body)
    return sum(1 for line in source[first - 1:last]
               if line.strip() and not line.strip().startswith("#"))


def test_no_function_body_over_80_lines():
    long = []
    for path in _modules().values():
        source = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _body_lines(node, source)
                if n > MAX_BODY_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_BODY_LINES} code lines: {long}"


def test_one_training_loop():
    """Only the training loop calls backward(); the self-checks that run a student's step are
    the one exception."""
    callers = []
    for name, path in _modules().items():
        if name in ("lesson_utils.training.loop",) or name.startswith("lesson_utils.checks"):
            continue
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "backward"):
                callers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not callers, f"backward() outside lesson_utils.training.loop: {callers}"


def _public_modules() -> list[str]:
    return [name for name, path in _modules().items()
            if not any(part.startswith("_") for part in name.split("."))
            and name != "lesson_utils" and path.name != "__main__.py"]


@pytest.mark.parametrize("name", _public_modules())
def test_readme_module_map_names_every_module(name):
    """README -> notebook -> module: the map names every public module (a package's modules
    on the package's own row)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Where each concept lives"):]
    rows = section[:section.index("\n## ", 3)].split("\n|")
    parts = name.removeprefix("lesson_utils.").split(".")
    if len(parts) == 1:
        assert any(f"`{parts[0]}`" in r or f"`{parts[0]}/`" in r for r in rows), (
            f"README's module map does not name `{parts[0]}`")
    else:
        package, module = ".".join(parts[:-1]), parts[-1]
        assert any(f"`{package}/`" in r and f"`{module}`" in r for r in rows), (
            f"README's module map row for `{package}/` does not name its module `{module}`")
