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

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from lesson_utils.data import tensor_loader
from lesson_utils.models import TinyResNet, freeze, modes_restored, param_groups
from lesson_utils.pretrained import load_course_backbone
from lesson_utils.training import evaluate, fit
from lesson_utils.validation import check_int

__all__ = [
    "STRATEGIES",
    "TransferSettings",
    "TransferResult",
    "per_class_subset",
    "extract_features",
    "train_on_tensors",
    "run_strategy",
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

    lr: float = 1e-3  # scratch: every parameter
    head_lr: float = 1e-2  # frozen and finetune: the new head
    backbone_lr: float = 1e-3  # finetune: pretrained weights move 10x slower than the head
    weight_decay: float = 1e-2  # AdamW's default


@dataclass
class TransferResult:
    """One training run: final test accuracy and the learning curve."""

    strategy: str
    accuracy: float  # test accuracy after the last epoch
    epochs: list[int] = field(default_factory=list)  # epochs at which the curve was measured
    curve: list[float] = field(default_factory=list)  # test accuracy at those epochs
    seconds: float = 0.0  # wall time of the run


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
) -> tuple[list[int], list[float]]:
    """Train ``model`` with cross-entropy on in-memory ``X, y``; measure test accuracy along
    the way.

    The course's loop (``lesson_utils.training.fit``) over ``tensor_loader(X, y)``, shuffled by a
    generator seeded with ``seed``: per mini-batch ``zero_grad``, forward, ``backward``,
    ``step``. The learning curve is measured by a callback after the chosen epochs.

    Returns:
        ``(epochs, accuracies)``: test accuracy after every ``eval_every`` epochs and after the
        last one (empty lists without a test set).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> X, y = torch.randn(40, 2), torch.arange(40) % 2
        >>> X[:, 0] += 3 * y  # class 1 is shifted: learnable
        >>> model = nn.Linear(2, 2)
        >>> epochs, accs = train_on_tensors(model, X, y, optimizer=torch.optim.SGD(
        ...     model.parameters(), lr=0.5), num_epochs=4, batch_size=8, X_test=X, y_test=y,
        ...     eval_every=2)
        >>> epochs, accs[-1] > 0.9
        ([2, 4], True)
    """
    _check_xy(X, y)
    num_epochs = check_int("num_epochs", num_epochs, minimum=1)
    eval_every = check_int("eval_every", eval_every, minimum=1)
    if (X_test is None) != (y_test is None):
        raise ValueError("give both X_test and y_test, or neither")
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
    fit(model, train, None, nn.CrossEntropyLoss(), optimizer, num_epochs=num_epochs,
        progress=False, callbacks=[learning_curve])
    return epochs, accuracies


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
    features: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every: int = 1,
    checkpoint: str | None = None,
) -> TransferResult:
    """Train one strategy on ``X, y`` and measure it on ``X_test, y_test``.

    Args:
        strategy: ``"scratch"``, ``"frozen"`` or ``"finetune"`` (see the module docstring).
        X, y: training images ``(N, 3, H, W)`` and labels ``(N,)``.
        X_test, y_test: test images and labels.
        num_classes: outputs of the head.
        num_epochs, batch_size: the training budget, equal for every strategy.
        seed: initialisation of new weights and the shuffling order.
        settings: learning rates (``TransferSettings()`` by default).
        features: for ``"frozen"``, precomputed backbone features of ``X`` and ``X_test``
            (``extract_features``); computed here when omitted.
        eval_every: measure the learning curve every this many epochs.
        checkpoint: the course checkpoint (default: the committed one).

    Returns:
        A ``TransferResult``. For ``"frozen"`` the curve is that of the head on the features,
        which equals the frozen model's.

    Example:
        >>> from lesson_utils.data import ShapesDataset, tensors_from
        >>> X, y = tensors_from(ShapesDataset(24, family="target", image_size=16))
        >>> result = run_strategy("frozen", X, y, X, y, num_classes=6, num_epochs=2,
        ...                       batch_size=8, seed=0)
        >>> result.strategy, result.epochs, 0.0 <= result.accuracy <= 1.0
        ('frozen', [1, 2], True)
    """
    settings = settings or TransferSettings()
    _check_xy(X, y, "X, y")
    _check_xy(X_test, y_test, "X_test, y_test")
    start = time.perf_counter()
    torch.manual_seed(seed)  # the new head's (or the whole scratch model's) initial weights
    if strategy == "scratch":
        model: nn.Module = TinyResNet(num_classes)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                      weight_decay=settings.weight_decay, fused=True)
    elif strategy == "frozen":
        model = load_course_backbone(num_classes, checkpoint=checkpoint)
        freeze(model.backbone)
        if features is None:
            features = (extract_features(model.backbone, X), extract_features(model.backbone,
                                                                               X_test))
        train_features, test_features = features
        if len(train_features) != len(y) or len(test_features) != len(y_test):
            raise ValueError(f"features must match X and X_test: got {len(train_features)} and "
                             f"{len(test_features)} rows for {len(y)} and {len(y_test)} labels")
        optimizer = torch.optim.AdamW(model.head.parameters(), lr=settings.head_lr,
                                      weight_decay=settings.weight_decay, fused=True)
        epochs, curve = train_on_tensors(
            model.head, train_features, y, optimizer=optimizer, num_epochs=num_epochs,
            batch_size=batch_size, seed=seed, X_test=test_features, y_test=y_test,
            eval_every=eval_every)
        return TransferResult(strategy, curve[-1], epochs, curve, time.perf_counter() - start)
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
    X = X.contiguous(memory_format=torch.channels_last)
    X_test = X_test.contiguous(memory_format=torch.channels_last)
    epochs, curve = train_on_tensors(
        model, X, y, optimizer=optimizer, num_epochs=num_epochs, batch_size=batch_size,
        seed=seed, X_test=X_test, y_test=y_test, eval_every=eval_every)
    return TransferResult(strategy, curve[-1], epochs, curve, time.perf_counter() - start)


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
