"""The course ships JupyterLab settings for its environment (``jupyter/lab-settings.json``,
installed by ``make`` into ``<venv>/share/jupyter/lab/settings/overrides.d/``): a fresh profile
gets no "get notified about Jupyter news?" toast and no update check. Asked of a real server."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest
from lab_server import TOKEN, JupyterLab

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "jupyter" / "lab-settings.json"
INSTALLED = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "lesson-course.json"
PLUGIN = "@jupyterlab/apputils-extension:notification"


def test_the_environment_has_the_course_settings():
    assert INSTALLED.is_file(), f"{INSTALLED} is missing: run `make lab` or `make test` to install it"
    assert json.loads(INSTALLED.read_text()) == json.loads(SHIPPED.read_text()), (
        f"{INSTALLED} differs from {SHIPPED}: run make again")


def test_a_fresh_profile_gets_no_news_toast(tmp_path):
    if not INSTALLED.is_file():
        pytest.fail(f"{INSTALLED} is missing: run `make lab` or `make test` to install it")
    server = JupyterLab(tmp_path)          # empty user settings: a student's first start
    try:
        server.wait_ready(60)
        url = f"{server.url}/lab/api/settings/{PLUGIN}?token={TOKEN}"
        with urllib.request.urlopen(url, timeout=30) as response:
            answer = json.load(response)
    finally:
        server.stop()
    # Overrides become the schema's defaults (JupyterLab's own are "none" = ask, and true); an
    # empty user profile then gets them as its settings.
    assert answer["settings"] == {}, answer["settings"]
    defaults = {k: v.get("default") for k, v in answer["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false", defaults
    assert defaults["checkForUpdates"] is False, defaults
