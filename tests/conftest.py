"""Test-wide setup: offline guard, a non-interactive matplotlib backend, quiet threads."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from lesson_utils.offline import install_network_guard  # noqa: E402

# The whole test run is offline: any connection to a non-loopback address fails the test.
install_network_guard()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, ended but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


@pytest.fixture
def alive():
    """``alive(pid)``: whether a process still runs (zombies count as dead)."""
    return _pid_alive
