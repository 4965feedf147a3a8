"""Plots of lesson 02 (transfer learning): learning curves, and accuracy against the amount of
training data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from lesson_utils.plotting._axes import new_axes, to_numpy

__all__ = ["plot_transfer_curves", "plot_transfer_by_size"]

#: One colour per transfer strategy, the same in every plot of lesson 02.
_STRATEGY_COLORS: dict[str, str] = {"scratch": "tab:gray", "frozen": "tab:blue",
                                   "finetune": "tab:orange"}


def plot_transfer_curves(curves: Mapping[str, tuple[Any, Any]], *,
                         ax: Axes | None = None, title: str | None = None,
                         chance: float | None = None) -> Axes:
    """Learning curves, mean over seeds with a ±1 std band, one line per strategy.

    Args:
        curves: ``{strategy: (epochs (T,), accuracies (seeds, T))}``.
        ax: axes to draw on; a new figure when ``None``.
        title: axes title.
        chance: optional chance accuracy, drawn as a dashed line.

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_transfer_curves({"scratch": ([1, 2], [[0.2, 0.5], [0.3, 0.6]])})
        >>> ax.lines[0].get_ydata().round(2).tolist()
        [0.25, 0.55]
    """
    if not curves:
        raise ValueError("curves is empty")
    ax = new_axes(ax)
    for strategy, (epochs, accuracies) in curves.items():
        x = to_numpy(epochs).astype(float)
        values = np.atleast_2d(to_numpy(accuracies).astype(float))  # (seeds, T)
        if values.shape[1] != len(x):
            raise ValueError(f"{strategy}: {len(x)} epochs but accuracies of shape "
                             f"{values.shape}")
        mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else 0
        color = _STRATEGY_COLORS.get(strategy)
        ax.plot(x, mean, marker="o", markersize=3, label=strategy, color=color)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=color)
    if chance is not None:
        ax.axhline(chance, color="k", linestyle="dashed", linewidth=1, label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="lower right")
    return ax


def plot_transfer_by_size(curve: Sequence[Mapping[str, Any]], *, ax: Axes | None = None,
                          title: str | None = None, chance: float | None = None,
                          ceiling: float | None = None) -> Axes:
    """Test accuracy against training images per class (log axis), mean ± std, one line per
    strategy.

    Args:
        curve: rows with ``strategy``, ``per_class``, ``mean`` and ``std`` (the ``curve`` of
            ``benchmarks/results/transfer_curve.json``).
        ax: axes to draw on; a new figure when ``None``.
        title: axes title.
        chance: chance accuracy, a dashed line.
        ceiling: the task's ceiling (scratch with much data), a dotted line.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> rows = [{"strategy": "frozen", "per_class": n, "mean": m, "std": 0.01}
        ...         for n, m in ((5, 0.5), (50, 0.7))]
        >>> plot_transfer_by_size(rows).lines[0].get_xdata().tolist()
        [5.0, 50.0]
    """
    if not curve:
        raise ValueError("curve is empty")
    ax = new_axes(ax)
    for strategy in dict.fromkeys(r["strategy"] for r in curve):
        rows = sorted((r for r in curve if r["strategy"] == strategy), key=lambda r: r["per_class"])
        x = np.array([r["per_class"] for r in rows], dtype=float)
        mean = np.array([r["mean"] for r in rows])
        std = np.array([r["std"] for r in rows])
        color = _STRATEGY_COLORS.get(strategy)
        ax.plot(x, mean, marker="o", markersize=4, label=strategy, color=color)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=color)
    if chance is not None:
        ax.axhline(chance, color="k", linestyle="dashed", linewidth=1, label="chance")
    if ceiling is not None:
        ax.axhline(ceiling, color="tab:green", linestyle="dotted", linewidth=1.5,
                   label="ceiling (scratch, much data)")
    ax.set_xscale("log")
    ax.set_xlabel("training images per class")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="best")  # the emptiest corner: curves differ by task
    return ax
