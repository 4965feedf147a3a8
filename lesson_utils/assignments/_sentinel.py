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

# Keep this file self-contained (standard library only, everything inside the function): its
# text runs in the student's kernel.


def _install():  # noqa: ANN202
    import json
    import os
    import sys

    channel = os.environ.pop("LESSON_GRADER_CHANNEL", "")
    protected = tuple(json.loads(os.environ.pop("LESSON_GRADER_PROTECTED", "[]")))
    private = tuple(json.loads(os.environ.pop("LESSON_GRADER_PRIVATE", "[]")))
    if not channel:
        return
    fd = os.open(channel, os.O_WRONLY | os.O_NONBLOCK)
    os.set_inheritable(fd, False)
    write, dumps, join, normpath, getcwd = os.write, json.dumps, os.path.join, \
        os.path.normpath, os.getcwd
    me = str(os.getpid())
    shell = get_ipython()  # noqa: F821  (IPython's builtin while exec_lines run)
    counts = {}
    busy = []
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    pickled = ("builtins", "os", "posix", "nt", "sys", "subprocess", "importlib", "types",
               "operator", "functools", "codecs", "runpy", "ctypes", "shutil", "pty",
               "socket", "IPython", "ipykernel", "pickle", "marshal", "code", "gc", "inspect")
    spawn = {"subprocess.Popen": "starts a process", "os.system": "runs a shell command",
             "os.fork": "forks the kernel", "os.forkpty": "forks the kernel",
             "os.posix_spawn": "starts a process", "os.spawn": "starts a process",
             "os.exec": "replaces the kernel with a program", "pty.spawn": "starts a process",
             "os.kill": "sends a signal", "os.killpg": "sends a signal",
             "signal.pthread_kill": "sends a signal"}
    changes = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
               "os.truncate", "os.chmod", "os.chown", "os.utime", "shutil.rmtree",
               "shutil.copyfile", "shutil.copytree", "shutil.move")

    def path_of(value):  # noqa: ANN001, ANN202
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            return None
        return normpath(join(getcwd(), value))

    def under(path, roots):  # noqa: ANN001, ANN202
        return path is not None and any(path == r or path.startswith(r + "/") for r in roots)

    def describe_open(args):  # noqa: ANN001, ANN202
        path = path_of(args[0])
        if path is None:
            return None
        mode, flags = args[1] or "", args[2] if len(args) > 2 and args[2] else 0
        writing = any(c in str(mode) for c in "wax+") or bool(flags & write_flags)
        if writing and under(path, protected):
            return ("writes into a protected folder", path)
        if path.endswith(".ipynb") or under(path, private):
            return ("opens a private file (a notebook, another submission)", path)
        if path.startswith("/proc/") and path.split("/")[2] not in (me, "self", "thread-self"):
            return ("reads another process's files", path)
        return None

    def describe(event, args):  # noqa: ANN001, ANN202
        if event == "open":
            return describe_open(args)
        if event in spawn:
            return (spawn[event], repr(args[:2])[:160] if args else "")
        if event in changes:
            for value in args:
                path = path_of(value)
                if under(path, protected):
                    return ("changes a protected folder", path)
            return None
        if event in ("os.listdir", "os.scandir", "glob.glob"):
            path = path_of(args[0]) if args else None
            return ("lists a private folder", path) if under(path, private) else None
        if event in ("object.__setattr__", "object.__delattr__"):
            if args[1] == "__code__":
                return ("replaces a function's code", getattr(args[0], "__qualname__", "?"))
            return None
        if event == "pickle.find_class":
            top = str(args[0]).split(".")[0]
            return ("unpickles a function", f"{args[0]}.{args[1]}") if top in pickled \
                else None
        return {"sys.settrace": ("sets a trace function", ""),
                "sys.setprofile": ("sets a profile function", ""),
                "sys.addaudithook": ("adds an audit hook", ""),
                "function.__new__": ("makes a function from a code object", ""),
                "code.__new__": ("makes a code object", ""),
                "ctypes.cdata": ("reads raw memory (ctypes)", ""),
                "ctypes.string_at": ("reads raw memory (ctypes)", ""),
                "ctypes.wstring_at": ("reads raw memory (ctypes)", ""),
                "socket.connect": ("opens a network connection", repr(args[1:2])[:80]),
                "socket.bind": ("listens on the network", repr(args[1:2])[:80]),
                }.get(event)

    watched = frozenset(["open", "os.listdir", "os.scandir", "glob.glob", "object.__setattr__",
                         "object.__delattr__", "pickle.find_class", "sys.settrace",
                         "sys.setprofile", "sys.addaudithook", "function.__new__",
                         "code.__new__", "ctypes.cdata", "ctypes.string_at",
                         "ctypes.wstring_at", "socket.connect", "socket.bind",
                         *spawn, *changes])

    def hook(event, args):  # noqa: ANN001, ANN202
        if event not in watched or busy:
            return
        busy.append(1)
        try:
            found = describe(event, args)
            if found is not None and counts.get(found[0], 0) < 20:
                counts[found[0]] = counts.get(found[0], 0) + 1
                count = getattr(shell, "execution_count", None)
                write(fd, (dumps([count, found[0], str(found[1])[:300]]) + "\n").encode())
        except BaseException:  # never break the student's code; a lost line is noticed
            pass
        finally:
            busy.clear()

    write(fd, (dumps([None, "hello", str(os.getpid())]) + "\n").encode())
    sys.addaudithook(hook)


_install()
del _install
