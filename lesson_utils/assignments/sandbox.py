"""``grade --isolate``: each kernel in its own namespaces, seeing almost nothing of the machine.

With Linux user namespaces (``unshare`` from util-linux, no root needed where the kernel allows
unprivileged user namespaces), the kernel of every submission runs

* with **no network**: a new network namespace that has only a loopback device, which is down
  (the grader talks to the kernel through Unix sockets in a folder both can see);
* in a **new root filesystem** built for it: the system's ``/usr`` (and the ``/bin``, ``/lib``
  links to it), a few files of ``/etc``, the Python installation and virtual environment, and
  the grader's private copy of the course, all **read-only**; the submission's working folder
  and the kernel's connection folder, read-write; a fresh ``/tmp`` and a throw-away ``HOME``
  (``/tmp/home``) in memory; a minimal ``/dev``. Nothing else exists there: not the instructor's
  notebooks, not the other submissions, not ``grades.csv``, not the real home folder;
* in a **new PID namespace**: it cannot see or signal the grader or any other process, and
  when the kernel ends, every process it started ends with it (``setsid`` does not help);
* as root of a *nested* user namespace, so the read-only mounts are locked: it cannot remount
  them writable.

The namespaces are entered by ``unshare``; this file, run as a script with the standard library
only, then builds the root, ``pivot_root``s into it and starts the kernel. ``isolation_problem``
says why isolation is not possible on a machine (and what to do instead).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FALLBACKS", "isolation_problem", "Sandbox"]

FALLBACKS = ("grade as a dedicated user that can read only the course and the submissions and "
             "write only a scratch folder, with no network (e.g. `sudo -u grader env -i ...`), "
             "or inside a throw-away container with no network (e.g. `docker run --rm "
             "--network none -v $PWD:/course:ro ...`)")
_TOOLS = ("unshare", "mount", "umount", "pivot_root")
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = ("passwd", "group", "nsswitch.conf", "hosts", "ld.so.cache", "ld.so.conf",
        "ld.so.conf.d", "localtime", "alternatives", "mime.types")
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
HOME = "/tmp/home"


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


@dataclass(frozen=True)
class Sandbox:
    """What a kernel sees in its new root: read-only and read-write paths, files to copy.

    Args:
        readonly: folders or files shown read-only (besides the system and Python ones).
        writable: folders shown read-write (the working folder, the kernel's connection folder).
        copies: ``(source file, destination)`` pairs copied into the fresh ``/tmp`` before the
            kernel starts (e.g. matplotlib's font cache, so it is not rebuilt every time).

    Example:
        >>> box = Sandbox(readonly=("/opt/course",), writable=("/tmp/work",))
        >>> cmd = box.command(["python", "-m", "ipykernel_launcher"], "/tmp/root")
        >>> cmd[:4], cmd[-3:]
        (['unshare', '--user', '--map-root-user', '--net'], ['python', '-m', 'ipykernel_launcher'])
    """

    readonly: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    copies: tuple[tuple[str, str], ...] = ()

    def config(self, root: str | os.PathLike) -> dict[str, object]:
        """The plan the script half of this module carries out (JSON-ready)."""
        python = {_real(sys.prefix), _real(sys.base_prefix), _real(sys.exec_prefix),
                  os.path.dirname(_real(sys.executable))}
        system = [p for p in _SYSTEM if os.path.lexists(p)]
        shown = [p for p in system if not os.path.islink(p)]
        readonly = sorted(p for p in {*python, *(_real(p) for p in self.readonly)}
                          if not any(p == s or p.startswith(s + "/") for s in shown))
        etc = [f"/etc/{name}" for name in _ETC if os.path.lexists(f"/etc/{name}")]
        tools = {t: shutil.which(t) or t for t in _TOOLS}
        return {"root": _real(root), "system": system, "etc": etc, "readonly": readonly,
                "writable": sorted({_real(p) for p in self.writable}),
                "copies": [list(c) for c in self.copies], "home": HOME, "tools": tools}

    def command(self, argv: Sequence[str], root: str | os.PathLike) -> list[str]:
        """The command that starts ``argv`` in the sandbox; ``root`` is an empty folder."""
        return ["unshare", "--user", "--map-root-user", "--net", "--mount", "--pid", "--fork",
                "--kill-child", "--", sys.executable, "-I", "-S", os.path.abspath(__file__),
                json.dumps(self.config(root)), "--", *argv]


@functools.lru_cache(maxsize=1)
def isolation_problem() -> str | None:
    """``None`` if kernels can be isolated here, else what is missing and the fallbacks.

    The answer is cached: the first call starts one sandboxed ``true`` (a fraction of a second).

    Example:
        >>> problem = isolation_problem()
        >>> problem is None or "fallback" in problem
        True
    """
    def fail(what: str) -> str:
        return f"cannot isolate kernels here: {what}. The documented fallback: {FALLBACKS}"

    if not sys.platform.startswith("linux"):
        return fail(f"Linux namespaces are needed and this is {sys.platform}")
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        return fail(f"{', '.join(missing)} not found (util-linux)")
    with tempfile.TemporaryDirectory(prefix="lesson-sandbox-probe-") as folder:
        root = os.path.join(folder, "root")
        os.mkdir(root)
        cmd = Sandbox(writable=(folder,)).command(["true"], root)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=folder)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return fail(f"a test sandbox did not start ({exc})")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return fail(f"the kernel refused the namespaces or mounts ({why}); unprivileged user "
                    "namespaces may be disabled (sysctl kernel.unprivileged_userns_clone or "
                    "user.max_user_namespaces)")
    return None


# ----------------------------------------------------------------------------- inside: the script

_TOOL_PATHS: dict[str, str] = {}  # absolute paths of the tools, set by _enter


def _run(tool: str, *args: str) -> None:
    done = subprocess.run([_TOOL_PATHS.get(tool, tool), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stderr.strip()}")


def _mount(*args: str) -> None:
    _run("mount", *args)


def _place(root: str, path: str, *, is_dir: bool) -> str:
    """Create ``path`` inside ``root`` (a folder, or an empty file to bind a file onto)."""
    target = root + path
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            open(target, "w").close()
    return target


def _bind(root: str, path: str, *, readonly: bool) -> None:
    if not os.path.exists(path):
        return
    target = _place(root, path, is_dir=os.path.isdir(path))
    _mount("--bind", path, target)
    if readonly:
        _mount("-o", "remount,bind,ro", target)


def _devices(root: str) -> None:
    dev = _place(root, "/dev", is_dir=True)
    _mount("-t", "tmpfs", "-o", "mode=755,size=1m", "sandbox-dev", dev)
    for name in _DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(root, f"/dev/{name}", readonly=False)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(link, f"{dev}/{name}")
    os.mkdir(f"{dev}/shm")


def _build(config: dict) -> None:
    """Mount the new root (see the module docstring); parents are mounted before children."""
    root = config["root"]
    _mount("-t", "tmpfs", "-o", "mode=755", "sandbox-root", root)
    for path in config["system"]:
        if os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        else:
            _bind(root, path, readonly=True)
    tmp = _place(root, "/tmp", is_dir=True)
    _mount("-t", "tmpfs", "-o", "mode=1777", "sandbox-tmp", tmp)
    os.makedirs(root + config["home"], mode=0o700)
    mounts = [(p, True) for p in config["etc"] + config["readonly"]]
    mounts += [(p, False) for p in config["writable"]]
    for path, readonly in sorted(mounts, key=lambda m: (m[0].count("/"), m[0])):
        _bind(root, path, readonly=readonly)
    for source, dest in config["copies"]:
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(root + dest), exist_ok=True)
            shutil.copyfile(source, root + dest)
    _devices(root)
    for path in ("/sys/devices/system/cpu", "/sys/devices/system/node"):  # CPU topology
        _bind(root, path, readonly=True)
    _mount("-t", "proc", "proc", _place(root, "/proc", is_dir=True))


def _enter(config: dict, argv: list[str]) -> None:
    """Build the root, move into it, drop the mount privileges and start ``argv``."""
    cwd = os.getcwd()
    _TOOL_PATHS.update(config["tools"])
    _build(config)
    root = config["root"]
    os.mkdir(root + "/.old")
    os.chdir(root)
    _run("pivot_root", ".", ".old")
    os.chdir("/")
    _run("umount", "-l", "/.old")
    os.rmdir("/.old")
    _mount("-o", "remount,ro", "/")
    os.chdir(cwd if os.path.isdir(cwd) else config["home"])
    os.environ.update({"HOME": config["home"], "TMPDIR": "/tmp"})
    # A nested user namespace: its root has no privilege over these mounts, so the read-only
    # ones stay read-only (the kernel locks them when the namespace is made).
    unshare = config["tools"]["unshare"]
    os.execv(unshare, [unshare, "--user", "--map-root-user", "--", *argv])


if __name__ == "__main__":
    _split = sys.argv.index("--")
    _enter(json.loads(sys.argv[1]), sys.argv[_split + 1:])
