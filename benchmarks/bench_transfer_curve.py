"""Lesson 02's transfer curve: test accuracy against training images per class, for training from
scratch, a frozen pretrained backbone (feature extraction) and fine-tuning, on a task similar to
pretraining (the Shapes target family) and a dissimilar one (handwritten digits); mean and std
over seeds. Also each task's *ceiling*: scratch with much data, so similarity is not confused
with difficulty. Lesson 02 plots the committed result (``benchmarks/results/transfer_curve.json``).

    python benchmarks/bench_transfer_curve.py            # about 10 minutes on one core
    python benchmarks/bench_transfer_curve.py --quick    # two sizes, one seed: a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from lesson_utils.transfer_experiment import transfer_curve, transfer_tasks  # noqa: E402


def summary(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["strategy"], r["per_class"]), []).append(r)
    out = []
    for (strategy, per_class), runs in sorted(groups.items()):
        accs = [r["accuracy"] for r in runs]
        out.append({"strategy": strategy, "per_class": per_class, "seeds": len(runs),
                    "mean": round(statistics.mean(accs), 4),
                    "std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
                    "steps": round(statistics.mean(r["steps"] for r in runs)),
                    "seconds": round(statistics.mean(r["seconds"] for r in runs), 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [0] if args.quick else [0, 1, 2]
    sizes = {"similar": [5, 50] if args.quick else [5, 10, 20, 50, 100, 300],
             "dissimilar": [5, 50] if args.quick else [5, 10, 20, 50, 100]}
    ceiling = {"similar": 200 if args.quick else 1000, "dissimilar": None}
    data = transfer_tasks(ceiling["similar"])
    results: dict = {"seeds": seeds, "tasks": {}}
    for name, task in data.items():
        started = time.perf_counter()
        pool = task["pool"]
        rows = transfer_curve(pool, task["validation"], task["test"], sizes=sizes[name],
                              seeds=seeds)
        counts = torch.bincount(pool[1]).min().item()
        top = ceiling[name] or counts
        top_rows = transfer_curve(pool, task["validation"], task["test"], sizes=[top],
                                  seeds=seeds, strategies=["scratch"], scratch_factor=10)
        results["tasks"][name] = {
            "classes": int(pool[1].max()) + 1, "chance": round(1 / (int(pool[1].max()) + 1), 4),
            "curve": summary(rows), "ceiling": summary(top_rows)[0], "runs": rows + top_rows,
            "seconds": round(time.perf_counter() - started)}
        print(name, f"{time.perf_counter() - started:.0f} s")
        for row in summary(rows) + summary(top_rows):
            print(f"  {row['strategy']:9s} {row['per_class']:5d}/class  {row['mean']:.3f} "
                  f"+- {row['std']:.3f}  {row['steps']} steps  {row['seconds']} s", flush=True)
    if not args.quick:
        write_results("transfer_curve", results)


if __name__ == "__main__":
    main()
