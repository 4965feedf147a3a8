"""Test-wide setup: offline guard, a non-interactive matplotlib backend, quiet threads."""

from __future__ import annotations

import os

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
