"""Kernel-side half of the grader: runs one instructor grade cell with freshly loaded checkers.

The grader never imports this module in the kernel: it embeds this file's *text* in every grade
cell it injects (``grader.grade_cell_source``), so a submission cannot have patched it before the
cell runs. The embedded ``run_grade_cell`` then:

1. reads each ``lesson_utils`` module the instructor's cell imports (and the ``lesson_utils``
   modules those import), checks the file's SHA-256 against the value the grader computed before
   any student code ran, and executes it into a *new* module object that temporarily replaces
   ``sys.modules[name]`` and the parent package's attribute, so
   ``from lesson_utils.checks.x import check_y`` inside the cell gets an untouched checker even if
   the student redefined ``check_y`` or monkeypatched ``lesson_utils.checks.x``;
2. sets the grading secrets (e.g. the seed of the hidden test set) on those fresh modules;
3. runs the instructor's cell in the notebook's namespace, then restores ``sys.modules``;
4. prints the pass marker (a random nonce) only if all of that raised nothing. The grader gives
   the points when the kernel reports the cell ``ok`` *and* the marker was printed.
"""

# Keep this file self-contained (standard library only, everything inside the function): its
# text runs in the student's kernel.


def run_grade_cell(source, modules, secrets, marker, namespace):  # noqa: ANN001, ANN201
    import hashlib
    import importlib.util
    import os
    import sys
    import types

    missing = object()
    saved_modules = []
    saved_attrs = []
    try:
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
            saved_modules.append((name, sys.modules.get(name, missing)))
            sys.modules[name] = module
            parent_name, _, child = name.rpartition(".")
            parent = sys.modules.get(parent_name)
            if parent is not None:
                saved_attrs.append((parent, child, getattr(parent, child, missing)))
                setattr(parent, child, module)
            exec(compile(code, path, "exec"), module.__dict__)
        for name, values in secrets.items():
            for key, value in values.items():
                setattr(sys.modules[name], key, value)
        from IPython import get_ipython

        shell = get_ipython()
        text = shell.transform_cell(source) if shell is not None else source
        exec(compile(text, "<instructor grade cell>", "exec"), namespace)
    finally:
        for parent, child, value in reversed(saved_attrs):
            if value is missing:
                try:
                    delattr(parent, child)
                except AttributeError:
                    pass
            else:
                setattr(parent, child, value)
        for name, value in reversed(saved_modules):
            if value is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    sys.stdout.write("\n" + marker + "\n")
    sys.stdout.flush()
