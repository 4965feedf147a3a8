"""Lesson 02's experiment: the three transfer strategies trained and measured on in-memory tensors.

(The transfer-learning tools themselves, ``freeze``, ``replace_head``, ``param_groups``, live in
``lesson_utils.models``; the pretrained weights in ``lesson_utils.pretrained``.)


* ``"scratch"``: a randomly initialised ``TinyResNet``, every parameter trained.
* ``"frozen"`` (feature extraction): the course-pretrained backbone is frozen; only a new linear
  head is trained. The backbone never changes, so its features are computed once
  (``extract_features``) and the head trains on them: the same result as running the frozen
  model on every batch, at a fraction of the cost.
* ``"finetune"``: the pretrained backbone and a new head are both trained, the backbone with a
  smaller learning rate (``lesson_utils.models.param_groups``).

Everything runs on tensors in memory (``lesson_utils.data.tensor_loader``) through the course's
one training loop (``lesson_utils.training.fit``): at the lesson's image size a CPU trains
thousands of images per second this way, so each case is measured over several seeds within the
notebook's time budget.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from lesson_utils.data import tensor_loader
from lesson_utils.models import TinyResNet, freeze, modes_restored, param_groups
from lesson_utils.pretrained import load_course_backbone
from lesson_utils.training import EarlyStopping, History, evaluate, fit
from lesson_utils.validation import check_int

__all__ = [
    "STRATEGIES",
    "TransferSettings",
    "TransferResult",
    "per_class_subset",
    "extract_features",
    "train_on_tensors",
    "run_strategy",
    "transfer_tasks",
    "epochs_for",
    "transfer_curve",
    "read_transfer_curve",
    "summarize",
]

Strategy = Literal["scratch", "frozen", "finetune"]
STRATEGIES: tuple[str, ...] = ("scratch", "frozen", "finetune")


@dataclass(frozen=True)
class TransferSettings:
    """Optimiser settings shared by every case, so the cases differ only in data and strategy.

    The defaults were chosen once for all cases (AdamW, the backbone 10x slower than the head)
    and are not tuned per case. ``run_strategy`` builds AdamW with ``fused=True``: one kernel
    for the whole update instead of several per parameter (``benchmarks/bench_transfer.py``).
    """

    lr: float = 3e-3  # scratch: every parameter (random weights tolerate a larger step)
    head_lr: float = 1e-2  # frozen and finetune: the new head
    backbone_lr: float = 1e-3  # finetune: pretrained weights move 10x slower than the head
    weight_decay: float = 1e-2  # AdamW's default


@dataclass
class TransferResult:
    """One training run: final test accuracy, the learning curve and what the run cost."""

    strategy: str
    accuracy: float  # test accuracy of the kept weights (the best validation epoch, if validated)
    epochs: list[int] = field(default_factory=list)  # epochs at which the curve was measured
    curve: list[float] = field(default_factory=list)  # test accuracy at those epochs
    seconds: float = 0.0  # wall time of the run
    steps: int = 0  # optimizer steps taken
    epochs_run: int = 0  # epochs trained (fewer than the budget when early stopping ended it)
    best_epoch: int | None = None  # the epoch whose weights were kept (with a validation set)


def _check_xy(X: torch.Tensor, y: torch.Tensor, what: str = "X, y") -> None:
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{what} must be tensors, got {type(X).__name__}, {type(y).__name__}")
    if y.dim() != 1 or len(X) != len(y):
        raise ValueError(f"{what}: expected X (N, ...) and labels y (N,), got shapes "
                         f"{tuple(X.shape)} and {tuple(y.shape)}")
    if len(y) == 0:
        raise ValueError(f"{what}: empty")


def per_class_subset(y: torch.Tensor, per_class: int, *, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` random examples of every class in labels ``y`` (sorted).

    Args:
        y: labels ``(N,)``.
        per_class: examples to take from each class; every class must have that many.
        seed: which examples; the same seed gives the same subset.

    Example:
        >>> y = torch.tensor([0, 1, 0, 1, 0, 1])
        >>> idx = per_class_subset(y, 2, seed=0)
        >>> len(idx), y[idx].bincount().tolist()
        (4, [2, 2])
    """
    per_class = check_int("per_class", per_class, minimum=1)
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype != torch.long:
        raise TypeError("y must be a 1-D tensor of int64 labels")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        if len(members) < per_class:
            raise ValueError(f"per_class={per_class} but class {label} has only "
                             f"{len(members)} examples")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen).sort().values


def extract_features(backbone: nn.Module, X: torch.Tensor, *,
                     batch_size: int = 1024) -> torch.Tensor:
    """Features of images ``X (N, C, H, W)`` from ``backbone`` in eval mode: ``(N, D)``.

    Runs under ``torch.no_grad()`` (not ``inference_mode``: the result is used to train a head,
    and inference tensors cannot be saved for backward) and restores the backbone's mode.

    Example:
        >>> model = TinyResNet(3)
        >>> extract_features(model.backbone, torch.zeros(5, 3, 16, 16)).shape
        torch.Size([5, 64])
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    with modes_restored(backbone), torch.no_grad():
        backbone.eval()
        return torch.cat([backbone(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])


def train_on_tensors(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    num_epochs: int,
    batch_size: int,
    seed: int = 0,
    X_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    eval_every: int = 1,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    early_stopping: EarlyStopping | None = None,
) -> tuple[list[int], list[float], History]:
    """Train ``model`` with cross-entropy on in-memory ``X, y``; measure test accuracy along
    the way.

    The course's loop (``lesson_utils.training.fit``) over ``tensor_loader(X, y)``, shuffled by a
    generator seeded with ``seed``: per mini-batch ``zero_grad``, forward, ``backward``,
    ``step``. The learning curve is measured by a callback after the chosen epochs. With
    ``validation=(X_val, y_val)`` and an ``early_stopping`` on ``"val_accuracy"``, training stops
    when validation accuracy stops improving and the best epoch's weights are kept.

    Returns:
        ``(epochs, accuracies, history)``: test accuracy after every ``eval_every`` epochs and
        after the last one (empty lists without a test set), and ``fit``'s ``History``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> X, y = torch.randn(40, 2), torch.arange(40) % 2
        >>> X[:, 0] += 3 * y  # class 1 is shifted: learnable
        >>> model = nn.Linear(2, 2)
        >>> epochs, accs, history = train_on_tensors(model, X, y, optimizer=torch.optim.SGD(
        ...     model.parameters(), lr=0.5), num_epochs=4, batch_size=8, X_test=X, y_test=y,
        ...     eval_every=2)
        >>> epochs, accs[-1] > 0.9, len(history)
        ([2, 4], True, 4)
    """
    _check_xy(X, y)
    num_epochs = check_int("num_epochs", num_epochs, minimum=1)
    eval_every = check_int("eval_every", eval_every, minimum=1)
    if (X_test is None) != (y_test is None):
        raise ValueError("give both X_test and y_test, or neither")
    if early_stopping is not None and validation is None:
        raise ValueError("early_stopping needs validation=(X_val, y_val) to watch")
    epochs: list[int] = []
    accuracies: list[float] = []

    def learning_curve(record: dict[str, Any], history: Any) -> None:
        epoch = record["epoch"]
        if X_test is not None and (epoch % eval_every == 0 or epoch == num_epochs):
            epochs.append(epoch)
            test = tensor_loader(X_test, y_test, batch_size=1024)
            accuracies.append(evaluate(model, test, None)["accuracy"])

    train = tensor_loader(X, y, batch_size=batch_size,
                          generator=torch.Generator().manual_seed(seed))
    val = None
    if validation is not None:
        _check_xy(*validation, "validation")
        val = tensor_loader(*validation, batch_size=1024)
    history = fit(model, train, val, nn.CrossEntropyLoss(), optimizer, num_epochs=num_epochs,
                  progress=False, callbacks=[learning_curve], early_stopping=early_stopping,
                  monitor="val_accuracy" if val is not None else None)
    return epochs, accuracies, history


def run_strategy(
    strategy: Strategy,
    X: torch.Tensor,
    y: torch.Tensor,
    X_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    num_classes: int,
    num_epochs: int,
    batch_size: int,
    seed: int,
    settings: TransferSettings | None = None,
    features: Sequence[torch.Tensor] | None = None,
    eval_every: int = 1,
    checkpoint: str | None = None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    patience: int | None = None,
    min_epochs: int = 0,
) -> TransferResult:
    """Train one strategy on ``X, y`` and measure it on ``X_test, y_test``.

    Args:
        strategy: ``"scratch"``, ``"frozen"`` or ``"finetune"`` (see the module docstring).
        X, y: training images ``(N, 3, H, W)`` and labels ``(N,)``.
        X_test, y_test: test images and labels.
        num_classes: outputs of the head.
        num_epochs, batch_size: the training budget (with ``patience``: the most epochs).
        seed: initialisation of new weights and the shuffling order.
        settings: learning rates (``TransferSettings()`` by default).
        features: for ``"frozen"``, precomputed backbone features (``extract_features``) of
            ``X`` and ``X_test`` (and of the validation images, third); computed when omitted.
        eval_every: measure the learning curve every this many epochs.
        checkpoint: the course checkpoint (default: the committed one).
        validation: ``(X_val, y_val)``, a held-out split to pick the epoch by.
        patience: with ``validation``, stop when validation accuracy has not improved for this
            many epochs and keep the best epoch's weights (early stopping).
        min_epochs: never stop before this many epochs (e.g. the fine-tune budget, so that a
            scratch baseline gets at least as many steps).

    Returns:
        A ``TransferResult``: test accuracy of the kept weights, the curve, steps and epochs run.
        For ``"frozen"`` the curve is that of the head on the features, which equals the frozen
        model's.

    Example:
        >>> from lesson_utils.data import ShapesDataset, tensors_from
        >>> X, y = tensors_from(ShapesDataset(24, family="target", image_size=16))
        >>> result = run_strategy("frozen", X, y, X, y, num_classes=6, num_epochs=2,
        ...                       batch_size=8, seed=0)
        >>> result.strategy, result.epochs, result.steps, 0.0 <= result.accuracy <= 1.0
        ('frozen', [1, 2], 6, True)
    """
    settings = settings or TransferSettings()
    _check_xy(X, y, "X, y")
    _check_xy(X_test, y_test, "X_test, y_test")
    if patience is not None and validation is None:
        raise ValueError("patience needs validation=(X_val, y_val) to watch")
    stopping = None if patience is None else EarlyStopping(
        "val_accuracy", patience=patience, start_from_epoch=min_epochs)
    start = time.perf_counter()
    torch.manual_seed(seed)  # the new head's (or the whole scratch model's) initial weights
    model, optimizer, inputs = _setup(strategy, X, X_test, validation, num_classes, settings,
                                      features, checkpoint)
    X_in, X_test_in, val_in = inputs
    epochs, curve, history = train_on_tensors(
        model, X_in, y, optimizer=optimizer, num_epochs=num_epochs, batch_size=batch_size,
        seed=seed, X_test=X_test_in, y_test=y_test, eval_every=eval_every,
        validation=None if val_in is None else (val_in, validation[1]),  # type: ignore[index]
        early_stopping=stopping)
    accuracy = evaluate(model, tensor_loader(X_test_in, y_test, batch_size=1024), None)["accuracy"]
    return TransferResult(strategy, accuracy, epochs, curve, time.perf_counter() - start,
                          steps=len(history) * math.ceil(len(y) / batch_size),
                          epochs_run=len(history), best_epoch=history.best_epoch)


def _setup(strategy: str, X: torch.Tensor, X_test: torch.Tensor,
           validation: tuple[torch.Tensor, torch.Tensor] | None, num_classes: int,
           settings: TransferSettings, features: Sequence[torch.Tensor] | None,
           checkpoint: str | None) -> tuple[nn.Module, torch.optim.Optimizer, list[Any]]:
    """The model to train, its optimizer, and its inputs (train, test, validation): images, or
    for ``"frozen"`` the backbone's features (the head is what trains)."""
    images = [X, X_test, None if validation is None else validation[0]]
    if strategy == "scratch":
        model: nn.Module = TinyResNet(num_classes)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                      weight_decay=settings.weight_decay, fused=True)
    elif strategy == "frozen":
        model = load_course_backbone(num_classes, checkpoint=checkpoint)
        freeze(model.backbone)
        given = list(features or [])
        if given and len(given) != sum(x is not None for x in images):
            raise ValueError(f"features must hold one tensor per image set (train, test"
                             f"{', validation' if validation else ''}), got {len(given)}")
        inputs = [None if x is None else (given.pop(0) if given else
                                          extract_features(model.backbone, x)) for x in images]
        for x, f in zip(images, inputs, strict=True):
            if x is not None and len(f) != len(x):
                raise ValueError(f"features must match their images: got {len(f)} rows for "
                                 f"{len(x)} images")
        optimizer = torch.optim.AdamW(model.head.parameters(), lr=settings.head_lr,
                                      weight_decay=settings.weight_decay, fused=True)
        return model.head, optimizer, inputs
    elif strategy == "finetune":
        model = load_course_backbone(num_classes, checkpoint=checkpoint)
        optimizer = torch.optim.AdamW(
            param_groups(model, backbone_lr=settings.backbone_lr, head_lr=settings.head_lr),
            weight_decay=settings.weight_decay, fused=True)
    else:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    # channels_last (N, H, W, C in memory) is the layout oneDNN's CPU convolutions work in; the
    # numbers are the same up to float rounding.
    model = model.to(memory_format=torch.channels_last)
    inputs = [None if x is None else x.contiguous(memory_format=torch.channels_last)
              for x in images]
    return model, optimizer, inputs


Split = tuple[torch.Tensor, torch.Tensor]


def transfer_tasks(shapes_per_class: int = 300, *, image_size: int | None = None,
                   ) -> dict[str, dict[str, Split]]:
    """Lesson 02's two target tasks as in-memory ``(X, y)`` splits: ``pool`` (training images
    are drawn from it), ``validation`` (to pick the epoch) and ``test``.

    * ``"similar"``: the Shapes target family (6 new shapes, the same kind of picture as the
      backbone's source family): a pool of ``shapes_per_class`` images per class, 100 per class
      for validation, 200 for testing, each from its own seed.
    * ``"dissimilar"``: scikit-learn's handwritten digits (10 classes): 50 per class for
      testing, 20 for validation, the rest (about 104 per class) is the pool.

    Example:
        >>> tasks = transfer_tasks(2)
        >>> {name: tuple(t["pool"][0].shape) for name, t in tasks.items()}
        {'similar': (12, 3, 16, 16), 'dissimilar': (1097, 3, 16, 16)}
    """
    from lesson_utils.data import DigitsDataset, ShapesDataset, tensors_from
    from lesson_utils.pretrained import COURSE_IMAGE_SIZE

    size = COURSE_IMAGE_SIZE if image_size is None else image_size
    shapes_per_class = check_int("shapes_per_class", shapes_per_class, minimum=1)
    shapes = {name: tensors_from(ShapesDataset(6 * n, family="target", image_size=size, seed=seed))
              for name, n, seed in (("pool", shapes_per_class, 10), ("validation", 100, 11),
                                    ("test", 200, 12))}
    X, y = tensors_from(DigitsDataset(image_size=size))
    test = per_class_subset(y, 50, seed=0)
    left = torch.ones(len(y), dtype=torch.bool)
    left[test] = False
    rest = torch.nonzero(left).flatten()
    val = rest[per_class_subset(y[rest], 20, seed=1)]
    left[val] = False
    digits = {"pool": (X[left], y[left]), "validation": (X[val], y[val]),
              "test": (X[test], y[test])}
    return {"similar": shapes, "dissimilar": digits}


def epochs_for(num_images: int, batch_size: int, steps: int) -> int:
    """Epochs that give about ``steps`` optimizer steps on ``num_images`` (at least 1).

    Example:
        >>> epochs_for(1800, 32, 400), epochs_for(30, 32, 400)
        (8, 400)
    """
    return max(1, math.ceil(steps / math.ceil(num_images / batch_size)))


def transfer_curve(
    pool: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    sizes: Sequence[int],
    seeds: Sequence[int],
    strategies: Sequence[str] = STRATEGIES,
    batch_size: int = 32,
    steps: int = 300,
    scratch_factor: int = 4,
    patience_steps: int = 200,
    min_epoch_steps: int = 10,
    settings: TransferSettings | None = None,
    checkpoint: str | None = None,
) -> list[dict[str, Any]]:
    """Test accuracy against training images per class, for each strategy and seed.

    Every run keeps the epoch with the best accuracy on ``validation`` and stops when it has not
    improved for about ``patience_steps`` optimizer steps (early stopping; counted in steps,
    because an epoch of 30 images is one step and one of 1,800 is 57). A training set smaller
    than ``min_epoch_steps`` batches is repeated within an epoch, so validation runs every
    ``min_epoch_steps`` steps or more, not after every step. Frozen and fine-tune get about ``steps`` optimizer steps at most; the scratch
    baseline gets ``scratch_factor`` times as many at most and never stops before the fine-tune
    run of the same size and seed did, so it is not starved. The frozen head trains on features
    computed once.

    Returns:
        One row per run: ``strategy``, ``per_class``, ``seed``, ``accuracy``, ``steps``,
        ``epochs_run``, ``best_epoch``, ``seconds``.

    Example:
        >>> from lesson_utils.data import ShapesDataset, tensors_from
        >>> data = tensors_from(ShapesDataset(60, family="target", image_size=16))
        >>> rows = transfer_curve(data, data, data, sizes=[2], seeds=[0], strategies=["frozen"],
        ...                       steps=4, patience_steps=2, min_epoch_steps=1)
        >>> [(r["strategy"], r["per_class"], r["steps"]) for r in rows]
        [('frozen', 2, 4)]
    """
    X, y = pool
    num_classes = int(y.max()) + 1
    cached = None
    if "frozen" in strategies:
        backbone = load_course_backbone(num_classes, checkpoint=checkpoint).backbone
        cached = [extract_features(backbone, x) for x in (X, test[0], validation[0])]
    rows: list[dict[str, Any]] = []
    for per_class in sizes:
        for seed in seeds:
            idx = per_class_subset(y, per_class, seed=seed)
            idx = idx.repeat(math.ceil(min_epoch_steps * batch_size / len(idx)))
            budget = epochs_for(len(idx), batch_size, steps)
            patience = epochs_for(len(idx), batch_size, patience_steps)
            finetune_epochs = 0
            for strategy in sorted(strategies, key=lambda name: name == "scratch"):
                scratch = strategy == "scratch"
                features = None if cached is None else [cached[0][idx], cached[1], cached[2]]
                result = run_strategy(
                    strategy, X[idx], y[idx], *test, num_classes=num_classes,
                    num_epochs=budget * (scratch_factor if scratch else 1),
                    batch_size=batch_size, seed=seed, settings=settings,
                    features=features if strategy == "frozen" else None,
                    eval_every=budget * scratch_factor, checkpoint=checkpoint,
                    validation=validation, patience=patience,
                    min_epochs=finetune_epochs if scratch else 0)
                if strategy == "finetune":
                    finetune_epochs = result.epochs_run
                rows.append({"strategy": strategy, "per_class": per_class, "seed": seed,
                             "accuracy": result.accuracy, "steps": result.steps,
                             "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                             "seconds": round(result.seconds, 2)})
    return rows


#: Where ``benchmarks/bench_transfer_curve.py`` writes the curve lesson 02 plots.
TRANSFER_CURVE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "transfer_curve.json"


def read_transfer_curve(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The committed transfer curve (``benchmarks/bench_transfer_curve.py``): when and where it was
    measured, the seeds, and per task the ``curve`` rows (strategy, per_class, mean, std, steps),
    the ``ceiling`` and every run.

    Example:
        >>> report = read_transfer_curve()
        >>> sorted(report["tasks"]), len(report["seeds"]) >= 3
        (['dissimilar', 'similar'], True)
    """
    path = Path(TRANSFER_CURVE if path is None else path)
    if not path.is_file():
        raise FileNotFoundError(f"no transfer curve at {path}; make it with "
                                f"`python benchmarks/bench_transfer_curve.py` (about 15 minutes)")
    return json.loads(path.read_text(encoding="utf-8"))


def summarize(rows: Iterable[Mapping[str, Any]], *, by: Sequence[str],
              value: str = "accuracy") -> list[dict[str, Any]]:
    """Mean, sample standard deviation (``ddof=1``; 0 for a single value) and count of
    ``value`` for each group of ``rows`` sharing the keys ``by``, in first-seen order.

    Example:
        >>> rows = [{"case": "a", "accuracy": 0.5}, {"case": "a", "accuracy": 0.7},
        ...         {"case": "b", "accuracy": 0.9}]
        >>> [(r["case"], round(r["mean"], 3), round(r["std"], 3), r["n"])
        ...  for r in summarize(rows, by=["case"])]
        [('a', 0.6, 0.141, 2), ('b', 0.9, 0.0, 1)]
    """
    groups: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(float(row[value]))
    summary = []
    for key, values in groups.items():
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
        summary.append(dict(zip(by, key, strict=True)) | {"mean": mean, "std": math.sqrt(var),
                                                           "n": len(values)})
    return summary
