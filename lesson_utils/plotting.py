"""Plots for the lessons, matplotlib only.

Every function takes an optional ``ax`` (a new figure is made when it is ``None``), draws on it
and returns it, so a notebook can place several plots side by side and a widget can redraw one
axes in place.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

__all__: list[str] = ["new_axes"]


def new_axes(ax: Axes | None = None, *, figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    """Return ``ax``, or the axes of a new figure of ``figsize`` when ``ax`` is ``None``.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = new_axes()
        >>> new_axes(ax) is ax
        True
    """
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# Topic sections follow; each lesson appends its plotting functions below and extends __all__.


# ---- training (lesson 06: history / loss curves) ----
from collections.abc import Mapping as _Mapping  # noqa: E402

__all__ += ["plot_history"]


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
    if isinstance(history, _Mapping):
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


# ---- schedules (lesson 04: LR traces and the scheduler playground) ----
from collections.abc import Mapping as _SchedMapping  # noqa: E402
from collections.abc import Sequence as _SchedSequence  # noqa: E402

from lesson_utils.schedules import SCHEDULE_NAMES as _SCHEDULE_NAMES  # noqa: E402

__all__ += ["schedule_color", "plot_lr_traces", "plot_val_loss_curve"]

_LR_GID = "lr:"  # gid prefix of the lines plot_lr_traces owns, so a redraw can find them


def schedule_color(name: str) -> str:
    """A fixed colour per schedule name, so a schedule keeps its colour in every plot.

    Example:
        >>> schedule_color("step"), schedule_color("cosine")
        ('tab:orange', 'tab:purple')
    """
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    if name in _SCHEDULE_NAMES:
        return palette[_SCHEDULE_NAMES.index(name)]
    return palette[(len(_SCHEDULE_NAMES) + sum(map(ord, str(name)))) % len(palette)]


def _check_trace(what: str, values: Any) -> np.ndarray:
    arr = _to_numpy(values).astype(float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of numbers, got shape "
                         f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or inf")
    return arr


def plot_lr_traces(traces: _SchedMapping[str, _SchedSequence[float]], *,
                   num_epochs: int | None = None, log: bool = False,
                   labels: _SchedMapping[str, str] | None = None, ax: Axes | None = None,
                   title: str | None = "Learning rate per epoch", legend: bool = True) -> Axes:
    """Plot LR traces (``lesson_utils.schedules.lr_trace``) against the epoch, one line each.

    Called again with the same ``ax``, it updates the lines in place (``Line2D.set_data``):
    a schedule that is still there keeps its line, a new one gets a line, a missing one loses
    it. That is what lets the playground redraw one figure instead of building a new one.

    Args:
        traces: ``{name: lr per epoch (or per step)}``.
        num_epochs: when given, a trace of ``n`` values is spread over ``num_epochs`` epochs
            (so a per-step trace and a per-epoch trace share the x axis); else x is the index.
        log: logarithmic y axis (LRs of 0 are not drawn there).
        labels: legend text per name; the name itself by default.
        ax: axes to draw on; a new figure when ``None``.
        title: axes title (``None``: leave it).
        legend: draw a legend (outside the axes, on the right).

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_lr_traces({"step": [0.1, 0.1, 0.01], "constant": [0.1, 0.1, 0.1]})
        >>> line = ax.lines[0]
        >>> _ = plot_lr_traces({"step": [0.1, 0.01, 0.001]}, ax=ax)
        >>> ax.lines[0] is line, line.get_ydata().tolist(), len(ax.lines)
        (True, [0.1, 0.01, 0.001], 1)
    """
    if not isinstance(traces, _SchedMapping):
        raise TypeError(f"traces must be a mapping {{name: lr values}}, got "
                        f"{type(traces).__name__}")
    if num_epochs is not None and (isinstance(num_epochs, bool) or not isinstance(num_epochs, int)
                                   or num_epochs < 1):
        raise ValueError(f"num_epochs must be a positive int or None, got {num_epochs!r}")
    labels = dict(labels or {})
    arrays = {str(name): _check_trace(f"traces[{name!r}]", values)
              for name, values in traces.items()}
    ax = new_axes(ax)
    existing = {line.get_gid(): line for line in ax.lines
                if str(line.get_gid() or "").startswith(_LR_GID)}
    for name, y in arrays.items():
        x = np.arange(y.size) * ((num_epochs / y.size) if num_epochs else 1.0)
        gid = _LR_GID + name
        label = labels.get(name, name)
        if gid in existing:
            line = existing.pop(gid)
            line.set_data(x, y)
            line.set_label(label)
        else:
            ax.plot(x, y, gid=gid, label=label, color=schedule_color(name), linewidth=1.8)
    for stale in existing.values():
        stale.remove()
    ax.set_yscale("log" if log else "linear")
    ax.relim()
    ax.autoscale_view()
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    if title is not None:
        ax.set_title(title)
    if arrays and legend:  # outside the axes, so no schedule hides behind it
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    elif ax.get_legend() is not None:
        ax.get_legend().remove()
    return ax


def plot_val_loss_curve(val_loss: _SchedSequence[float], *,
                        plateau_lr: _SchedSequence[float] | None = None,
                        ax: Axes | None = None) -> Axes:
    """Plot the validation loss that ``ReduceLROnPlateau`` watches, and mark where it cut.

    A marker sits on the epoch whose loss triggered a cut (the LR drops from the next epoch).
    Called again with the same ``ax``, it updates its lines in place.

    Args:
        val_loss: one value per epoch.
        plateau_lr: the plateau schedule's LR trace (same length); cuts are where it drops.
        ax: axes to draw on; a new figure when ``None``.

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_val_loss_curve([1.0, 0.8, 0.8, 0.8], plateau_lr=[0.1, 0.1, 0.1, 0.01])
        >>> ax.lines[1].get_xdata().tolist()  # the loss after epoch 2 triggered the cut
        [2.0]
    """
    y = _check_trace("val_loss", val_loss)
    x = np.arange(y.size, dtype=float)
    cuts = np.zeros(0, dtype=int)
    if plateau_lr is not None:
        lr = _check_trace("plateau_lr", plateau_lr)
        if lr.size != y.size:
            raise ValueError(f"plateau_lr must have one value per epoch like val_loss "
                             f"({y.size}), got {lr.size}")
        cuts = np.flatnonzero(lr[1:] < lr[:-1])  # the loss after epoch e cut the LR of e + 1
    ax = new_axes(ax)
    lines = {line.get_gid(): line for line in ax.lines}
    if "val_loss" in lines:
        lines["val_loss"].set_data(x, y)
        lines["val_loss:cuts"].set_data(x[cuts], y[cuts])
    else:
        ax.plot(x, y, gid="val_loss", color="0.3", linewidth=1.4,
                label="synthetic validation loss")
        ax.plot(x[cuts], y[cuts], gid="val_loss:cuts", linestyle="none", marker="v",
                markersize=7, color=schedule_color("plateau"), label="plateau cuts the LR")
        ax.set_xlabel("epoch")
        ax.set_ylabel("val loss")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.relim()
    ax.autoscale_view()
    return ax


# ---- metrics (lesson 05: ROC and PR curves, confusion matrix) ----
from collections.abc import Sequence as _MetricsSequence  # noqa: E402

from lesson_utils import metrics as _metrics  # noqa: E402

__all__ += ["plot_roc_curve", "plot_pr_curve", "plot_confusion_matrix", "plot_operating_point"]


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
    fpr, tpr, _ = _metrics.roc_curve(y_true, y_score)
    auc = _metrics.roc_auc(y_true, y_score)
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
    precision, recall, _ = _metrics.precision_recall_curve(y_true, y_score)
    ap = _metrics.average_precision(y_true, y_score)
    ax = new_axes(ax, figsize=(4.5, 4.5))
    name = f"{label} (AP {ap:.3f})" if label else f"AP {ap:.3f}"
    (line,) = ax.plot(recall.numpy(), precision.numpy(), drawstyle="steps-post", color=color,
                      label=name, gid="pr-curve")
    if baseline:
        rate = float(_to_numpy(y_true).astype(float).mean())
        ax.axhline(rate, linestyle="--", linewidth=1, color=line.get_color(), alpha=0.7,
                   label=f"chance (positive rate {rate:.2f})", gid="pr-chance")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision-recall curve")
    ax.legend(loc="lower left", fontsize="small")
    return ax


def plot_confusion_matrix(cm: Any, *, class_names: _MetricsSequence[str] | None = None,
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
    counts = _to_numpy(cm)
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
    ax.set_xticks(range(k), names)
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


# ---- transfer (lesson 02: the four cases, learning curves) ----
from collections.abc import Mapping as _TransferMapping  # noqa: E402
from collections.abc import Sequence as _TransferSequence  # noqa: E402

__all__ += ["STRATEGY_COLORS", "plot_transfer_bars", "plot_transfer_curves"]

#: One colour per transfer strategy, the same in every plot of lesson 02.
STRATEGY_COLORS: dict[str, str] = {"scratch": "tab:gray", "frozen": "tab:blue",
                                   "finetune": "tab:orange"}


def plot_transfer_bars(summary: _TransferSequence[_TransferMapping[str, Any]], *,
                       group_key: str = "case", bar_key: str = "strategy",
                       ax: Axes | None = None, chance: _TransferMapping[str, float] | None = None,
                       ) -> Axes:
    """Grouped bars of mean accuracy with ±1 std error bars: one group per ``group_key``
    value (e.g. a case), one bar per ``bar_key`` value (e.g. a strategy).

    Args:
        summary: rows with ``group_key``, ``bar_key``, ``"mean"`` and ``"std"`` (as from
            ``lesson_utils.transfer.summarize``).
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
        variant = str(bar) not in STRATEGY_COLORS and base in STRATEGY_COLORS
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=str(bar),
               color=STRATEGY_COLORS.get(str(bar), STRATEGY_COLORS.get(base)),
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


def plot_transfer_curves(curves: _TransferMapping[str, tuple[Any, Any]], *,
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
        x = _to_numpy(epochs).astype(float)
        values = np.atleast_2d(_to_numpy(accuracies).astype(float))  # (seeds, T)
        if values.shape[1] != len(x):
            raise ValueError(f"{strategy}: {len(x)} epochs but accuracies of shape "
                             f"{values.shape}")
        mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else 0
        color = STRATEGY_COLORS.get(strategy)
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


# ---- losses (lesson 03: focal curves, class counts, per-class recall, calibration) ----
from collections.abc import Mapping as _LossMapping  # noqa: E402
from collections.abc import Sequence as _LossSequence  # noqa: E402

from lesson_utils.losses import calibration_bins as _calibration_bins  # noqa: E402
from lesson_utils.losses import expected_calibration_error as _expected_calibration_error  # noqa: E402
from lesson_utils.losses import focal_term as _focal_term  # noqa: E402

__all__ += ["plot_focal_curves", "plot_focal_downweighting", "plot_class_counts",
            "plot_per_class_recall", "plot_confidence_histogram", "plot_reliability_diagram"]

FOCAL_GID = "focal:"  # gid prefix of the lines plot_focal_curves draws: "focal:<gamma>"


def _focal_label(gamma: float) -> str:
    return "CE (γ=0)" if gamma == 0 else f"focal γ={gamma:g}"


def _p_t_grid(num_points: int, p_min: float) -> np.ndarray:
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"num_points must be an int >= 2, got {num_points!r}")
    if not 0.0 < p_min < 1.0:
        raise ValueError(f"p_min must be in (0, 1), got {p_min!r}")
    return np.linspace(p_min, 1.0, num_points)


def plot_focal_curves(gammas: _LossSequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0), *,
                      ax: Axes | None = None, highlight: float | None = None,
                      num_points: int = 200, p_min: float = 0.01) -> Axes:
    """Focal loss of one example against ``p_t`` for several ``gamma`` (Lin et al. 2017, fig. 1).

    ``gamma=0`` is cross-entropy. Each line has ``gid`` ``"focal:<gamma>"``; the ``highlight``
    gamma (if any) is drawn thick and black with ``gid`` ``"focal:highlight"``.

    Args:
        gammas: the focusing parameters to draw (each ``>= 0``).
        ax: axes to draw on (a new figure when ``None``).
        highlight: one more gamma, drawn on top.
        num_points: points on the ``p_t`` axis.
        p_min: the left end of the ``p_t`` axis (the loss is infinite at 0).

    Returns:
        The axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_focal_curves([0, 2], num_points=3, p_min=0.5)
        >>> [line.get_gid() for line in ax.lines]
        ['focal:0', 'focal:2']
        >>> ax.lines[1].get_ydata().round(4).tolist()  # (1 - p)**2 * -log(p) at 0.5, 0.75, 1
        [0.1733, 0.018, 0.0]
    """
    p_t = _p_t_grid(num_points, p_min)
    if not len(gammas) and highlight is None:
        raise ValueError("gammas is empty and there is no highlight: nothing to draw")
    ax = new_axes(ax)
    for gamma in gammas:
        loss = _focal_term(p_t, float(gamma)).numpy()
        ax.plot(p_t, loss, label=_focal_label(float(gamma)), gid=f"{FOCAL_GID}{gamma:g}",
                linewidth=1.5, alpha=0.9 if highlight is None else 0.45)
    if highlight is not None:
        loss = _focal_term(p_t, float(highlight)).numpy()
        ax.plot(p_t, loss, color="black", linewidth=3, gid=f"{FOCAL_GID}highlight",
                label=f"{_focal_label(float(highlight))} (slider)")
    ax.set_xlabel("p_t: probability of the true class")
    ax.set_ylabel("loss of one example")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 5)
    ax.set_title("focal loss: -(1 - p_t)^γ log(p_t)")
    ax.legend(fontsize="small")
    return ax


def plot_focal_downweighting(gammas: _LossSequence[float] = (0.5, 1.0, 2.0, 5.0), *,
                             ax: Axes | None = None, mark: float | None = 0.9,
                             num_points: int = 200, p_min: float = 0.01) -> Axes:
    """How many times smaller the focal loss is than cross-entropy: ``1 / (1 - p_t)**gamma``,
    on a log scale, with the value at ``p_t = mark`` marked for each gamma.

    Lines have ``gid`` ``"focal:<gamma>"``, the markers ``"mark:<gamma>"``.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_focal_downweighting([2.0], mark=0.9)
        >>> ax.lines[1].get_gid(), round(float(ax.lines[1].get_ydata()[0]), 6)
        ('mark:2', 100.0)
    """
    if not len(gammas):
        raise ValueError("gammas is empty: nothing to draw")
    if mark is not None and not 0.0 <= mark < 1.0:
        raise ValueError(f"mark must be in [0, 1) or None, got {mark!r}")
    p_t = _p_t_grid(num_points, p_min)[:-1]  # the ratio is infinite at p_t = 1
    ax = new_axes(ax)
    for gamma in gammas:
        (line,) = ax.plot(p_t, 1.0 / (1.0 - p_t) ** float(gamma), label=f"γ={gamma:g}",
                          gid=f"{FOCAL_GID}{gamma:g}")
        if mark is not None:
            ratio = 1.0 / (1.0 - mark) ** float(gamma)
            ax.plot([mark], [ratio], "o", color=line.get_color(), gid=f"mark:{gamma:g}")
            ax.annotate(f"{ratio:,.3g}x", (mark, ratio), textcoords="offset points",
                        xytext=(-8, 6), ha="right", fontsize="small", color=line.get_color())
    if mark is not None:
        ax.axvline(mark, color="gray", linestyle="dotted", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("p_t: probability of the true class")
    ax.set_ylabel("CE loss / focal loss")
    ax.set_title("how much focal loss turns down an example")
    ax.legend(fontsize="small", loc="upper left")
    return ax


def plot_class_counts(counts: _LossSequence[int], *, class_names: _LossSequence[str] | None = None,
                      ax: Axes | None = None, title: str | None = "training examples per class",
                      log: bool = False) -> Axes:
    """Bar chart of examples per class (a long-tailed dataset at a glance), counts on the bars.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_class_counts([500, 50, 10], class_names=["a", "b", "c"])
        >>> [round(p.get_height()) for p in ax.patches]
        [500, 50, 10]
    """
    values = _to_numpy(counts).astype(float)
    if values.ndim != 1 or values.size == 0 or (values < 0).any():
        raise ValueError(f"counts must be a non-empty 1-D sequence of counts >= 0, got {counts!r}")
    names = [str(i) for i in range(len(values))] if class_names is None else list(class_names)
    if len(names) != len(values):
        raise ValueError(f"class_names must have one name per count ({len(values)}), got {len(names)}")
    ax = new_axes(ax)
    bars = ax.bar(names, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize="small")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("examples")
    if title:
        ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30)
    return ax


def plot_per_class_recall(recalls: _LossMapping[str, Any], *,
                          class_names: _LossSequence[str] | None = None,
                          ax: Axes | None = None, title: str | None = "recall per class") -> Axes:
    """Grouped bars: one group per class, one bar per method, height = mean recall over seeds,
    error bar = standard deviation over seeds.

    Args:
        recalls: ``{method: array}`` of shape ``(seeds, K)`` (or ``(K,)`` for one run).
        class_names: the K class names (x axis).
        ax: axes to draw on.
        title: axes title.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_per_class_recall({"CE": [[1.0, 0.2], [0.8, 0.0]], "weighted": [0.7, 0.6]})
        >>> [round(float(p.get_height()), 2) for p in ax.patches]
        [0.9, 0.1, 0.7, 0.6]
    """
    if not recalls:
        raise ValueError("recalls is empty: nothing to draw")
    arrays = {m: np.atleast_2d(_to_numpy(r).astype(float)) for m, r in recalls.items()}
    num_classes = {a.shape[1] for a in arrays.values()}
    if len(num_classes) != 1:
        raise ValueError(f"every method needs recalls for the same number of classes, got "
                         f"{ {m: a.shape[1] for m, a in arrays.items()} }")
    k = num_classes.pop()
    names = [str(i) for i in range(k)] if class_names is None else list(class_names)
    if len(names) != k:
        raise ValueError(f"class_names must have {k} names, got {len(names)}")
    ax = new_axes(ax, figsize=(9.0, 4.0))
    x = np.arange(k)
    width = 0.8 / len(arrays)
    for i, (method, values) in enumerate(arrays.items()):
        std = values.std(axis=0, ddof=1) if len(values) > 1 else None
        ax.bar(x + (i - (len(arrays) - 1) / 2) * width, values.mean(axis=0), width, yerr=std,
               label=method, capsize=2, error_kw={"linewidth": 0.8})
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall (test, balanced)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="x-small", ncols=min(4, len(arrays)))
    return ax


def plot_confidence_histogram(confidences: _LossMapping[str, Any], *, bins: int = 20,
                              ax: Axes | None = None,
                              title: str | None = "confidence (max probability) on the test set"
                              ) -> Axes:
    """Overlaid step histograms of the model's confidence, one per label.

    Args:
        confidences: ``{label: values}``, each a 1-D array of max probabilities in [0, 1] (or
            an ``(N, K)`` array of probabilities, whose row maxima are taken).
        bins: equal-width bins on [0, 1].
        ax: axes to draw on.
        title: axes title.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_confidence_histogram({"a": [0.95, 0.99, 0.5]}, bins=2)
        >>> ax.get_legend().get_texts()[0].get_text()
        'a (mean 0.813)'
    """
    if not confidences:
        raise ValueError("confidences is empty: nothing to draw")
    ax = new_axes(ax)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for label, values in confidences.items():
        arr = _to_numpy(values).astype(float)
        if arr.ndim == 2:
            arr = arr.max(axis=1)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{label}: expected a non-empty 1-D array of confidences, got shape {arr.shape}")
        ax.hist(arr, bins=edges, histtype="step", linewidth=2, label=f"{label} (mean {arr.mean():.3f})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence: max probability")
    ax.set_ylabel("test examples")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left")
    return ax


def plot_reliability_diagram(probs: Any, target: Any, *, num_bins: int = 10,
                             ax: Axes | None = None, label: str = "model") -> Axes:
    """Reliability diagram: accuracy against mean confidence in equal-width confidence bins.

    A calibrated model lies on the diagonal; points below it are over-confident. Call it once
    per model on the same axes to compare; the legend shows each model's ECE
    (``lesson_utils.losses.expected_calibration_error`` with the same bins).

    Example:
        >>> import matplotlib, torch
        >>> matplotlib.use("Agg")
        >>> probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
        >>> ax = plot_reliability_diagram(probs, torch.tensor([0, 1, 1]), num_bins=2)
        >>> ax.lines[-1].get_label()
        'model (ECE 0.133)'
    """
    probs_t = torch.as_tensor(_to_numpy(probs), dtype=torch.float64)
    target_t = torch.as_tensor(_to_numpy(target)).long()
    conf, acc, count = _calibration_bins(probs_t, target_t, num_bins=num_bins)
    ece = _expected_calibration_error(probs_t, target_t, num_bins=num_bins)
    ax = new_axes(ax, figsize=(4.5, 4.5))
    if not any(line.get_gid() == "diagonal" for line in ax.lines):
        ax.plot([0, 1], [0, 1], color="gray", linestyle="dashed", linewidth=1, gid="diagonal",
                label="calibrated")
    filled = count.numpy() > 0
    ax.plot(conf.numpy()[filled], acc.numpy()[filled], marker="o", label=f"{label} (ECE {ece:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (mean max probability in the bin)")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title("reliability diagram")
    ax.legend(fontsize="small", loc="upper left")
    return ax


# ---- scaling out (lesson 09: wall time of 1 vs N processes) ----

__all__ += ["plot_scaling_times"]  # noqa: E402


def plot_scaling_times(labels: list[str], startup_s: list[float], train_s: list[float], *,
                       ax: Axes | None = None) -> Axes:
    """Horizontal stacked bars: start-up (launch, imports, data) and training time per run.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = plot_scaling_times(["1 process", "2 processes"], [3.0, 6.0], [4.0, 2.5])
        >>> [float(p.get_width()) for p in ax.patches]
        [3.0, 6.0, 4.0, 2.5]
    """
    if not (len(labels) == len(startup_s) == len(train_s)) or not labels:
        raise ValueError(f"labels, startup_s and train_s must be non-empty and of equal length, "
                         f"got {len(labels)}, {len(startup_s)}, {len(train_s)}")
    ax = new_axes(ax, figsize=(7.0, 1.4 + 0.6 * len(labels)))
    y = np.arange(len(labels))
    ax.barh(y, startup_s, color="#bbbbbb", label="start-up: launcher, imports, data")
    ax.barh(y, train_s, left=startup_s, color="#1f77b4", label="training (fit)")
    for yi, s, t in zip(y, startup_s, train_s, strict=True):
        ax.text(s + t, yi, f" {s + t:.1f} s", va="center", fontsize="small")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("wall time (s)")
    ax.set_xlim(0, max(s + t for s, t in zip(startup_s, train_s, strict=True)) * 1.2)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2,
              frameon=False)
    return ax
