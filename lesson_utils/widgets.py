"""Interactive widgets for the lessons (ipywidgets over ``lesson_utils.plotting``).

Widgets hold no logic of their own: they read slider values, call a plotting or computing
function, and redraw. Outside a widget frontend (plain Python, a script, a test, a static render
on GitHub) each widget function draws the same comparison as a static matplotlib figure instead.
"""

from __future__ import annotations

import os
from typing import Any

__all__: list[str] = ["widgets_available", "widget_figure"]

STATIC_ENV = "LESSON_STATIC_WIDGETS"


def widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets installed (and ``LESSON_STATIC_WIDGETS``
    unset), i.e. where an interactive widget can render.

    Example:
        >>> widgets_available()  # in a plain Python process there is no widget frontend
        False
    """
    if os.environ.get(STATIC_ENV):
        return False
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def widget_figure(figsize: tuple[float, float], *, interactive: bool) -> Any:
    """A matplotlib figure for a widget: a pyplot figure when the output is a static image, or
    one that pyplot does not track when a widget redraws it (so the inline backend does not show
    it a second time).

    Example:
        >>> widget_figure((4.0, 3.0), interactive=True).get_size_inches().tolist()
        [4.0, 3.0]
    """
    if not interactive:  # a pyplot figure, which the notebook shows as a static image
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)
    return figure


# Topic sections follow; each lesson appends its widget functions below and extends __all__.


# ---- schedules (lesson 04: the scheduler playground) ----
import html as _html  # noqa: E402
import io as _io  # noqa: E402
import time as _time  # noqa: E402
from collections.abc import Sequence as _Sequence  # noqa: E402
from dataclasses import replace as _replace  # noqa: E402

from matplotlib.ticker import MaxNLocator  # noqa: E402

from lesson_utils.plotting import plot_lr_traces, plot_val_loss_curve  # noqa: E402
from lesson_utils.schedules import (  # noqa: E402
    SCHEDULE_NAMES,
    ScheduleSettings,
    compare_schedules,
    synthetic_val_loss,
)

__all__ += ["PLAYGROUND_SCHEDULES", "SchedulerPlayground", "scheduler_playground"]

PLAYGROUND_SCHEDULES: tuple[str, ...] = (
    "constant", "step", "cosine", "cosine_warm_restarts", "onecycle", "plateau")

# slider name -> ScheduleSettings field; every slider feeds exactly one setting.
_SETTING_CONTROLS = ("num_epochs", "base_lr", "step_size", "gamma", "T_max", "eta_min", "T_0",
                     "warmup_epochs", "patience", "factor")


class SchedulerPlayground:
    """Several LR schedules side by side, redrawn in place when a control changes.

    All numbers come from ``lesson_utils.schedules.compare_schedules`` (real torch schedulers)
    and all drawing from ``lesson_utils.plotting``; this class only wires controls to them.
    The figure is one matplotlib figure with two axes (LR per epoch; the synthetic validation
    loss that ``plateau`` reacts to). A redraw moves the existing lines' data
    (``Line2D.set_data``) and, in interactive mode, renders the figure to PNG into one
    ``ipywidgets.Image``, which works in every Jupyter frontend without a matplotlib widget
    backend.

    Attributes:
        figure, lr_ax, loss_ax: the matplotlib figure and its two axes.
        controls: ``{name: widget}`` (``schedules``, ``log_y`` and one per
            ``ScheduleSettings`` field), empty in static mode.
        image: the ``ipywidgets.Image`` showing the figure (``None`` in static mode).
        status: an ``ipywidgets.HTML`` line: what was drawn, how long it took, or an error.
        ui: the root widget to display (``None`` in static mode).
        traces, val_loss: the data of the last redraw.
        last_update_s: seconds the last redraw took (compute + plot + PNG).

    Example:
        >>> pg = SchedulerPlayground(["step", "cosine"], ScheduleSettings(num_epochs=50))
        >>> before = pg.lr_ax.lines[0].get_ydata().copy()
        >>> pg.controls["gamma"].value = 0.5
        >>> bool((pg.lr_ax.lines[0].get_ydata() != before).any())
        True
    """

    def __init__(self, schedules: _Sequence[str] = PLAYGROUND_SCHEDULES,
                 settings: ScheduleSettings | None = None, *, interactive: bool = True,
                 log_y: bool = False) -> None:
        if isinstance(schedules, str):
            raise TypeError(f"schedules must be a sequence of names from {list(SCHEDULE_NAMES)}, "
                            f"got the str {schedules!r}")
        schedules = tuple(schedules)
        unknown = [s for s in schedules if s not in SCHEDULE_NAMES]
        if unknown:
            raise ValueError(f"unknown schedule name(s) {unknown}; valid names are "
                             f"{list(SCHEDULE_NAMES)}")
        settings = ScheduleSettings() if settings is None else settings
        if not isinstance(settings, ScheduleSettings):
            raise TypeError(f"settings must be a ScheduleSettings, got "
                            f"{type(settings).__name__}")
        if settings.T_max is None:  # the slider needs a number: the rest of the run
            settings = _replace(settings,
                                T_max=max(settings.num_epochs - settings.warmup_epochs, 1))
        self.settings = settings
        self.schedules = schedules
        self.log_y = bool(log_y)
        self.figure = self._new_figure(interactive)
        self.lr_ax, self.loss_ax = self.figure.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
        # fixed margins: a layout engine would measure every text on each redraw (slow)
        self.figure.subplots_adjust(left=0.08, right=0.73, top=0.94, bottom=0.09, hspace=0.1)
        self.loss_ax.yaxis.set_major_locator(MaxNLocator(4))
        self.controls: dict[str, Any] = {}
        self.image: Any = None
        self.status: Any = None
        self.ui: Any = None
        self.traces: dict[str, list[float]] = {}
        self.val_loss: list[float] = []
        self.last_update_s = 0.0
        if interactive:
            self._build_widgets()
        self.redraw()

    @staticmethod
    def _new_figure(interactive: bool) -> Any:
        return widget_figure((9.5, 5.6), interactive=interactive)

    def _build_widgets(self) -> None:
        import ipywidgets as W

        s = self.settings
        style = {"description_width": "110px"}
        layout = W.Layout(width="330px")

        def slider(cls: Any, description: str, value: Any, **kw: Any) -> Any:
            return cls(value=value, description=description, continuous_update=False,
                       style=style, layout=layout, **kw)

        self.controls = {
            "schedules": W.SelectMultiple(options=list(SCHEDULE_NAMES), value=self.schedules,
                                          rows=len(SCHEDULE_NAMES), description="schedules",
                                          style=style, layout=layout),
            "num_epochs": slider(W.IntSlider, "epochs", s.num_epochs, min=10, max=200),
            "base_lr": slider(W.FloatLogSlider, "base LR", s.base_lr, base=10, min=-4, max=0,
                              step=0.1, readout_format=".1e"),
            "step_size": slider(W.IntSlider, "step size", s.step_size, min=1, max=100),
            "gamma": slider(W.FloatSlider, "gamma", s.gamma, min=0.05, max=0.95, step=0.05),
            "T_max": slider(W.IntSlider, "T_max (cosine)", s.T_max, min=1, max=200),
            "eta_min": slider(W.FloatSlider, "eta_min", s.eta_min, min=0.0, max=0.05,
                              step=0.001, readout_format=".3f"),
            "T_0": slider(W.IntSlider, "T_0 (restarts)", s.T_0, min=1, max=100),
            "warmup_epochs": slider(W.IntSlider, "warmup epochs", s.warmup_epochs, min=0,
                                    max=50),
            "patience": slider(W.IntSlider, "plateau patience", s.patience, min=0, max=30),
            "factor": slider(W.FloatSlider, "plateau factor", s.factor, min=0.05, max=0.95,
                             step=0.05),
            "log_y": W.Checkbox(value=self.log_y, description="log y axis", style=style,
                                layout=layout),
        }
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.image = W.Image(format="png", layout=W.Layout(width="760px"))
        self.status = W.HTML()
        self.ui = W.HBox([W.VBox(list(self.controls.values())),
                          W.VBox([self.image, self.status])])
        self.ui.add_class("lesson-scheduler-playground")

    def read_controls(self) -> tuple[tuple[str, ...], ScheduleSettings, bool]:
        """The selected schedules, the settings and the log-axis choice the controls show."""
        if not self.controls:
            return self.schedules, self.settings, self.log_y
        values = {name: self.controls[name].value for name in _SETTING_CONTROLS}
        settings = _replace(self.settings, **values)
        return tuple(self.controls["schedules"].value), settings, bool(
            self.controls["log_y"].value)

    def _on_change(self, change: dict[str, Any]) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Recompute every trace from the controls and update the figure (and image)."""
        start = _time.perf_counter()
        try:
            names, settings, log_y = self.read_controls()
            val_loss = synthetic_val_loss(settings.num_epochs)
            traces = compare_schedules(names, settings, val_loss=val_loss)
        except (ValueError, TypeError) as exc:  # e.g. a slider combination torch refuses
            self._set_status(f"<b style='color:#b00020'>not drawn:</b> "
                             f"{_html.escape(str(exc))}")
            return
        self.schedules, self.settings, self.log_y = names, settings, log_y
        self.traces, self.val_loss = traces, val_loss
        plot_lr_traces(traces, num_epochs=settings.num_epochs, log=log_y, ax=self.lr_ax)
        self.lr_ax.set_xlabel("")  # the shared x axis is labelled underneath
        plot_val_loss_curve(val_loss, plateau_lr=traces.get("plateau"), ax=self.loss_ax)
        if self.image is not None:
            buffer = _io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=80, pil_kwargs={"compress_level": 1})
            self.image.value = buffer.getvalue()
        self.last_update_s = _time.perf_counter() - start
        skipped = [n for n in ("plateau", "onecycle") if n in names and settings.warmup_epochs]
        note = (f"; no warmup for {' and '.join(skipped)} (see build_scheduler)"
                if skipped else "")
        self._set_status(f"{len(names)} schedules x {settings.num_epochs} epochs, redrawn in "
                         f"{1000 * self.last_update_s:.0f} ms{note}")

    def _set_status(self, text: str) -> None:
        if self.status is not None:
            self.status.value = text


def scheduler_playground(schedules: _Sequence[str] = PLAYGROUND_SCHEDULES,
                         settings: ScheduleSettings | None = None, *,
                         interactive: bool | None = None,
                         log_y: bool = False) -> SchedulerPlayground:
    """Compare LR schedules side by side: sliders in Jupyter, a static figure elsewhere.

    Pick schedules, then move the sliders (epochs, base LR, step size, gamma, T_max, eta_min,
    T_0, warmup epochs, plateau patience and factor): the plot redraws in place. ``plateau``
    runs against ``synthetic_val_loss``, shown underneath with its cuts marked.

    Args:
        schedules: names from ``lesson_utils.schedules.SCHEDULE_NAMES`` to start with.
        settings: starting values of the sliders (``ScheduleSettings()`` by default).
        interactive: ``None`` picks widgets when a widget frontend is there
            (``widgets_available()``), else a static matplotlib figure.
        log_y: start with a logarithmic LR axis.

    Returns:
        The ``SchedulerPlayground``; its ``ui`` has been displayed in interactive mode.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> pg = scheduler_playground(["step", "plateau"])  # no frontend here: static figure
        >>> pg.ui is None, [line.get_gid() for line in pg.lr_ax.lines]
        (True, ['lr:step', 'lr:plateau'])
    """
    if interactive is None:
        interactive = widgets_available()
    playground = SchedulerPlayground(schedules, settings, interactive=interactive, log_y=log_y)
    if interactive:
        _display(playground.ui)
    return playground


# ---- metrics (lesson 05: the decision-threshold explorer) ----
import io as _metrics_io  # noqa: E402
from collections.abc import Sequence as _MetricsSequence  # noqa: E402

from lesson_utils.metrics import metrics_at_threshold as _metrics_at_threshold  # noqa: E402
from lesson_utils.metrics import roc_curve as _roc_curve  # noqa: E402
from lesson_utils.plotting import (  # noqa: E402
    plot_confusion_matrix,
    plot_operating_point,
    plot_pr_curve,
    plot_roc_curve,
)

__all__ += ["ThresholdExplorer", "threshold_widget"]


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
                 class_names: _MetricsSequence[str] = ("negative", "positive"),
                 label: str = "model") -> None:
        if len(class_names) != 2:
            raise ValueError(f"class_names must name the 2 classes (negative, positive), got "
                             f"{list(class_names)}")
        # curves and metrics validate the inputs (0/1 labels, finite 1-D scores, equal length)
        _, _, thresholds = _roc_curve(y_true, y_score)  # +inf, then the distinct scores
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
        m = _metrics_at_threshold(self.y_true, self.y_score, float(threshold))
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
            buffer = _metrics_io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=72, pil_kwargs={"compress_level": 1})
            self.image.value = buffer.getvalue()
        return m

    def summary(self) -> str:
        """The current threshold's numbers as one line of text."""
        m = self.current
        return (f"threshold {m['threshold']:.2f}: precision {m['precision']:.3f}, recall "
                f"{m['recall']:.3f}, F1 {m['f1']:.3f}, accuracy {m['accuracy']:.3f} | "
                f"TP {m['tp']}, FP {m['fp']}, FN {m['fn']}, TN {m['tn']}")

    def table(self, thresholds: _MetricsSequence[float]) -> str:
        """Precision, recall, F1, accuracy and counts at several thresholds, as a text table."""
        lines = [f"{'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6} {'accuracy':>8} "
                 f"{'TP':>5} {'FP':>5} {'FN':>5} {'TN':>5}"]
        for t in thresholds:
            m = _metrics_at_threshold(self.y_true, self.y_score, float(t))
            lines.append(f"{m['threshold']:>9.2f} {m['precision']:>9.3f} {m['recall']:>7.3f} "
                         f"{m['f1']:>6.3f} {m['accuracy']:>8.3f} {m['tp']:>5d} {m['fp']:>5d} "
                         f"{m['fn']:>5d} {m['tn']:>5d}")
        return "\n".join(lines)


def threshold_widget(y_true: Any, y_score: Any, *, threshold: float = 0.5,
                     interactive: bool | None = None,
                     class_names: _MetricsSequence[str] = ("negative", "positive"),
                     label: str = "model",
                     static_thresholds: _MetricsSequence[float] | None = None,
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
        _display(explorer.ui)
    else:
        if static_thresholds is None:
            lo, hi = explorer.score_range
            static_thresholds = [lo + (hi - lo) * f for f in (0.1, 0.3, 0.5, 0.7, 0.9)]
        print(explorer.summary())
        print(explorer.table(static_thresholds))
    return explorer


# ---- losses (lesson 03: the focal-loss gamma slider) ----
import io as _losses_io  # noqa: E402
import math as _losses_math  # noqa: E402
from collections.abc import Sequence as _LossesSequence  # noqa: E402

from lesson_utils.plotting import plot_focal_curves, plot_focal_downweighting  # noqa: E402

__all__ += ["FocalGammaExplorer", "focal_gamma_widget"]

FOCAL_MAX_GAMMA = 10.0
FOCAL_PROBE_POINTS: tuple[float, ...] = (0.1, 0.5, 0.9, 0.968)  # p_t values the numbers report


def _check_focal_gamma(name: str, gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise TypeError(f"{name} must be a number in [0, {FOCAL_MAX_GAMMA:g}], got {type(gamma).__name__}")
    if not 0.0 <= gamma <= FOCAL_MAX_GAMMA:  # also rejects nan
        raise ValueError(f"{name} must be in [0, {FOCAL_MAX_GAMMA:g}], got {gamma!r}")
    return float(gamma)


class FocalGammaExplorer:
    """Move the focal-loss ``gamma`` and watch the loss curve and the down-weighting change.

    Left axes: ``-(1 - p_t)**gamma * log(p_t)`` against ``p_t`` for fixed reference gammas
    (thin) and the slider's gamma (thick, ``gid="focal:highlight"``), from
    ``lesson_utils.plotting.plot_focal_curves``. Right axes: how many times smaller than
    cross-entropy the loss is, ``1 / (1 - p_t)**gamma``, with ``p_t = 0.9`` marked
    (``plot_focal_downweighting``). The numbers come from ``lesson_utils.losses.focal_term``.
    In interactive mode the figure is rendered to PNG into an ``ipywidgets.Image``, which
    works in every Jupyter frontend without a matplotlib widget backend.

    Attributes:
        figure, curve_ax, ratio_ax: the matplotlib figure and its two axes.
        gamma: the current gamma; current: ``{p_t: CE / focal}`` at ``FOCAL_PROBE_POINTS``.
        slider, numbers, image, ui: the widgets (``None`` in static mode).

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ex = FocalGammaExplorer(gamma=2.0)
        >>> round(ex.current[0.9], 6)
        100.0
        >>> ex.slider.value = 1.0  # what moving the slider does
        >>> ex.gamma, round(ex.current[0.9], 6)
        (1.0, 10.0)
    """

    def __init__(self, gamma: float = 2.0, *,
                 reference_gammas: _LossesSequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0),
                 interactive: bool = True) -> None:
        gamma = _check_focal_gamma("gamma", gamma)
        if isinstance(reference_gammas, (str, bytes)) or not isinstance(reference_gammas, _LossesSequence):
            raise TypeError(f"reference_gammas must be a sequence of numbers, got {reference_gammas!r}")
        self.reference_gammas = tuple(_check_focal_gamma("reference_gammas[i]", g) for g in reference_gammas)
        self.figure = self._new_figure(interactive)
        self.curve_ax, self.ratio_ax = self.figure.subplots(1, 2)
        self.figure.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.13, wspace=0.25)
        self.gamma = gamma
        self.current: dict[float, float] = {}
        self.slider: Any = None
        self.numbers: Any = None
        self.image: Any = None
        self.ui: Any = None
        if interactive:
            self._build_widgets(gamma)
        self.set_gamma(gamma)

    @staticmethod
    def _new_figure(interactive: bool) -> Any:
        return widget_figure((11.0, 4.0), interactive=interactive)

    def _build_widgets(self, gamma: float) -> None:
        import ipywidgets as W

        self.slider = W.FloatSlider(value=gamma, min=0.0, max=FOCAL_MAX_GAMMA, step=0.25,
                                    description="gamma γ", continuous_update=True,
                                    readout_format=".2f", layout=W.Layout(width="420px"))
        self.slider.observe(lambda change: self.set_gamma(change["new"]), names="value")
        self.numbers = W.HTML()
        self.image = W.Image(format="png", layout=W.Layout(width="880px"))
        self.ui = W.VBox([W.HBox([self.slider, self.numbers]), self.image])
        self.ui.add_class("lesson-focal-gamma")

    @staticmethod
    def ratios(gamma: float) -> dict[float, float]:
        """``{p_t: CE loss / focal loss}`` at ``FOCAL_PROBE_POINTS`` for ``gamma``."""
        from lesson_utils.losses import focal_term

        return {p: float(focal_term(p, 0.0) / focal_term(p, gamma)) for p in FOCAL_PROBE_POINTS}

    def set_gamma(self, gamma: float) -> dict[float, float]:
        """Redraw both axes for ``gamma``; returns the new ``current`` ratios."""
        gamma = _check_focal_gamma("gamma", gamma)
        self.gamma = gamma
        self.current = self.ratios(gamma)
        self.curve_ax.clear()
        plot_focal_curves(self.reference_gammas, ax=self.curve_ax, highlight=gamma)
        self.ratio_ax.clear()
        plot_focal_downweighting([gamma], ax=self.ratio_ax, mark=0.9)
        self.ratio_ax.set_ylim(0.8, max(1e3, self.current[0.968] * 2))
        if self.numbers is not None:
            self.numbers.value = "<br>".join(
                f"p<sub>t</sub> = {p:g}: loss <b>{r:,.3g}x</b> smaller than CE"
                for p, r in self.current.items())
        if self.image is not None:
            buffer = _losses_io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=72, pil_kwargs={"compress_level": 1})
            self.image.value = buffer.getvalue()
        return self.current

    def summary(self) -> str:
        """The current gamma's ratios as one line of text."""
        return f"γ={self.gamma:g}: CE/focal " + ", ".join(
            f"{r:,.4g}x at p_t={p:g}" for p, r in self.current.items())

    @classmethod
    def table(cls, gammas: _LossesSequence[float]) -> str:
        """CE loss / focal loss at ``FOCAL_PROBE_POINTS`` for several gammas, as a text table."""
        header = f"{'gamma':>6}" + "".join(f"{'p_t=' + format(p, 'g'):>12}" for p in FOCAL_PROBE_POINTS)
        lines = [header]
        for g in gammas:
            r = cls.ratios(_check_focal_gamma("gammas[i]", g))
            lines.append(f"{g:>6g}" + "".join(
                f"{r[p]:>11,.4g}x" if _losses_math.isfinite(r[p]) else f"{'inf':>12}"
                for p in FOCAL_PROBE_POINTS))
        return "\n".join(lines)


def focal_gamma_widget(gamma: float = 2.0, *,
                       reference_gammas: _LossesSequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0),
                       interactive: bool | None = None) -> FocalGammaExplorer:
    """A focal-loss gamma slider over the loss curve; a static figure and table elsewhere.

    Args:
        gamma: where the slider starts, in ``[0, 10]``.
        reference_gammas: thin curves drawn for comparison.
        interactive: ``None`` picks widgets when a widget frontend is there
            (``widgets_available()``), else a static matplotlib figure plus a table of
            ``CE / focal`` for ``reference_gammas`` (what the slider would show).

    Returns:
        The ``FocalGammaExplorer``; its ``ui`` has been displayed in interactive mode.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ex = focal_gamma_widget(2.0, reference_gammas=[0, 2])
         gamma     p_t=0.1     p_t=0.5     p_t=0.9   p_t=0.968
             0          1x          1x          1x          1x
             2      1.235x          4x        100x      976.6x
        >>> ex.ui is None  # no widget frontend in a doctest
        True
    """
    if interactive is None:
        interactive = widgets_available()
    explorer = FocalGammaExplorer(gamma, reference_gammas=reference_gammas,
                                  interactive=interactive)
    if interactive:
        _display(explorer.ui)
    else:
        print(explorer.table(explorer.reference_gammas))
    return explorer
