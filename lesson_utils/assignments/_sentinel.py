"""Kernel-side audit hook: tells the grader, as they happen, what a submission does to its world.

The grader runs this file's text in the kernel at start-up, before the first cell (IPython's
``exec_lines``), with three environment variables it removes right away:

* ``LESSON_GRADER_CHANNEL``: a FIFO the grader reads while the notebook runs;
* ``LESSON_GRADER_PROTECTED``: JSON list of folders nothing may write into (the course, the
  virtual environment, the grader's files);
* ``LESSON_GRADER_PRIVATE``: JSON list of folders nothing should read (the instructor's
  notebooks, the other submissions).

It adds a Python audit hook (``sys.addaudithook``), which no Python code can remove. For the
events below the hook writes one JSON line ``[execution_count, what, detail]`` into the FIFO at
once, so a later cell cannot take it back: opening a notebook or a private file, writing into a
protected folder, reading another process's files under ``/proc``, starting processes or
sending signals, trace and profile functions, new audit hooks, a function's ``__code__``
replaced (the way to disarm a hook like this one), functions or code objects made at run time,
raw memory access through ``ctypes``, pickles that name dangerous functions, and sockets.
Everything else passes untouched. The hook never raises: a failure to report is silent.
"""

# Keep this file self-contained (standard library only): its text runs in the student's
# kernel, in a namespace of its own (nothing here is in the notebook's globals).

import json
import os
import sys

_SPAWN = {"subprocess.Popen": "starts a process", "os.system": "runs a shell command",
          "os.fork": "forks the kernel", "os.forkpty": "forks the kernel",
          "os.posix_spawn": "starts a process", "os.spawn": "starts a process",
          "os.exec": "replaces the kernel with a program", "pty.spawn": "starts a process",
          "os.kill": "sends a signal", "os.killpg": "sends a signal",
          "signal.pthread_kill": "sends a signal"}
_CHANGES = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
            "os.truncate", "os.chmod", "os.chown", "os.utime", "shutil.rmtree",
            "shutil.copyfile", "shutil.copytree", "shutil.move")
_PICKLED = ("builtins", "os", "posix", "nt", "sys", "subprocess", "importlib", "types",
            "operator", "functools", "codecs", "runpy", "ctypes", "shutil", "pty", "socket",
            "IPython", "ipykernel", "pickle", "marshal", "code", "gc", "inspect")
_SIMPLE = {"sys.settrace": "sets a trace function", "sys.setprofile": "sets a profile function",
           "sys.addaudithook": "adds an audit hook",
           "function.__new__": "makes a function from a code object",
           "code.__new__": "makes a code object", "ctypes.cdata": "reads raw memory (ctypes)",
           "ctypes.string_at": "reads raw memory (ctypes)",
           "ctypes.wstring_at": "reads raw memory (ctypes)"}
_WATCHED = frozenset(["open", "os.listdir", "os.scandir", "glob.glob", "object.__setattr__",
                      "object.__delattr__", "pickle.find_class", "socket.connect",
                      "socket.bind", *_SIMPLE, *_SPAWN, *_CHANGES])
#: System tools libraries run for themselves (ctypes.util.find_library runs ``ldconfig -p``,
#: matplotlib ``fc-list``): not reported when started from a system folder.
_BENIGN_TOOLS = ("ldconfig", "ldconfig.real", "uname", "fc-list", "fc-match", "lscpu",
                 "getconf", "nproc")
_SYSTEM_BIN = ("/sbin/", "/bin/", "/usr/sbin/", "/usr/bin/")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_ME = str(os.getpid())


def _path_of(value):  # noqa: ANN001, ANN202
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    return os.path.normpath(os.path.join(os.getcwd(), value))


def _under(path, roots):  # noqa: ANN001, ANN202
    return path is not None and any(path == r or path.startswith(r + "/") for r in roots)


def _benign_program(event, args):  # noqa: ANN001, ANN202
    """A system tool started by a library (see ``_BENIGN_TOOLS``)."""
    if event not in ("subprocess.Popen", "os.posix_spawn", "os.exec") or not args:
        return False
    program = args[0]
    if program is None and len(args) > 1 and isinstance(args[1], (list, tuple)) and args[1]:
        program = args[1][0]
    if isinstance(program, bytes):
        program = program.decode("utf-8", "replace")
    return isinstance(program, str) and program.startswith(_SYSTEM_BIN) and \
        program.rpartition("/")[2] in _BENIGN_TOOLS


def _describe_open(args, protected, private):  # noqa: ANN001, ANN202
    path = _path_of(args[0])
    if path is None:
        return None
    mode, flags = args[1] or "", args[2] if len(args) > 2 and args[2] else 0
    writing = any(c in str(mode) for c in "wax+") or bool(flags & _WRITE_FLAGS)
    if writing and _under(path, protected):
        return ("writes into a protected folder", path)
    if path.endswith(".ipynb") or _under(path, private):
        return ("opens a private file (a notebook, another submission)", path)
    entry = path.split("/")[2] if path.startswith("/proc/") else ""
    if entry.isdigit() and entry != _ME:
        return ("reads another process's files", path)
    return None


def _describe(event, args, protected, private):  # noqa: ANN001, ANN202
    """``(what, detail)`` for an event worth reporting, else ``None``."""
    if event == "open":
        return _describe_open(args, protected, private)
    if event in _SPAWN:
        if _benign_program(event, args):
            return None
        return (_SPAWN[event], repr(args[:2])[:160] if args else "")
    if event in _CHANGES:
        for value in args:
            if _under(_path_of(value), protected):
                return ("changes a protected folder", _path_of(value))
        return None
    if event in ("os.listdir", "os.scandir", "glob.glob"):
        path = _path_of(args[0]) if args else None
        return ("lists a private folder", path) if _under(path, private) else None
    if event in ("object.__setattr__", "object.__delattr__"):
        if args[1] == "__code__":  # how one would disarm this hook
            return ("replaces a function's code", getattr(args[0], "__qualname__", "?"))
        return None
    if event == "pickle.find_class":
        top = str(args[0]).split(".")[0]
        return ("unpickles a function", f"{args[0]}.{args[1]}") if top in _PICKLED else None
    if event in ("socket.connect", "socket.bind"):
        what = "opens a network connection" if event == "socket.connect" else \
            "listens on the network"
        return (what, repr(args[1:2])[:80])
    return (_SIMPLE[event], "") if event in _SIMPLE else None


def _install():  # noqa: ANN202
    channel = os.environ.pop("LESSON_GRADER_CHANNEL", "")
    protected = tuple(json.loads(os.environ.pop("LESSON_GRADER_PROTECTED", "[]")))
    private = tuple(json.loads(os.environ.pop("LESSON_GRADER_PRIVATE", "[]")))
    if not channel:
        return
    fd = os.open(channel, os.O_WRONLY | os.O_NONBLOCK)
    os.set_inheritable(fd, False)
    write, dumps = os.write, json.dumps
    shell = get_ipython()  # noqa: F821  (IPython's builtin while exec_lines run)
    counts = {}
    busy = []

    def hook(event, args):  # noqa: ANN001, ANN202
        if event not in _WATCHED or busy:
            return
        busy.append(1)
        try:
            found = _describe(event, args, protected, private)
            if found is not None and counts.get(found[0], 0) < 20:
                counts[found[0]] = counts.get(found[0], 0) + 1
                count = getattr(shell, "execution_count", None)
                write(fd, (dumps([count, found[0], str(found[1])[:300]]) + "\n").encode())
        except BaseException:  # never break the student's code
            pass
        finally:
            busy.clear()

    write(fd, (dumps([None, "hello", _ME]) + "\n").encode())
    sys.addaudithook(hook)


_install()
