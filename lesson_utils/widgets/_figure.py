"""What every widget of ``lesson_utils.widgets`` shares: whether a widget frontend exists, the figure
it draws into, and how it shows itself."""


from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

__all__: list[str] = ["widgets_available", "widget_figure", "layout_key", "BlitPNG"]

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


def display(obj: Any) -> None:
    from IPython.display import display

    display(obj)


def widget_figure(figsize: tuple[float, float], *, interactive: bool,
                  dpi: float | None = None) -> Any:
    """A matplotlib figure for a widget: a pyplot figure when the output is a static image, or
    one that pyplot does not track when a widget redraws it (so the inline backend does not show
    it a second time).

    Args:
        figsize: width and height in inches.
        interactive: the widget shows the figure as a PNG it renders itself.
        dpi: pixels per inch of the interactive figure (matplotlib's default when ``None``);
            the static figure keeps the notebook's default.

    Example:
        >>> widget_figure((4.0, 3.0), interactive=True, dpi=50).canvas.get_width_height()
        (200, 150)
    """
    if not interactive:  # a pyplot figure, which the notebook shows as a static image
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def layout_key(figure: Any) -> tuple:
    """What a redraw of a figure's lines alone cannot change: size, and per axes the limits
    (to a ten-thousandth of the axis), ticks, scales, titles, labels, legend texts and how
    many lines and texts it holds.

    Two calls return equal keys exactly when the figure's background (axes, ticks, labels,
    legends) would be drawn the same, so a cached background can be reused.

    Example:
        >>> fig = widget_figure((3.0, 2.0), interactive=True)
        >>> ax = fig.subplots(); _ = ax.plot([0, 1], [0, 1])
        >>> before = layout_key(fig)
        >>> _ = ax.set_ylim(0, 2)
        >>> layout_key(fig) == before
        False
    """
    key: list[Any] = [tuple(figure.get_size_inches()), figure.dpi]
    for ax in figure.axes:
        legend = ax.get_legend()
        key.append((_axis_key(ax.xaxis, ax.get_xlim()), _axis_key(ax.yaxis, ax.get_ylim()),
                    ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), len(ax.lines),
                    len(ax.texts),
                    None if legend is None else tuple(t.get_text() for t in legend.get_texts())))
    return tuple(key)


def _axis_key(axis: Any, limits: tuple[float, float]) -> tuple:
    """An axis's scale, its limits to a ten-thousandth of its span (far below a pixel: a
    change of the data's minimum in the tenth digit keeps the background), and its ticks."""
    import numpy as np

    low, high = axis.get_transform().transform(np.asarray(limits, dtype=float))  # log10 on log
    span = abs(high - low)
    quantum = 10.0 ** np.floor(np.log10(span)) / 10_000 if np.isfinite(span) and span else 1.0
    ticks = tuple(np.round(axis.get_majorticklocs(), 12))
    return axis.get_scale(), round(low / quantum), round(high / quantum), ticks


def _legend_key(legend: Any) -> tuple:
    anchor = legend.get_bbox_to_anchor()
    return (tuple(t.get_text() for t in legend.get_texts()), getattr(legend, "_loc", None),
            None if anchor is None else tuple(anchor.bounds))


class BlitPNG:
    """PNG bytes of a figure whose lines change often: only what changed is drawn again
    (blitting).

    The first ``render`` (and any ``render`` after the axes' limits, scales, labels or legends
    changed: ``layout_key``) draws the figure without the changing artists, keeps that
    background, then draws them on it. The next ones restore the background and draw only the
    changing artists: about a millisecond instead of the tens that text and ticks cost. When
    the axes changed but the legends did not, the legends' pixels are pasted from the last
    render instead of being typeset again (half the cost of a full draw here). The image is
    then reduced to a palette of ``colors`` colours (a plot has few; the PNG gets several times
    smaller and faster to encode) and encoded with zlib level ``compress_level``.

    The changing artists are drawn on top of everything else, and a pasted legend must not
    share its pixels with anything else: keep legends outside the axes.

    Attributes:
        full_renders: how many renders drew the whole figure (legends pasted or typeset).
        legend_renders: how many of those typeset the legends.

    Example:
        >>> fig = widget_figure((3.0, 2.0), interactive=True, dpi=50)
        >>> ax = fig.subplots(); (line,) = ax.plot([0, 1], [0, 1])
        >>> png = BlitPNG(fig)
        >>> first = png.render([line])
        >>> line.set_ydata([1, 0]); second = png.render([line])
        >>> png.full_renders, second[:4] == b"\\x89PNG", second != first
        (1, True, True)
    """

    def __init__(self, figure: Any, *, colors: int | None = 256, compress_level: int = 1) -> None:
        if colors is not None and not 2 <= colors <= 256:
            raise ValueError(f"colors must be None or an int in [2, 256], got {colors!r}")
        self.figure = figure
        self.colors = colors
        self.compress_level = compress_level
        self.full_renders = 0
        self.legend_renders = 0
        self._key: tuple | None = None
        self._background: Any = None
        self._legend_key: tuple | None = None
        self._legend_pixels: list[Any] = []

    def render(self, artists: Sequence[Any]) -> bytes:
        """Draw the figure (or only ``artists`` on the cached background) and return PNG bytes."""
        key = layout_key(self.figure)
        if key != self._key or self._background is None:
            self._draw_background(artists)
            self._key = key
        else:
            self.figure.canvas.restore_region(self._background)
        for a in artists:
            (a.axes or self.figure).draw_artist(a)
        return self._encode()

    def _draw_background(self, artists: Sequence[Any]) -> None:
        """Draw everything but ``artists`` (legends pasted when unchanged); keep it."""
        canvas = self.figure.canvas
        legends = [ax.get_legend() for ax in self.figure.axes if ax.get_legend() is not None]
        legend_key = (tuple(_legend_key(legend) for legend in legends),
                      tuple(self.figure.get_size_inches()), self.figure.dpi)
        paste = legend_key == self._legend_key and len(self._legend_pixels) == len(legends)
        hidden = [*artists, *legends] if paste else list(artists)
        was_animated = [a.get_animated() for a in hidden]
        for a in hidden:
            a.set_animated(True)  # left out of canvas.draw()
        try:
            canvas.draw()
        finally:
            for a, animated in zip(hidden, was_animated, strict=True):
                a.set_animated(animated)
        if paste:
            for pixels in self._legend_pixels:
                canvas.restore_region(pixels)
        else:
            renderer = canvas.get_renderer()
            self._legend_pixels = [
                canvas.copy_from_bbox(legend.legendPatch.get_window_extent(renderer).padded(2))
                for legend in legends]
            self._legend_key = legend_key
            self.legend_renders += 1
        self._background = canvas.copy_from_bbox(self.figure.bbox)
        self.full_renders += 1

    def _encode(self) -> bytes:
        from PIL import Image

        canvas = self.figure.canvas
        image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(),
                                 "raw", "RGBA", 0, 1).convert("RGB")
        if self.colors is not None:
            image = image.quantize(self.colors, method=Image.Quantize.FASTOCTREE)
        buffer = io.BytesIO()
        image.save(buffer, format="png", compress_level=self.compress_level)
        return buffer.getvalue()
