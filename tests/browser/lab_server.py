"""A JupyterLab server for tests: its own process group, temporary settings, workspace,
runtime and config folders, a token, 127.0.0.1 only; no extension manager, no update check.

The course's own Lab settings (``jupyter/lab-settings.json``, installed into the environment by
``make``) apply as they do for a student; ``settings`` adds test-only ones on top.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TOKEN = "lesson-browser-test"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings_dir: Path, settings: dict[str, dict]) -> None:
    """User settings, as the settings editor would store them (one file per plugin)."""
    for plugin, content in settings.items():
        package, name = plugin.split(":")
        path = settings_dir / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))


class JupyterLab:
    """A JupyterLab server in its own process group, started and stopped by the test."""

    def __init__(self, workdir: Path, settings: dict[str, dict] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("MPLBACKEND", "LESSON_STATIC_WIDGETS", "JUPYTER_TOKEN")}
        dirs = {name: workdir / name for name in ("settings", "workspaces", "runtime", "config",
                                                 "ipython", "tmp")}
        for d in dirs.values():
            d.mkdir()
        (workdir / "notebooks").mkdir(exist_ok=True)
        _write_settings(dirs["settings"], settings or {})
        env.update(JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
                   JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
                   JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
                   JUPYTER_CONFIG_DIR=str(dirs["config"]),
                   IPYTHONDIR=str(dirs["ipython"]),
                   TMPDIR=str(dirs["tmp"]),
                   PYTHONHASHSEED="0")
        self.log_path = workdir / "jupyterlab.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}",
             "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={TOKEN}", "--allow-root",
             f"--ServerApp.root_dir={workdir / 'notebooks'}",
             "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status_url = f"{self.url}/api/status?token={TOKEN}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(status_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)  # polling interval of a readiness probe
        raise TimeoutError(f"JupyterLab not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Ask the server to shut down (it stops its kernels), then make sure it is gone."""
        if self.process.poll() is None:
            try:
                request = urllib.request.Request(f"{self.url}/api/shutdown?token={TOKEN}",
                                                 method="POST")
                urllib.request.urlopen(request, timeout=5).close()
            except OSError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group we created (a kernel that ignored the shutdown).
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
