"""Inference: batch prediction in eval + inference mode, probabilities, top-k, test-time
augmentation, and a submission CSV that is written atomically.

``predict`` is the hand-written loop of lesson 07 done once::

    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(xb) for xb in X.split(batch_size)])
    probs = logits.softmax(dim=1)

and it puts every submodule back in the mode it found it in, so calling it in the middle of
training changes nothing. On the CPU it also hands images to the convolutions in channels-last
layout (the same numbers up to float rounding, and faster; see ``predict``).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lesson_utils.checkpoints import atomic_write_bytes
from lesson_utils.models import modes_restored
from lesson_utils.repro import resolve_device
from lesson_utils.training.distributed import unwrap_model
from lesson_utils.validation import check_instance, check_int

__all__ = ["Predictions", "hflip", "predict", "write_predictions_csv"]

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class Predictions:
    """Model outputs for ``N`` inputs and ``K`` classes, on the CPU.

    Attributes:
        logits: ``(N, K)`` raw scores. With TTA: ``log`` of the averaged probabilities, so that
            ``softmax(logits) == probs`` still holds.
        probs: ``(N, K)`` class probabilities; each row sums to 1.
        preds: ``(N,)`` the most probable class.
        targets: ``(N,)`` labels when the data carried them (``(x, y)`` batches), else ``None``.

    Example:
        >>> p = Predictions.from_logits(torch.tensor([[2.0, 1.0, 0.0]]))
        >>> p.preds.tolist(), round(float(p.probs.sum()), 4)
        ([0], 1.0)
        >>> p.topk(2).indices.tolist()
        [[0, 1]]
    """

    logits: torch.Tensor
    probs: torch.Tensor
    preds: torch.Tensor
    targets: torch.Tensor | None = None

    @classmethod
    def from_logits(cls, logits: torch.Tensor,
                    targets: torch.Tensor | None = None) -> Predictions:
        """Build from ``(N, K)`` logits: probabilities by softmax, predictions by argmax."""
        logits = logits.float()
        probs = logits.softmax(dim=1)
        return cls(logits, probs, probs.argmax(dim=1), targets)

    def __len__(self) -> int:
        return self.logits.shape[0]

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    def topk(self, k: int) -> torch.return_types.topk:
        """The ``k`` most probable classes per row: ``(values (N, k), indices (N, k))``,
        most probable first."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if not 1 <= k <= self.num_classes:
            raise ValueError(f"k must be in [1, num_classes={self.num_classes}], got {k}")
        return self.probs.topk(int(k), dim=1)

    def accuracy(self) -> float:
        """Fraction of ``preds`` equal to ``targets`` (needs targets)."""
        if self.targets is None:
            raise ValueError("these predictions have no targets: predict on (x, y) batches")
        return float((self.preds == self.targets).float().mean())


def hflip(images: torch.Tensor) -> torch.Tensor:
    """Mirror a batch of images left-right (the last dimension): the classic TTA view.

    Example:
        >>> hflip(torch.tensor([[[[1, 2, 3]]]])).tolist()
        [[[[3, 2, 1]]]]
    """
    return images.flip(-1)


def _split(batch: Any) -> tuple[torch.Tensor, Any]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0], batch[1] if len(batch) >= 2 else None
    raise TypeError(f"each batch must be a tensor of inputs or a tuple (inputs, targets, ...), "
                    f"got {type(batch).__name__}")


def _batches(data: Any, batch_size: int) -> Iterator[tuple[torch.Tensor, Any]]:
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise ValueError("data is a 0-d tensor; expected a batch of inputs (N, ...)")
        if data.shape[0] == 0:
            raise ValueError("data is empty: nothing to predict")
        for xb in data.split(batch_size):
            yield xb, None
    elif isinstance(data, Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
        yield from (_split(b) for b in DataLoader(data, batch_size=batch_size, shuffle=False))
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        yield from (_split(b) for b in data)
    else:
        raise TypeError(f"data must be a tensor (N, ...), a Dataset or a DataLoader, got "
                        f"{type(data).__name__}")


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def predict(
    model: nn.Module,
    data: torch.Tensor | Dataset | Iterable,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 256,
    tta: Sequence[Transform] | None = None,
    channels_last: bool | None = None,
) -> Predictions:
    """Predict classes for ``data`` in batches, under ``eval()`` and ``inference_mode()``.

    Every submodule's ``training`` flag is put back afterwards, and nothing is recorded for
    autograd, so the call is safe in the middle of training.

    Args:
        model: a classifier returning logits ``(N, K)`` (a DDP wrapper is unwrapped).
        data: a tensor ``(N, ...)`` (split into batches of ``batch_size``), a ``Dataset``
            (items ``x`` or ``(x, y)``; batched in order) or a ``DataLoader``/iterable of
            batches. Labels found in the batches are returned as ``targets``.
        device: where to run; ``None``: where the model is (``repro.resolve_device``). A
            different device moves the model there.
        batch_size: batch size for tensors and datasets (a DataLoader keeps its own).
        tta: test-time augmentation: transforms of an input batch (e.g. ``[hflip]``). The
            probabilities of the original batch and of each transformed copy are averaged
            (``len(tta) + 1`` views).
        channels_last: feed 4-D image batches in channels-last memory layout (``N, H, W, C``
            in memory; the tensor's shape is unchanged). oneDNN's CPU convolutions run on that
            layout natively instead of converting every batch, which pays off as the images
            grow (``benchmarks/bench_channels_last.py`` measures it). Results equal the default
            layout's up to float rounding (about 1e-7), not bit for bit. ``None`` (the default) uses it on the CPU for
            floating-point 4-D inputs to a model containing an ``nn.Conv2d``; if the model then
            fails on the first batch (e.g. it calls ``.view``, which needs the default layout)
            the batch is rerun in the default layout, which is kept. ``False`` never uses it
            (bit for bit a plain ``model(x)`` loop); ``True`` always does, with no fallback.

    Returns:
        ``Predictions`` (logits, probs, preds, targets) on the CPU.

    Example:
        >>> model = nn.Linear(4, 3)
        >>> out = predict(model, torch.randn(10, 4), batch_size=4)
        >>> tuple(out.probs.shape), out.preds.shape, model.training
        ((10, 3), torch.Size([10]), True)
    """
    check_instance("model", model, nn.Module, "an nn.Module")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if channels_last is not None:
        check_instance("channels_last", channels_last, bool, "True, False or None")
    views: list[Transform | None] = [None]
    if tta is not None:
        if callable(tta) or not isinstance(tta, Sequence) or not all(callable(t) for t in tta):
            raise TypeError("tta must be a list of transforms f(batch) -> batch, e.g. [hflip]")
        views += list(tta)
    model = unwrap_model(model)
    device = resolve_device(device, model)
    if resolve_device(None, model) != device:
        model.to(device)

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        if len(views) == 1:
            out = model(inputs)
            _check_logits(out, inputs.shape[0])
            return out
        probs = None
        for view in views:
            logits = model(inputs if view is None else view(inputs))
            _check_logits(logits, inputs.shape[0])
            p = logits.float().softmax(dim=1)
            probs = p if probs is None else probs + p
        return (probs / len(views)).log()

    auto_layout = channels_last is None
    use_channels_last = bool(channels_last) or (
        auto_layout and device.type == "cpu" and _has_conv2d(model))
    chunks: list[torch.Tensor] = []
    targets: list[Any] = []
    all_targets = True
    with modes_restored(model), torch.inference_mode():
        model.eval()
        for inputs, y in _batches(data, int(batch_size)):
            inputs = inputs.to(device, non_blocking=True)
            if use_channels_last and inputs.ndim == 4 and inputs.is_floating_point():
                try:
                    out = forward(inputs.contiguous(memory_format=torch.channels_last))
                except (RuntimeError, ValueError):
                    if not (auto_layout and not chunks):
                        raise
                    use_channels_last = False  # e.g. x.view(...): keep the default layout
                    out = forward(inputs)  # a genuine error is raised from here
            else:
                out = forward(inputs)
            chunks.append(out)
            if y is None:
                all_targets = False
            elif all_targets:
                targets.append(torch.as_tensor(y))
    if not chunks:
        raise ValueError("data is empty: nothing to predict")
    # Outside inference mode, so the result is an ordinary tensor: an inference tensor would
    # raise if it later met autograd (e.g. as a distillation target).
    logits = torch.cat(chunks).float().cpu()  # (N, K), one device-to-host copy
    target_tensor = torch.cat(targets).cpu() if all_targets and targets else None
    if len(views) == 1:
        return Predictions.from_logits(logits, target_tensor)
    probs = logits.exp()
    return Predictions(logits, probs, probs.argmax(dim=1), target_tensor)


def _check_logits(out: Any, n: int) -> None:
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != n:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"predict expects the model to return class logits (N={n}, K), got "
                         f"{shape}")


def _as_list(name: str, values: Any) -> list[Any]:
    if isinstance(values, torch.Tensor):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {tuple(values.shape)}")
        return values.tolist()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
        return values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence (list, tensor or array), got "
                        f"{type(values).__name__}")
    return list(values)


def write_predictions_csv(
    ids: Sequence[Any] | torch.Tensor | np.ndarray,
    preds: Sequence[Any] | torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    columns: tuple[str, str] = ("id", "label"),
) -> Path:
    """Write a submission file ``id,label`` (one row per input), atomically.

    Args:
        ids: one id per row (strings or ints), unique.
        preds: predicted class indices (ints), or labels (strings) when ``class_names`` is
            ``None``.
        path: the CSV file; its folder is created if needed.
        class_names: write ``class_names[pred]`` instead of the index.
        overwrite: replace an existing file (by default an existing file is an error, so a good
            submission is never replaced by accident).
        columns: the header.

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "predictions.csv"
        >>> _ = write_predictions_csv(["a", "b"], torch.tensor([1, 0]), p,
        ...                           class_names=["cat", "dog"])
        >>> print(p.read_text(), end="")
        id,label
        a,dog
        b,cat
    """
    path = Path(path)
    id_list = _as_list("ids", ids)
    if isinstance(preds, torch.Tensor) and (preds.is_floating_point() or preds.is_complex()):
        raise TypeError(f"preds must hold class indices (integers), got a {preds.dtype} tensor; "
                        f"for probabilities (N, K) use probs.argmax(dim=1)")
    pred_list = _as_list("preds", preds)
    if len(id_list) != len(pred_list):
        raise ValueError(f"ids and preds must have the same length, got {len(id_list)} ids and "
                         f"{len(pred_list)} preds")
    if not id_list:
        raise ValueError("ids and preds are empty: nothing to write")
    if len(set(map(str, id_list))) != len(id_list):
        seen: set[str] = set()
        dupes = [str(i) for i in id_list if str(i) in seen or seen.add(str(i))]
        raise ValueError(f"ids must be unique; repeated: {sorted(set(dupes))[:5]}")
    if not (isinstance(columns, tuple) and len(columns) == 2
            and all(isinstance(c, str) for c in columns)):
        raise TypeError(f"columns must be a tuple of two strings, got {columns!r}")
    if class_names is not None:
        names = list(class_names)
        bad = [p for p in pred_list
               if isinstance(p, bool) or not isinstance(p, (int, np.integer))
               or not 0 <= p < len(names)]
        if bad:
            raise ValueError(f"with class_names, preds must be integers in [0, {len(names)}), "
                             f"got e.g. {bad[:3]}")
        pred_list = [names[p] for p in pred_list]
    elif any(isinstance(p, float) for p in pred_list):
        raise TypeError("preds must be class indices (integers) or labels (strings), got floats")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(id_list, pred_list, strict=True))
    return atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))
