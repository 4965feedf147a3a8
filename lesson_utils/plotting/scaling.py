"""Plots of lesson 09 (scaling out): wall time of one process vs several."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from lesson_utils.plotting._axes import new_axes

__all__ = ["plot_scaling_times"]


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
