"""The course's offline data world (COURSE.md §3).

* ``ShapesDataset``: RGB images of simple shapes drawn on the fly from ``(seed, index)``. Colour,
  size, position, rotation and background clutter vary. Two disjoint families of classes: the
  *source* family (used to pretrain the course backbone) and the *target* family (new shapes, a
  task *similar* to the source). Balanced or long-tailed. Nothing is downloaded or stored.
* ``DigitsDataset``: scikit-learn's bundled handwritten digits (real data, 8x8 grayscale),
  resized and repeated to 3 channels: a task *dissimilar* to shapes.
* ``export_image_folder`` / ``load_image_folder``: any dataset to and from an ``ImageFolder``
  tree of PNG files plus ``labels.csv``, which is how competition data arrives.
* ``make_loaders``: a stratified train/validation split as seeded DataLoaders.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, TensorDataset

from lesson_utils.checkpoints import atomic_write_bytes
from lesson_utils.validation import check_int

__all__ = [
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "ShapesDataset",
    "DigitsDataset",
    "long_tailed_counts",
    "export_image_folder",
    "load_image_folder",
    "make_loaders",
    "tensors_from",
    "tensor_loader",
]

Family = Literal["source", "target"]

# Class names are in alphabetical order so that torchvision's ImageFolder, which sorts folder
# names, gives back the same label numbers after an export.
SOURCE_CLASSES: tuple[str, ...] = ("circle", "cross", "ring", "square", "star", "triangle")
TARGET_CLASSES: tuple[str, ...] = ("arrow", "crescent", "ellipse", "l_shape", "semicircle",
                                   "t_shape")
FAMILIES: dict[str, tuple[str, ...]] = {"source": SOURCE_CLASSES, "target": TARGET_CLASSES}

MIN_IMAGE_SIZE = 16


# --------------------------------------------------------------------------- shape geometry
# Each shape is a list of (polygon, is_hole) in unit coordinates (about [-1, 1]); holes are
# painted with the background colour after the filled parts.

def _regular(n: int, radius: float = 1.0, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _ellipse(rx: float, ry: float, n: int = 28, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    t = 2 * math.pi * np.arange(n) / n
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _star(points: int = 5, outer: float = 1.0, inner: float = 0.42) -> np.ndarray:
    t = -math.pi / 2 + math.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _poly(*xy: tuple[float, float]) -> np.ndarray:
    return np.array(xy, dtype=np.float64)


_SHAPES: dict[str, list[tuple[np.ndarray, bool]]] = {
    # source family
    "circle": [(_ellipse(0.9, 0.9), False)],
    "cross": [(_poly((-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3),
                     (0.3, 1), (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)),
               False)],
    "ring": [(_ellipse(1.0, 1.0), False), (_ellipse(0.55, 0.55), True)],
    "square": [(_poly((-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)), False)],
    "star": [(_star(), False)],
    "triangle": [(_regular(3, 1.0, -math.pi / 2), False)],
    # target family
    "arrow": [(_poly((-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25),
                     (-1, 0.25)), False)],
    "crescent": [(_ellipse(0.95, 0.95), False), (_ellipse(0.8, 0.8, cx=0.45), True)],
    "ellipse": [(_ellipse(1.0, 0.45), False)],
    "l_shape": [(_poly((-0.7, -1), (-0.2, -1), (-0.2, 0.5), (0.8, 0.5), (0.8, 1), (-0.7, 1)),
                 False)],
    "semicircle": [(np.concatenate([_ellipse(1.0, 1.0, n=30)[:16]]) - (0, 0.45), False)],
    "t_shape": [(_poly((-1, -1), (1, -1), (1, -0.5), (0.25, -0.5), (0.25, 1), (-0.25, 1),
                       (-0.25, -0.5), (-1, -0.5)), False)],
}


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _luma(c: tuple[int, int, int]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _contrasting_colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A background and a foreground colour whose brightness differs by at least 60 of 255."""
    background = _random_colour(rng)
    while True:
        foreground = _random_colour(rng)
        if abs(_luma(foreground) - _luma(background)) >= 60:
            return background, foreground


SUPERSAMPLING = 4  # drawn at 4x the size, then averaged down: smooth edges at 16 px


def render_shape(name: str, rng: random.Random, image_size: int) -> Image.Image:
    """Draw one ``name`` shape with random style from ``rng`` as a PIL RGB image.

    The shape fills about two thirds of the image (scale 0.32-0.44 of the side, any rotation, any
    position that keeps it inside), in a colour that contrasts with the background, behind it 0-2
    thin lines of clutter. It is drawn at ``SUPERSAMPLING`` times the size and box-filtered down,
    so edges are anti-aliased and a 16-pixel image is still recognisable to a person.

    Example:
        >>> render_shape("star", random.Random(0), 16).size
        (16, 16)
    """
    s = image_size * SUPERSAMPLING
    background, foreground = _contrasting_colours(rng)
    image = Image.new("RGB", (s, s), background)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 2)):  # clutter behind the shape: thin lines, 1 px when shrunk
        draw.line([(rng.uniform(0, s), rng.uniform(0, s)), (rng.uniform(0, s), rng.uniform(0, s))],
                  fill=_random_colour(rng), width=SUPERSAMPLING)
    scale = rng.uniform(0.32, 0.44) * s
    angle = rng.uniform(0, 2 * math.pi)
    cx = rng.uniform(scale, s - scale)
    cy = rng.uniform(scale, s - scale)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    rotation = np.array([[cos, -sin], [sin, cos]])
    for polygon, is_hole in _SHAPES[name]:
        points = polygon @ rotation.T + (cx, cy)
        draw.polygon([tuple(p) for p in points.tolist()],
                     fill=background if is_hole else foreground)
    return image.resize((image_size, image_size), Image.Resampling.BOX)


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)  # (3, H, W)


def long_tailed_counts(num_classes: int, max_count: int, imbalance_ratio: float) -> list[int]:
    """Per-class counts decaying exponentially from ``max_count`` to ``max_count /
    imbalance_ratio`` (the CIFAR-LT profile): class ``i`` gets
    ``max_count * imbalance_ratio ** (-i / (num_classes - 1))``, at least 1.

    Example:
        >>> long_tailed_counts(6, 500, 50)
        [500, 228, 104, 47, 21, 10]
        >>> long_tailed_counts(3, 100, 1)
        [100, 100, 100]
    """
    num_classes = check_int("num_classes", num_classes, minimum=1)
    max_count = check_int("max_count", max_count, minimum=1)
    if not isinstance(imbalance_ratio, (int, float)) or not imbalance_ratio >= 1:
        raise ValueError(f"imbalance_ratio must be a number >= 1, got {imbalance_ratio!r}")
    if num_classes == 1:
        return [max_count]
    return [max(1, int(max_count * imbalance_ratio ** (-i / (num_classes - 1))))
            for i in range(num_classes)]


class ShapesDataset(Dataset):
    """Images of shapes generated deterministically from ``(seed, index)``; nothing on disk.

    Args:
        n: number of images (ignored when ``class_counts`` is given; then it is their sum).
        family: ``"source"`` (circle, cross, ring, square, star, triangle) or ``"target"``
            (arrow, crescent, ellipse, l_shape, semicircle, t_shape); disjoint classes.
        image_size: side length in pixels, at least 16.
        seed: the dataset's seed; different seeds give different images (use one seed for
            training and another for testing).
        class_counts: images per class, e.g. from ``long_tailed_counts``.
        imbalance_ratio: shortcut for a long-tailed set of ``n`` images: counts follow
            ``long_tailed_counts`` scaled so they sum to about ``n``.
        transform: applied to a PIL image; without one an item is a float tensor
            ``(3, H, W)`` in [0, 1].

    Items are ``(image, label)``. Labels are balanced by default (``index % num_classes``) and
    laid out in a seeded random order when counts are given.

    Example:
        >>> ds = ShapesDataset(12, seed=0)
        >>> x, y = ds[0]
        >>> tuple(x.shape), x.dtype, y, ds.classes[y]
        ((3, 32, 32), torch.float32, 0, 'circle')
        >>> torch.equal(ds[5][0], ShapesDataset(12, seed=0)[5][0])  # same (seed, index), same image
        True
        >>> ShapesDataset(60, family="target", imbalance_ratio=10).class_counts
        [24, 15, 9, 6, 4, 2]
    """

    def __init__(
        self,
        n: int = 1000,
        *,
        family: Family = "source",
        image_size: int = 32,
        seed: int = 0,
        class_counts: Sequence[int] | None = None,
        imbalance_ratio: float | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
            raise TypeError(f"image_size must be an int, got {type(image_size).__name__}")
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE}, got {image_size}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.family = family
        self.classes: list[str] = list(FAMILIES[family])
        self.num_classes = len(self.classes)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.transform = transform
        if class_counts is not None and imbalance_ratio is not None:
            raise ValueError("give class_counts or imbalance_ratio, not both")
        if class_counts is not None:
            counts = [int(c) for c in class_counts]
            if len(counts) != self.num_classes:
                raise ValueError(
                    f"class_counts must have one count per class ({self.num_classes} for "
                    f"family={family!r}), got {len(counts)}")
            if any(c < 0 for c in counts) or sum(counts) == 0:
                raise ValueError(f"class_counts must be >= 0 with a positive sum, got {counts}")
            self.targets = self._shuffled_labels(counts)
        elif imbalance_ratio is not None:
            n = check_int("n", n, minimum=1)
            profile = long_tailed_counts(self.num_classes, 10**6, imbalance_ratio)
            total = sum(profile)
            counts = [max(1, round(n * c / total)) for c in profile]
            self.targets = self._shuffled_labels(counts)
        else:
            n = check_int("n", n, minimum=1)
            self.targets = [i % self.num_classes for i in range(n)]

    def _shuffled_labels(self, counts: list[int]) -> list[int]:
        labels = [label for label, c in enumerate(counts) for _ in range(c)]
        random.Random(self.seed * 7919 + 17).shuffle(labels)
        return labels

    @property
    def class_counts(self) -> list[int]:
        """Number of images of each class."""
        return np.bincount(self.targets, minlength=self.num_classes).tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, index: int) -> Image.Image:
        """The PIL image at ``index`` (before any transform)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)}")
        index %= len(self)
        # Family and label are part of the stream, so no two (family, class) pairs share pictures.
        rng = random.Random(f"{self.seed}/{self.family}/{index}")
        return render_shape(self.classes[self.targets[index]], rng, self.image_size)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.image(index)
        label = self.targets[index]
        if self.transform is not None:
            return self.transform(image), label
        return _pil_to_tensor(image), label

    def __repr__(self) -> str:
        return (f"ShapesDataset(n={len(self)}, family={self.family!r}, "
                f"image_size={self.image_size}, seed={self.seed}, classes={self.classes})")


class DigitsDataset(Dataset):
    """scikit-learn's bundled handwritten digits (1,797 images, 10 classes), resized to
    ``image_size`` and repeated to 3 channels. Real data, offline, and a task dissimilar to
    shapes.

    Example:
        >>> ds = DigitsDataset(image_size=16)
        >>> len(ds), ds.classes[:3], tuple(ds[0][0].shape), ds[0][1]
        (1797, ['0', '1', '2'], (3, 16, 16), 0)
    """

    def __init__(self, *, image_size: int = 32,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        from sklearn.datasets import load_digits

        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
            raise TypeError(f"image_size must be an int, got {type(image_size).__name__}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        digits = load_digits()
        pixels = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        pixels = torch.nn.functional.interpolate(pixels, size=(image_size, image_size),
                                                 mode="bilinear", align_corners=False)
        # Stored as uint8, like an image file: exporting to PNG and back is then lossless.
        self._images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)
        self.targets: list[int] = [int(t) for t in digits.target]
        self.classes: list[str] = [str(d) for d in range(10)]
        self.num_classes = 10
        self.image_size = int(image_size)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, index: int) -> Image.Image:
        """The PIL image at ``index``."""
        return Image.fromarray(self._images[index].permute(1, 2, 0).contiguous().numpy(), "RGB")

    def __getitem__(self, index: int) -> tuple[Any, int]:
        label = self.targets[index]
        if self.transform is not None:
            return self.transform(self.image(index)), label
        return self._images[index].float() / 255, label


# --------------------------------------------------------------------------- helpers

def _targets_of(dataset: Dataset) -> list[int]:
    """The labels of ``dataset`` without loading images where possible (``.targets``, a
    ``Subset`` of such a dataset, or a ``TensorDataset``), else by iterating.

    Example:
        >>> _targets_of(ShapesDataset(4))
        [0, 1, 2, 3]
    """
    if isinstance(dataset, Subset):
        parent = _targets_of(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return [int(t) for t in tensors[1]]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def tensors_from(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise a (small) dataset as tensors ``X (N, C, H, W)`` and ``y (N,)``: the fast path
    for experiments that fit in memory.

    Example:
        >>> X, y = tensors_from(ShapesDataset(10, image_size=16))
        >>> tuple(X.shape), y.tolist()[:4]
        ((10, 3, 16, 16), [0, 1, 2, 3])
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    items = [dataset[i] for i in range(len(dataset))]
    X = torch.stack([torch.as_tensor(x) for x, _ in items])
    y = torch.tensor([int(t) for _, t in items], dtype=torch.long)
    return X, y


def _folder_names(classes: Sequence[str]) -> list[str]:
    names = [str(c) for c in classes]
    if names == sorted(names):
        return names
    # ImageFolder numbers classes in sorted order: a zero-padded prefix keeps ours.
    width = len(str(len(names) - 1))
    return [f"{i:0{width}d}_{name}" for i, name in enumerate(names)]


def export_image_folder(dataset: Dataset, root: str | os.PathLike) -> Path:
    """Write ``dataset`` as ``root/<class>/<index>.png`` plus ``root/labels.csv``
    (``id,label,class_name``; ``id`` is the file's path relative to ``root``).

    The dataset must have ``.classes`` and give ``(image, label)`` with a PIL image or a float
    tensor in [0, 1]. PNG is lossless, so ``torchvision.datasets.ImageFolder(root)`` gives back
    the same images and labels (class folders are named so their sorted order is the label
    order).

    Returns:
        ``root`` as a ``Path``.

    Example:
        >>> import tempfile
        >>> root = export_image_folder(ShapesDataset(4, image_size=16), tempfile.mkdtemp())
        >>> (root / "labels.csv").read_text().splitlines()[:2]
        ['id,label,class_name', 'circle/0.png,0,circle']
    """
    classes = getattr(dataset, "classes", None)
    if not classes:
        raise ValueError("dataset must have a non-empty .classes list of class names")
    if len(dataset) == 0:
        raise ValueError("dataset is empty: nothing to export")
    root = Path(root)
    folders = _folder_names(classes)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["id", "label", "class_name"])
    digits = len(str(len(dataset) - 1))
    for index in range(len(dataset)):
        image = dataset.image(index) if hasattr(dataset, "image") else dataset[index][0]
        label = int(dataset[index][1]) if not hasattr(dataset, "targets") else int(
            dataset.targets[index])
        if isinstance(image, torch.Tensor):
            array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            image = Image.fromarray(array, "RGB")
        relative = f"{folders[label]}/{index:0{digits}d}.png"
        image.save(root / relative, format="PNG")
        writer.writerow([relative, label, classes[label]])
    atomic_write_bytes(root / "labels.csv", rows.getvalue().encode("utf-8"))
    return root


def load_image_folder(root: str | os.PathLike,
                      transform: Callable[[Image.Image], Any] | None = None) -> Dataset:
    """Open ``root`` as a ``torchvision.datasets.ImageFolder`` (one folder per class).

    Without ``transform`` items are float tensors ``(3, H, W)`` in [0, 1], like the course's
    own datasets.

    Example:
        >>> import tempfile
        >>> root = export_image_folder(ShapesDataset(6, image_size=16), tempfile.mkdtemp())
        >>> ds = load_image_folder(root)
        >>> len(ds), ds.classes[:2], ds[1][1]
        (6, ['circle', 'cross'], 1)
    """
    from torchvision import datasets, transforms

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root must be an existing folder of class sub-folders, got {root} "
                         "(it does not exist; export one with export_image_folder)")
    if not any(p.is_dir() for p in root.iterdir()):
        raise ValueError(f"root {root} has no class sub-folders (expected root/<class>/*.png)")
    return datasets.ImageFolder(root, transform=transform or transforms.ToTensor(),
                                allow_empty=True)


def make_loaders(
    dataset: Dataset,
    *,
    val_fraction: float = 0.2,
    batch_size: int = 64,
    seed: int = 0,
    stratify: bool = True,
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """Split ``dataset`` into train/validation DataLoaders, stratified by label by default.

    Each class contributes ``round(val_fraction * count)`` images to validation (at least one
    when it has two or more). The training loader shuffles with its own ``torch.Generator``
    seeded with ``seed``, so the order does not depend on other random draws; the validation
    loader does not shuffle.

    Example:
        >>> train, val = make_loaders(ShapesDataset(60), val_fraction=0.2, batch_size=16)
        >>> len(train.dataset), len(val.dataset)
        (48, 12)
        >>> sorted(_targets_of(val.dataset)).count(0)  # stratified: 2 of each of 6 classes
        2
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    rng = np.random.default_rng(seed)
    if stratify:
        targets = np.asarray(_targets_of(dataset))
        train_idx: list[int] = []
        val_idx: list[int] = []
        for label in np.unique(targets):
            members = rng.permutation(np.flatnonzero(targets == label))
            k = int(round(val_fraction * len(members)))
            if len(members) >= 2:
                k = min(max(k, 1), len(members) - 1)
            else:
                k = 0
            val_idx += members[:k].tolist()
            train_idx += members[k:].tolist()
        train_idx.sort()
        val_idx.sort()
    else:
        order = rng.permutation(len(dataset))
        k = int(round(val_fraction * len(dataset)))
        val_idx, train_idx = sorted(order[:k].tolist()), sorted(order[k:].tolist())
    if not train_idx or not val_idx:
        raise ValueError(f"val_fraction={val_fraction} leaves an empty split of "
                         f"{len(dataset)} items")
    generator = torch.Generator().manual_seed(seed)
    from lesson_utils.repro import seed_worker

    common: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers}
    if num_workers > 0:
        common["worker_init_fn"] = seed_worker
        common["persistent_workers"] = True
    train = DataLoader(Subset(dataset, train_idx), shuffle=True, generator=generator, **common)
    val = DataLoader(Subset(dataset, val_idx), shuffle=False, **common)
    return train, val


class _BatchIndices(Sampler[torch.Tensor]):
    """Index tensors of whole batches: each epoch one ``torch.randperm`` from ``generator``
    (or ``0 .. n-1`` in order), cut into ``batch_size`` slices."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator | None) -> None:
        self.n, self.batch_size, self.generator = n, batch_size, generator

    def __iter__(self):
        order = (torch.randperm(self.n, generator=self.generator) if self.generator is not None
                 else torch.arange(self.n))
        return iter(order.split(self.batch_size))

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def tensor_loader(X: torch.Tensor, y: torch.Tensor, *, batch_size: int,
                  generator: torch.Generator | None = None) -> DataLoader:
    """A ``DataLoader`` over in-memory tensors that takes whole batches by indexing (``X[idx]``)
    instead of collating one sample at a time: the same batches, much less Python per step.

    With a ``generator`` the order is shuffled every epoch by one ``torch.randperm(len(y),
    generator=generator)``: exactly the batches of the hand-written loop
    ``for idx in torch.randperm(n, generator=g).split(batch_size): X[idx], y[idx]``. Without
    one, the order is fixed (for evaluation).

    Example:
        >>> X, y = torch.arange(10.0)[:, None], torch.arange(10)
        >>> loader = tensor_loader(X, y, batch_size=4, generator=torch.Generator().manual_seed(0))
        >>> [len(yb) for _, yb in loader], len(loader)
        ([4, 4, 2], 3)
        >>> order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
        >>> next(iter(tensor_loader(X, y, batch_size=4, generator=torch.Generator().manual_seed(0))))[1].tolist() == order[:4].tolist()
        True
    """
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"X and y must be tensors, got {type(X).__name__} and {type(y).__name__}")
    if y.ndim != 1 or len(X) != len(y) or len(y) == 0:
        raise ValueError(f"X and y must be (N, ...) and (N,) with N >= 1, got shapes "
                         f"{tuple(X.shape)} and {tuple(y.shape)}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    # batch_size=None: the sampler yields whole batches and the dataset is indexed with them.
    return DataLoader(TensorDataset(X, y), batch_size=None,
                      sampler=_BatchIndices(len(y), batch_size, generator))
