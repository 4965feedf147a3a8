"""The capstone's competition data: a long-tailed image folder, and a test set with hidden labels.

``make_capstone_data(root)`` writes, the way competition data usually arrives::

    root/train/<class>/<n>.png      long-tailed Shapes *target* family (export_image_folder)
    root/train/labels.csv           id,label,class_name   (id: path relative to root/train)
    root/test/<n>.png               a balanced test set, shuffled, file names say nothing
    root/test/ids.csv               id                    (no labels)
    root/sample_submission.csv      id,label              (the format predictions.csv must have)
    root/READY                      written last: the folder is complete

**How the test labels stay hidden.** Test images are drawn from the Shapes world with a *test
seed*; the seed determines the labels, and nothing else on disk does. A student's own run uses
the public seed ``PUBLIC_TEST_SEED`` (like a public leaderboard, its labels can be recomputed
with ``capstone_test_labels()``). The grader never uses it: for every submission it calls
``prepare_grading`` with a fresh 62-bit random seed, which writes a new test set into the
submission's working folder before the notebook starts (the notebook's ``make_capstone_data``
call then finds a complete folder and keeps it), and hands the seed only to the hidden-test grade
cell, inside the cell's own code (``lesson_utils.checks.assignment.GRADING_SECRETS``). So no
answer file exists anywhere the student's code can read, and copying a classmate's predictions
or hard-coding labels from a local run scores at chance level.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

from lesson_utils.checkpoints import atomic_write_bytes
from lesson_utils.data import TARGET_CLASSES, ShapesDataset, export_image_folder, long_tailed_counts

__all__ = [
    "DATA_DIR", "CLASSES", "IMAGE_SIZE", "TRAIN_SEED", "TRAIN_COUNTS", "TEST_PER_CLASS",
    "PUBLIC_TEST_SEED", "make_capstone_data", "capstone_test_labels", "read_ids",
    "prepare_grading",
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
_READY = "READY"


def _test_set(test_seed: int) -> ShapesDataset:
    return ShapesDataset(family="target", image_size=IMAGE_SIZE, seed=test_seed,
                         class_counts=[TEST_PER_CLASS] * len(CLASSES))


def _csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def make_capstone_data(root: str | os.PathLike = DATA_DIR, *,
                       test_seed: int = PUBLIC_TEST_SEED) -> Path:
    """Write the capstone's data under ``root``, unless a complete copy is already there.

    The folder is built beside ``root`` and renamed into place, so an interrupted run never
    leaves a half-written folder that looks complete. An existing complete folder is kept as it
    is, whatever its test seed (that is how the grader's secret test set survives the
    notebook's own call).

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
    if (root / _READY).is_file():
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
    (partial / _READY).write_text("complete\n")
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


def prepare_grading(workdir: str | os.PathLike, secret: int) -> dict[str, dict[str, Any]]:
    """The grader's setup for the capstone (named in the notebook's metadata).

    Writes the data with test seed ``secret`` into ``workdir / DATA_DIR`` and returns the
    secrets for the hidden-test grade cell.

    Example:
        >>> import tempfile
        >>> prepare_grading(tempfile.mkdtemp(), 12345)
        {'lesson_utils.checks.assignment': {'GRADING_SECRETS': {'capstone_test_seed': 12345}}}
    """
    make_capstone_data(Path(workdir) / DATA_DIR, test_seed=secret)
    return {"lesson_utils.checks.assignment": {"GRADING_SECRETS": {"capstone_test_seed": secret}}}
