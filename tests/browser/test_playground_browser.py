"""The scheduler playground in a real browser: JupyterLab + the system Chromium, driven by
Playwright (which must not download a browser of its own).

The test copies lesson 04 (without its outputs) into a temporary folder, starts JupyterLab there on 127.0.0.1 with a
token (no extension manager, no update or news checks, temporary settings/workspace/runtime
dirs), opens the notebook, runs all cells, waits for the playground, moves the "step size"
slider with the keyboard, and checks that the plot image changed (element screenshots before
and after). Any error output fails it. Everything it starts is shut down at the end.

Without /usr/bin/chromium (or $LESSON_CHROMIUM), or without the playwright package, it is
skipped, except with CI=true, where it fails: CI must prove the playground works in a browser.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from lab_server import TOKEN, JupyterLab

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "04_optimizers_schedulers.ipynb"
# Debian's chromium package; LESSON_CHROMIUM points elsewhere (another system's Chromium).
CHROMIUM = Path(os.environ.get("LESSON_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]

# Generous limits: a loaded 2-core machine is several times slower than a quiet one. On a quiet
# machine the whole test takes about half a minute.
SERVER_START_S = 60
NOTEBOOK_OPEN_S = 60
RUN_ALL_S = 180
REDRAW_S = 45


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if _in_ci():
        pytest.fail(f"{why}; CI=true, so the browser test must run (install it in .ci/run)")
    pytest.skip(f"{why}: skipping the real-browser test of the scheduler playground")


# Test-only Lab settings: every cell in the DOM (no windowing), no autosave (the copy is thrown
# away). News and update checks are NOT turned off here: the course's shipped settings must do it.
TEST_SETTINGS = {
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
}


NOTEBOOK_READY = """(numCells) => {
    const cells = document.querySelectorAll('.jp-Notebook .jp-Cell').length;
    const status = [...document.querySelectorAll('.jp-StatusBar-Item')].map(e => e.textContent);
    return cells === numCells && status.some(t => /\\(ipykernel\\)\\s*\\|\\s*Idle/.test(t));
}"""

ALL_CELLS_DONE = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
    const idle = document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
    return prompts.length > 0 && idle !== null
        && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""

ERROR_OUTPUTS = """() => [...document.querySelectorAll(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
    .map(e => e.textContent.slice(0, 500))"""

IMAGE_LOADED = """(img) => img.complete && img.naturalWidth > 0"""


@pytest.fixture
def lab(tmp_path):
    _require(CHROMIUM.exists(), f"{CHROMIUM} not found (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _require(False, "the playwright package is not installed (pip install playwright)")
    assert NOTEBOOK.exists(), f"{NOTEBOOK} is missing"
    (tmp_path / "notebooks").mkdir()
    # A copy (never touch the real one) without stored outputs: every prompt then stays empty
    # until this run executes its cell, and no stale widget view can be mistaken for a live one.
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    (tmp_path / "notebooks" / NOTEBOOK.name).write_text(json.dumps(nb))
    server = JupyterLab(tmp_path, settings=TEST_SETTINGS)
    try:
        server.wait_ready(SERVER_START_S)
        yield server
    finally:
        server.stop()


def _run_all_and_move_slider(page, url: str, num_cells: int,
                             timings: dict[str, float]) -> tuple[str, str]:
    """Open, run all, move the slider; returns the slider value before and after."""
    start = time.monotonic()
    page.goto(url, timeout=NOTEBOOK_OPEN_S * 1000)
    # Open = every cell rendered and a kernel started and idle (the execution indicator
    # alone says "idle" before any kernel exists).
    page.wait_for_function(NOTEBOOK_READY, arg=num_cells, polling=250,
                           timeout=NOTEBOOK_OPEN_S * 1000)
    timings["open"] = time.monotonic() - start

    page.locator(".lm-MenuBar-itemLabel").filter(has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(r"^Run All Cells$")).click()
    # The copy has no stored outputs: a prompt gets its number when this run executes it.
    page.wait_for_function(ALL_CELLS_DONE, timeout=RUN_ALL_S * 1000, polling=500)
    timings["run_all"] = time.monotonic() - start - timings["open"]

    errors = page.evaluate(ERROR_OUTPUTS)
    assert not errors, f"the notebook printed errors in the browser: {errors}"
    assert page.locator("text=Error displaying widget").count() == 0

    playground = page.locator(".lesson-scheduler-playground")
    playground.wait_for(state="visible", timeout=REDRAW_S * 1000)
    image = playground.locator("img").first
    image.scroll_into_view_if_needed(timeout=REDRAW_S * 1000)
    page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=REDRAW_S * 1000)
    before_src = image.get_attribute("src")
    before = image.screenshot(timeout=REDRAW_S * 1000)

    slider = playground.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text="step size"))
    readout = slider.locator(".widget-readout")
    old_value = readout.inner_text().strip()
    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(5):
        handle.press("ArrowRight")
    page.wait_for_function("([el, old]) => el.textContent.trim() !== old",
                           arg=[readout.element_handle(), old_value], timeout=REDRAW_S * 1000)
    new_value = readout.inner_text().strip()
    assert int(new_value) > int(old_value), (old_value, new_value)

    # The kernel redraws and sends a new PNG; the view swaps the image's source.
    page.wait_for_function("([img, old]) => img.src !== old && img.complete "
                           "&& img.naturalWidth > 0",
                           arg=[image.element_handle(), before_src], timeout=REDRAW_S * 1000)
    after = image.screenshot(timeout=REDRAW_S * 1000)
    timings["slider_to_redraw"] = time.monotonic() - start - timings["open"] - timings["run_all"]
    assert after != before, "the playground image did not change after the slider moved"

    news = page.locator(".jp-toast-message, .Toastify__toast").filter(has_text=re.compile("news", re.I))
    assert news.count() == 0, "JupyterLab asked about news: the course's Lab settings were not applied"

    status = playground.locator(".widget-html").last.inner_text()
    assert "redrawn in" in status and "not drawn" not in status, status
    errors = page.evaluate(ERROR_OUTPUTS)
    assert not errors, f"errors after moving the slider: {errors}"
    return old_value, new_value


PROMPTS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
    .map(p => p.textContent.trim()).join(' ')"""


def test_playground_redraws_in_a_real_browser(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    num_cells = len(json.loads(NOTEBOOK.read_text())["cells"])
    url = f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={TOKEN}"
    timings: dict[str, float] = {}
    page_errors: list[str] = []
    start = time.monotonic()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1600, "height": 1000})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)[:300]))
            try:
                old_value, new_value = _run_all_and_move_slider(page, url, num_cells, timings)
            except Exception as exc:  # say where it stood: prompts, page errors, server log
                shot = tmp_path / "failure.png"
                try:
                    page.screenshot(path=str(shot), full_page=True)
                    prompts = page.evaluate(PROMPTS)
                except Exception as diag_exc:  # the page itself may be gone
                    prompts = f"(could not read the page: {diag_exc})"
                raise AssertionError(
                    f"{type(exc).__name__}: {exc}\nprompts: {prompts}\n"
                    f"timings so far: {timings}\npage errors: {page_errors}\n"
                    f"screenshot: {shot}\nJupyterLab log:\n{lab.log_tail()}") from exc
        finally:
            context.close()
    timings["total"] = time.monotonic() - start
    print("browser test timings (s):", {k: round(v, 1) for k, v in timings.items()},
          f"| step size {old_value} -> {new_value} | page errors: {page_errors or 'none'}")
