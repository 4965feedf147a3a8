"""Self-checks for lesson 08 (the capstone).

Every checker builds its own test data (a tiny image folder, label vectors) inside the call, so
nothing it compares against can be read or changed by the notebook. ``check_hidden_test_f1``
scores ``predictions.csv`` against the *public* test set, for the student's own feedback. Under
the grader the hidden-test cell does not run in the kernel at all: the grader scores the file in
its own process, against a test set whose labels never enter the kernel
(``lesson_utils.assignments.capstone.HiddenTestJudge``).
"""

from __future__ import annotations

import csv
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lesson_utils.assignments.capstone import (
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

__all__ = ["check_image_csv_dataset", "check_macro_f1", "check_predictions_file",
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
    return passed(what, "right length, images, labels and transform, with and without labels")


# ----------------------------------------------------------------------------- the metric

def _reference_f1(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int,
                  average: str) -> float:
    return float(f1_score(y_true, y_pred, num_classes=num_classes, average=average))


def _f1_cases() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    g = torch.Generator().manual_seed(8)
    y = torch.cat([torch.zeros(40), torch.ones(12), torch.full((5,), 2.0), torch.full((3,), 3.0)])
    y = y.long()[torch.randperm(60, generator=g)]
    noisy = torch.where(torch.rand(60, generator=g) < 0.3, torch.randint(0, 4, (60,),
                                                                          generator=g), y)
    majority = torch.zeros(60, dtype=torch.long)
    return [
        (y, noisy, 4),  # a long tail with mistakes everywhere
        (y, majority, 4),  # the accuracy paradox: always the majority class
        (torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 2]), 3),  # perfect
        (torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 1, 1]), 3),  # class 2 only predicted
        (torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1]), 3),  # class 2 never appears
    ]


def check_macro_f1(macro_f1: Callable[..., Any]) -> bool:
    """Check ``macro_f1(y_true, y_pred, num_classes) -> float``: the unweighted mean over the
    ``num_classes`` classes of ``F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k)`` (0 when that is 0/0).

    Example:
        >>> def macro_f1(y_true, y_pred, num_classes):
        ...     f1 = []
        ...     for k in range(num_classes):
        ...         tp = ((y_pred == k) & (y_true == k)).sum().item()
        ...         fp = ((y_pred == k) & (y_true != k)).sum().item()
        ...         fn = ((y_pred != k) & (y_true == k)).sum().item()
        ...         f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        ...     return sum(f1) / num_classes
        >>> check_macro_f1(macro_f1)
        ✅ macro_f1: matches the reference on 5 cases, including the accuracy paradox
        True
    """
    what = "macro_f1"
    if not callable(macro_f1):
        fail(what, f"expected a function, got {type(macro_f1).__name__}")
    for y_true, y_pred, k in _f1_cases():
        try:
            got = macro_f1(y_true.clone(), y_pred.clone(), k)
        except NotImplementedError:
            fail(what, "not implemented yet: replace `raise NotImplementedError()` with your "
                       "code")
        except Exception as exc:
            fail(what, f"your function raised {type(exc).__name__}: {exc}")
        if got is None:
            fail(what, "your function returned None: did you forget `return`?")
        try:
            value = float(got)
        except (TypeError, ValueError):
            fail(what, f"return a number, got {type(got).__name__}")
        if math.isnan(value):
            fail(what, "got nan: a class with no true and no predicted samples divides 0 by 0; "
                       "count its F1 as 0")
        expected = _reference_f1(y_true, y_pred, k, "macro")
        if abs(value - expected) <= 1e-6:
            continue
        accuracy = (y_true == y_pred).double().mean().item()
        if abs(value - accuracy) <= 1e-6:
            fail(what, f"got {value:.4f}, which is the accuracy (micro-F1); macro-F1 averages "
                       "the per-class F1 so rare classes count as much as common ones "
                       f"(expected {expected:.4f})")
        if abs(value - _reference_f1(y_true, y_pred, k, "weighted")) <= 1e-6:
            fail(what, f"got {value:.4f}, the support-weighted F1; macro gives every class the "
                       f"same weight (expected {expected:.4f})")
        present = torch.unique(torch.cat([y_true, y_pred])).numel()
        if present < k and abs(value - expected * k / present) <= 1e-6:
            fail(what, f"got {value:.4f}: divide by num_classes ({k}), not by the number of "
                       f"classes that appear (expected {expected:.4f})")
        fail(what, f"got {value:.4f}, expected {expected:.4f} for y_true={y_true.tolist()[:8]}"
                   f"... (F1_k = 2TP / (2TP + FP + FN))")
    return passed(what, "matches the reference on 5 cases, including the accuracy paradox")


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
