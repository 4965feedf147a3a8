"""Lesson 04's widget: the scheduler playground, several LR schedules side by side."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from matplotlib.ticker import MaxNLocator

from lesson_utils.plotting import plot_lr_traces, plot_val_loss_curve
from lesson_utils.schedules import (
    SCHEDULE_NAMES,
    ScheduleSettings,
    compare_schedules,
    synthetic_val_loss,
)
from lesson_utils.widgets._figure import BlitPNG, display, widget_figure, widgets_available

__all__ = ["PLAYGROUND_SCHEDULES", "SchedulerPlayground", "scheduler_playground"]

PLAYGROUND_SCHEDULES: tuple[str, ...] = (
    "constant", "step", "cosine", "cosine_warm_restarts", "onecycle", "plateau")

# slider name -> ScheduleSettings field; every slider feeds exactly one setting.
_SETTING_CONTROLS = ("num_epochs", "base_lr", "step_size", "gamma", "T_max", "eta_min", "T_0",
                     "warmup_epochs", "patience", "factor")
# The sliders in two columns under the plot: the run and StepLR; cosine and plateau.
_COLUMNS = (("num_epochs", "base_lr", "warmup_epochs", "step_size", "gamma"),
            ("T_max", "eta_min", "T_0", "patience", "factor"))
FIGSIZE = (8.4, 4.9)  # inches; at DPI a 756 x 441 px plot that fits a 1280 px wide JupyterLab
DPI = 90


class SchedulerPlayground:
    """Several LR schedules side by side, redrawn in place when a control changes.

    All numbers come from ``lesson_utils.schedules.compare_schedules`` (real torch schedulers)
    and all drawing from ``lesson_utils.plotting``; this class only wires controls to them.
    The figure is one matplotlib figure with two axes (LR per epoch; the synthetic validation
    loss that ``plateau`` reacts to). A redraw moves the existing lines' data
    (``Line2D.set_data``) and, in interactive mode, renders the figure to PNG into one
    ``ipywidgets.Image``, which works in every Jupyter frontend without a matplotlib widget
    backend. When the axes keep their limits (most sliders), only the lines are drawn again
    on the cached rest of the figure (``BlitPNG``). The plot sits on top, its caption under it,
    and the controls under that in columns that wrap on a narrow screen.

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

    def __init__(self, schedules: Sequence[str] = PLAYGROUND_SCHEDULES,
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
            settings = replace(settings,
                                T_max=max(settings.num_epochs - settings.warmup_epochs, 1))
        self.settings = settings
        self.schedules = schedules
        self.log_y = bool(log_y)
        self.figure = self._new_figure(interactive)
        self.lr_ax, self.loss_ax = self.figure.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
        # fixed margins: a layout engine would measure every text on each redraw (slow)
        self.figure.subplots_adjust(left=0.09, right=0.74, top=0.93, bottom=0.1, hspace=0.1)
        self.loss_ax.yaxis.set_major_locator(MaxNLocator(4))
        self.controls: dict[str, Any] = {}
        self.image: Any = None
        self.status: Any = None
        self.ui: Any = None
        self.traces: dict[str, list[float]] = {}
        self.val_loss: list[float] = []
        self.last_update_s = 0.0
        self._trace_cache: dict[tuple, list[float]] = {}  # a slider recomputes only its schedules
        self.png = BlitPNG(self.figure) if interactive else None
        if interactive:
            self._build_widgets()
        self.redraw()

    @staticmethod
    def _new_figure(interactive: bool) -> Any:
        return widget_figure(FIGSIZE, interactive=interactive, dpi=DPI)

    def _build_widgets(self) -> None:
        import ipywidgets as W

        s = self.settings
        # Room for the longest label ("plateau patience") and for every readout ("1.0e-1"):
        # a squeezed slider cuts its readout ("1.0" shown as "1.").
        style = {"description_width": "120px"}
        layout = W.Layout(width="320px", flex="0 0 auto")

        def slider(cls: Any, description: str, value: Any, **kw: Any) -> Any:
            return cls(value=value, description=description, continuous_update=False,
                       style=style, layout=layout, **kw)

        self.controls = {
            "schedules": W.SelectMultiple(options=list(SCHEDULE_NAMES), value=self.schedules,
                                          rows=len(SCHEDULE_NAMES),
                                          layout=W.Layout(width="200px", flex="0 0 auto")),
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
            "log_y": W.Checkbox(value=self.log_y, description="log y axis", indent=False,
                                layout=W.Layout(width="200px")),
        }
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        width, _ = self.figure.canvas.get_width_height()
        # Shown at its drawn size (sharp text), narrower only where the notebook is.
        self.image = W.Image(format="png",
                             layout=W.Layout(width=f"{width}px", max_width="100%", height="auto"))
        self.status = W.HTML(layout=W.Layout(width=f"{width}px", max_width="100%"))
        schedules = W.VBox([W.Label("schedules"), self.controls["schedules"],
                            self.controls["log_y"]], layout=W.Layout(flex="0 0 auto"))
        columns = [W.VBox([self.controls[name] for name in names],
                          layout=W.Layout(flex="0 0 auto")) for names in _COLUMNS]
        controls = W.HBox([schedules, *columns],
                          layout=W.Layout(flex_flow="row wrap", align_items="flex-start",
                                          grid_gap="4px 12px"))
        self.ui = W.VBox([self.image, self.status, controls])
        self.ui.add_class("lesson-scheduler-playground")

    def read_controls(self) -> tuple[tuple[str, ...], ScheduleSettings, bool]:
        """The selected schedules, the settings and the log-axis choice the controls show."""
        if not self.controls:
            return self.schedules, self.settings, self.log_y
        values = {name: self.controls[name].value for name in _SETTING_CONTROLS}
        settings = replace(self.settings, **values)
        return tuple(self.controls["schedules"].value), settings, bool(
            self.controls["log_y"].value)

    def _on_change(self, change: dict[str, Any]) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Recompute every trace from the controls and update the figure (and image)."""
        start = time.perf_counter()
        try:
            names, settings, log_y = self.read_controls()
            val_loss = synthetic_val_loss(settings.num_epochs)
            traces = compare_schedules(names, settings, val_loss=val_loss,
                                       cache=self._trace_cache)
        except (ValueError, TypeError) as exc:  # e.g. a slider combination torch refuses
            self._set_status(f"<b style='color:#b00020'>not drawn:</b> "
                             f"{html.escape(str(exc))}")
            return
        self.schedules, self.settings, self.log_y = names, settings, log_y
        self.traces, self.val_loss = traces, val_loss
        plot_lr_traces(traces, num_epochs=settings.num_epochs, log=log_y, ax=self.lr_ax)
        self.lr_ax.set_xlabel("")  # the shared x axis is labelled underneath
        plot_val_loss_curve(val_loss, plateau_lr=traces.get("plateau"), ax=self.loss_ax)
        what = ""
        if self.image is not None and self.png is not None:
            full_renders = self.png.full_renders
            self.image.value = self.png.render([*self.lr_ax.lines, *self.loss_ax.lines])
            what = " (axes and lines)" if self.png.full_renders > full_renders else " (lines only)"
        self.last_update_s = time.perf_counter() - start
        skipped = [n for n in ("plateau", "onecycle") if n in names and settings.warmup_epochs]
        note = (f"; no warmup for {' and '.join(skipped)} (see build_scheduler)"
                if skipped else "")
        self._set_status(f"{len(names)} schedules x {settings.num_epochs} epochs, redrawn in "
                         f"{1000 * self.last_update_s:.0f} ms{what}{note}")

    def _set_status(self, text: str) -> None:
        if self.status is not None:
            self.status.value = text


def scheduler_playground(schedules: Sequence[str] = PLAYGROUND_SCHEDULES,
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
        display(playground.ui)
    return playground
