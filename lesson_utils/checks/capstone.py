"""Self-checks for lesson 08 (the capstone).

Every checker builds its own test data inside the call (a tiny image folder, label vectors, a
small model, a scripted training run), so nothing it compares against can be read or changed by
the notebook:

* ``check_image_csv_dataset``: the ``Dataset`` over an image folder and its CSV;
* ``check_make_criterion``, ``check_criterion_split``: class weights proportional to 1/count,
  counted on the training split only;
* ``check_optimizer_and_scheduler``: every parameter optimized, a one-cycle LR sized in batches;
* ``check_train_and_keep_best``: the scheduler stepped per batch after the optimizer, the best
  epoch kept by validation macro-F1 as a copy, not the last one or the lowest loss;
* ``check_predictions_file`` and ``check_hidden_test_f1``: the submission.

``check_hidden_test_f1`` scores ``predictions.csv`` against the *public* test set, for the
student's own feedback. Under the grader the hidden-test cell does not run in the kernel at all:
the grader scores the file in its own process, against a test set whose labels never enter the
kernel (``lesson_utils.assignments.capstone.HiddenTestJudge``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lesson_utils.assignments.capstone import (
    CLASSES,
    DATA_DIR,
    HIDDEN_TEST_BAR,
    IMAGE_SIZE,
    PUBLIC_TEST_SEED,
    TEST_PER_CLASS,
    capstone_test_labels,
    macro_f1_report,
    parse_predictions,
    read_ids,
)
from lesson_utils.checks._core import call_student, fail, passed
from lesson_utils.data import ShapesDataset, export_image_folder
from lesson_utils.metrics import f1_score
from lesson_utils.models import TinyResNet

__all__ = ["check_image_csv_dataset", "check_make_criterion", "check_criterion_split",
           "check_optimizer_and_scheduler", "check_train_and_keep_best", "check_predictions_file",
           "check_hidden_test_f1"]


# ----------------------------------------------------------------------------- the Dataset

def _tiny_folder(root: Path) -> tuple[list[str], list[int], list[str]]:
    """A 12-image labelled folder, an unlabelled CSV over 5 of them (in another order)."""
    data = ShapesDataset(family="target", image_size=16, seed=424242,
                         class_counts=[4, 3, 2, 1, 1, 1])
    export_image_folder(data, root)
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["id"] for r in rows]
    labels = [int(r["label"]) for r in rows]
    unlabelled = [ids[i] for i in (7, 2, 11, 0, 5)]
    with open(root / "ids.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([["id"], *[[i] for i in unlabelled]])
    return ids, labels, unlabelled


def _pixels(image: Any) -> torch.Tensor:
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.array(image.convert("RGB")))
    raise TypeError(f"expected a PIL image, got {type(image).__name__}")


def _item(ds: Any, index: int, what: str, *, unlabelled: bool = False) -> tuple[Any, Any]:
    try:
        item = ds[index]
    except NotImplementedError:
        fail(what, "__getitem__ is not implemented yet")
    except KeyError as exc:
        if unlabelled and "label" in str(exc):
            fail(what, "a CSV without a 'label' column (the test set) raised KeyError: "
                       "return label -1 when there is no label")
        fail(what, f"dataset[{index}] raised KeyError: {exc}")
    except Exception as exc:
        fail(what, f"dataset[{index}] raised {type(exc).__name__}: {exc}")
    if not isinstance(item, tuple) or len(item) != 2:
        fail(what, f"an item must be a pair (image, label), got {type(item).__name__}")
    return item


def _check_unlabelled(what: str, dataset_class: Callable[..., Any], root: Path,
                      unlabelled: list[str]) -> None:
    """The dataset over a CSV without a ``label`` column (the test set): label -1."""
    try:
        test = dataset_class(root, "ids.csv")
    except KeyError as exc:
        fail(what, f"a CSV without a 'label' column (the test set) raised KeyError {exc}: "
                   "return label -1 when there is no label")
    except Exception as exc:
        fail(what, f"creating the dataset over a CSV without labels raised "
                   f"{type(exc).__name__}: {exc}")
    if len(test) != len(unlabelled):
        fail(what, f"a CSV without labels: len is {len(test)}, expected {len(unlabelled)}")
    for i, name in enumerate(unlabelled):
        image, label = _item(test, i, what, unlabelled=True)
        if label != -1:
            fail(what, f"a CSV without a 'label' column must give label -1, got {label!r}")
        if not torch.equal(_pixels(image),
                           _pixels(Image.open(root / name).convert("RGB"))):
            fail(what, f"unlabelled item {i} is not the image {name} of row {i}")


def check_image_csv_dataset(dataset_class: Callable[..., Any]) -> bool:
    """Check a ``Dataset`` class ``cls(root, csv_file, transform=None)`` over an image folder.

    Item ``i`` is ``(image, label)`` for row ``i`` of ``root/csv_file``: ``image`` is the file
    ``root/<id>`` opened as an RGB PIL image, passed through ``transform`` when one is given;
    ``label`` is the row's ``label`` column as an ``int``, or ``-1`` when the CSV has no
    ``label`` column (the test set).

    Example:
        >>> import csv
        >>> from PIL import Image
        >>> from torch.utils.data import Dataset
        >>> class Images(Dataset):
        ...     def __init__(self, root, csv_file, transform=None):
        ...         self.root, self.transform = Path(root), transform
        ...         with open(self.root / csv_file, newline="") as f:
        ...             self.rows = list(csv.DictReader(f))
        ...     def __len__(self):
        ...         return len(self.rows)
        ...     def __getitem__(self, i):
        ...         row = self.rows[i]
        ...         image = Image.open(self.root / row["id"]).convert("RGB")
        ...         if self.transform is not None:
        ...             image = self.transform(image)
        ...         return image, int(row.get("label", -1))
        >>> check_image_csv_dataset(Images)
        ✅ dataset: right length, images, labels and transform, with and without labels
        True
    """
    what = "dataset"
    if not callable(dataset_class):
        fail(what, f"expected a Dataset class, got {type(dataset_class).__name__}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ids, labels, unlabelled = _tiny_folder(root)
        ds = call_student(what, dataset_class, root, "labels.csv")
        try:
            n = len(ds)
        except Exception as exc:
            fail(what, f"len(dataset) raised {type(exc).__name__}: {exc}")
        if n == len(ids) + 1:
            fail(what, f"len(dataset) is {n} for a CSV with {len(ids)} rows: the header "
                       "line is not an image (csv.DictReader skips it for you)")
        if n != len(ids):
            fail(what, f"len(dataset) is {n}, expected {len(ids)} (one item per CSV row)")
        for i in (0, 5, 11):
            image, label = _item(ds, i, what)
            if isinstance(label, str):
                fail(what, f"label {label!r} is a string: convert it with int(row['label'])")
            if isinstance(label, torch.Tensor) or not isinstance(label, int):
                fail(what, f"labels must be Python ints, got {type(label).__name__}")
            if not isinstance(image, Image.Image):
                fail(what, f"without a transform the image must be a PIL image (as "
                           f"Image.open gives it), got {type(image).__name__}")
            if image.mode != "RGB":
                fail(what, f"the image has mode {image.mode!r}: call .convert('RGB') so every "
                           "image has 3 channels")
            expected = Image.open(root / ids[i]).convert("RGB")
            if not torch.equal(_pixels(image), _pixels(expected)):
                fail(what, f"item {i} is not the image of CSV row {i} ({ids[i]}): keep the "
                           "rows in the file's order")
            if label != labels[i]:
                fail(what, f"item {i} has label {label}, but CSV row {i} says {labels[i]}")
        tagged = call_student(what, dataset_class, str(root), "labels.csv",
                       transform=lambda im: ("transformed", im.size))
        image, label = _item(tagged, 3, what)
        if image != ("transformed", (16, 16)):
            fail(what, "the transform was not applied to the image: return "
                       "self.transform(image) when a transform is given")
        if label != labels[3]:
            fail(what, "the transform must change the image only, not the label")
        _check_unlabelled(what, dataset_class, root, unlabelled)
    return passed(what, "right length, images, labels and transform, with and without labels")


# ----------------------------------------------------------------------------- the loss

def _labels(counts: Sequence[int], seed: int) -> list[int]:
    """Class indices with ``counts[k]`` copies of ``k``, shuffled (a training set's labels)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(list(counts)))
    return labels[torch.randperm(len(labels), generator=g)].tolist()


def _loss_batch(num_classes: int, classes: Sequence[int] | None = None,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (N, K) float32, targets (N,))`` with 4 samples of each class in ``classes``."""
    g = torch.Generator().manual_seed(seed)
    classes = list(range(num_classes)) if classes is None else list(classes)
    targets = torch.tensor(classes * 4)[torch.randperm(4 * len(classes), generator=g)]
    return torch.randn(len(targets), num_classes, generator=g) * 2, targets


def _counts(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    return torch.bincount(torch.as_tensor(list(labels)), minlength=num_classes).double()


def _ce(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None) -> float:
    """Cross-entropy in float64; with ``weight``, torch's weighted mean (divides by sum of w)."""
    return float(F.cross_entropy(logits.double(), targets,
                                 weight=None if weight is None else weight.double()))


def _loss_of(what: str, criterion: Any, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """``criterion(logits, targets)`` as a float, or a hint."""
    if not callable(criterion):
        fail(what, f"expected a loss (e.g. nn.CrossEntropyLoss(weight=...)), got "
                   f"{type(criterion).__name__}")
    if getattr(criterion, "reduction", "mean") != "mean":
        fail(what, f"the loss must be one number per batch (reduction='mean'), got reduction="
                   f"{criterion.reduction!r}: a sum grows with the batch size, and the "
                   "training loop expects a mean")
    try:
        out = criterion(logits.clone(), targets.clone())
    except Exception as exc:
        if "weight" in str(exc):
            fail(what, f"the loss raised {type(exc).__name__} ({_short(exc, 120)}). The weight "
                       f"vector needs one entry per class ({logits.shape[1]}), even for a class "
                       "without training labels: torch.bincount(labels, minlength=num_classes)")
        fail(what, f"criterion(logits, targets) raised {type(exc).__name__}: {exc}")
    if not isinstance(out, torch.Tensor):
        fail(what, f"the loss must be a tensor (to call .backward() on), got "
                   f"{type(out).__name__}")
    if out.ndim != 0:
        fail(what, f"the loss must be one number per batch (reduction='mean'), got shape "
                   f"{tuple(out.shape)}")
    return float(out)


def _short(exc: Exception, limit: int = 90) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def _close_loss(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7)


def _loss_mistake(got: float, logits: torch.Tensor, targets: torch.Tensor,
                  counts: torch.Tensor) -> str:
    """Which classic weighting ``got`` equals, as a hint (or a description of the target)."""
    inverse = 1.0 / counts.clamp(min=1)
    for weight, hint in [
        (None, "every class weighs the same (no class weights), so the common classes dominate "
               "the loss: pass weight= to nn.CrossEntropyLoss"),
        (counts, "the weights grow with the counts, so the common classes weigh even more: "
                 "invert them, weight[k] proportional to 1 / count[k]"),
        (counts.rsqrt(), "weights proportional to 1/sqrt(count) are a milder correction; here "
                         "weight[k] is proportional to 1 / count[k], so every class weighs the "
                         "same in total"),
    ]:
        if _close_loss(got, _ce(logits, targets, weight)):
            return hint
    return (f"expected {_ce(logits, targets, inverse):.6f}, got {got:.6f}: cross-entropy with "
            f"weight[k] proportional to 1 / count[k] (counts {counts.long().tolist()})")


def _check_make_criterion_function(what: str, make_criterion: Callable[..., Any]) -> None:
    """The function on the checker's own labels: two long tails, then classes without labels."""
    previous = None
    for counts in ([40, 20, 10, 5, 3, 2], [3, 7, 30, 12, 50, 6]):
        labels = _labels(counts, seed=sum(counts))
        criterion = call_student(what, make_criterion, labels, len(counts))
        logits, targets = _loss_batch(len(counts))
        got = _loss_of(what, criterion, logits, targets)
        if _close_loss(got, _ce(logits, targets, 1.0 / _counts(labels, len(counts)))):
            previous = counts
            continue
        if previous is not None and _close_loss(got, _ce(logits, targets,
                                                         1.0 / torch.tensor(previous).double())):
            fail(what, f"with training counts {counts} the weights are still those of "
                       f"{previous}: count the labels passed in (train_labels), not a global")
        fail(what, f"with training counts {counts}: "
                   + _loss_mistake(got, logits, targets, _counts(labels, len(counts))))
    counts = [10, 5, 0, 4, 2, 0]  # classes 2 and 5 have no training label
    labels = _labels(counts, seed=1)
    try:
        criterion = make_criterion(labels, len(counts))
    except NotImplementedError:
        fail(what, "not implemented yet: replace `raise NotImplementedError()` with your code")
    except Exception as exc:
        fail(what, f"with counts {counts} (two classes without a label) it raised "
                   f"{type(exc).__name__} ({_short(exc)}). Count with torch.bincount(labels, "
                   "minlength=num_classes) and clamp the counts to at least 1 "
                   "(lesson_utils.losses.class_weights refuses empty classes)")
    present = [k for k, n in enumerate(counts) if n]
    for classes in (present, range(len(counts))):  # then a batch with every class
        logits, targets = _loss_batch(len(counts), classes)
        got = _loss_of(what, criterion, logits, targets)
        if not math.isfinite(got):
            fail(what, f"with counts {counts}, the loss is {got}: a class without training "
                       "labels got the weight 1/0 = inf (and inf / inf is nan); clamp the "
                       "counts to at least 1")
    logits, targets = _loss_batch(len(counts), present)
    got = _loss_of(what, criterion, logits, targets)
    if not _close_loss(got, _ce(logits, targets, 1.0 / _counts(labels, len(counts)).clamp(min=1))):
        fail(what, f"with training counts {counts}: "
                   + _loss_mistake(got, logits, targets, _counts(labels, len(counts))))


def check_make_criterion(make_criterion: Callable[..., Any]) -> bool:
    """Check ``make_criterion(train_labels, num_classes)``: a class-weighted cross-entropy whose
    weight for class ``k`` is proportional to ``1 / count_k`` in ``train_labels`` (counts
    clamped to at least 1, so a class without labels still gets a finite weight).

    Example:
        >>> def make_criterion(train_labels, num_classes):
        ...     counts = torch.bincount(torch.tensor(train_labels), minlength=num_classes)
        ...     return torch.nn.CrossEntropyLoss(weight=1.0 / counts.clamp(min=1).float())
        >>> check_make_criterion(make_criterion)
        ✅ make_criterion: weight proportional to 1/count (the rarest class weighs most), a class without labels handled
        True
    """
    what = "make_criterion"
    if not callable(make_criterion):
        fail(what, f"expected a function, got {type(make_criterion).__name__}")
    _check_make_criterion_function(what, make_criterion)
    return passed(what, "weight proportional to 1/count (the rarest class weighs most), a class "
                        "without labels handled")


def _split_labels(labels: Sequence[int], train_idx: Sequence[int],
                  ) -> tuple[list[int], list[int]]:
    """``(training-split labels, validation labels)``, with the arguments checked."""
    try:
        labels = [int(y) for y in labels]
        chosen = {int(i) for i in train_idx}
    except (TypeError, ValueError):
        raise TypeError(f"labels and train_idx must be sequences of ints, got "
                        f"{type(labels).__name__} and {type(train_idx).__name__}") from None
    if not labels:
        raise ValueError("labels must not be empty: pass the label of every labelled image")
    if not chosen or min(chosen) < 0 or max(chosen) >= len(labels):
        raise ValueError(f"train_idx must hold indices in [0, {len(labels) - 1}] (one per "
                         f"training image), got {len(chosen)} indices"
                         + (f" from {min(chosen)} to {max(chosen)}" if chosen else ""))
    train = [labels[i] for i in sorted(chosen)]
    return train, [y for i, y in enumerate(labels) if i not in chosen]


def check_criterion_split(criterion: Any, *, labels: Sequence[int], train_idx: Sequence[int],
                          num_classes: int = len(CLASSES)) -> bool:
    """Check that the notebook's ``criterion`` weights the classes by 1/count over the
    **training split** (``labels[i] for i in train_idx``), not over the validation images or
    over every labelled image.

    Args:
        criterion: the loss the notebook trains with.
        labels: the label of every labelled image (training and validation).
        train_idx: the indices of the training split in ``labels``.
        num_classes: number of classes.

    Example:
        >>> labels = [0] * 12 + [1] * 6 + [2] * 3
        >>> train_idx = [i for i in range(len(labels)) if i % 3]
        >>> counts = torch.bincount(torch.tensor([labels[i] for i in train_idx]))
        >>> criterion = torch.nn.CrossEntropyLoss(weight=1.0 / counts.float())
        >>> check_criterion_split(criterion, labels=labels, train_idx=train_idx, num_classes=3)
        ✅ criterion: class weights from the 14 images of the training split, none from validation
        True
    """
    what = "criterion"
    train, val = _split_labels(labels, train_idx)
    every = train + val
    logits, targets = _loss_batch(num_classes, seed=8)
    got = _loss_of(what, criterion, logits, targets)
    if _close_loss(got, _ce(logits, targets, 1.0 / _counts(train, num_classes).clamp(min=1))):
        return passed(what, f"class weights from the {len(train)} images of the training "
                            "split, none from validation")
    for source, hint in [
        (val, "its weights come from the validation labels: the loss is part of training, so "
              "count the training split only (the validation set must stay unseen)"),
        (every, "it counts every labelled image, validation included: count the "
                       "training split only ([train_labels[i] for i in train_idx])"),
    ]:
        if _close_loss(got, _ce(logits, targets,
                                1.0 / _counts(source, num_classes).clamp(min=1))):
            fail(what, hint)
    if _close_loss(got, _ce(logits, targets, None)):
        fail(what, "it has no class weights: criterion = make_criterion(<training-split "
                   "labels>, len(CLASSES))")
    fail(what, "it does not weight the classes by 1/count over the training split: build it "
               "with make_criterion([train_labels[i] for i in train_idx], len(CLASSES))")


# ----------------------------------------------------------------------------- optimizer, schedule

def _optimizer_pair(what: str, result: Any, model: nn.Module) -> tuple[Any, Any]:
    """The ``(optimizer, scheduler)`` a student returned, checked against ``model``."""
    if not isinstance(result, tuple) or len(result) != 2:
        fail(what, f"return the pair (optimizer, scheduler), got {type(result).__name__}")
    optimizer, scheduler = result
    if not isinstance(optimizer, torch.optim.Optimizer):
        fail(what, f"the first item must be a torch optimizer, got {type(optimizer).__name__}")
    if not callable(getattr(scheduler, "step", None)) or not hasattr(scheduler, "optimizer"):
        fail(what, f"the second item must be an LR scheduler, got {type(scheduler).__name__}")
    if scheduler.optimizer is not optimizer:
        fail(what, "the scheduler drives another optimizer than the one returned: build it "
                   "on the returned optimizer")
    given = {id(p) for g in optimizer.param_groups for p in g["params"]}
    trainable = {id(p): name for name, p in model.named_parameters() if p.requires_grad}
    missing = [name for i, name in trainable.items() if i not in given]
    if given - set(trainable):
        fail(what, "the optimizer holds parameters that are not the model's: build it from "
                   "the `model` argument, not from a global")
    if missing:
        only_head = all(not name.startswith("head.") for name in missing)
        fail(what, f"the optimizer leaves out {len(missing)} of {len(trainable)} parameter "
                   f"tensors (e.g. {missing[0]})" + (": it trains only the head, but fine-"
                   "tuning adapts every layer: pass model.parameters() (or param groups with "
                   "a lower LR for the backbone)" if only_head else ""))
    return optimizer, scheduler


def _lr_run(what: str, optimizer: Any, scheduler: Any, num_epochs: int,
            steps_per_epoch: int) -> list[list[float]]:
    """The LR of every group at each batch, stepping as a correct loop does (optimizer.step()
    then scheduler.step(), after every batch)."""
    total = num_epochs * steps_per_epoch
    sized = getattr(scheduler, "total_steps", None)
    lrs = []
    for t in range(total):
        lrs.append([float(g["lr"]) for g in optimizer.param_groups])
        optimizer.step()  # no gradients: the weights stay, the step is counted
        try:
            scheduler.step()
        except TypeError as exc:
            fail(what, f"scheduler.step() raised TypeError: {exc}. ReduceLROnPlateau needs a "
                       "metric once per epoch; here the scheduler is stepped after every batch "
                       "(e.g. OneCycleLR)")
        except ValueError:
            if t == num_epochs:
                why = (f": it is sized in epochs (total_steps={sized}), but a per-batch "
                       "schedule is stepped after every batch, so it needs num_epochs * "
                       "steps_per_epoch steps")
            else:
                why = (f" (its total_steps is {sized})" if sized is not None else "") + \
                      f": size it for num_epochs * steps_per_epoch = {total} steps"
            fail(what, f"the scheduler refused step {t + 1} of {total} ({num_epochs} epochs x "
                       f"{steps_per_epoch} batches){why}")
    return [list(group) for group in zip(*lrs, strict=True)]


def _check_lr_shape(what: str, lrs: list[float], sized: Any) -> None:
    """Warm up, one peak, anneal to near 0 at the last batch, and not much earlier."""
    total = len(lrs)
    if not all(math.isfinite(v) and v >= 0 for v in lrs):
        fail(what, "the learning rate became negative or not finite")
    peak = max(lrs)
    top = next(t for t, v in enumerate(lrs) if v >= peak * (1 - 1e-9))  # first peak
    if peak <= 0:
        fail(what, "the learning rate is 0 at every batch")
    rises = [t for t in range(top, total - 1) if lrs[t + 1] > lrs[t] * (1 + 1e-9) + 1e-12]
    if rises:
        fail(what, f"the LR rises again at batch {rises[0] + 2} of {total}, after its peak at "
                   f"batch {top + 1}: a schedule sized in epochs (e.g. CosineAnnealingLR("
                   "T_max=num_epochs)) cycles when it is stepped after every batch; size it in "
                   "batches, num_epochs * steps_per_epoch")
    sized_note = f" (total_steps={sized})" if sized is not None else ""
    if lrs[-1] > 0.05 * peak:
        fail(what, f"at the last batch the LR is still {lrs[-1] / peak:.0%} of its peak: the "
                   f"schedule is sized for more than the {total} batches of training"
                   f"{sized_note}; it should anneal to about 0 at num_epochs * steps_per_epoch")
    early = next(t for t in range(top, total) if lrs[t] <= 0.05 * peak)
    if early < 0.7 * total:
        fail(what, f"the LR is about 0 from batch {early + 1} of {total} on: the schedule is "
                   f"sized for fewer batches than training has{sized_note}; size it for "
                   "num_epochs * steps_per_epoch")
    if lrs[0] > 0.5 * peak:
        fail(what, f"the LR starts at {lrs[0]:.3g}, its peak is {peak:.3g}: warm up from a "
                   "lower LR (OneCycleLR starts at max_lr / div_factor); a fresh head's first "
                   "gradients would otherwise shake the pretrained layers")


def check_optimizer_and_scheduler(make_optimizer_and_scheduler: Callable[..., Any]) -> bool:
    """Check ``make_optimizer_and_scheduler(model, num_epochs, steps_per_epoch)``, which returns
    ``(optimizer, scheduler)``: the optimizer updates every parameter of ``model``, and when
    the scheduler is stepped after every batch (``optimizer.step()`` then ``scheduler.step()``)
    for ``num_epochs * steps_per_epoch`` batches, the LR warms up to a peak, then anneals to
    about 0 at the last batch (a one-cycle shape).

    Example:
        >>> def make_optimizer_and_scheduler(model, num_epochs, steps_per_epoch):
        ...     optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        ...     scheduler = torch.optim.lr_scheduler.OneCycleLR(
        ...         optimizer, max_lr=1e-3, total_steps=num_epochs * steps_per_epoch)
        ...     return optimizer, scheduler
        >>> check_optimizer_and_scheduler(make_optimizer_and_scheduler)
        ✅ optimizer and scheduler: AdamW over every parameter; OneCycleLR stepped per batch warms up to 0.001, then anneals to 4e-09 at batch 35 of 35
        True
    """
    what = "optimizer and scheduler"
    if not callable(make_optimizer_and_scheduler):
        fail(what, f"expected a function, got {type(make_optimizer_and_scheduler).__name__}")
    for num_epochs, steps_per_epoch in ((3, 11), (5, 7)):  # two sizes: no global is used
        with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
            torch.manual_seed(0)
            model = TinyResNet(3, widths=(4, 8, 8))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the LR-scheduler deprecation notes
            result = call_student(what, make_optimizer_and_scheduler, model, num_epochs,
                                  steps_per_epoch)
        optimizer, scheduler = _optimizer_pair(what, result, model)
        sized = getattr(scheduler, "total_steps", None)
        groups = _lr_run(what, optimizer, scheduler, num_epochs, steps_per_epoch)
        for lrs in groups:
            _check_lr_shape(what, lrs, sized)
    lrs = groups[0]
    return passed(what, f"{type(optimizer).__name__} over every parameter; "
                        f"{type(scheduler).__name__} stepped per batch warms up to "
                        f"{max(lrs):.2g}, then anneals to {lrs[-1]:.2g} at batch {len(lrs)} of "
                        f"{len(lrs)}")


# ----------------------------------------------------------------------------- best-epoch loop

# A scripted run: 3 classes, 12 training and 10 validation items, each input a one-hot item id,
# so a linear model's weight column is that item's logits. Each epoch's weights are chosen so
# that the best epoch by validation macro-F1 (2), by accuracy (3), by validation loss (4) and
# the last one (5) all differ. Item: (predicted class, margin of its logit).
_VAL_Y = (0, 0, 0, 0, 0, 0, 1, 1, 2, 2)
_TRAIN_Y = (0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2)
_VAL_SCRIPT = (
    [(0, 1.0)] * 10,  # 1: always the majority class
    [(p, 6.0) for p in (0, 0, 0, 1, 1, 2, 1, 1, 2, 2)],  # 2: the best macro-F1
    [(p, 8.0) for p in (0, 0, 0, 0, 0, 0, 1, 1, 0, 0)],  # 3: the best accuracy
    [(p, 2.0 if p == y else 0.3)  # 4: the lowest validation loss
     for p, y in zip((0, 0, 0, 0, 0, 0, 1, 0, 0, 0), _VAL_Y, strict=True)],
    [(p, 3.0) for p in (0, 0, 0, 0, 2, 2, 1, 0, 2, 0)],  # 5: the last epoch, best at nothing
)
_BATCH = 4


def _scripted_weights() -> list[torch.Tensor]:
    """The linear layer's weight ``(3, 22)`` at the end of each of the 5 epochs."""
    out = []
    for epoch, val in enumerate(_VAL_SCRIPT, start=1):
        train = [(y, float(epoch)) for y in _TRAIN_Y]  # training loss falls every epoch
        w = torch.zeros(3, len(_TRAIN_Y) + len(_VAL_Y), dtype=torch.float64)
        for item, (pred, margin) in enumerate(train + val):
            w[pred, item] = margin
        out.append(w)
    return out


class _ScriptedSGD(torch.optim.SGD):
    """SGD whose ``step`` records the LR and sets the weights the script gives the epoch."""

    def __init__(self, params: Any, script: list[torch.Tensor], steps_per_epoch: int) -> None:
        super().__init__(params, lr=0.1, momentum=0.9)
        self.script, self.steps_per_epoch, self.lrs = script, steps_per_epoch, []

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        self.lrs.append(float(self.param_groups[0]["lr"]))
        epoch = min((len(self.lrs) - 1) // self.steps_per_epoch, len(self.script) - 1)
        self.param_groups[0]["params"][0].copy_(self.script[epoch])  # float64 -> float32


def _scripted_run() -> dict[str, Any]:
    """Model, loaders, optimizer and scheduler for the scripted run, fresh for each call."""
    n_train, n_val = len(_TRAIN_Y), len(_VAL_Y)
    eye = torch.eye(n_train + n_val)
    train = TensorDataset(eye[:n_train], torch.tensor(_TRAIN_Y))
    val = TensorDataset(eye[n_train:], torch.tensor(_VAL_Y))
    model = nn.Linear(n_train + n_val, 3, bias=False)
    nn.init.zeros_(model.weight)
    steps = math.ceil(n_train / _BATCH)
    optimizer = _ScriptedSGD(model.parameters(), _scripted_weights(), steps)
    total = len(_VAL_SCRIPT) * steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=total)
    return {"model": model, "train_loader": DataLoader(train, batch_size=_BATCH),
            "val_loader": DataLoader(val, batch_size=_BATCH), "criterion": nn.CrossEntropyLoss(),
            "optimizer": optimizer, "scheduler": scheduler, "steps": steps}


def _epoch_scores(weights: torch.Tensor) -> dict[str, float]:
    """Validation macro-F1, accuracy and loss, training macro-F1, for one epoch's weights."""
    n_train = len(_TRAIN_Y)
    val_logits, train_logits = weights[:, n_train:].T, weights[:, :n_train].T
    y_val, y_train = torch.tensor(_VAL_Y), torch.tensor(_TRAIN_Y)
    return {"f1": float(f1_score(y_val, val_logits.argmax(1), num_classes=3, average="macro")),
            "accuracy": float((val_logits.argmax(1) == y_val).double().mean()),
            "loss": float(F.cross_entropy(val_logits, y_val)),
            "train_f1": float(f1_score(y_train, train_logits.argmax(1), num_classes=3,
                                       average="macro"))}


def _expected_lrs(total: int) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return lrs


def _run_student_loop(what: str, fn: Callable[..., Any], run: dict[str, Any],
                      num_epochs: int) -> tuple[Any, list[str]]:
    """Call the student's loop (its prints hidden); return its result and torch's warnings."""
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            result = fn(run["model"], run["train_loader"], run["val_loader"], run["criterion"],
                        run["optimizer"], run["scheduler"], num_epochs=num_epochs,
                        num_classes=3)
        except NotImplementedError:
            fail(what, "not implemented yet: replace `raise NotImplementedError()` with your "
                       "code")
        except ValueError as exc:
            if "Tried to step" in str(exc):
                fail(what, "the scheduler was stepped more often than there are batches "
                           f"({exc}): step it once per batch. train_one_epoch(..., "
                           "scheduler=scheduler) already steps a per-batch schedule, so do "
                           "not step it again yourself")
            fail(what, f"your function raised ValueError: {exc}")
        except Exception as exc:
            fail(what, f"your function raised {type(exc).__name__}: {exc}")
    return result, [str(w.message) for w in caught]


def _check_lr_stepping(what: str, got: list[float], warned: list[str], steps: int,
                       num_epochs: int) -> None:
    """The LR at every optimizer step equals a one-cycle schedule stepped after every batch."""
    total = steps * num_epochs
    if len(got) != total:
        fail(what, f"optimizer.step() ran {len(got)} times for {num_epochs} epochs x {steps} "
                   f"batches = {total}: one step per batch, for num_epochs epochs")
    expected = _expected_lrs(total)
    if all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(got, expected, strict=True)):
        return
    if any("before `optimizer.step()`" in w for w in warned) or all(
            math.isclose(a, b, rel_tol=1e-9) for a, b in zip(got, expected[1:], strict=False)):
        fail(what, "scheduler.step() ran before optimizer.step(), so every batch used the next "
                   "batch's LR and the first LR of the schedule was skipped (torch warns about "
                   "it): call optimizer.step() first, then scheduler.step()")
    if all(len(set(got[e * steps:(e + 1) * steps])) == 1 for e in range(num_epochs)):
        fail(what, "the LR changed only between epochs: OneCycleLR is a per-batch schedule (sized "
                   "in batches), so call scheduler.step() after every optimizer.step(), not once "
                   "per epoch (train_one_epoch(..., scheduler=scheduler) does it for you)")
    fail(what, f"the LRs at the optimizer steps were {[round(v, 4) for v in got[:6]]}..., "
               f"expected {[round(v, 4) for v in expected[:6]]}...: step the scheduler once "
               "after every optimizer.step()")


def _check_history(what: str, history: Any, scores: list[dict[str, float]],
                   lrs: list[float], steps: int) -> None:
    """One dict per epoch: epoch, lr (at the epoch's start), train_loss, val_macro_f1."""
    keys = {"epoch", "lr", "train_loss", "val_macro_f1"}
    if not isinstance(history, (list, tuple)) or len(history) != len(scores):
        fail(what, f"history must be a list with one dict per epoch ({len(scores)}), got "
                   f"{type(history).__name__}" + (f" of length {len(history)}"
                                                  if hasattr(history, "__len__") else ""))
    for e, record in enumerate(history, start=1):
        if not isinstance(record, Mapping) or not keys <= set(record):
            fail(what, f"history[{e - 1}] must be a dict with the keys {sorted(keys)}, got "
                       f"{record!r}"[:200])
        if record["epoch"] != e:
            fail(what, f"history[{e - 1}]['epoch'] is {record['epoch']!r}, expected {e} "
                       "(epochs count from 1)")
        loss = record["train_loss"]
        if isinstance(loss, torch.Tensor) or not isinstance(loss, (int, float)) \
                or not math.isfinite(loss):
            fail(what, f"history[{e - 1}]['train_loss'] must be a finite float (.item()), got "
                       f"{loss!r}"[:160])
        seen = lrs[(e - 1) * steps:e * steps + 1]
        if not any(math.isclose(float(record["lr"]), v, rel_tol=1e-6) for v in seen):
            fail(what, f"history[{e - 1}]['lr'] is {record['lr']!r}: record the LR at the "
                       "epoch's start, optimizer.param_groups[0]['lr']")
    got = [float(r["val_macro_f1"]) for r in history]
    for key, hint in [("f1", None),
                      ("accuracy", "that is the validation accuracy: macro-F1 averages the "
                                   "per-class F1 (f1_score(..., average='macro'))"),
                      ("train_f1", "that is the macro-F1 of the training data: score the "
                                   "validation loader")]:
        if all(math.isclose(a, s[key], abs_tol=1e-6) for a, s in zip(got, scores, strict=True)):
            if hint is None:
                return
            fail(what, f"val_macro_f1 per epoch is {[round(v, 3) for v in got]}: {hint}")
    fail(what, f"val_macro_f1 per epoch is {[round(v, 3) for v in got]}, expected "
               f"{[round(s['f1'], 3) for s in scores]} (macro-F1 of the model's predictions on "
               "the validation loader, with num_classes classes)")


def _which_epoch(weights: torch.Tensor, script: list[torch.Tensor]) -> int | None:
    return next((e for e, w in enumerate(script, start=1)
                 if torch.allclose(weights.double(), w, atol=1e-6)), None)


def _check_best_weights(what: str, best_state: Any, model: nn.Module,
                        scores: list[dict[str, float]]) -> None:
    """``best_state`` is a copy of the best epoch's weights, and ``model`` holds them."""
    script = _scripted_weights()
    best = max(range(len(scores)), key=lambda e: scores[e]["f1"]) + 1
    if not isinstance(best_state, Mapping) or set(best_state) != set(model.state_dict()):
        fail(what, f"best_state must be the state_dict of the best epoch (keys "
                   f"{sorted(model.state_dict())}), got {type(best_state).__name__}")
    live = {p.data_ptr() for p in model.state_dict().values()}
    if any(isinstance(v, torch.Tensor) and v.data_ptr() in live for v in best_state.values()):
        fail(what, "best_state shares memory with the model: model.state_dict() returns "
                   "references to the live weights, which the next epochs overwrite (and so "
                   "does dict(...) or .copy()); keep copy.deepcopy(model.state_dict())")
    kept = _which_epoch(best_state["weight"], script)
    held = _which_epoch(model.weight.detach(), script)
    by = {"accuracy": max(range(len(scores)), key=lambda e: scores[e]["accuracy"]) + 1,
          "loss": min(range(len(scores)), key=lambda e: scores[e]["loss"]) + 1}
    for name, epoch in (("best_state", kept), ("the model", held)):
        if epoch == best:
            continue
        if epoch == by["loss"]:
            why = (f"the lowest validation loss (epoch {epoch}); the competition is judged by "
                   "macro-F1, so keep the epoch with the highest validation macro-F1")
        elif epoch == by["accuracy"]:
            why = (f"the best validation accuracy (epoch {epoch}), which favours the common "
                   "classes; keep the epoch with the highest validation macro-F1")
        elif epoch == len(scores):
            why = ("the last epoch: keep the best epoch's weights, and load them at the end "
                   "(model.load_state_dict(best_state))")
        elif epoch is None:
            why = "no epoch's end"
        else:
            why = (f"epoch {epoch}, not the one with the highest validation macro-F1 (compare "
                   "with >, keep the maximum)")
        fail(what, f"{name} holds the weights of {why}; the best epoch by validation macro-F1 "
                   f"is epoch {best}")


def check_train_and_keep_best(train_and_keep_best: Callable[..., Any]) -> bool:
    """Check ``train_and_keep_best(model, train_loader, val_loader, criterion, optimizer,
    scheduler, *, num_epochs, num_classes) -> (best_state, history)``.

    Each epoch trains once over ``train_loader`` (the scheduler stepped after every
    ``optimizer.step()``), then scores the validation macro-F1; ``history`` gets one dict per
    epoch (``epoch`` from 1, ``lr`` at the epoch's start, ``train_loss``, ``val_macro_f1``).
    ``best_state`` is a copy of the weights of the epoch with the highest validation macro-F1,
    and ``model`` holds them at the end. The check runs a scripted model whose best epochs by
    macro-F1, accuracy and validation loss, and whose last epoch, all differ.

    Example:
        >>> import copy
        >>> from lesson_utils.inference import predict
        >>> from lesson_utils.training import train_one_epoch
        >>> def train_and_keep_best(model, train_loader, val_loader, criterion, optimizer,
        ...                         scheduler, *, num_epochs, num_classes):
        ...     history, best_f1, best_state = [], -1.0, None
        ...     for epoch in range(1, num_epochs + 1):
        ...         lr = optimizer.param_groups[0]["lr"]
        ...         train = train_one_epoch(model, train_loader, criterion, optimizer,
        ...                                 scheduler=scheduler)
        ...         val = predict(model, val_loader)
        ...         f1 = f1_score(val.targets, val.preds, num_classes=num_classes)
        ...         history.append({"epoch": epoch, "lr": lr, "train_loss": train["loss"],
        ...                         "val_macro_f1": f1})
        ...         if f1 > best_f1:
        ...             best_f1, best_state = f1, copy.deepcopy(model.state_dict())
        ...     model.load_state_dict(best_state)
        ...     return best_state, history
        >>> check_train_and_keep_best(train_and_keep_best)
        ✅ train_and_keep_best: LR stepped per batch; kept epoch 2 by validation macro-F1 (not the last, not the lowest loss), a copy, loaded into the model
        True
    """
    what = "train_and_keep_best"
    if not callable(train_and_keep_best):
        fail(what, f"expected a function, got {type(train_and_keep_best).__name__}")
    num_epochs = len(_VAL_SCRIPT)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(0)
        run = _scripted_run()
        result, warned = _run_student_loop(what, train_and_keep_best, run, num_epochs)
    if not isinstance(result, tuple) or len(result) != 2:
        fail(what, f"return the pair (best_state, history), got {type(result).__name__}")
    best_state, history = result
    scores = [_epoch_scores(w) for w in _scripted_weights()]
    _check_lr_stepping(what, run["optimizer"].lrs, warned, run["steps"], num_epochs)
    end_lr = float(run["optimizer"].param_groups[0]["lr"])  # after the last scheduler.step()
    _check_history(what, history, scores, run["optimizer"].lrs + [end_lr], run["steps"])
    _check_best_weights(what, best_state, run["model"], scores)
    best = max(range(num_epochs), key=lambda e: scores[e]["f1"]) + 1
    return passed(what, f"LR stepped per batch; kept epoch {best} by validation macro-F1 (not "
                        "the last, not the lowest loss), a copy, loaded into the model")

# ----------------------------------------------------------------------------- the submission

def _read_predictions(path: Path, data_root: Path, what: str) -> tuple[list[str], list[str]]:
    """(ids, labels) of a well-formed predictions file, else a hint."""
    if not path.is_file():
        fail(what, f"no file {path}: write it with the test ids and your predicted class names")
    expected_ids = read_ids(data_root / "test" / "ids.csv")
    try:
        return parse_predictions(path.read_text(encoding="utf-8"), expected_ids)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(what, f"{path}: {exc}")


def check_predictions_file(path: str | Path = "predictions.csv",
                           data_root: str | Path = DATA_DIR) -> bool:
    """Check the submission's format: header ``id,label``, each test id exactly once (any
    order), each label a class name.

    Example:
        >>> import tempfile, os
        >>> from lesson_utils.assignments.capstone import make_capstone_data
        >>> root = make_capstone_data(Path(tempfile.mkdtemp()) / "data")
        >>> check_predictions_file(root / "sample_submission.csv", root)
        ✅ predictions.csv: 600 rows, header id,label, every test id once, class names
        True
    """
    what = "predictions.csv"
    ids, _ = _read_predictions(Path(path), Path(data_root), what)
    return passed(what, f"{len(ids)} rows, header id,label, every test id once, class names")


def _is_public_test_set(data_root: Path, ids: list[str]) -> bool:
    """Whether the test images on disk are the public ones (two of them are compared)."""
    public = ShapesDataset(family="target", image_size=IMAGE_SIZE, seed=PUBLIC_TEST_SEED,
                           class_counts=[TEST_PER_CLASS] * 6)
    for k in (0, len(ids) - 1):
        try:
            with Image.open(data_root / "test" / ids[k]) as image:
                disk = np.asarray(image.convert("RGB"))
        except (OSError, IndexError):
            return False
        if not np.array_equal(disk, np.asarray(public.image(k).convert("RGB"))):
            return False
    return True


def check_hidden_test_f1(path: str | Path = "predictions.csv", *, bar: float = HIDDEN_TEST_BAR,
                         data_root: str | Path = DATA_DIR) -> bool:
    """Pass when the macro-F1 of the predictions on the *public* test set is at least ``bar``.

    This is the student's own estimate of the hidden test. The grader never runs it: it scores
    ``predictions.csv`` outside the kernel against a secret test set. If the test images in
    ``data_root`` are not the public ones, the check says so instead of scoring.

    Example:
        >>> import tempfile
        >>> from lesson_utils.assignments.capstone import make_capstone_data
        >>> root = make_capstone_data(Path(tempfile.mkdtemp()) / "data")
        >>> check_hidden_test_f1(root / "sample_submission.csv", bar=0.5, data_root=root)
        Traceback (most recent call last):
        ...
        lesson_utils.checks._core.CheckFailed: ❌ public test: macro-F1 0.0476 is below the bar 0.5 ...
    """
    what = "public test"
    data_root = Path(data_root)
    ids, labels = _read_predictions(Path(path), data_root, what)
    order = read_ids(data_root / "test" / "ids.csv")
    if not _is_public_test_set(data_root, order):
        fail(what, f"the test images in {data_root} are not the public test set, so this "
                   "check cannot score them (the grader judges the hidden test itself)")
    truth = dict(zip(order, capstone_test_labels(PUBLIC_TEST_SEED), strict=True))
    score, detail = macro_f1_report(ids, labels, truth)
    if score < bar:
        fail(what, f"macro-F1 {score:.4f} is below the bar {bar} (per class: {detail}); "
                   "look at the rare classes")
    return passed(what, f"macro-F1 {score:.4f} >= {bar} (per class: {detail}); the grader "
                        "scores a hidden test set drawn the same way")
