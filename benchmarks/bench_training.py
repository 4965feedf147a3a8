"""Is the library loop as fast as a hand-written one?

Two budgets from COURSE.md §6:

* ``fit`` vs the same training loop written by hand (same model, data, optimizer, one epoch, no
  progress bar and no validation in either): images per second, ratio >= 0.97.
* ``predict`` vs a hand-written ``model.eval()`` + ``torch.no_grad()`` loop: ratio >= 1.0.
  Also reported, without a budget: ``predict(..., channels_last=False)``, the same loop in the
  default memory layout, which shows what ``inference_mode`` alone is worth (parity here: the
  convolutions dominate).

Both sides run in the same process, interleaved (A B, B A, A B, ...) from the same starting
weights, so drifts in machine load hit both alike; the ratio reported is the median of the
per-pair ratios. Two clocks are kept: wall time (what the budget is about) and the process's CPU
time, which on a machine shared with other jobs is far less noisy (run with ``--threads 1`` there,
so that CPU time is the work of one thread and not time spent spinning on a busy core). Usage::

    python benchmarks/bench_training.py [--repeats 7] [--threads 1] [--quick]

Writes ``benchmarks/results/training.json`` (atomically).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import interleaved  # noqa: E402

from lesson_utils.checkpoints import atomic_write_bytes  # noqa: E402
from lesson_utils.data import ShapesDataset, tensors_from  # noqa: E402
from lesson_utils.inference import predict  # noqa: E402
from lesson_utils.models import TinyResNet  # noqa: E402
from lesson_utils.training import fit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "training.json"


def hand_written_epoch(model, loader, criterion, optimizer):
    """The loop of lesson 06, as a student writes it (loss and accuracy tracked)."""
    model.train()
    running_loss, correct, seen = 0.0, 0, 0
    for X, y in loader:
        optimizer.zero_grad()
        logits = model(X)
        loss = criterion(logits, y)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return running_loss / seen, correct / seen


def hand_written_predict(model, X, batch_size):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(xb) for xb in X.split(batch_size)])
    return logits.softmax(dim=1)


def make_loader(X, y, batch_size, seed=0):
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def time_training(which, state, X, y, batch_size):
    model = TinyResNet(6)
    model.load_state_dict(state)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = make_loader(X, y, batch_size)
    criterion = nn.CrossEntropyLoss()
    wall, cpu = time.perf_counter(), time.process_time()
    if which == "hand":
        hand_written_epoch(model, loader, criterion, optimizer)
    else:
        fit(model, loader, None, criterion, optimizer, num_epochs=1, device="cpu",
            progress=False)
    return len(y) / (time.perf_counter() - wall), len(y) / (time.process_time() - cpu)


def time_predict(which, model, X, batch_size, channels_last=None):
    wall, cpu = time.perf_counter(), time.process_time()
    if which == "hand":
        hand_written_predict(model, X, batch_size)
    else:
        predict(model, X, batch_size=batch_size, channels_last=channels_last)
    return len(X) / (time.perf_counter() - wall), len(X) / (time.process_time() - cpu)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice); on a machine shared "
                             "with other jobs, 1 avoids oversubscription noise")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    n_train, n_pred, image_size = (256, 512, 16) if args.quick else (1024, 2048, 24)
    torch.manual_seed(0)
    X, y = tensors_from(ShapesDataset(n_train, image_size=image_size, seed=0))
    X_pred = tensors_from(ShapesDataset(n_pred, image_size=image_size, seed=1))[0]
    state = copy.deepcopy(TinyResNet(6).state_dict())

    # warm-up (allocator, thread pool, first-call overheads)
    time_training("hand", state, X[:256], y[:256], 64)
    time_training("library", state, X[:256], y[:256], 64)

    started = time.perf_counter()
    train = interleaved(lambda w: time_training(w, state, X, y, 64), args.repeats)
    model = TinyResNet(6)
    model.load_state_dict(state)
    time_predict("hand", model, X_pred[:512], 256)
    pred = interleaved(lambda w: time_predict(w, model, X_pred, 256), args.repeats * 3)
    pred_default_layout = interleaved(
        lambda w: time_predict(w, model, X_pred, 256, channels_last=False), args.repeats * 3)
    elapsed = time.perf_counter() - started

    result = {
        "conditions": {
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "model": "TinyResNet(6), widths (16, 32, 64)", "image_size": image_size,
            "train_images_per_epoch": n_train, "batch_size": 64, "optimizer": "SGD momentum",
            "predict_images": n_pred, "predict_batch_size": 256, "repeats": args.repeats,
            "note": "interleaved runs in one process; other jobs may share the CPU",
        },
        "fit_vs_hand_loop": {**train, "budget": 0.97},
        "predict_vs_no_grad_loop": {**pred, "budget": 1.0},
        "predict_default_layout_vs_no_grad_loop": {**pred_default_layout, "budget": None},
        "elapsed_s": round(elapsed, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(RESULTS, (json.dumps(result, indent=2) + "\n").encode())

    print(f"{'comparison':<26}{'clock':>6}{'hand img/s':>12}{'library img/s':>15}{'ratio':>8}"
          f"{'budget':>8}")
    for name, key in (("fit vs hand loop", "fit_vs_hand_loop"),
                      ("predict vs no_grad loop", "predict_vs_no_grad_loop"),
                      ("  channels_last=False", "predict_default_layout_vs_no_grad_loop")):
        budget = result[key]["budget"]
        for clock in ("wall", "cpu"):
            r = result[key][clock]
            print(f"{name:<26}{clock:>6}{r['hand_img_per_s']:>12.0f}{r['library_img_per_s']:>15.0f}"
                  f"{r['ratio_median_of_pairs']:>8.3f}"
                  + (f"{budget:>8.2f}" if budget is not None else f"{'-':>8}"))
    print(f"({elapsed:.0f} s; results in {RESULTS.relative_to(ROOT)})")
    return result


if __name__ == "__main__":
    main()
