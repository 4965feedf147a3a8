"""Lesson 05's widget: a decision-threshold slider over ROC, PR and the confusion matrix."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from lesson_utils.metrics import metrics_at_threshold, roc_curve
from lesson_utils.plotting import (
    plot_confusion_matrix,
    plot_operating_point,
    plot_pr_curve,
    plot_roc_curve,
)
from lesson_utils.widgets._figure import display, widget_figure, widgets_available

__all__ = ["ThresholdExplorer", "threshold_widget"]


class ThresholdExplorer:
    """Move a decision threshold and watch precision, recall, F1 and the confusion matrix change.

    A sample is predicted positive when ``score >= threshold``. Every number comes from
    ``lesson_utils.metrics.metrics_at_threshold`` and every drawing from
    ``lesson_utils.plotting``; this class only wires a slider to them. The figure has three
    axes: the ROC curve and the precision-recall curve, each with the current threshold's
    operating point, and the confusion matrix at that threshold. In interactive mode the figure
    is rendered to PNG into an ``ipywidgets.Image`` (works in every Jupyter frontend, no
    matplotlib widget backend needed) and the numbers are shown in an ``ipywidgets.HTML``.

    Attributes:
        figure, roc_ax, pr_ax, cm_ax: the matplotlib figure and its three axes.
        current: the ``metrics_at_threshold`` dict of the current threshold.
        slider, numbers, image, ui: the widgets (``None`` in static mode).

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ex = ThresholdExplorer([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.5)
        >>> ex.current["recall"]
        0.5
        >>> ex.slider.value = 0.3  # what moving the slider does
        >>> ex.current["recall"], ex.summary()
        (1.0, 'threshold 0.30: precision 0.667, recall 1.000, F1 0.800, accuracy 0.750 | TP 2, FP 1, FN 0, TN 1')
    """

    def __init__(self, y_true: Any, y_score: Any, *, threshold: float = 0.5,
                 interactive: bool = True,
                 class_names: Sequence[str] = ("negative", "positive"),
                 label: str = "model") -> None:
        if len(class_names) != 2:
            raise ValueError(f"class_names must name the 2 classes (negative, positive), got "
                             f"{list(class_names)}")
        # curves and metrics validate the inputs (0/1 labels, finite 1-D scores, equal length)
        _, _, thresholds = roc_curve(y_true, y_score)  # +inf, then the distinct scores
        self.y_true, self.y_score = y_true, y_score
        self.class_names = [str(c) for c in class_names]
        lo, hi = float(thresholds[-1]), float(thresholds[1])
        # probabilities get the whole [0, 1]; other scores their own range
        self.score_range = (0.0, 1.0) if 0.0 <= lo and hi <= 1.0 else (lo, hi)
        self.figure = self._new_figure(interactive)
        self.roc_ax, self.pr_ax, self.cm_ax = self.figure.subplots(1, 3)
        self.figure.subplots_adjust(left=0.06, right=0.98, top=0.9, bottom=0.14, wspace=0.35)
        plot_roc_curve(y_true, y_score, ax=self.roc_ax, label=label)
        plot_pr_curve(y_true, y_score, ax=self.pr_ax, label=label)
        self.current: dict[str, Any] = {}
        self.slider: Any = None
        self.numbers: Any = None
        self.image: Any = None
        self.ui: Any = None
        if interactive:
            self._build_widgets(threshold)
        self.set_threshold(threshold)

    @staticmethod
    def _new_figure(interactive: bool) -> Any:
        return widget_figure((13.0, 4.2), interactive=interactive)

    def _build_widgets(self, threshold: float) -> None:
        import ipywidgets as W

        lo, hi = self.score_range
        self.slider = W.FloatSlider(value=threshold, min=lo, max=hi, step=(hi - lo) / 100 or 0.01,
                                    description="threshold", continuous_update=True,
                                    readout_format=".2f", layout=W.Layout(width="420px"))
        self.slider.observe(lambda change: self.set_threshold(change["new"]), names="value")
        self.numbers = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(width="980px"))
        self.ui = W.VBox([W.HBox([self.slider, self.numbers]), self.image])
        self.ui.add_class("lesson-threshold-explorer")

    def set_threshold(self, threshold: float) -> dict[str, Any]:
        """Recompute the metrics at ``threshold`` and redraw; returns the new ``current``."""
        m = metrics_at_threshold(self.y_true, self.y_score, float(threshold))
        self.current = m
        n_neg, n_pos = m["tn"] + m["fp"], m["tp"] + m["fn"]
        fpr = m["fp"] / n_neg if n_neg else float("nan")
        # nothing predicted positive: the PR curve's closing point (recall 0, precision 1)
        shown_precision = m["precision"] if m["tp"] + m["fp"] else 1.0
        point = f"threshold {m['threshold']:.2f}"
        plot_operating_point(self.roc_ax, fpr, m["recall"] if n_pos else float("nan"),
                             label=point, legend_loc="lower right")
        plot_operating_point(self.pr_ax, m["recall"], shown_precision, label=point,
                             legend_loc="lower left")
        plot_confusion_matrix(m["confusion"], class_names=self.class_names, ax=self.cm_ax,
                              title=f"confusion matrix at threshold {m['threshold']:.2f}")
        if self.numbers is not None:
            self.numbers.value = (
                f"<b>precision</b> {m['precision']:.3f} &nbsp; <b>recall</b> {m['recall']:.3f}"
                f" &nbsp; <b>F1</b> {m['f1']:.3f} &nbsp; accuracy {m['accuracy']:.3f}<br>"
                f"TP {m['tp']}, FP {m['fp']}, FN {m['fn']}, TN {m['tn']}")
        if self.image is not None:
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=72, pil_kwargs={"compress_level": 1})
            self.image.value = buffer.getvalue()
        return m

    def summary(self) -> str:
        """The current threshold's numbers as one line of text."""
        m = self.current
        return (f"threshold {m['threshold']:.2f}: precision {m['precision']:.3f}, recall "
                f"{m['recall']:.3f}, F1 {m['f1']:.3f}, accuracy {m['accuracy']:.3f} | "
                f"TP {m['tp']}, FP {m['fp']}, FN {m['fn']}, TN {m['tn']}")

    def table(self, thresholds: Sequence[float]) -> str:
        """Precision, recall, F1, accuracy and counts at several thresholds, as a text table."""
        lines = [f"{'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6} {'accuracy':>8} "
                 f"{'TP':>5} {'FP':>5} {'FN':>5} {'TN':>5}"]
        for t in thresholds:
            m = metrics_at_threshold(self.y_true, self.y_score, float(t))
            lines.append(f"{m['threshold']:>9.2f} {m['precision']:>9.3f} {m['recall']:>7.3f} "
                         f"{m['f1']:>6.3f} {m['accuracy']:>8.3f} {m['tp']:>5d} {m['fp']:>5d} "
                         f"{m['fn']:>5d} {m['tn']:>5d}")
        return "\n".join(lines)


def threshold_widget(y_true: Any, y_score: Any, *, threshold: float = 0.5,
                     interactive: bool | None = None,
                     class_names: Sequence[str] = ("negative", "positive"),
                     label: str = "model",
                     static_thresholds: Sequence[float] | None = None,
                     ) -> ThresholdExplorer:
    """A decision-threshold slider over ROC, PR and confusion matrix; static figure elsewhere.

    Args:
        y_true: 0/1 labels, shape ``(N,)``.
        y_score: scores or probabilities of the positive class, shape ``(N,)``.
        threshold: where the slider starts.
        interactive: ``None`` picks widgets when a widget frontend is there
            (``widgets_available()``), else a static matplotlib figure.
        class_names: names of class 0 and class 1 on the confusion matrix.
        label: legend name of the curves.
        static_thresholds: in static mode, also print a table of the metrics at these
            thresholds (what the slider would show); default five thresholds across the range.

    Returns:
        The ``ThresholdExplorer``; its ``ui`` has been displayed in interactive mode.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ex = threshold_widget([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], static_thresholds=[0.3, 0.5])
        threshold 0.50: precision 1.000, recall 0.500, F1 0.667, accuracy 0.750 | TP 1, FP 0, FN 1, TN 2
        threshold precision  recall     F1 accuracy    TP    FP    FN    TN
             0.30     0.667   1.000  0.800    0.750     2     1     0     1
             0.50     1.000   0.500  0.667    0.750     1     0     1     2
        >>> ex.ui is None  # no widget frontend in a doctest
        True
    """
    if interactive is None:
        interactive = widgets_available()
    explorer = ThresholdExplorer(y_true, y_score, threshold=threshold, interactive=interactive,
                                 class_names=class_names, label=label)
    if interactive:
        display(explorer.ui)
    else:
        if static_thresholds is None:
            lo, hi = explorer.score_range
            static_thresholds = [lo + (hi - lo) * f for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
        print(explorer.summary())
        print(explorer.table(static_thresholds))
    return explorer
