"""Cost of one scheduler-playground update: 6 schedules x 200 epochs. Budget (COURSE.md §6,
issue 5): <= 150 ms.

Usage::

    python benchmarks/bench_schedules.py [--updates 30]

It measures the real update path: a ``SchedulerPlayground`` with its widgets (no browser
needed: ipywidgets runs its observers when a value is set), and each update is one slider
change (``controls["gamma"].value = ...``), which recomputes the six LR traces with real torch
schedulers, moves the lines' data, and renders the figure to the PNG the browser shows. The
kernel-to-browser message and the browser's paint are not included. The parts (traces, plot,
PNG) are timed separately on the same figure for the table.

Prints a table and writes ``benchmarks/results/schedules.json``. The verdict uses the median
update (the typical wait after a slider move); min and max are reported too.
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


def _times_ms(fn: Callable[[int], None], n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "schedules.json"))
    args = parser.parse_args(argv)

    assert len(PLAYGROUND_SCHEDULES) == 6
    settings = ScheduleSettings(num_epochs=NUM_EPOCHS, warmup_epochs=5)
    pg = SchedulerPlayground(PLAYGROUND_SCHEDULES, settings, interactive=True)
    gammas = (0.1, 0.2, 0.3, 0.4, 0.5)

    def update(i: int) -> None:  # a slider move: every update is a real change
        new = gammas[i % len(gammas)]
        if pg.controls["gamma"].value == new:
            new = gammas[(i + 1) % len(gammas)]
        before = pg.image.value
        pg.controls["gamma"].value = new
        assert pg.image.value != before, "the update did not redraw"

    _times_ms(update, 3)  # warm up (first torch optimizer step, font cache)
    total = _times_ms(update, args.updates)

    val_loss = synthetic_val_loss(NUM_EPOCHS)
    s = pg.settings
    traces_ms = _times_ms(lambda i: compare_schedules(PLAYGROUND_SCHEDULES, s,
                                                      val_loss=val_loss), args.updates)
    traces = compare_schedules(PLAYGROUND_SCHEDULES, s, val_loss=val_loss)

    def replot(i: int) -> None:
        plot_lr_traces(traces, num_epochs=NUM_EPOCHS, ax=pg.lr_ax)
        plot_val_loss_curve(val_loss, plateau_lr=traces["plateau"], ax=pg.loss_ax)

    plot_ms = _times_ms(replot, args.updates)
    png_ms = _times_ms(lambda i: pg.figure.savefig(io.BytesIO(), format="png", dpi=80,
                                                   pil_kwargs={"compress_level": 1}),
                       args.updates)

    rows = []
    print(f"scheduler playground update: {len(PLAYGROUND_SCHEDULES)} schedules x {NUM_EPOCHS} "
          f"epochs, {args.updates} updates, {torch.get_num_threads()} torch threads, "
          f"os.getloadavg()={tuple(round(x, 2) for x in os.getloadavg())}")
    print(f"{'part':<34}{'min ms':>9}{'median':>9}{'max':>9}")
    for name, values in [("slider move -> new PNG (total)", total),
                         ("  traces (6 torch schedulers)", traces_ms),
                         ("  update lines + autoscale", plot_ms),
                         ("  render figure to PNG", png_ms)]:
        row = {"part": name.strip(), "min_ms": round(min(values), 2),
               "median_ms": round(statistics.median(values), 2),
               "max_ms": round(max(values), 2)}
        rows.append(row)
        print(f"{name:<34}{row['min_ms']:>9.1f}{row['median_ms']:>9.1f}{row['max_ms']:>9.1f}")
    median = rows[0]["median_ms"]
    ok = median <= BUDGET_MS
    result = {
        "benchmark": "scheduler playground: one update (slider change -> traces -> PNG)",
        "schedules": list(PLAYGROUND_SCHEDULES),
        "num_epochs": NUM_EPOCHS,
        "updates": args.updates,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "matplotlib": matplotlib.__version__,
        "python": platform.python_version(),
        "budget_ms": BUDGET_MS,
        "median_update_ms": median,
        "within_budget": ok,
        "rows": rows,
    }
    atomic_write_bytes(args.out, (json.dumps(result, indent=2) + "\n").encode())
    out = Path(args.out)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"median update {median:.1f} ms ({'within' if ok else 'OVER'} the {BUDGET_MS:.0f} ms "
          f"budget) -> {shown}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
