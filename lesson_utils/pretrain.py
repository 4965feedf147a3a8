"""The recipe that pretrains the course backbone, and the card that describes the result.

One command reproduces the checkpoint that ships with the repo::

    python -m lesson_utils.pretrain            # writes data/pretrained/tinyresnet_shapes.{pt,json}
    python -m lesson_utils.pretrain --verify   # checks the committed files, trains nothing

The recipe trains ``TinyResNet`` on the Shapes *source* family (circle, cross, ring, square,
star, triangle) at ``COURSE_IMAGE_SIZE`` pixels, from in-memory tensors, with SGD + Nesterov
momentum and a one-cycle learning rate. It writes two files, atomically:

* ``tinyresnet_shapes.pt``: the model's ``state_dict`` (backbone and the 6-class source head),
  saved with ``torch.save`` and therefore loadable with ``weights_only=True``;
* ``tinyresnet_shapes.json``: the *card*: recipe, data (seeds and sizes), epochs, validation
  accuracy, parameter count, torch version, the file's sha256 and the measured wall time.

The recipe trains with the course's own loop (``lesson_utils.training.fit``). The lessons load
the result with ``lesson_utils.pretrained.load_course_backbone``, which checks the sha256 against
the card, and use images of the same size as pretraining (``COURSE_IMAGE_SIZE``).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lesson_utils.checkpoints import CheckpointError, atomic_write_bytes
from lesson_utils.data import SOURCE_CLASSES, ShapesDataset, tensor_loader, tensors_from
from lesson_utils.models import TinyResNet, count_parameters
from lesson_utils.pretrained import (
    COURSE_CHECKPOINT,
    COURSE_IMAGE_SIZE,
    REBUILD_COMMAND,
    load_source_model,
    read_card,
    sha256_of,
)
from lesson_utils.repro import seed_everything
from lesson_utils.training import evaluate, fit

__all__ = ["PretrainConfig", "pretrain", "source_accuracy", "main"]

@dataclass(frozen=True)
class PretrainConfig:
    """Every setting of the recipe; the card stores them, so the card alone rebuilds the file."""

    image_size: int = COURSE_IMAGE_SIZE  # small images keep every lesson within its CPU budget
    widths: tuple[int, int, int] = (16, 32, 64)  # TinyResNet's default, about 78k parameters
    train_size: int = 12_000  # images are free (drawn on the fly), so no augmentation is needed
    val_size: int = 2_000  # a disjoint sample: another data seed gives other images
    train_seed: int = 0  # data seed of the training images
    val_seed: int = 1  # data seed of the validation images
    seed: int = 0  # initialisation and shuffling
    epochs: int = 10
    batch_size: int = 128
    max_lr: float = 0.2  # peak of the one-cycle schedule
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        for name in ("image_size", "train_size", "val_size", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16 (ShapesDataset's minimum), got "
                             f"{self.image_size}")
        if self.train_seed == self.val_seed:
            raise ValueError(f"train_seed and val_seed must differ (the same seed draws the same "
                             f"images), got {self.train_seed} for both")
        if not self.max_lr > 0:
            raise ValueError(f"max_lr must be > 0, got {self.max_lr!r}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))


def source_accuracy(model: nn.Module, *, n: int = 2000, seed: int = 1,
                    image_size: int = COURSE_IMAGE_SIZE) -> float:
    """Accuracy of a 6-class source-family model on ``n`` Shapes images drawn with ``seed``.

    Example:
        >>> round(source_accuracy(TinyResNet(6), n=12), 2) <= 1.0
        True
    """
    X, y = tensors_from(ShapesDataset(n, family="source", image_size=image_size, seed=seed))
    return evaluate(model, tensor_loader(X, y, batch_size=1000), None)["accuracy"]


def pretrain(config: PretrainConfig | None = None, *,
             output: str | os.PathLike = COURSE_CHECKPOINT,
             progress: bool = True) -> dict[str, Any]:
    """Run the recipe: train ``TinyResNet`` on the Shapes source family, write the state dict to
    ``output`` and the card beside it (same name, ``.json``), both atomically.

    Args:
        config: the recipe's settings (defaults: the committed checkpoint's).
        output: path of the ``.pt`` file.
        progress: show a tqdm progress bar.

    Returns:
        The card (also written as JSON).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "tiny.pt"
        >>> card = pretrain(PretrainConfig(train_size=60, val_size=12, epochs=1, widths=(4, 8, 8)),
        ...                 output=out, progress=False)
        >>> card["sha256"] == sha256_of(out), card["parameter_count"], card["image_size"]
        (True, 2682, 16)
    """
    config = config or PretrainConfig()
    if not isinstance(config, PretrainConfig):
        raise TypeError(f"config must be a PretrainConfig, got {type(config).__name__}")
    output = Path(output)
    if output.suffix != ".pt":
        raise ValueError(f"output must be a .pt file, got {output}")
    start = time.perf_counter()
    data_kwargs = {"family": "source", "image_size": config.image_size}
    X, y = tensors_from(ShapesDataset(config.train_size, seed=config.train_seed, **data_kwargs))
    X_val, y_val = tensors_from(ShapesDataset(config.val_size, seed=config.val_seed,
                                              **data_kwargs))
    generator = seed_everything(config.seed)  # initialisation, then the shuffling order
    model = TinyResNet(len(SOURCE_CLASSES), widths=config.widths)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.max_lr, momentum=config.momentum,
                                nesterov=True, weight_decay=config.weight_decay)
    train_loader = tensor_loader(X, y, batch_size=config.batch_size, generator=generator)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, total_steps=config.epochs * len(train_loader))
    fitted = fit(model, train_loader, tensor_loader(X_val, y_val, batch_size=1000),
                 nn.CrossEntropyLoss(), optimizer, num_epochs=config.epochs, scheduler=scheduler,
                 progress=progress, monitor="val_accuracy")
    history = [{"epoch": r["epoch"], "train_loss": round(r["train_loss"], 4),
                "val_accuracy": round(r["val_accuracy"], 4)} for r in fitted]

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write_bytes(output, buffer.getvalue())
    wall_time = time.perf_counter() - start
    card = {
        "name": output.stem,
        "description": "TinyResNet pretrained on the Shapes source family; the course backbone.",
        "command": REBUILD_COMMAND,
        "architecture": {"class": "TinyResNet", "config": model.config},
        "image_size": config.image_size,
        "classes": list(SOURCE_CLASSES),
        "recipe": dataclasses.asdict(config) | {
            "widths": list(config.widths),
            "optimizer": "SGD(nesterov=True)",
            "schedule": "OneCycleLR, stepped per batch",
            "augmentation": "none (fresh images are free)",
        },
        "data": {
            "dataset": "lesson_utils.data.ShapesDataset",
            "family": "source",
            "train": {"n": config.train_size, "seed": config.train_seed},
            "val": {"n": config.val_size, "seed": config.val_seed},
        },
        "epochs": config.epochs,
        "val_accuracy": round(history[-1]["val_accuracy"], 4),
        "history": history,
        "parameter_count": count_parameters(model),
        "file": output.name,
        "file_bytes": output.stat().st_size,
        "sha256": sha256_of(output),
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "threads": torch.get_num_threads(),
        "wall_time_s": round(wall_time, 1),
    }
    atomic_write_bytes(output.with_suffix(".json"),
                       (json.dumps(card, indent=2) + "\n").encode("utf-8"))
    return card


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m lesson_utils.pretrain [--verify] [--output PATH] ...``."""
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m lesson_utils.pretrain",
        description="Pretrain the course backbone (TinyResNet on the Shapes source family).")
    parser.add_argument("--output", default=str(COURSE_CHECKPOINT),
                        help="the .pt file to write; the card goes beside it (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--train-size", type=int, default=defaults.train_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--verify", action="store_true",
                        help="check the existing file against its card and re-measure its "
                             "accuracy on a fresh sample; train nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.verify:
        try:
            model = load_source_model(args.output)
            card = read_card(args.output)
        except (FileNotFoundError, CheckpointError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        fresh = source_accuracy(model, n=2000, seed=1234, image_size=card["image_size"])
        print(f"{args.output}: sha256 ok; card val accuracy {card['val_accuracy']:.4f}, "
              f"fresh sample (seed 1234) {fresh:.4f}")
        return 0
    config = dataclasses.replace(defaults, epochs=args.epochs, train_size=args.train_size,
                                 seed=args.seed)
    card = pretrain(config, output=args.output, progress=not args.quiet)
    print(f"wrote {args.output} ({card['file_bytes'] / 1e6:.2f} MB) and its card: "
          f"val accuracy {card['val_accuracy']:.4f}, {card['parameter_count']:,} parameters, "
          f"{card['wall_time_s']:.0f} s on {card['threads']} threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
