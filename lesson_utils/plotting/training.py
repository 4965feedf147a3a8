"""Plots of a training run (lesson 06): the loss and metric curves of a ``History``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.axes import Axes

from lesson_utils.plotting._axes import new_axes

__all__ = ["plot_history"]


def plot_history(history: Any, key: str = "loss", *, ax: Axes | None = None,
                 mark_best: bool = True) -> Axes:
    """Plot ``train_<key>`` and ``val_<key>`` per epoch from a training history.

    Args:
        history: a ``lesson_utils.training.History``, a list of per-epoch dicts (with an
            ``"epoch"`` key, else epochs count from 1), or a dict of lists.
        key: the quantity, e.g. ``"loss"`` or ``"accuracy"``; a full key such as
            ``"val_f1"`` plots that one series.
        ax: axes to draw on; a new figure when ``None``.
        mark_best: draw a dotted line at ``history.best_epoch`` when it has one.

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_history([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2},
        ...                    {"epoch": 2, "train_loss": 0.6, "val_loss": 0.9}])
        >>> [line.get_label() for line in ax.lines]
        ['train_loss', 'val_loss']
    """
    if isinstance(history, Mapping):
        columns = {k: list(v) for k, v in history.items()}
        length = max((len(v) for v in columns.values()), default=0)
        records = [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(length)]
    else:
        records = [dict(r) for r in history]
    if not records:
        raise ValueError("history is empty: train for at least one epoch first")
    if not isinstance(key, str):
        raise TypeError(f"key must be a str such as 'loss', got {type(key).__name__}")
    names = [key] if any(key in r for r in records) else [f"train_{key}", f"val_{key}"]
    names = [n for n in names if any(n in r for r in records)]
    if not names:
        available = sorted({k for r in records for k in r})
        raise ValueError(f"no {key!r}, 'train_{key}' or 'val_{key}' in the history; keys are "
                         f"{available}")
    ax = new_axes(ax)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    for name in names:
        values = [r.get(name, float("nan")) for r in records]
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    best = getattr(history, "best_epoch", None)
    if mark_best and best is not None:
        ax.axvline(best, color="grey", linestyle=":", linewidth=1,
                   label=f"best epoch ({best})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.legend()
    return ax
