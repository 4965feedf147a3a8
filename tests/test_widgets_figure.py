"""BlitPNG: redrawing only the lines (or pasting the legends) gives the same pixels as drawing
the whole figure again, and leaves the figure drawable as usual."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from lesson_utils.widgets._figure import BlitPNG, layout_key, widget_figure  # noqa: E402


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def fresh(figure, lines) -> np.ndarray:
    """What a renderer with no cache draws: the reference."""
    return pixels(BlitPNG(figure).render(lines))


@pytest.fixture
def plot():
    figure = widget_figure((4.0, 3.0), interactive=True, dpi=60)
    ax = figure.subplots()
    figure.subplots_adjust(right=0.7)
    lines = [ax.plot([0, 1, 2], [0, 1, 0.5], label="a")[0],
             ax.plot([0, 1, 2], [1, 0, 0.2], label="b")[0]]
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the axes
    return figure, ax, lines


def test_lines_only_render_equals_a_full_render(plot):
    figure, ax, lines = plot
    png = BlitPNG(figure)
    png.render(lines)
    lines[0].set_ydata([0.2, 0.8, 0.4])       # inside the current limits
    ax.relim()
    ax.autoscale_view()
    assert layout_key(figure) == png._key  # the axes did not change
    out = png.render(lines)
    assert png.full_renders == 1
    np.testing.assert_array_equal(pixels(out), fresh(figure, lines))


def test_new_limits_redraw_the_axes_and_paste_the_legend(plot):
    figure, ax, lines = plot
    png = BlitPNG(figure)
    png.render(lines)
    lines[1].set_data([0, 1, 2, 3], [3, 0, 0.2, 1])   # new x and y limits
    ax.relim()
    ax.autoscale_view()
    out = png.render(lines)
    assert (png.full_renders, png.legend_renders) == (2, 1)
    np.testing.assert_array_equal(pixels(out), fresh(figure, lines))


def test_a_new_legend_is_typeset_again(plot):
    figure, ax, lines = plot
    png = BlitPNG(figure)
    png.render(lines)
    lines[1].set_label("b, renamed")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    out = png.render(lines)
    assert (png.full_renders, png.legend_renders) == (2, 2)
    np.testing.assert_array_equal(pixels(out), fresh(figure, lines))


def test_the_figure_still_draws_its_lines_elsewhere(plot):
    """The lines are left out of the cached background only while it is drawn."""
    figure, ax, lines = plot
    BlitPNG(figure).render(lines)
    assert not any(line.get_animated() for line in lines)
    assert not ax.get_legend().get_animated()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    without = widget_figure((4.0, 3.0), interactive=True, dpi=60)
    without.subplots().plot([0, 1, 2], [0, 1, 0.5], alpha=0)   # same limits, nothing visible
    empty = io.BytesIO()
    without.savefig(empty, format="png")
    assert buffer.getvalue() != empty.getvalue()


def test_palette_png_is_small_and_close_to_the_rgb_image(plot):
    figure, _, lines = plot
    exact, palette = BlitPNG(figure, colors=None), BlitPNG(figure)
    rgb, small = exact.render(lines), palette.render(lines)
    assert Image.open(io.BytesIO(small)).mode == "P" and len(small) < len(rgb)
    mse = ((pixels(small).astype(float) - pixels(rgb)) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 35  # dB: a plot has few colours, 256 lose ~nothing


def test_bad_colors():
    figure = widget_figure((2.0, 2.0), interactive=True)
    with pytest.raises(ValueError, match=r"colors must be None or an int in \[2, 256\], got 1"):
        BlitPNG(figure, colors=1)
