"""Self-checks for lesson 08 (the capstone), shared with the grader's hidden tests.

Every checker builds its own test data (a tiny image folder, label vectors) inside the call, so
nothing it compares against can be read or changed by the notebook. ``check_hidden_test_f1``
scores ``predictions.csv`` against the test labels; in a student's own run those are the public
test set's, and under the grader the secret seed arrives in ``GRADING_SECRETS`` (set by the
grade cell itself, see ``lesson_utils.assignments.capstone``).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lesson_utils.assignments.capstone import (
    CLASSES,
    DATA_DIR,
    PUBLIC_TEST_SEED,
    capstone_test_labels,
    read_ids,
)
from lesson_utils.checks._core import call_student, fail, passed

__all__ = ["GRADING_SECRETS", "check_image_csv_dataset", "check_macro_f1",
           "check_predictions_file", "check_hidden_test_f1"]

#: Set by the grader inside the hidden-test grade cell (empty in a student's own run).
GRADING_SECRETS: dict[str, int] = {}


# ----------------------------------------------------------------------------- the Dataset

def _tiny_folder(root: Path) -> tuple[list[str], list[int], list[str]]:
    """A 12-image labelled folder, an unlabelled CSV over 5 of them (in another order)."""
    from lesson_utils.data import ShapesDataset, export_image_folder

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
    import numpy as np
    from PIL import Image

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
    from PIL import Image

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
    from lesson_utils.metrics import f1_score

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
    import math

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
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        fail(what, f"{path} is empty: it needs the header id,label and one row per test image")
    header = [h.strip() for h in rows[0]]
    if header != ["id", "label"]:
        hint = (" (an extra first column: pandas' to_csv needs index=False)"
                if header[1:] == ["id", "label"] else "")
        fail(what, f"the header must be exactly id,label, got {','.join(rows[0])}{hint}")
    body = rows[1:]
    if any(len(r) != 2 for r in body):
        bad = next(i for i, r in enumerate(body) if len(r) != 2)
        fail(what, f"row {bad + 2} has {len(body[bad])} fields, expected 2 (id,label)")
    ids = [r[0] for r in body]
    labels = [r[1] for r in body]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:3]
        fail(what, f"ids must be unique; repeated: {dupes}")
    missing = sorted(set(expected_ids) - set(ids))
    extra = sorted(set(ids) - set(expected_ids))
    if missing or extra:
        fail(what, f"the ids must be exactly those of test/ids.csv: {len(missing)} missing "
                   f"(e.g. {missing[:2]}), {len(extra)} unknown (e.g. {extra[:2]})")
    unknown = sorted(set(labels) - set(CLASSES))
    if unknown:
        hint = (": write class names, not class numbers (CLASSES[k])"
                if all(u.lstrip("-").isdigit() for u in unknown) else "")
        fail(what, f"unknown labels {unknown[:3]}; valid: {list(CLASSES)}{hint}")
    return ids, labels


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


def check_hidden_test_f1(path: str | Path = "predictions.csv", *, bar: float,
                         data_root: str | Path = DATA_DIR) -> bool:
    """Pass when the macro-F1 of the predictions on the hidden test labels is at least ``bar``.

    The labels come from the test seed: the grader's secret one when it set
    ``GRADING_SECRETS``, else the public one of a student's own run.

    Example:
        >>> import tempfile
        >>> from lesson_utils.assignments.capstone import make_capstone_data
        >>> root = make_capstone_data(Path(tempfile.mkdtemp()) / "data")
        >>> check_hidden_test_f1(root / "sample_submission.csv", bar=0.5, data_root=root)
        Traceback (most recent call last):
        ...
        lesson_utils.checks._core.CheckFailed: ❌ hidden test: macro-F1 0.0476 is below the bar 0.5 ...
    """
    from lesson_utils.metrics import f1_score

    what = "hidden test"
    ids, labels = _read_predictions(Path(path), Path(data_root), what)
    seed = GRADING_SECRETS.get("capstone_test_seed", PUBLIC_TEST_SEED)
    order = read_ids(Path(data_root) / "test" / "ids.csv")
    truth = dict(zip(order, capstone_test_labels(seed), strict=True))
    index = {name: k for k, name in enumerate(CLASSES)}
    y_true = torch.tensor([truth[i] for i in ids])
    y_pred = torch.tensor([index[label] for label in labels])
    score = float(f1_score(y_true, y_pred, num_classes=len(CLASSES), average="macro"))
    per_class = f1_score(y_true, y_pred, num_classes=len(CLASSES), average=None)
    detail = ", ".join(f"{c} {v:.2f}" for c, v in zip(CLASSES, per_class, strict=True))
    if score < bar:
        fail(what, f"macro-F1 {score:.4f} is below the bar {bar} (per class: {detail}); "
                   "look at the rare classes")
    return passed(what, f"macro-F1 {score:.4f} >= {bar} (per class: {detail})")
