"""Kernel-side half of the grader: reports the interpreter's hooks, then runs one grade cell.

The grader never imports this module in the kernel: it embeds this file's *text* in every cell
it injects (``grader.grade_cell_source``), so a submission cannot have patched it before the
cell runs. The injected cell reaches the real ``exec`` through the import machinery's own
globals (``BuiltinImporter``'s module), not through the notebook's namespace, so a student's
``exec = ...`` or ``__builtins__ = ...`` does not intercept it. Then:

1. ``report(tag)`` prints one line, ``tag`` followed by a JSON summary of everything a
   submission could use to observe or rewrite later cells: IPython's input and AST
   transformers, event callbacks, trace and profile functions, import hooks, the builtins,
   selected shell, kernel and stream methods, and a digest of the cell's own text as IPython
   stored it after its input transformations. The grader compares it, in its own process, with
   the same report taken before the first student cell (``lesson_utils.assignments.integrity``).
2. ``run_grade_cell`` prints that report, then reads each ``lesson_utils`` module the
   instructor's cell imports (and the ``lesson_utils`` modules those import), checks each
   file's SHA-256 against the value the grader computed before any student code ran, and
   executes it into a *new* module object that temporarily replaces ``sys.modules[name]``, so a
   redefined or monkeypatched checker has no effect;
3. runs the instructor's cell (already plain Python) in the notebook's namespace, with any
   builtin the cell uses and the notebook shadowed (``len = ...``) temporarily taken away;
4. prints the pass marker (a random nonce) only if all of that raised nothing. The grader gives
   the points when the kernel reports the cell ``ok``, the marker was printed, and the report
   matches the baseline.
"""

# Keep this file self-contained (standard library only, everything inside the functions): its
# text runs in the student's kernel.

_SHELL_METHODS = ("run_cell", "run_cell_async", "_run_cell", "run_ast_nodes", "run_code",
                  "transform_cell", "transform_ast", "should_run_async", "showtraceback",
                  "_showtraceback", "showsyntaxerror", "set_custom_exc", "excepthook",
                  "get_ipython", "ex", "ev", "safe_execfile")
_KERNEL_METHODS = ("execute_request", "do_execute", "send_response", "dispatch_shell",
                   "process_one", "_publish_execute_input", "_publish_status")
_WATCHED_MODULES = ("sys", "builtins", "os", "io", "hashlib", "json", "types", "importlib",
                    "importlib.util", "importlib.machinery", "ast", "IPython", "IPython.core",
                    "ipykernel", "ipykernel.iostream", "jupyter_client.session")
_VOLATILE_BUILTINS = ("_", "__", "___", "input", "raw_input")  # set anew for each cell


def _real():
    """The real ``sys`` and builtins dict, found through the import machinery."""
    bootstrap = [c for c in ().__class__.__base__.__subclasses__()
                 if c.__name__ == "BuiltinImporter"][0].find_spec.__func__.__globals__
    return bootstrap["sys"], bootstrap["__builtins__"]


def _user_file(filename):  # noqa: ANN001, ANN202
    """Whether code compiled from ``filename`` was written by the notebook."""
    import os

    return filename.startswith("<") or "ipykernel_" in filename or \
        filename.startswith(os.getcwd() + os.sep)


def _name(obj):  # noqa: ANN001, ANN202
    """``module.qualname`` of a callable or object, and ``!`` when the notebook defined it.

    A class counts as the notebook's when any of its functions was compiled from a cell or from
    a file in the working folder, whatever its ``__module__`` says; ``functools.partial`` always
    counts (it can wrap anything).
    """
    target = obj if isinstance(obj, type) or callable(obj) else type(obj)
    target = getattr(target, "__func__", target)
    module = getattr(target, "__module__", None) or getattr(type(target), "__module__", "?")
    qual = getattr(target, "__qualname__", None) or type(target).__qualname__
    codes = [getattr(target, "__code__", None)]
    owner = target if isinstance(target, type) else type(target)
    codes += [getattr(getattr(f, "__func__", f), "__code__", None)
              for f in vars(owner).values()] if owner.__module__ != "builtins" else []
    user = module == "__main__" or type(target).__name__ == "partial" or any(
        code is not None and _user_file(code.co_filename) for code in codes)
    return f"{module}.{qual}" + ("!" if user else "")


def summary(namespace=None):  # noqa: ANN001, ANN201
    """The interpreter's hooks as a JSON-ready dict (see the module docstring)."""
    import hashlib

    sys, builtins = _real()
    shell = builtins["get_ipython"]() if "get_ipython" in builtins else None
    report = {"builtins": {k: id(v) for k, v in builtins.items()
                           if k not in _VOLATILE_BUILTINS},
              "trace": [_name(f) if f is not None else None
                        for f in (sys.gettrace(), sys.getprofile())],
              "meta_path": [_name(m) for m in sys.meta_path],
              "path_hooks": [_name(h) for h in sys.path_hooks],
              "modules": {n: id(sys.modules[n]) if n in sys.modules else None
                          for n in _WATCHED_MODULES},
              "streams": [[_name(s), id(s), id(getattr(type(s), "write", None)),
                           sorted(m for m in ("write", "flush", "writelines")
                                  if m in getattr(s, "__dict__", {}))]
                          for s in (sys.stdout, sys.stderr)]
              + [_name(sys.excepthook), _name(sys.displayhook)]}
    threading = sys.modules.get("threading")
    if threading is not None:
        report["trace"] += [_name(f) if f is not None else None for f in (
            getattr(threading, "_trace_hook", None), getattr(threading, "_profile_hook", None))]
    if namespace is not None:
        user = namespace.get("__builtins__")
        report["namespace_builtins"] = getattr(user, "__dict__", user) is builtins
    if shell is None:
        return report
    cls = type(shell)
    manager = shell.input_transformer_manager
    report["transformers"] = {
        "cleanup": [_name(f) for f in shell.input_transformers_cleanup],
        "post": [_name(f) for f in shell.input_transformers_post],
        "ast": [_name(t) for t in shell.ast_transformers],
        "manager": [_name(manager)] + [[_name(f) for f in getattr(manager, a, [])] for a in (
            "cleanup_transforms", "line_transforms", "token_transformers")]}
    report["events"] = {k: [_name(f) for f in v] for k, v in shell.events.callbacks.items()}
    report["shell"] = {"class": [id(getattr(cls, m, None)) for m in _SHELL_METHODS],
                       "instance": sorted(m for m in _SHELL_METHODS if m in vars(shell)),
                       "objects": [_name(shell), _name(shell.compile), id(shell.compile),
                                   id(manager), id(type(manager).transform_cell),
                                   id(shell.history_manager), id(shell.events),
                                   id(shell.displayhook), repr(shell.custom_exceptions)]}
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        session = kernel.session
        report["kernel"] = {
            "class": [id(getattr(type(kernel), m, None)) for m in _KERNEL_METHODS],
            "instance": sorted(m for m in _KERNEL_METHODS if m in vars(kernel)),
            "session": [id(type(session).send), id(type(session).serialize),
                        "send" in vars(session), "serialize" in vars(session)]}
    history = shell.history_manager.input_hist_parsed
    text = history[-1] if history else ""
    report["cell"] = hashlib.sha256(str(text).encode("utf-8", "replace")).hexdigest()
    return report


def report(tag, namespace=None):  # noqa: ANN001, ANN201
    """Print ``tag`` and the summary as one line (what the grader reads)."""
    import json

    sys, _ = _real()
    sys.stdout.write("\n" + tag + " " + json.dumps(summary(namespace), sort_keys=True) + "\n")
    sys.stdout.flush()


def _user_namespace():  # noqa: ANN202
    """The notebook's globals: the first calling frame that runs as ``__main__``."""
    sys, _ = _real()
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") != "__main__":
        frame = frame.f_back
    if frame is None:
        raise RuntimeError("grader: the notebook's namespace was not found")
    return frame.f_globals


def _load_fresh(modules, saved):  # noqa: ANN001, ANN202
    """Execute each verified checker file into a new module object (see the docstring)."""
    import hashlib
    import importlib.util
    import os
    import types

    sys, _ = _real()
    missing = saved["missing"]
    for name, path, digest, is_package in modules:
        with open(path, "rb") as f:
            code = f.read()
        if hashlib.sha256(code).hexdigest() != digest:
            raise RuntimeError(
                f"grader: {path} is not the file the grader verified before the notebook "
                "ran (it was modified); the checker cannot be trusted")
        module = types.ModuleType(name)
        module.__file__ = path
        module.__spec__ = importlib.util.spec_from_file_location(name, path)
        if is_package:
            module.__path__ = [os.path.dirname(path)]
            module.__package__ = name
        else:
            module.__package__ = name.rpartition(".")[0]
        saved["modules"].append((name, sys.modules.get(name, missing)))
        sys.modules[name] = module
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None:
            saved["attrs"].append((parent, child, getattr(parent, child, missing)))
            setattr(parent, child, module)
        exec(compile(code, path, "exec"), module.__dict__)


def _restore(saved):  # noqa: ANN001, ANN202
    sys, _ = _real()
    missing = saved["missing"]
    for parent, child, value in reversed(saved["attrs"]):
        if value is missing:
            try:
                delattr(parent, child)
            except AttributeError:
                pass
        else:
            setattr(parent, child, value)
    for name, value in reversed(saved["modules"]):
        if value is missing:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = value
    namespace = saved["namespace"]
    for name, value in saved["shadowed"].items():
        namespace[name] = value


def run_grade_cell(source, modules, marker, tag):  # noqa: ANN001, ANN201
    """Report, run the instructor's cell with fresh checkers, print ``marker`` on success."""
    import ast

    sys, builtins = _real()
    namespace = _user_namespace()
    report(tag, namespace)
    saved = {"missing": object(), "modules": [], "attrs": [], "shadowed": {},
             "namespace": namespace}
    try:
        _load_fresh(modules, saved)
        code = compile(source, "<instructor grade cell>", "exec", dont_inherit=True)
        used = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        for name in sorted(used & set(builtins) & set(namespace)):
            if name != "__builtins__" and namespace[name] is not builtins[name]:
                saved["shadowed"][name] = namespace.pop(name)
        user = namespace.get("__builtins__")
        if user is not None and getattr(user, "__dict__", user) is not builtins:
            saved["shadowed"]["__builtins__"] = user
            namespace["__builtins__"] = builtins
        exec(code, namespace)
    finally:
        _restore(saved)
    sys.stdout.write("\n" + marker + "\n")
    sys.stdout.flush()
