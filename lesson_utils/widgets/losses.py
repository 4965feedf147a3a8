"""Lesson 03's widget: a focal-loss gamma slider over the focal curves."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from lesson_utils.plotting import plot_focal_curves, plot_focal_downweighting
from lesson_utils.widgets._figure import display, widget_figure, widgets_available

__all__ = ["FocalGammaExplorer", "focal_gamma_widget"]

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
                 reference_gammas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0),
                 interactive: bool = True) -> None:
        gamma = _check_focal_gamma("gamma", gamma)
        if isinstance(reference_gammas, (str, bytes)) or not isinstance(reference_gammas, Sequence):
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
            buffer = io.BytesIO()
            self.figure.savefig(buffer, format="png", dpi=72, pil_kwargs={"compress_level": 1})
            self.image.value = buffer.getvalue()
        return self.current

    def summary(self) -> str:
        """The current gamma's ratios as one line of text."""
        return f"γ={self.gamma:g}: CE/focal " + ", ".join(
            f"{r:,.4g}x at p_t={p:g}" for p, r in self.current.items())

    @classmethod
    def table(cls, gammas: Sequence[float]) -> str:
        """CE loss / focal loss at ``FOCAL_PROBE_POINTS`` for several gammas, as a text table."""
        header = f"{'gamma':>6}" + "".join(f"{'p_t=' + format(p, 'g'):>12}" for p in FOCAL_PROBE_POINTS)
        lines = [header]
        for g in gammas:
            r = cls.ratios(_check_focal_gamma("gammas[i]", g))
            lines.append(f"{g:>6g}" + "".join(
                f"{r[p]:>11,.4g}x" if math.isfinite(r[p]) else f"{'inf':>12}"
                for p in FOCAL_PROBE_POINTS))
        return "\n".join(lines)


def focal_gamma_widget(gamma: float = 2.0, *,
                       reference_gammas: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0),
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
        display(explorer.ui)
    else:
        print(explorer.table(explorer.reference_gammas))
    return explorer
