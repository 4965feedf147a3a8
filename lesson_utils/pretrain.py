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

The lessons load it with ``lesson_utils.models.load_course_backbone``, which checks the sha256
against the card, and use images of the same size as pretraining (``COURSE_IMAGE_SIZE``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lesson_utils.checkpoints import CheckpointError, atomic_write_bytes, load_checkpoint
from lesson_utils.data import SOURCE_CLASSES, ShapesDataset, tensors_from
from lesson_utils.models import TinyResNet, count_parameters
from lesson_utils.repro import seed_everything

__all__ = [
    "COURSE_IMAGE_SIZE",
    "COURSE_CHECKPOINT",
    "COURSE_CARD",
    "REBUILD_COMMAND",
    "PretrainConfig",
    "pretrain",
    "sha256_of",
    "read_card",
    "verify_checkpoint",
    "load_source_model",
    "source_accuracy",
    "main",
]

#: Side length (pixels) of the images the course backbone was pretrained on. Lessons that use the
#: backbone feed it images of this size: features learnt at one scale transfer best at that scale.
COURSE_IMAGE_SIZE = 16

_REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where the recipe writes the checkpoint and the card by default (``data/pretrained/``).
COURSE_CHECKPOINT = _REPO_ROOT / "data" / "pretrained" / "tinyresnet_shapes.pt"
COURSE_CARD = COURSE_CHECKPOINT.with_suffix(".json")
#: The command that rebuilds the checkpoint; every error about a missing or bad file names it.
REBUILD_COMMAND = "python -m lesson_utils.pretrain"


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


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"; _ = p.write_bytes(b"abc")
        >>> sha256_of(p)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(X), batch_size):
            correct += int((model(X[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(X)


def source_accuracy(model: nn.Module, *, n: int = 2000, seed: int = 1,
                    image_size: int = COURSE_IMAGE_SIZE) -> float:
    """Accuracy of a 6-class source-family model on ``n`` Shapes images drawn with ``seed``.

    Example:
        >>> round(source_accuracy(TinyResNet(6), n=12), 2) <= 1.0
        True
    """
    X, y = tensors_from(ShapesDataset(n, family="source", image_size=image_size, seed=seed))
    return _accuracy(model, X, y)


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
    from tqdm.auto import tqdm

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
    generator = seed_everything(config.seed)
    model = TinyResNet(len(SOURCE_CLASSES), widths=config.widths)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.max_lr, momentum=config.momentum,
                                nesterov=True, weight_decay=config.weight_decay)
    steps_per_epoch = -(-config.train_size // config.batch_size)  # ceil
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.max_lr, total_steps=config.epochs * steps_per_epoch)
    history: list[dict[str, float]] = []
    bar = tqdm(total=config.epochs * steps_per_epoch, desc="pretraining", unit="step",
               disable=not progress)
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(config.train_size, generator=generator)
        loss_sum = 0.0
        for i in range(0, config.train_size, config.batch_size):
            batch = order[i:i + config.batch_size]
            loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(batch)
            bar.update(1)
        val_accuracy = _accuracy(model, X_val, y_val)
        history.append({"epoch": epoch + 1, "train_loss": round(loss_sum / config.train_size, 4),
                        "val_accuracy": round(val_accuracy, 4)})
        bar.set_postfix(epoch=epoch + 1, val_acc=f"{val_accuracy:.3f}")
    bar.close()

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


def _rebuild_hint(path: Path) -> str:
    command = REBUILD_COMMAND
    if path.resolve() != COURSE_CHECKPOINT:
        command += f" --output {path}"
    return f"rebuild it from the repository root with `{command}` (a few minutes on a CPU)"


def read_card(checkpoint: str | os.PathLike = COURSE_CHECKPOINT) -> dict[str, Any]:
    """The JSON card beside ``checkpoint`` (same name, ``.json``).

    Raises:
        FileNotFoundError: the card is missing (the message names the rebuild command).
        CheckpointError: the card is not valid JSON or lacks required keys.

    Example:
        >>> read_card()["image_size"] == COURSE_IMAGE_SIZE
        True
    """
    card_path = Path(checkpoint).with_suffix(".json")
    if not card_path.is_file():
        raise FileNotFoundError(f"no card at {card_path} for the course checkpoint; "
                                f"{_rebuild_hint(card_path)}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"card {card_path} is not valid JSON ({exc}); "
                              f"{_rebuild_hint(card_path)}") from exc
    required = {"sha256", "architecture", "image_size", "val_accuracy"}
    if not isinstance(card, Mapping) or not required <= set(card):
        missing = sorted(required - set(card)) if isinstance(card, Mapping) else sorted(required)
        raise CheckpointError(f"card {card_path} lacks {missing}; {_rebuild_hint(card_path)}")
    return dict(card)


def verify_checkpoint(checkpoint: str | os.PathLike = COURSE_CHECKPOINT) -> dict[str, Any]:
    """Check that ``checkpoint`` exists and its sha256 matches its card; return the card.

    Raises:
        FileNotFoundError: the checkpoint or its card is missing.
        CheckpointError: the file's sha256 differs from the card's (corrupt, truncated, or
            replaced without rebuilding the card).

    Example:
        >>> verify_checkpoint()["architecture"]["class"]
        'TinyResNet'
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"the course checkpoint {path} is missing; {_rebuild_hint(path)}")
    card = read_card(path)
    actual = sha256_of(path)
    if actual != card["sha256"]:
        raise CheckpointError(
            f"{path.name} is corrupt or was changed: its sha256 is {actual[:12]}... but its card "
            f"says {str(card['sha256'])[:12]}...; {_rebuild_hint(path)}")
    return card


def load_source_model(checkpoint: str | os.PathLike = COURSE_CHECKPOINT) -> TinyResNet:
    """The pretrained model with its source head (6 shape classes), checksum verified, in eval
    mode. Use ``lesson_utils.models.load_course_backbone`` for a new task.

    Example:
        >>> model = load_source_model()
        >>> model.head.out_features, model.training
        (6, False)
    """
    path = Path(checkpoint)
    card = verify_checkpoint(path)
    architecture = card["architecture"]
    if architecture.get("class") != "TinyResNet":
        raise CheckpointError(f"card says the checkpoint is a {architecture.get('class')!r}, "
                              "expected 'TinyResNet'")
    model = TinyResNet.from_config(architecture["config"])
    try:
        load_checkpoint(path, model=model)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. The architecture in lesson_utils/models.py changed since "
                              f"the checkpoint was made; {_rebuild_hint(path)}") from exc
    return model.eval()


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
