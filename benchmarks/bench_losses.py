"""Cost of the lesson-03 losses against ``F.cross_entropy``: forward + backward on a (4096, 100)
batch of float32 logits on the CPU. Budget (issue 4): every loss <= 1.5x cross-entropy.

Usage::

    python benchmarks/bench_losses.py [--repeats 40] [--number 5] [--threads 1 0]

Prints one table per thread setting (``0`` means torch's default) and writes
``benchmarks/results/losses.json``. The losses are timed in rounds, each loss right after the
reference. A loss's ratio is its best time divided by the reference's best time (the minimum is
the run least disturbed by other processes, as the ``timeit`` documentation recommends); the
median over rounds of the paired ratio (its time / the reference's time in the same round) is
reported beside it.
With one thread the clock is the thread's CPU time, which other processes on a shared machine
do not inflate; with several threads it is wall time, which they do. The exit status is 1 when
a loss is over budget in the single-thread setting.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lesson_utils.checkpoints import atomic_write_bytes  # noqa: E402
from lesson_utils.losses import (  # noqa: E402
    class_weights,
    focal_loss,
    label_smoothing_cross_entropy,
    soft_f1_loss,
)

N, K = 4096, 100
BUDGET = 1.5
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _time_fwd_bwd(loss_fn: LossFn, logits: torch.Tensor, target: torch.Tensor, number: int,
                  clock: Callable[[], float]) -> float:
    """Seconds per forward + backward, averaged over ``number`` calls."""
    start = clock()
    for _ in range(number):
        logits.grad = None
        loss_fn(logits, target).backward()
    return (clock() - start) / number


def _losses(weights: torch.Tensor) -> tuple[tuple[str, LossFn], list[tuple[str, LossFn]],
                                            list[tuple[str, LossFn]]]:
    reference = ("F.cross_entropy", lambda x, t: F.cross_entropy(x, t))
    candidates: list[tuple[str, LossFn]] = [
        ("focal_loss(gamma=0)", lambda x, t: focal_loss(x, t, gamma=0.0)),
        ("focal_loss(gamma=2)", lambda x, t: focal_loss(x, t, gamma=2.0)),
        ("focal_loss(gamma=2, alpha)", lambda x, t: focal_loss(x, t, gamma=2.0, alpha=weights)),
        ("label_smoothing_ce(0.1)", lambda x, t: label_smoothing_cross_entropy(x, t, smoothing=0.1)),
        ("label_smoothing_ce(0.1, weight)",
         lambda x, t: label_smoothing_cross_entropy(x, t, smoothing=0.1, weight=weights)),
        ("soft_f1_loss", lambda x, t: soft_f1_loss(x, t)),
    ]
    # For comparison only: torch's own label smoothing, not under the budget.
    others: list[tuple[str, LossFn]] = [
        ("F.cross_entropy(label_smoothing=0.1)",
         lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)),
    ]
    return reference, candidates, others


def measure(threads: int, repeats: int, number: int) -> dict[str, Any]:
    """Time every loss with ``threads`` torch threads (0: torch's default) and return a row per loss."""
    default_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    # With one thread all the work runs on this thread, so its CPU time measures the work and
    # not the time spent waiting for a core that other processes hold. With several threads
    # only wall time is meaningful.
    single = torch.get_num_threads() == 1
    clock = time.thread_time if single else time.perf_counter
    try:
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(N, K, generator=g).requires_grad_(True)  # (N, K)
        target = torch.randint(0, K, (N,), generator=g)  # (N,)
        weights = class_weights(torch.cat([torch.arange(K), target]), K)  # (K,)
        reference, candidates, others = _losses(weights)
        everything = [reference, *candidates, *others]
        for _, fn in everything:  # warm up
            _time_fwd_bwd(fn, logits, target, 3, clock)
        times: dict[str, list[float]] = {name: [] for name, _ in everything}
        for _ in range(repeats):
            for name, fn in everything:
                times[name].append(_time_fwd_bwd(fn, logits, target, number, clock))
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(default_threads)

    rows = []
    candidate_names = {name for name, _ in candidates}
    for name, _ in everything:
        ratio = min(times[name]) / min(times[reference[0]])
        median = statistics.median(t / r for t, r in zip(times[name], times[reference[0]], strict=True))
        rows.append({"loss": name, "best_ms": round(min(times[name]) * 1e3, 4),
                     "ratio_vs_ce": round(ratio, 3), "median_paired_ratio_vs_ce": round(median, 3),
                     "under_budget": name in candidate_names})
    worst = max(r["ratio_vs_ce"] for r in rows if r["under_budget"])
    return {"threads": used_threads, "clock": "thread CPU time" if single else "wall time",
            "worst_ratio": worst, "within_budget": worst <= BUDGET,
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="rounds")
    parser.add_argument("--number", type=int, default=5, help="calls per timing")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                        help="torch thread counts to measure; 0 is torch's default")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "losses.json"))
    args = parser.parse_args(argv)

    configs = []
    for threads in args.threads:
        config = measure(threads, args.repeats, args.number)
        configs.append(config)
        print(f"\nforward + backward, logits ({N}, {K}) float32, {config['threads']} thread(s), "
              f"{args.repeats} rounds x {args.number} calls, {config['clock']}")
        print(f"{'loss':<38}{'best ms':>9}{'vs CE':>8}{'median':>8}   budget <= {BUDGET}x")
        for row in config["rows"]:
            flag = ("ok" if row["ratio_vs_ce"] <= BUDGET else "OVER") if row["under_budget"] else ""
            print(f"{row['loss']:<38}{row['best_ms']:>9.3f}{row['ratio_vs_ce']:>8.2f}"
                  f"{row['median_paired_ratio_vs_ce']:>8.2f}   {flag}")
        print(f"worst ratio {config['worst_ratio']:.2f}")

    result = {
        "benchmark": "lesson_utils.losses forward+backward vs F.cross_entropy",
        "shape": [N, K],
        "dtype": "float32",
        "device": "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "repeats": args.repeats,
        "number": args.number,
        "budget_ratio": BUDGET,
        "configs": configs,
    }
    out = Path(args.out)
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    decisive = next((c for c in configs if c["threads"] == 1), configs[0])
    return 0 if decisive["within_budget"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
