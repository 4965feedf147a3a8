"""Plots of lesson 05 (metrics): ROC and precision-recall curves, confusion matrix, operating point."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

import lesson_utils.metrics as metric_fns
from lesson_utils.plotting._axes import new_axes, to_numpy

__all__ = ["plot_roc_curve", "plot_pr_curve", "plot_confusion_matrix", "plot_operating_point"]


def plot_roc_curve(y_true: Any, y_score: Any, *, ax: Axes | None = None,
                   label: str | None = None, color: str | None = None,
                   chance: bool = True) -> Axes:
    """Draw the ROC curve (true- vs false-positive rate over all thresholds) with its AUC.

    Args:
        y_true: 0/1 labels, shape ``(N,)``.
        y_score: scores of the positive class, shape ``(N,)``.
        ax: axes to draw on; a new figure when ``None``.
        label: legend name of the curve; ``"(AUC x.xxx)"`` is appended.
        color: line colour (matplotlib's cycle when ``None``).
        chance: also draw the diagonal of a random scorer (AUC 0.5), once per axes.

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], label="model")
        >>> ax.get_legend_handles_labels()[1]
        ['model (AUC 0.750)', 'chance (AUC 0.5)']
    """
    fpr, tpr, _ = metric_fns.roc_curve(y_true, y_score)
    auc = metric_fns.roc_auc(y_true, y_score)
    ax = new_axes(ax, figsize=(4.5, 4.5))
    name = f"{label} (AUC {auc:.3f})" if label else f"AUC {auc:.3f}"
    ax.plot(fpr.numpy(), tpr.numpy(), color=color, label=name, gid="roc-curve")
    if chance and not any(line.get_gid() == "roc-chance" for line in ax.lines):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1,
                label="chance (AUC 0.5)", gid="roc-chance")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false-positive rate (1 - specificity)")
    ax.set_ylabel("true-positive rate (recall)")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_pr_curve(y_true: Any, y_score: Any, *, ax: Axes | None = None,
                  label: str | None = None, color: str | None = None,
                  baseline: bool = True) -> Axes:
    """Draw the precision-recall curve (a step curve, as average precision integrates it).

    Args:
        y_true: 0/1 labels, shape ``(N,)``.
        y_score: scores of the positive class, shape ``(N,)``.
        ax: axes to draw on; a new figure when ``None``.
        label: legend name of the curve; ``"(AP x.xxx)"`` is appended.
        color: line colour (matplotlib's cycle when ``None``).
        baseline: also draw the precision of a random scorer, the positive rate, as a dashed
            line in the curve's colour.

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_pr_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], label="model")
        >>> ax.get_legend_handles_labels()[1]
        ['model (AP 0.833)', 'chance (positive rate 0.50)']
    """
    precision, recall, _ = metric_fns.precision_recall_curve(y_true, y_score)
    ap = metric_fns.average_precision(y_true, y_score)
    ax = new_axes(ax, figsize=(4.5, 4.5))
    name = f"{label} (AP {ap:.3f})" if label else f"AP {ap:.3f}"
    (line,) = ax.plot(recall.numpy(), precision.numpy(), drawstyle="steps-post", color=color,
                      label=name, gid="pr-curve")
    if baseline:
        rate = float(to_numpy(y_true).astype(float).mean())
        ax.axhline(rate, linestyle="--", linewidth=1, color=line.get_color(), alpha=0.7,
                   label=f"chance (positive rate {rate:.2f})", gid="pr-chance")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall curve")
    ax.legend(loc="lower left", fontsize="small")
    return ax


def plot_confusion_matrix(cm: Any, *, class_names: Sequence[str] | None = None,
                          normalize: str | None = None, ax: Axes | None = None,
                          cmap: str = "Blues", title: str | None = None) -> Axes:
    """Draw a confusion matrix (rows: true class, columns: predicted class) with counts.

    Args:
        cm: ``(K, K)`` counts, e.g. from ``lesson_utils.metrics.confusion_matrix``.
        class_names: ``K`` tick labels; default the class indices.
        normalize: ``None`` (colour by count), ``"true"`` (each row sums to 1: the diagonal is
            per-class recall) or ``"pred"`` (each column sums to 1: the diagonal is per-class
            precision). Cells show the fraction and, below it, the count.
        ax: axes to draw on (cleared first); a new figure when ``None``.
        cmap: matplotlib colour map.
        title: axes title; default ``"confusion matrix"`` (with the normalisation).

    Returns:
        The axes; the cell texts are ``ax.texts`` in row-major order.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_confusion_matrix([[5, 1], [2, 2]], class_names=["no", "yes"])
        >>> [t.get_text() for t in ax.texts]
        ['5', '1', '2', '2']
    """
    counts = to_numpy(cm)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.size == 0:
        raise ValueError(f"cm must be a square (K, K) matrix, got shape {counts.shape}")
    if (counts < 0).any():
        raise ValueError("cm must hold counts >= 0")
    k = counts.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names but cm is {k} x {k}")
    if normalize is None:
        shown = counts.astype(float)
    elif normalize in ("true", "pred"):
        axis = 1 if normalize == "true" else 0
        totals = counts.sum(axis=axis, keepdims=True).astype(float)
        shown = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    else:
        raise ValueError(f"normalize must be one of None, 'true', 'pred'; got {normalize!r}")
    ax = new_axes(ax, figsize=(1.2 * k + 2.2, 1.2 * k + 1.6))
    ax.clear()
    vmax = 1.0 if normalize else max(float(shown.max()), 1.0)
    ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=vmax, gid="confusion-image")
    for i in range(k):
        for j in range(k):
            text = (f"{int(counts[i, j])}" if normalize is None
                    else f"{shown[i, j]:.2f}\n({int(counts[i, j])})")
            dark = shown[i, j] > 0.6 * vmax
            ax.text(j, i, text, ha="center", va="center",
                    color="white" if dark else "black", fontsize="medium")
    long_names = max(len(n) for n in names) > 3          # words, not digits: tilt them so they never overlap
    ax.set_xticks(range(k), names, rotation=30 if long_names else 0, ha="right" if long_names else "center",
                  rotation_mode="anchor")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    suffix = {None: "", "true": " (rows sum to 1: recall)",
              "pred": " (columns sum to 1: precision)"}[normalize]
    ax.set_title(title if title is not None else f"confusion matrix{suffix}")
    return ax


def plot_operating_point(ax: Axes, x: float, y: float, *, label: str | None = None,
                         gid: str = "operating-point", color: str = "tab:red",
                         legend_loc: str = "best") -> Axes:
    """Mark one point (e.g. the current threshold on a ROC or PR curve), moving it if present.

    A second call with the same ``gid`` moves the existing marker instead of adding one, so a
    widget can update it in place.

    Args:
        ax: the axes.
        x, y: the point.
        label: legend text (the legend is redrawn when given).
        gid: identifies the marker on these axes.
        color: marker colour.
        legend_loc: where the redrawn legend goes.

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_operating_point(new_axes(), 0.2, 0.8)
        >>> ax = plot_operating_point(ax, 0.3, 0.9)
        >>> [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.lines]
        [(0.3, 0.9)]
    """
    for line in ax.lines:
        if line.get_gid() == gid:
            line.set_data([x], [y])
            if label is not None:
                line.set_label(label)
            break
    else:
        ax.plot([x], [y], marker="o", markersize=9, linestyle="none", color=color,
                markeredgecolor="black", zorder=5, gid=gid, label=label or "_nolegend_")
    if label is not None:
        ax.legend(loc=legend_loc, fontsize="small")
    return ax
