"""Plots of lesson 03 (losses): focal-loss curves, class counts, per-class recall, calibration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes

from lesson_utils.losses import focal_term
from lesson_utils.metrics import calibration_bins, expected_calibration_error
from lesson_utils.plotting._axes import new_axes, to_numpy

__all__ = ["plot_focal_curves", "plot_focal_downweighting", "plot_class_counts",
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


def plot_focal_curves(gammas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0), *,
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
        loss = focal_term(p_t, float(gamma)).numpy()
        ax.plot(p_t, loss, label=_focal_label(float(gamma)), gid=f"{FOCAL_GID}{gamma:g}",
                linewidth=1.5, alpha=0.9 if highlight is None else 0.45)
    if highlight is not None:
        loss = focal_term(p_t, float(highlight)).numpy()
        ax.plot(p_t, loss, color="black", linewidth=3, gid=f"{FOCAL_GID}highlight",
                label=f"{_focal_label(float(highlight))} (slider)")
    ax.set_xlabel("p_t: probability of the true class")
    ax.set_ylabel("loss of one example")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 5)
    ax.set_title("focal loss: -(1 - p_t)^γ log(p_t)")
    ax.legend(fontsize="small")
    return ax


def plot_focal_downweighting(gammas: Sequence[float] = (0.5, 1.0, 2.0, 5.0), *,
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


def plot_class_counts(counts: Sequence[int], *, class_names: Sequence[str] | None = None,
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
    values = to_numpy(counts).astype(float)
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


def plot_per_class_recall(recalls: Mapping[str, Any], *,
                          class_names: Sequence[str] | None = None,
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
    arrays = {m: np.atleast_2d(to_numpy(r).astype(float)) for m, r in recalls.items()}
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


def plot_confidence_histogram(confidences: Mapping[str, Any], *, bins: int = 20,
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
        arr = to_numpy(values).astype(float)
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
    (``lesson_utils.metrics.expected_calibration_error`` with the same bins).

    Example:
        >>> import matplotlib, torch
        >>> matplotlib.use("Agg")
        >>> probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
        >>> ax = plot_reliability_diagram(probs, torch.tensor([0, 1, 1]), num_bins=2)
        >>> ax.lines[-1].get_label()
        'model (ECE 0.133)'
    """
    probs_t = torch.as_tensor(to_numpy(probs), dtype=torch.float64)
    target_t = torch.as_tensor(to_numpy(target)).long()
    conf, acc, count = calibration_bins(probs_t, target_t, num_bins=num_bins)
    ece = expected_calibration_error(probs_t, target_t, num_bins=num_bins)
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
