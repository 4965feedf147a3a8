"""Shared bits of the benchmark scripts: timing and writing results atomically."""

from __future__ import annotations

import json
import os
import platform
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
