"""The capstone's competition data: a long-tailed image folder, and a test set with hidden labels.

``make_capstone_data(root)`` writes, the way competition data usually arrives::

    root/train/<class>/<n>.png      long-tailed Shapes *target* family (export_image_folder)
    root/train/labels.csv           id,label,class_name   (id: path relative to root/train)
    root/test/<n>.png               a balanced test set, shuffled, file names say nothing
    root/test/ids.csv               id                    (no labels)
    root/sample_submission.csv      id,label              (the format predictions.csv must have)
    root/READY                      written last: the folder is complete

**How the hidden test stays hidden.** Test images are drawn from the Shapes world with a *test
seed*; the seed determines the labels, and nothing else on disk does (file names are running
numbers, PNGs carry no metadata, there is no labels file). A student's own run uses the public
seed ``PUBLIC_TEST_SEED``: like a public leaderboard, its labels can be recomputed
(``capstone_test_labels()``), and the notebook's hidden-test cell scores against them so the
student gets feedback.

The grader never uses that seed and never lets the secret enter the kernel. For each submission
it calls ``prepare_grading(workdir)`` in its own process: a 128-bit seed from ``secrets`` draws a
new test set into the submission's working folder before the notebook starts (the notebook's
``make_capstone_data`` call finds a complete folder and keeps it), and the test labels are kept
only in the returned judge (``HiddenTestJudge``). After the kernel has ended, the grader calls
the judge, which reads ``predictions.csv`` from the working folder and scores it with the ids it
recorded before the run. The seed is in no cell, no environment variable and no file; trying
seeds until the images match would take about 2**127 tries.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lesson_utils.assignments.judging import Judge, Verdict, read_submitted_text
from lesson_utils.checkpoints import atomic_write_bytes
from lesson_utils.data import TARGET_CLASSES, ShapesDataset, export_image_folder, long_tailed_counts
from lesson_utils.metrics import f1_score

__all__ = [
    "DATA_DIR", "CLASSES", "IMAGE_SIZE", "TRAIN_SEED", "TRAIN_COUNTS", "TEST_PER_CLASS",
    "PUBLIC_TEST_SEED", "HIDDEN_TEST_BAR", "SECRET_BITS", "PREDICTIONS", "make_capstone_data",
    "capstone_test_labels", "read_ids", "parse_predictions", "macro_f1_report",
    "HiddenTestJudge", "prepare_grading",
]

#: Where the notebook (and the grader, in its working folder) puts the data.
DATA_DIR = "_capstone_data"
#: The competition's classes: the Shapes target family, new to the course backbone.
CLASSES: tuple[str, ...] = TARGET_CLASSES
#: Image side in pixels (the course backbone was pretrained at 16; 24 shows the shapes more clearly).
IMAGE_SIZE = 24
#: Seed of the training images (public: the training set is the same for everyone).
TRAIN_SEED = 8
#: Training images per class: a long tail from 1,500 down to 150 (imbalance ratio 10).
TRAIN_COUNTS: tuple[int, ...] = tuple(long_tailed_counts(len(CLASSES), 1500, 10))
#: Test images per class (the test set is balanced, so every class weighs the same in macro-F1).
TEST_PER_CLASS = 100
#: The test seed of a student's own run; the grader always uses a fresh secret one.
PUBLIC_TEST_SEED = 2025
#: The hidden test passes at this macro-F1 or above. Measured on test sets drawn like the hidden
#: one (3 seeds x 4 test sets): the instructor's solution 0.85-0.91 (mean 0.88); the same run
#: without class weights 0.74-0.81 (mean 0.77); training the head only 0.65-0.70.
HIDDEN_TEST_BAR = 0.80
#: Bits of the grader's secret test seed.
SECRET_BITS = 128
#: The file the notebook writes in its working folder, and the hidden test judges.
PREDICTIONS = "predictions.csv"
_READY = "READY"
#: What ``READY`` holds. Bump the number whenever the images the data module draws change (the
#: shapes were redrawn legibly in version 2): a folder written by older code is then rebuilt
#: instead of silently training and testing on the old images.
_READY_TEXT = "complete: capstone data format 2\n"


def _test_set(test_seed: int) -> ShapesDataset:
    return ShapesDataset(family="target", image_size=IMAGE_SIZE, seed=test_seed,
                         class_counts=[TEST_PER_CLASS] * len(CLASSES))


def _csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def make_capstone_data(root: str | os.PathLike = DATA_DIR, *,
                       test_seed: int = PUBLIC_TEST_SEED) -> Path:
    """Write the capstone's data under ``root``, unless a complete copy of this format is already there.

    The folder is built beside ``root`` and renamed into place, so an interrupted run never
    leaves a half-written folder that looks complete. An existing complete folder is kept as it
    is, whatever its test seed (that is how the grader's secret test set survives the
    notebook's own call); a folder written by an older version of the data code is rebuilt.

    Args:
        root: the data folder.
        test_seed: seed of the test images (an int >= 0).

    Returns:
        ``root`` as a ``Path``.

    Example:
        >>> import tempfile
        >>> root = make_capstone_data(Path(tempfile.mkdtemp()) / "data")
        >>> sorted(p.name for p in root.iterdir())
        ['READY', 'sample_submission.csv', 'test', 'train']
        >>> (root / "test" / "ids.csv").read_text().splitlines()[:2]
        ['id', '000.png']
    """
    if isinstance(test_seed, bool) or not isinstance(test_seed, int) or test_seed < 0:
        raise ValueError(f"test_seed must be an int >= 0, got {test_seed!r}")
    root = Path(root)
    ready = root / _READY
    if ready.is_file() and ready.read_text() == _READY_TEXT:
        return root
    partial = root.with_name(f".{root.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    train = ShapesDataset(family="target", image_size=IMAGE_SIZE, seed=TRAIN_SEED,
                          class_counts=list(TRAIN_COUNTS))
    export_image_folder(train, partial / "train")
    test = _test_set(test_seed)
    (partial / "test").mkdir(parents=True)
    digits = len(str(len(test) - 1))
    ids = [f"{i:0{digits}d}.png" for i in range(len(test))]
    for i, name in enumerate(ids):
        test.image(i).save(partial / "test" / name, format="PNG")
    atomic_write_bytes(partial / "test" / "ids.csv", _csv([["id"], *[[i] for i in ids]]))
    atomic_write_bytes(partial / "sample_submission.csv",
                       _csv([["id", "label"], *[[i, CLASSES[0]] for i in ids]]))
    (partial / _READY).write_text(_READY_TEXT)
    if root.exists():
        shutil.rmtree(root)
    os.replace(partial, root)
    return root


def read_ids(path: str | os.PathLike) -> list[str]:
    """The ``id`` column of a CSV file, in order.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "ids.csv"
        >>> _ = path.write_text("id,label\\n000.png,arrow\\n001.png,t_shape\\n")
        >>> read_ids(path)
        ['000.png', '001.png']
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "id" not in reader.fieldnames:
            raise ValueError(f"{path} has no 'id' column (header: {reader.fieldnames})")
        return [row["id"] for row in reader]


def capstone_test_labels(test_seed: int = PUBLIC_TEST_SEED) -> list[int]:
    """The labels of the test set drawn with ``test_seed``, in ``ids.csv`` order.

    Cheap: labels come from the seed alone, no image is drawn.

    Example:
        >>> labels = capstone_test_labels()
        >>> len(labels), sorted(set(labels)) == list(range(len(CLASSES)))
        (600, True)
    """
    return list(_test_set(test_seed).targets)


def parse_predictions(text: str, expected_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """The ``(ids, labels)`` of a predictions file's text, checked against the test ids.

    Raises:
        ValueError: with a hint a student can act on (header, field count, repeated, missing
            or unknown ids, labels that are not class names).

    Example:
        >>> parse_predictions("id,label\\n001.png,arrow\\n000.png,t_shape\\n",
        ...                   ["000.png", "001.png"])
        (['001.png', '000.png'], ['arrow', 't_shape'])
        >>> parse_predictions(",id,label\\n0,000.png,arrow\\n", ["000.png"])
        Traceback (most recent call last):
        ...
        ValueError: the header must be exactly id,label, got ,id,label (an extra first column: ...)
    """
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise ValueError("the file is empty: it needs the header id,label and one row per test "
                         "image")
    header = [h.strip() for h in rows[0]]
    if header != ["id", "label"]:
        hint = (" (an extra first column: pandas' to_csv needs index=False)"
                if header[1:] == ["id", "label"] else "")
        raise ValueError(f"the header must be exactly id,label, got {','.join(rows[0])}{hint}")
    body = rows[1:]
    if any(len(r) != 2 for r in body):
        bad = next(i for i, r in enumerate(body) if len(r) != 2)
        raise ValueError(f"row {bad + 2} has {len(body[bad])} fields, expected 2 (id,label)")
    ids = [r[0] for r in body]
    labels = [r[1] for r in body]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise ValueError(f"ids must be unique; repeated: {dupes}")
    missing = sorted(set(expected_ids) - set(ids))
    extra = sorted(set(ids) - set(expected_ids))
    if missing or extra:
        raise ValueError(f"the ids must be exactly those of test/ids.csv: {len(missing)} missing "
                         f"(e.g. {missing[:2]}), {len(extra)} unknown (e.g. {extra[:2]})")
    unknown = sorted(set(labels) - set(CLASSES))
    if unknown:
        hint = (": write class names, not class numbers (CLASSES[k])"
                if all(u.lstrip("-").isdigit() for u in unknown) else "")
        raise ValueError(f"unknown labels {unknown[:3]}; valid: {list(CLASSES)}{hint}")
    return ids, labels


def macro_f1_report(ids: Sequence[str], labels: Sequence[str],
                    truth: dict[str, int]) -> tuple[float, str]:
    """Macro-F1 of predicted class names against true label indices, and a per-class summary.

    Example:
        >>> score, detail = macro_f1_report(["a", "b"], ["arrow", "crescent"], {"a": 0, "b": 0})
        >>> round(score, 4), detail.split(", ")[:2]
        (0.1111, ['arrow 0.67', 'crescent 0.00'])
    """
    index = {name: k for k, name in enumerate(CLASSES)}
    y_true = torch.tensor([truth[i] for i in ids])
    y_pred = torch.tensor([index[label] for label in labels])
    score = float(f1_score(y_true, y_pred, num_classes=len(CLASSES), average="macro"))
    per_class = f1_score(y_true, y_pred, num_classes=len(CLASSES), average=None)
    detail = ", ".join(f"{c} {v:.2f}" for c, v in zip(CLASSES, per_class, strict=True))
    return score, detail


@dataclass(frozen=True)
class HiddenTestJudge:
    """Scores ``predictions.csv`` in the grader's process against labels only it knows.

    Made by ``prepare_grading``; ``judge(workdir)`` returns a ``Verdict``. The ids are the ones
    written before the notebook ran, so rewriting ``ids.csv`` changes nothing. The labels are
    left out of ``repr``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> judge = HiddenTestJudge(("000.png", "001.png"), (0, 1), bar=0.3)
        >>> _ = (folder / PREDICTIONS).write_text("id,label\\n000.png,arrow\\n001.png,crescent\\n")
        >>> verdict = judge(folder)
        >>> verdict.passed, verdict.message[:35]
        (True, 'hidden test: macro-F1 0.3333 >= 0.3')
    """

    ids: tuple[str, ...]
    labels: tuple[int, ...] = field(repr=False)
    bar: float = HIDDEN_TEST_BAR

    def __call__(self, workdir: Path) -> Verdict:
        try:
            text = read_submitted_text(workdir, PREDICTIONS)
            ids, labels = parse_predictions(text, self.ids)
        except ValueError as exc:
            return Verdict(False, f"hidden test: {exc}")
        truth = dict(zip(self.ids, self.labels, strict=True))
        score, detail = macro_f1_report(ids, labels, truth)
        if score < self.bar:
            return Verdict(False, f"hidden test: macro-F1 {score:.4f} is below the bar "
                                  f"{self.bar} (per class: {detail})")
        return Verdict(True, f"hidden test: macro-F1 {score:.4f} >= {self.bar} "
                             f"(per class: {detail})")


def prepare_grading(workdir: str | os.PathLike, secret: int | None = None) -> dict[str, Judge]:
    """The grader's setup for the capstone (named in the notebook's metadata).

    Runs in the grader's process, before the notebook starts: writes the data into
    ``workdir / DATA_DIR`` with a secret test seed and returns the judge of the hidden-test cell
    (``{"hidden_test_f1": HiddenTestJudge}``), which alone holds the test labels.

    Args:
        workdir: the submission's working folder.
        secret: the test seed; ``None`` (what the grader passes) draws ``SECRET_BITS`` bits
            from ``secrets``. Give one only in tests.

    Example:
        >>> import tempfile
        >>> judges = prepare_grading(tempfile.mkdtemp())
        >>> judges
        {'hidden_test_f1': HiddenTestJudge(ids=('000.png', ..., '599.png'), bar=0.8)}
    """
    if secret is None:
        secret = secrets.randbits(SECRET_BITS)
    elif isinstance(secret, bool) or not isinstance(secret, int) or secret < 0:
        raise ValueError(f"secret must be an int >= 0 or None, got {secret!r}")
    root = make_capstone_data(Path(workdir) / DATA_DIR, test_seed=secret)
    ids = tuple(read_ids(root / "test" / "ids.csv"))
    return {"hidden_test_f1": HiddenTestJudge(ids, tuple(capstone_test_labels(secret)))}
