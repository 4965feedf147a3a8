"""When does ``predict``'s channels-last layout pay off on the CPU?

``predict`` (``lesson_utils.inference``) feeds 4-D image batches to conv nets in channels-last
layout on the CPU by default. This measures ``predict(..., channels_last=None)`` (the default)
against ``channels_last=False`` (the plain layout, bit for bit a hand-written loop) over
``TinyResNet`` widths, image sizes and batch sizes, and prints the speed-up of each::

    python benchmarks/bench_channels_last.py [--repeats 7] [--threads 1]

Both variants run interleaved in one process and the speed-up is the median of the per-pair
ratios of process CPU time (one thread by default, so CPU time is the work of that thread).
Writes ``benchmarks/results/channels_last.json`` (atomically).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, write_results  # noqa: E402

from lesson_utils.inference import predict  # noqa: E402
from lesson_utils.models import TinyResNet  # noqa: E402

WIDTHS = ((8, 16, 32), (16, 32, 64), (32, 64, 128))
IMAGE_SIZES = (16, 32)
BATCH_SIZES = (64, 256)


def speedup(model: torch.nn.Module, X: torch.Tensor, batch_size: int, repeats: int) -> dict:
    def run(which: str) -> tuple[float, float]:  # "hand": the plain layout; "library": default
        layout = False if which == "hand" else None
        wall, cpu = time.perf_counter(), time.process_time()
        predict(model, X, batch_size=batch_size, channels_last=layout)
        return len(X) / (time.perf_counter() - wall), len(X) / (time.process_time() - cpu)

    run("hand"), run("library")  # warm-up: oneDNN builds its kernels for each layout once
    cpu = interleaved(run, repeats)["cpu"]
    return {"plain_ms": round(1000 * len(X) / cpu["hand_img_per_s"], 1),
            "channels_last_ms": round(1000 * len(X) / cpu["library_img_per_s"], 1),
            "speedup": round(cpu["ratio_median_of_pairs"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'widths':>14} {'image':>6} {'batch':>6} {'plain ms':>9} {'channels-last ms':>17} "
          f"{'speed-up':>9}")
    for widths in WIDTHS:
        for size in IMAGE_SIZES:
            torch.manual_seed(0)
            model = TinyResNet(6, widths=widths)
            X = torch.rand(1024 if size == 16 else 512, 3, size, size)
            for batch_size in BATCH_SIZES:
                row = {"widths": list(widths), "image_size": size, "batch_size": batch_size,
                       "images": len(X), **speedup(model, X, batch_size, args.repeats)}
                rows.append(row)
                print(f"{str(widths):>14} {size:>6} {batch_size:>6} {row['plain_ms']:>9.1f} "
                      f"{row['channels_last_ms']:>17.1f} {row['speedup']:>9.3f}", flush=True)
    ratios = [r["speedup"] for r in rows]
    print(f"speed-up: median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-"
          f"{max(ratios):.2f} over {len(rows)} configurations")
    write_results("channels_last", {"threads": args.threads, "repeats": args.repeats,
                                    "rows": rows, "median_speedup": statistics.median(ratios)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
