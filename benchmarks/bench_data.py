"""Shapes generation speed (budget: >= 5,000 images/s at 32x32 on one core) and how hard the
task is: a linear model on raw pixels vs a small CNN, same data, same budget of epochs.

    python benchmarks/bench_data.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from lesson_utils import seed_everything  # noqa: E402
from lesson_utils.data import ShapesDataset, tensors_from  # noqa: E402
from lesson_utils.models import TinyResNet  # noqa: E402


def generation_speed(n: int = 10_000, image_size: int = 32) -> float:
    ds = ShapesDataset(n, image_size=image_size)
    start = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - start)


def train_and_test(model: nn.Module, X, y, X_test, y_test, *, epochs: int, lr: float) -> float:
    generator = seed_everything(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(X) + 63) // 64)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(X), generator=generator)
        for i in range(0, len(X), 64):
            idx = order[i:i + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            optimizer.step()
            scheduler.step()
    model.eval()
    with torch.inference_mode():
        return (model(X_test).argmax(1) == y_test).float().mean().item()


def main() -> None:
    torch.set_num_threads(1)  # the budget is per core; one thread is also immune to other load
    speed = generation_speed()
    print(f"Shapes generation, 32x32, 1 thread: {speed:,.0f} images/s (budget >= 5,000)")
    size, n_train, epochs = 24, 3000, 6
    X, y = tensors_from(ShapesDataset(n_train, image_size=size, seed=0))
    X_test, y_test = tensors_from(ShapesDataset(1200, image_size=size, seed=1))
    seed_everything(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 6))
    start = time.perf_counter()
    linear_acc = train_and_test(linear, X, y, X_test, y_test, epochs=epochs, lr=3e-3)
    linear_s = time.perf_counter() - start
    seed_everything(0)
    cnn = TinyResNet(6, widths=(8, 16, 32))
    start = time.perf_counter()
    cnn_acc = train_and_test(cnn, X, y, X_test, y_test, epochs=epochs, lr=5e-3)
    cnn_s = time.perf_counter() - start
    print(f"Source task ({n_train} train / 1200 test images, {size}x{size}, {epochs} epochs, "
          f"chance 16.7%):")
    print(f"  linear model on raw pixels: {100 * linear_acc:5.1f}% test accuracy ({linear_s:.0f} s)")
    print(f"  TinyResNet (8/16/32)      : {100 * cnn_acc:5.1f}% test accuracy ({cnn_s:.0f} s)")
    write_results("data", {"generation_images_per_s": round(speed),
                           "linear_test_accuracy": round(linear_acc, 4),
                           "cnn_test_accuracy": round(cnn_acc, 4),
                           "setup": {"image_size": size, "n_train": n_train, "n_test": 1200,
                                     "epochs": epochs}})


if __name__ == "__main__":
    main()
