"""Static review of a submission: the student's code that reaches what grading depends on.

A submission's cells run in the same kernel as the grade cells, so code that installs IPython
input or AST transformers, event hooks, trace functions or import hooks, patches builtins or the
shell, or reaches those through names built at run time, can observe or rewrite the grade cells.
``review_flags`` reads every student cell as a syntax tree (after IPython's own input
transformations, so magics are seen as the calls they become) and names what it finds. It never
changes points: the grader's dynamic checks (``lesson_utils.assignments.integrity``) decide
those; this is the list of things an instructor should read.

Each finding is a *reason* (one of ``REASONS``, the wording shown in ``grades.csv``) and a detail
naming the code, e.g. ``cell 3 hooks into IPython: .input_transformers_post``. Cells that are
byte-for-byte one of the instructor's cells are skipped (the grader passes their texts as
``known_sources``), so an honest notebook is normally not flagged at all.

What a syntax tree cannot see is code that does not exist until run time: ``exec`` of a string
built from pieces, a pickle, a native library. Those *entry points* are flagged instead, so
hiding a hook behind them is itself visible.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

from lesson_utils.assignments.student import grade_id_of

__all__ = ["REASONS", "Finding", "cell_findings", "review_flags"]

IPYTHON = "hooks into IPython (transformers, events, shell or kernel internals)"
TRACE = "sets a trace or profile function"
IMPORTS = "touches the import system"
PATCHES = "patches builtins or a library"
RUNTIME_NAMES = "builds names at run time"
DYNAMIC_CODE = "runs code that is not in the notebook (exec/eval, pickle, native code)"
REFLECTION = "reaches interpreter internals (frames, gc, __globals__, __subclasses__, ...)"
ERRORS = "changes how errors are reported"
PROCESSES = "starts processes or threads, sends signals or ends the kernel"
NETWORK = "uses the network"
FILES = "opens files outside its working folder (notebooks, the course, /proc, home)"
GRADER = "mentions the grader or its pass markers"
UNPARSEABLE = "does not parse as Python (it runs only if something rewrites it)"
HISTORY = "reads the input history"

#: Every reason ``review_flags`` can give, in the order it reports them.
REASONS: tuple[str, ...] = (IPYTHON, TRACE, IMPORTS, PATCHES, RUNTIME_NAMES, DYNAMIC_CODE,
                            REFLECTION, ERRORS, PROCESSES, NETWORK, FILES, GRADER, UNPARSEABLE,
                            HISTORY)

_IPYTHON_ATTRS = frozenset({
    "input_transformers_cleanup", "input_transformers_post", "input_transformer_manager",
    "ast_transformers", "events", "pre_run_cell", "post_run_cell", "pre_execute",
    "post_execute", "run_cell", "run_cell_async", "_run_cell", "run_code", "run_ast_nodes",
    "transform_cell", "transform_ast", "should_run_async", "register_magic_function",
    "register_magics", "prefilter_manager", "user_ns", "user_global_ns", "display_pub",
    "displayhook", "execution_count", "set_next_input", "iopub_socket", "shell_stream",
    "execute_request", "do_execute", "send_response", "shell_handlers", "cleanup_transforms",
    "line_transforms", "token_transformers"})
_ERROR_ATTRS = frozenset({"set_custom_exc", "custom_exceptions", "showtraceback",
                          "_showtraceback", "showsyntaxerror", "excepthook", "CustomTB",
                          "InteractiveTB", "SyntaxTB"})
_HISTORY_ATTRS = frozenset({"history_manager", "input_hist_parsed", "input_hist_raw"})
_TRACE_ATTRS = frozenset({"settrace", "setprofile", "settrace_all_threads",
                          "setprofile_all_threads", "monitoring", "_current_frames"})
_IMPORT_ATTRS = frozenset({"meta_path", "path_hooks", "path_importer_cache", "modules",
                           "addaudithook", "import_module", "__import__", "__loader__",
                           "__spec__", "find_spec", "exec_module", "spec_from_file_location",
                           "module_from_spec"})
_REFLECTION_ATTRS = frozenset({
    "__dict__", "__globals__", "__builtins__", "__subclasses__", "__bases__", "__base__",
    "__mro__", "__code__", "__closure__", "__self__", "__func__", "__getattribute__",
    "__setattr__", "__delattr__", "__reduce__", "__reduce_ex__", "__wrapped__", "__defaults__",
    "__kwdefaults__", "__traceback__", "tb_frame", "tb_next", "f_back", "f_globals",
    "f_locals", "f_builtins", "f_code", "f_trace", "gi_frame", "cr_frame", "ag_frame",
    "co_code", "co_consts", "_getframe", "cell_contents"})
_PROCESS_ATTRS = frozenset({
    "fork", "forkpty", "setsid", "setpgid", "setpgrp", "kill", "killpg", "system", "popen",
    "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv",
    "spawnve", "spawnvp", "spawnl", "posix_spawn", "posix_spawnp", "_exit", "abort", "dup2",
    "closerange", "getppid", "pthread_kill", "register_at_fork", "daemon"})
_MODULES = {
    "IPython": IPYTHON, "ipykernel": IPYTHON, "jupyter_client": IPYTHON, "nbclient": IPYTHON,
    "traitlets": IPYTHON, "zmq": IPYTHON, "tornado": IPYTHON, "ipywidgets": None,
    "importlib": IMPORTS, "imp": IMPORTS, "pkgutil": IMPORTS, "zipimport": IMPORTS,
    "runpy": IMPORTS, "site": IMPORTS, "sitecustomize": IMPORTS, "usercustomize": IMPORTS,
    "builtins": PATCHES, "__builtin__": PATCHES, "ctypes": DYNAMIC_CODE, "cffi": DYNAMIC_CODE,
    "pickle": DYNAMIC_CODE, "_pickle": DYNAMIC_CODE, "marshal": DYNAMIC_CODE,
    "dill": DYNAMIC_CODE, "cloudpickle": DYNAMIC_CODE, "shelve": DYNAMIC_CODE,
    "copyreg": DYNAMIC_CODE, "code": DYNAMIC_CODE, "codeop": DYNAMIC_CODE,
    "gc": REFLECTION, "inspect": REFLECTION, "dis": REFLECTION, "ast": REFLECTION,
    "subprocess": PROCESSES, "multiprocessing": PROCESSES, "threading": PROCESSES,
    "_thread": PROCESSES, "signal": PROCESSES, "pty": PROCESSES, "atexit": PROCESSES,
    "concurrent": PROCESSES, "socket": NETWORK, "urllib": NETWORK, "http": NETWORK,
    "requests": NETWORK, "httpx": NETWORK, "ftplib": NETWORK, "smtplib": NETWORK,
    "ssl": NETWORK, "xmlrpc": NETWORK, "socketserver": NETWORK, "telnetlib": NETWORK,
}
#: IPython modules a notebook may use to show things (not flagged).
_DISPLAY_MODULES = ("IPython.display", "IPython.core.display")
_DANGEROUS_NAMES = {
    "globals": RUNTIME_NAMES, "locals": RUNTIME_NAMES, "vars": RUNTIME_NAMES,
    "__import__": IMPORTS, "__builtins__": PATCHES, "__builtin__": PATCHES,
    "eval": DYNAMIC_CODE, "exec": DYNAMIC_CODE, "compile": DYNAMIC_CODE,
    "breakpoint": TRACE, "exit": PROCESSES, "quit": PROCESSES, "In": HISTORY, "_ih": HISTORY,
    "Out": HISTORY, "_oh": HISTORY, "_i": HISTORY, "_ii": HISTORY, "_iii": HISTORY,
    "__file__": FILES, "__grader__": GRADER,
}
_REFLECTIVE_CALLS = frozenset({"getattr", "setattr", "delattr", "hasattr", "attrgetter",
                               "methodcaller", "getattr_static"})
_QUIET_MAGICS = frozenset({"time", "timeit", "capture", "matplotlib", "who", "whos", "pwd",
                           "precision", "pprint", "pinfo", "pinfo2", "psearch", "pdoc", "page",
                           "lsmagic", "magic", "history", "xdel", "reset_selective"})
_CODE_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
_MAGIC_REASONS = {"prun": TRACE, "debug": TRACE, "pdb": TRACE, "load_ext": IMPORTS,
                  "reload_ext": IMPORTS, "unload_ext": IMPORTS, "autoreload": IMPORTS,
                  "aimport": IMPORTS, "run": DYNAMIC_CODE, "load": DYNAMIC_CODE,
                  "loadpy": DYNAMIC_CODE, "macro": DYNAMIC_CODE, "rerun": DYNAMIC_CODE,
                  "recall": DYNAMIC_CODE, "writefile": FILES, "config": IPYTHON, "env": PATCHES,
                  "alias": PROCESSES, "sx": PROCESSES, "system": PROCESSES, "sh": PROCESSES,
                  "bash": PROCESSES, "script": PROCESSES, "python": PROCESSES,
                  "python3": PROCESSES, "perl": PROCESSES, "ruby": PROCESSES,
                  "pip": NETWORK, "conda": NETWORK, "store": FILES, "xmode": ERRORS}
_FILE_TEXT = re.compile(r"\.ipynb|/proc\b|site-packages|dist-packages|\.pth\b|sitecustomize|"
                        r"usercustomize|\.ipython|lesson_utils[/\\]|grades\.csv|^~|/\.local/|"
                        r"/etc/(passwd|shadow)")
_GRADER_TEXT = re.compile(r"grader|run_grade_cell|grading", re.IGNORECASE)
_HOME_CALLS = frozenset({"home", "expanduser", "getppid", "getpgid", "getpgrp"})
#: Builtins whose redefinition at the top level of a cell is reported (common variable names such
#: as ``id``, ``sum`` or ``input`` are left out: shadowing them is a habit, not an attack).
_WATCHED_BUILTINS = frozenset({
    "exec", "eval", "compile", "__import__", "__builtins__", "print", "open", "getattr",
    "setattr", "hasattr", "isinstance", "issubclass", "globals", "vars", "get_ipython", "len",
    "abs", "round", "all", "any", "float", "int", "bool", "str", "repr", "sorted", "type",
    "super", "object", "callable"}) & (set(dir(builtins)) | {"get_ipython"})
#: Names that usually hold a library module in notebooks (an assignment to their attributes is
#: a patch even when the import happened in a cell the reviewer does not see).
_MODULE_NAMES = ("torch", "nn", "F", "np", "numpy", "plt", "sklearn", "math", "os", "sys",
                 "builtins", "lesson_utils", "IPython")


@dataclass(frozen=True)
class Finding:
    """One thing in a cell worth an instructor's look: a reason and the code that gave it."""

    reason: str
    detail: str


def _transform(source: str) -> str:
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # IPython's own transformer failed: read the text as it is
        return source


def _module_installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a chain of attributes on a name, else the last attribute with a dot."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    else:
        parts.append("")
    return ".".join(reversed(parts))


def _constant_text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) \
        else None


class _Visitor(ast.NodeVisitor):
    """Collects findings from one cell's syntax tree."""

    def __init__(self, modules: dict[str, str]) -> None:
        self.findings: list[Finding] = []
        self.modules = modules  # local name -> module it names (shared across cells)
        self.nested: list[str] = []  # code hidden in magics (%time ..., %%capture)

    def add(self, reason: str, detail: str) -> None:
        self.findings.append(Finding(reason, detail))

    def _import(self, module: str, alias: str | None) -> None:
        top = module.split(".")[0]
        if module.startswith(_DISPLAY_MODULES):
            return
        reason = _MODULES.get(top)
        if reason is not None:
            self.add(reason, f"import {module}")
        elif not _module_installed(module):
            self.add(DYNAMIC_CODE, f"import {module} (not installed: written by the notebook?)")
        self.modules[alias or top] = module if alias else top

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._import(a.name, a.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for a in node.names:
            full = f"{module}.{a.name}"
            if module in ("sys", "threading", "os") and a.name in (
                    _TRACE_ATTRS | _IMPORT_ATTRS | _PROCESS_ATTRS | {"stdout", "stderr"}):
                self.add(TRACE if a.name in _TRACE_ATTRS else IMPORTS
                         if a.name in _IMPORT_ATTRS else PROCESSES, f"from {module} import "
                                                                    f"{a.name}")
            if a.name == "get_ipython" or a.name in _IPYTHON_ATTRS:
                self.add(IPYTHON, f"from {module} import {a.name}")
            self._import(full if not module.startswith(_DISPLAY_MODULES) else module, None)
            self.modules[a.asname or a.name] = full
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr, where = node.attr, _dotted(node)
        base = where.split(".")[0]
        module = self.modules.get(base, "")
        if attr in _IPYTHON_ATTRS and not (attr == "events" and module):
            self.add(IPYTHON, where)
        elif attr in _ERROR_ATTRS:
            self.add(ERRORS, where)
        elif attr in _HISTORY_ATTRS:
            self.add(HISTORY, where)
        elif attr in _TRACE_ATTRS:
            self.add(TRACE, where)
        elif attr in _IMPORT_ATTRS and (module in ("sys", "importlib") or attr.startswith("_")
                                        or attr in ("meta_path", "path_hooks",
                                                    "path_importer_cache", "addaudithook")):
            self.add(IMPORTS, where)
        elif attr in _REFLECTION_ATTRS:
            self.add(REFLECTION, where)
        elif attr in _PROCESS_ATTRS and module in ("os", "signal", "posix", "sys"):
            self.add(PROCESSES, where)
        elif attr in ("stdout", "stderr", "displayhook") and module == "sys" \
                and isinstance(node.ctx, ast.Store):
            self.add(PATCHES, f"{where} = ...")
        elif isinstance(node.ctx, (ast.Store, ast.Del)) and module:
            self.add(PATCHES, f"{where} = ...")
        elif attr in _HOME_CALLS:
            self.add(FILES if attr in ("home", "expanduser") else PROCESSES, where)
        elif attr in ("FunctionType", "CodeType", "LambdaType") and module == "types":
            self.add(DYNAMIC_CODE, where)
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        reason = _DANGEROUS_NAMES.get(node.id)
        if reason is None and re.fullmatch(r"_i\d+", node.id):
            reason = HISTORY
        if reason is not None:
            self.add(reason, node.id)
        if node.id == "get_ipython":
            self.add(IPYTHON, "get_ipython()")

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else \
            node.func.id if isinstance(node.func, ast.Name) else ""
        if self._magic(node, name):
            return
        if name in _REFLECTIVE_CALLS:
            self._reflective_call(node, name)
        elif name in ("import_module", "__import__") and node.args \
                and _constant_text(node.args[0]) is None:
            self.add(RUNTIME_NAMES, f"{name}() of a computed module name")
        elif name in ("load", "loads"):
            for k in node.keywords:
                if k.arg in ("weights_only", "allow_pickle") and isinstance(
                        k.value, ast.Constant) and k.value.value is (k.arg == "allow_pickle"):
                    self.add(DYNAMIC_CODE, f"{_dotted(node.func)}(..., {k.arg}="
                                           f"{k.value.value})")
        elif name == "type" and len(node.args) == 3:
            self.add(DYNAMIC_CODE, "type(name, bases, namespace)")
        self.generic_visit(node)

    def _reflective_call(self, node: ast.Call, name: str) -> None:
        target = node.args[0] if node.args else None
        attr_node = node.args[1] if len(node.args) > 1 else None
        attr = _constant_text(attr_node) if name not in ("attrgetter", "methodcaller") \
            else _constant_text(target)
        if attr is None:
            self.add(RUNTIME_NAMES, f"{name}() with a computed name")
            return
        for pool, reason in ((_IPYTHON_ATTRS, IPYTHON), (_ERROR_ATTRS, ERRORS),
                             (_TRACE_ATTRS, TRACE), (_REFLECTION_ATTRS, REFLECTION),
                             (_HISTORY_ATTRS, HISTORY)):
            if attr in pool:
                self.add(reason, f"{name}(..., {attr!r})")
        base = _dotted(target).split(".")[0] if target is not None else ""
        if name in ("setattr", "delattr") and (base in self.modules or base in (
                "builtins", "__builtins__")):
            self.add(PATCHES, f"{name}({_dotted(target)}, {attr!r}, ...)")

    def _magic(self, node: ast.Call, name: str) -> bool:
        if name not in ("run_line_magic", "run_cell_magic", "system", "getoutput") or not (
                isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call)
                and isinstance(node.func.value.func, ast.Name)
                and node.func.value.func.id == "get_ipython"):
            return False
        args = [_constant_text(a) for a in node.args]
        for arg in node.args:  # a command or a magic's code may name files
            self.visit(arg)
        if name in ("system", "getoutput"):
            self.add(PROCESSES, f"!{args[0] if args else '...'}")
            return True
        magic = args[0] if args else None
        if magic is None:
            self.add(RUNTIME_NAMES, f"{name}() of a computed magic")
            return True
        if magic in _CODE_MAGICS:
            body = args[-1] if name == "run_cell_magic" else args[1] if len(args) > 1 else ""
            self.nested.append(body or "")
        reason = _MAGIC_REASONS.get(magic)
        if reason is not None:
            self.add(reason, f"%{magic}")
        elif magic not in _QUIET_MAGICS:
            self.add(IPYTHON, f"%{magic}")
        return True

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            text = node.value
            if _FILE_TEXT.search(text):
                self.add(FILES, repr(text[:60]))
            if _GRADER_TEXT.search(text):
                self.add(GRADER, repr(text[:60]))


def _shadowed_builtins(tree: ast.Module) -> list[str]:
    """Top-level names that rebind a builtin (``print = ...``, ``def len(x): ...``)."""
    names = []
    for node in tree.body:
        targets: list[ast.AST] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [a.asname or a.name.split(".")[0] for a in node.names]
        for target in targets:
            names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return [n for n in names if n in _WATCHED_BUILTINS]


def cell_findings(source: str, modules: dict[str, str] | None = None) -> list[Finding]:
    """Everything in one cell's code that ``review_flags`` would report, in source order.

    Args:
        source: the cell's text (IPython syntax allowed: magics are read as the calls they
            become, and the code inside ``%time``/``%%capture`` is read too).
        modules: names known to hold modules (``{"np": "numpy"}``), from earlier cells; the
            cell's own imports are added to it.

    Returns:
        The findings, duplicates removed.

    Example:
        >>> cell_findings("sh = globals()['get' + '_ipython']()\\n"
        ...               "getattr(sh, 'input_' + 'transformers_post').append(f)")
        ... # doctest: +NORMALIZE_WHITESPACE
        [Finding(reason='builds names at run time', detail='globals'),
         Finding(reason='builds names at run time', detail='getattr() with a computed name')]
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    try:
        tree = ast.parse(_transform(source))
    except SyntaxError as exc:
        return [Finding(UNPARSEABLE, f"{exc.msg} (line {exc.lineno})")]
    if modules is None:
        modules = {name: name for name in _MODULE_NAMES}
    visitor = _Visitor(modules)
    visitor.visit(tree)
    found = list(visitor.findings)
    found += [Finding(PATCHES, f"redefines the builtin {n}") for n in _shadowed_builtins(tree)]
    for body in visitor.nested:
        found += cell_findings(body, modules)
    return list(dict.fromkeys(found))


def _grouped(findings: Iterable[Finding]) -> list[tuple[str, list[str]]]:
    by_reason: dict[str, list[str]] = {}
    for f in findings:
        by_reason.setdefault(f.reason, [])
        if f.detail not in by_reason[f.reason]:
            by_reason[f.reason].append(f.detail)
    return [(r, by_reason[r]) for r in REASONS if r in by_reason]


def review_flags(submission: Any, graded_ids: Sequence[str] = (),
                 known_sources: Iterable[str] = ()) -> list[str]:
    """What in the student's code an instructor should read, one line per cell and reason.

    Args:
        submission: an nbformat notebook (the student's).
        graded_ids: grade ids of the grade cells (the grader replaces them, so they are skipped).
        known_sources: cell texts that are the instructor's own (skipped when a cell matches
            one exactly, ignoring surrounding whitespace).

    Returns:
        Lines like ``"cell 3 hooks into IPython (...): .input_transformers_post"``; the reason
        is one of ``REASONS``, then at most three details.

    Example:
        >>> import nbformat
        >>> cell = nbformat.v4.new_code_cell("import lesson_utils.checks as m\\n"
        ...                                  "setattr(m, 'check_equal', lambda *a: True)")
        >>> review_flags(nbformat.v4.new_notebook(cells=[cell]))
        ["cell 0 patches builtins or a library: setattr(m, 'check_equal', ...)"]
    """
    known = {s.strip() for s in known_sources}
    modules = {name: name for name in _MODULE_NAMES}
    flags = []
    for i, cell in enumerate(getattr(submission, "cells", [])):
        if cell.get("cell_type") != "code" or grade_id_of(cell) in graded_ids:
            continue
        source = str(cell.get("source", ""))
        if not source.strip() or source.strip() in known:
            cell_findings(source, modules)  # the instructor's imports still name modules
            continue
        for reason, details in _grouped(cell_findings(source, modules)):
            more = f" (+{len(details) - 3} more)" if len(details) > 3 else ""
            flags.append(f"cell {i} {reason}: {', '.join(details[:3])}{more}")
    return flags
