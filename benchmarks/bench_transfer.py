"""Lesson 02 (transfer learning): the budgets of COURSE.md §6 that concern it, measured.

* the course checkpoint: size (budget <= 5 MB) and the pretraining time and accuracy in its card
  (budget: <= 5 min on 2 cores, >= 90% validation accuracy); ``--pretrain`` re-runs the recipe
  into a temporary folder and times it;
* training speed at the course image size: a full TinyResNet step (scratch / fine-tune), with and
  without ``channels_last``, and a head-only step on cached features (feature extraction);
* ``notebooks/02_pretrained_transfer.ipynb`` executed end to end (budget <= 60 s, goal 30 s).

    python benchmarks/bench_transfer.py [--pretrain] [--no-notebook]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, write_results  # noqa: E402

from lesson_utils.models import TinyResNet  # noqa: E402
from lesson_utils.pretrained import (  # noqa: E402
    COURSE_CHECKPOINT,
    COURSE_IMAGE_SIZE,
    load_course_backbone,
    read_card,
)
from lesson_utils.transfer_experiment import extract_features  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "02_pretrained_transfer.ipynb"


def train_images_per_s(*, channels_last: bool, batch_size: int = 32, n: int = 640) -> float:
    torch.manual_seed(0)
    model = TinyResNet(6)
    X = torch.rand(n, 3, COURSE_IMAGE_SIZE, COURSE_IMAGE_SIZE)
    y = torch.randint(0, 6, (n,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        X = X.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()

    def epoch() -> None:
        for i in range(0, n, batch_size):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(X[i:i + batch_size]), y[i:i + batch_size]).backward()
            optimizer.step()

    return n / best_of(epoch, repeats=3)


def head_steps_per_s(batch_size: int = 32, n: int = 1024) -> float:
    torch.manual_seed(0)
    features, y = torch.randn(n, 64), torch.randint(0, 10, (n,))
    head = nn.Linear(64, 10)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-2)

    def epoch() -> None:
        for i in range(0, n, batch_size):
            optimizer.zero_grad()
            nn.functional.cross_entropy(head(features[i:i + batch_size]),
                                        y[i:i + batch_size]).backward()
            optimizer.step()

    return (n // batch_size) / best_of(epoch, repeats=3)


def feature_images_per_s(n: int = 2048) -> float:
    backbone = load_course_backbone(1).backbone
    X = torch.rand(n, 3, COURSE_IMAGE_SIZE, COURSE_IMAGE_SIZE)
    return n / best_of(lambda: extract_features(backbone, X), repeats=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_transfer.py")
    parser.add_argument("--pretrain", action="store_true",
                        help="re-run the pretraining recipe (minutes) and time it")
    parser.add_argument("--no-notebook", action="store_true", help="skip executing the notebook")
    args = parser.parse_args(argv)

    card = read_card()
    size_mb = COURSE_CHECKPOINT.stat().st_size / 2**20
    results: dict = {
        "checkpoint_mb": round(size_mb, 3),
        "card": {k: card[k] for k in ("val_accuracy", "wall_time_s", "threads", "epochs",
                                      "parameter_count", "image_size")},
    }
    print(f"checkpoint: {size_mb:.2f} MB (budget 5 MB); card: val accuracy "
          f"{card['val_accuracy']:.4f} (>= 0.90), pretraining {card['wall_time_s']:.0f} s on "
          f"{card['threads']} thread(s) (budget 300 s)")
    if args.pretrain:
        from lesson_utils.pretrain import pretrain

        with tempfile.TemporaryDirectory() as tmp:
            fresh = pretrain(output=Path(tmp) / "tinyresnet_shapes.pt", progress=False)
        results["pretrain_rerun"] = {"wall_time_s": fresh["wall_time_s"],
                                     "val_accuracy": fresh["val_accuracy"],
                                     "threads": fresh["threads"]}
        print(f"pretraining re-run: {fresh['wall_time_s']:.0f} s, val accuracy "
              f"{fresh['val_accuracy']:.4f}")

    speeds = {
        "train_img_per_s": round(train_images_per_s(channels_last=False)),
        "train_img_per_s_channels_last": round(train_images_per_s(channels_last=True)),
        "head_steps_per_s": round(head_steps_per_s()),
        "feature_img_per_s": round(feature_images_per_s()),
    }
    results["speed"] = speeds
    s = COURSE_IMAGE_SIZE
    print(f"{s}x{s}, {torch.get_num_threads()} threads: TinyResNet training "
          f"{speeds['train_img_per_s']:,} img/s ({speeds['train_img_per_s_channels_last']:,} with "
          f"channels_last); features {speeds['feature_img_per_s']:,} img/s; head-only steps "
          f"{speeds['head_steps_per_s']:,}/s")

    if not args.no_notebook:
        from lesson_utils.notebooks import execute_notebook

        start = time.perf_counter()
        seconds = execute_notebook(NOTEBOOK, write=False)
        results["notebook"] = {"name": NOTEBOOK.name, "seconds": round(seconds, 1),
                               "budget_s": 60, "within_budget": seconds <= 60,
                               "wall_with_startup_s": round(time.perf_counter() - start, 1)}
        print(f"{NOTEBOOK.name}: {seconds:.1f} s (budget 60 s, goal 30 s)")
    write_results("transfer", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
