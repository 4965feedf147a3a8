"""Plots of lesson 02 (transfer learning): accuracy per case and strategy, learning curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from lesson_utils.plotting._axes import new_axes, to_numpy

__all__ = ["plot_transfer_bars", "plot_transfer_curves"]

#: One colour per transfer strategy, the same in every plot of lesson 02.
_STRATEGY_COLORS: dict[str, str] = {"scratch": "tab:gray", "frozen": "tab:blue",
                                   "finetune": "tab:orange"}


def plot_transfer_bars(summary: Sequence[Mapping[str, Any]], *,
                       group_key: str = "case", bar_key: str = "strategy",
                       ax: Axes | None = None, chance: Mapping[str, float] | None = None,
                       ) -> Axes:
    """Grouped bars of mean accuracy with ±1 std error bars: one group per ``group_key``
    value (e.g. a case), one bar per ``bar_key`` value (e.g. a strategy).

    Args:
        summary: rows with ``group_key``, ``bar_key``, ``"mean"`` and ``"std"`` (as from
            ``lesson_utils.transfer_experiment.summarize``).
        ax: axes to draw on; a new figure when ``None``.
        chance: optional chance level per group, drawn as a short dashed line.

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> rows = [{"case": "a", "strategy": "scratch", "mean": 0.5, "std": 0.1},
        ...         {"case": "a", "strategy": "frozen", "mean": 0.8, "std": 0.0}]
        >>> ax = plot_transfer_bars(rows)
        >>> [round(float(p.get_height()), 2) for p in ax.patches]
        [0.5, 0.8]
    """
    rows = list(summary)
    if not rows:
        raise ValueError("summary is empty")
    for key in (group_key, bar_key, "mean", "std"):
        if key not in rows[0]:
            raise ValueError(f"summary rows need the key {key!r}; got keys {sorted(rows[0])}")
    groups = list(dict.fromkeys(r[group_key] for r in rows))
    bars = list(dict.fromkeys(r[bar_key] for r in rows))
    ax = new_axes(ax, figsize=(8.0, 4.0))
    width = 0.8 / len(bars)
    for j, bar in enumerate(bars):
        xs, means, stds = [], [], []
        for i, group in enumerate(groups):
            match = [r for r in rows if r[group_key] == group and r[bar_key] == bar]
            if match:
                xs.append(i + (j - (len(bars) - 1) / 2) * width)
                means.append(match[0]["mean"])
                stds.append(match[0]["std"])
        # A variant such as "frozen x10" takes its strategy's colour, hatched.
        base = str(bar).split()[0] if str(bar).split() else str(bar)
        variant = str(bar) not in _STRATEGY_COLORS and base in _STRATEGY_COLORS
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=str(bar),
               color=_STRATEGY_COLORS.get(str(bar), _STRATEGY_COLORS.get(base)),
               hatch="//" if variant else None, alpha=0.6 if variant else 1.0)
    if chance:
        for i, group in enumerate(groups):
            if group in chance:
                ax.hlines(chance[group], i - 0.45, i + 0.45, colors="k", linestyles="dashed",
                          linewidth=1)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy (mean ± std)")
    ax.legend(title=bar_key, loc="best", fontsize="small")
    return ax


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
