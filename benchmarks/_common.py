"""Shared bits of the benchmark scripts: timing and writing results atomically."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lesson_utils.checkpoints import atomic_write_bytes

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (after ``warmup`` untimed calls), in s."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": str(torch.__version__), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def write_results(name: str, results: dict[str, Any]) -> Path:
    payload = {"benchmark": name, "machine": machine(),
               "when": time.strftime("%Y-%m-%d %H:%M:%S"), **results}
    return atomic_write_bytes(RESULTS / f"{name}.json",
                              (json.dumps(payload, indent=2) + "\n").encode())


def interleaved(fn: Callable[[str], tuple[float, float]], repeats: int) -> dict[str, Any]:
    """Run ``fn("hand")`` and ``fn("library")`` ``repeats`` times each, alternating who goes
    first, so that drifts in machine load hit both alike.

    ``fn`` returns ``(images/s by wall clock, images/s by process CPU time)``. For each clock the
    result holds both medians and ``ratio_median_of_pairs``, the median of library/hand over the
    pairs (> 1: the library is faster).
    """
    hand, lib = [], []
    for r in range(repeats):
        order = ("hand", "library") if r % 2 == 0 else ("library", "hand")
        for which in order:
            (hand if which == "hand" else lib).append(fn(which))
    out = {}
    for i, clock in enumerate(("wall", "cpu")):
        h, li = [r[i] for r in hand], [r[i] for r in lib]
        out[clock] = {
            "hand_img_per_s": statistics.median(h), "library_img_per_s": statistics.median(li),
            "ratio_median_of_pairs": statistics.median(b / a for a, b in zip(h, li, strict=True)),
            "hand_runs": [round(v, 1) for v in h], "library_runs": [round(v, 1) for v in li]}
    return out
