"""Cost of one scheduler-playground update: 6 schedules x 200 epochs. Budget (COURSE.md §6,
issue 5): <= 150 ms; aim (issue 16): <= 50 ms.

Usage::

    python benchmarks/bench_schedules.py [--updates 30]

It measures the real update path: a ``SchedulerPlayground`` with its widgets (no browser
needed: ipywidgets runs its observers when a value is set); each update is one control change,
which recomputes the six LR traces with real torch schedulers, moves the lines' data, and
renders the PNG the browser shows. Two kinds of update are timed, because they cost different
amounts:

* a slider that keeps the axes (``gamma``; also step size, T_max, eta_min, T_0, warmup, patience,
  factor): only the lines are drawn again, on the cached rest of the figure;
* a slider that rescales the axes (``num_epochs``; also base LR, the log axis and the schedule
  selection): ticks and labels are drawn again (legends pasted from the last render unless the
  selection changed).

The kernel-to-browser message and the browser's paint are not included: the real-browser test
(``tests/browser/test_playground_browser.py``) measures those. The parts (traces, plot update,
each kind of render, PNG encoding) are timed separately on the same figure.

Prints a table and writes ``benchmarks/results/schedules.json``. The verdict uses the median
of the slower kind of update (the typical wait after such a slider move); min and max are
reported too.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lesson_utils.checkpoints import atomic_write_bytes  # noqa: E402
from lesson_utils.plotting import plot_lr_traces, plot_val_loss_curve  # noqa: E402
from lesson_utils.schedules import (  # noqa: E402
    ScheduleSettings,
    compare_schedules,
    synthetic_val_loss,
)
from lesson_utils.widgets import PLAYGROUND_SCHEDULES, SchedulerPlayground  # noqa: E402

NUM_EPOCHS = 200
BUDGET_MS = 150.0
AIM_MS = 50.0


def _times_ms(fn: Callable[[int], None], n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def _slider_moves(pg: SchedulerPlayground, control: str, values: tuple,
                  n: int) -> list[float]:
    """Times of ``n`` real changes of one control (each one must produce a new PNG)."""

    def update(i: int) -> None:
        new = values[i % len(values)]
        if pg.controls[control].value == new:
            new = values[(i + 1) % len(values)]
        before = pg.image.value
        pg.controls[control].value = new
        assert pg.image.value != before, f"moving {control} did not redraw"

    _times_ms(update, 3)  # warm up (first torch optimizer step, font cache, backgrounds)
    return _times_ms(update, n)


def _parts(pg: SchedulerPlayground, n: int) -> dict[str, list[float]]:
    """The pieces of one update, timed one by one on the playground's figure."""
    val_loss = synthetic_val_loss(NUM_EPOCHS)
    s = pg.settings
    traces = compare_schedules(PLAYGROUND_SCHEDULES, s, val_loss=val_loss)

    def replot(i: int) -> None:
        plot_lr_traces(traces, num_epochs=NUM_EPOCHS, ax=pg.lr_ax)
        plot_val_loss_curve(val_loss, plateau_lr=traces["plateau"], ax=pg.loss_ax)

    parts = {
        "traces (6 torch schedulers)": _times_ms(
            lambda i: compare_schedules(PLAYGROUND_SCHEDULES, s, val_loss=val_loss), n),
        "update lines + autoscale": _times_ms(replot, n),
        "full figure draw (no cache)": _times_ms(lambda i: pg.figure.canvas.draw(), n),
    }
    png = getattr(pg, "png", None)
    if png is None:  # the playground before issue 16: savefig of the whole figure
        parts["savefig to PNG"] = _times_ms(lambda i: pg.figure.savefig(
            io.BytesIO(), format="png", dpi=80, pil_kwargs={"compress_level": 1}), n)
        return parts
    lines = [*pg.lr_ax.lines, *pg.loss_ax.lines]
    png.render(lines)
    parts["render: lines only + PNG"] = _times_ms(lambda i: png.render(lines), n)

    def forget_background(i: int) -> None:
        png._key = None  # as after a rescale: ticks and labels again, legends pasted
        png.render(lines)

    parts["render: axes + lines + PNG"] = _times_ms(forget_background, n)
    parts["  of which PNG encoding"] = _times_ms(lambda i: png._encode(), n)
    return parts


def _row(name: str, values: list[float]) -> dict:
    return {"part": name.strip(), "min_ms": round(min(values), 2),
            "median_ms": round(statistics.median(values), 2), "max_ms": round(max(values), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "schedules.json"))
    args = parser.parse_args(argv)

    assert len(PLAYGROUND_SCHEDULES) == 6
    settings = ScheduleSettings(num_epochs=NUM_EPOCHS, warmup_epochs=5)
    pg = SchedulerPlayground(PLAYGROUND_SCHEDULES, settings, interactive=True)
    keep = _slider_moves(pg, "gamma", (0.1, 0.2, 0.3, 0.4, 0.5), args.updates)
    rescale = _slider_moves(pg, "num_epochs", (NUM_EPOCHS, NUM_EPOCHS - 1), args.updates)
    pg.controls["num_epochs"].value = NUM_EPOCHS
    parts = _parts(pg, args.updates)

    load = tuple(round(x, 2) for x in os.getloadavg())
    print(f"scheduler playground update: {len(PLAYGROUND_SCHEDULES)} schedules x {NUM_EPOCHS} "
          f"epochs, {args.updates} updates, {torch.get_num_threads()} torch threads, "
          f"os.getloadavg()={load}")
    print(f"{'part':<44}{'min ms':>9}{'median':>9}{'max':>9}")
    rows = []
    for name, values in [("slider keeps the axes (gamma): total", keep),
                         ("slider rescales the axes (epochs): total", rescale),
                         *((f"  {k}", v) for k, v in parts.items())]:
        rows.append(_row(name, values))
        print(f"{name:<44}{rows[-1]['min_ms']:>9.1f}{rows[-1]['median_ms']:>9.1f}"
              f"{rows[-1]['max_ms']:>9.1f}")
    medians = {"keeps_axes": rows[0]["median_ms"], "rescales_axes": rows[1]["median_ms"]}
    worst = max(medians.values())
    ok = worst <= BUDGET_MS
    result = {
        "benchmark": "scheduler playground: one update (control change -> traces -> PNG)",
        "schedules": list(PLAYGROUND_SCHEDULES),
        "num_epochs": NUM_EPOCHS,
        "updates": args.updates,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": load[0],
        "torch": torch.__version__,
        "matplotlib": matplotlib.__version__,
        "python": platform.python_version(),
        "budget_ms": BUDGET_MS,
        "aim_ms": AIM_MS,
        "median_update_ms": medians,
        "within_budget": ok,
        "within_aim": {k: v <= AIM_MS for k, v in medians.items()},
        "rows": rows,
    }
    atomic_write_bytes(args.out, (json.dumps(result, indent=2) + "\n").encode())
    out = Path(args.out)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"median update: {medians['keeps_axes']:.1f} ms keeping the axes, "
          f"{medians['rescales_axes']:.1f} ms rescaling them ({'within' if ok else 'OVER'} the "
          f"{BUDGET_MS:.0f} ms budget; aim {AIM_MS:.0f} ms) -> {shown}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
