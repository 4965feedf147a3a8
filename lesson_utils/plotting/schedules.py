"""Plots of lesson 04 (schedules): learning-rate traces and validation-loss curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from lesson_utils.plotting._axes import new_axes, to_numpy
from lesson_utils.schedules import SCHEDULE_NAMES

__all__ = ["schedule_color", "plot_lr_traces", "plot_val_loss_curve"]

_LR_GID = "lr:"  # gid prefix of the lines plot_lr_traces owns, so a redraw can find them


def schedule_color(name: str) -> str:
    """A fixed colour per schedule name, so a schedule keeps its colour in every plot.

    Example:
        >>> schedule_color("step"), schedule_color("cosine")
        ('tab:orange', 'tab:purple')
    """
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:olive", "tab:cyan", "tab:gray"]
    if name in SCHEDULE_NAMES:
        return palette[SCHEDULE_NAMES.index(name)]
    return palette[(len(SCHEDULE_NAMES) + sum(map(ord, str(name)))) % len(palette)]


def _check_trace(what: str, values: Any) -> np.ndarray:
    arr = to_numpy(values).astype(float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of numbers, got shape "
                         f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or inf")
    return arr


def plot_lr_traces(traces: Mapping[str, Sequence[float]], *,
                   num_epochs: int | None = None, log: bool = False,
                   labels: Mapping[str, str] | None = None, ax: Axes | None = None,
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
    if not isinstance(traces, Mapping):
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
    current = ax.get_legend()
    texts = [labels.get(name, name) for name in arrays]
    if arrays and legend:  # outside the axes, so no schedule hides behind it
        if (current is None or current.get_gid() != _LR_GID + "legend"
                or [t.get_text() for t in current.get_texts()] != texts):
            new = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
            new.set_gid(_LR_GID + "legend")  # its own: kept while the labels stay the same
    elif current is not None:
        current.remove()
    return ax


def plot_val_loss_curve(val_loss: Sequence[float], *,
                        plateau_lr: Sequence[float] | None = None,
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
