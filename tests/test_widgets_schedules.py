"""The scheduler playground, driven without a browser: set controls, check the plotted data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lesson_utils.widgets.schedules as widgets_module  # noqa: E402
from lesson_utils.schedules import (  # noqa: E402
    ScheduleSettings,
    compare_schedules,
    synthetic_val_loss,
)
from lesson_utils.widgets import (  # noqa: E402
    PLAYGROUND_SCHEDULES,
    SchedulerPlayground,
    scheduler_playground,
)
from lesson_utils.widgets._figure import BlitPNG  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture
def pg():
    playground = SchedulerPlayground(PLAYGROUND_SCHEDULES, ScheduleSettings(num_epochs=60))
    yield playground
    plt.close(playground.figure)


def lr_line(pg, name):
    lines = [line for line in pg.lr_ax.lines if line.get_gid() == f"lr:{name}"]
    assert len(lines) == 1, f"expected one line for {name}, got {len(lines)}"
    return lines[0]


def ydata(pg, name):
    return np.asarray(lr_line(pg, name).get_ydata(), dtype=float).copy()


def test_initial_plot_shows_every_schedule_and_the_val_loss(pg):
    assert [line.get_gid() for line in pg.lr_ax.lines] == [f"lr:{n}" for n in PLAYGROUND_SCHEDULES]
    expected = compare_schedules(PLAYGROUND_SCHEDULES, pg.settings)
    for name in PLAYGROUND_SCHEDULES:
        np.testing.assert_array_equal(ydata(pg, name), expected[name])
    loss = {line.get_gid(): line for line in pg.loss_ax.lines}
    np.testing.assert_array_equal(loss["val_loss"].get_ydata(), synthetic_val_loss(60))
    assert pg.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "6 schedules x 60 epochs" in pg.status.value


# control -> new value -> the schedules whose plotted LRs must change (and those that must not)
CASES = [
    ("step_size", 10, ["step"], ["cosine", "constant", "plateau"]),
    ("gamma", 0.5, ["step"], ["cosine", "onecycle"]),
    ("T_max", 20, ["cosine"], ["step", "cosine_warm_restarts"]),
    ("eta_min", 0.02, ["cosine", "cosine_warm_restarts"], ["step", "onecycle"]),
    ("T_0", 7, ["cosine_warm_restarts"], ["cosine"]),
    ("warmup_epochs", 5, ["constant", "step", "cosine", "cosine_warm_restarts"],
     ["plateau", "onecycle"]),
    ("patience", 0, ["plateau"], ["step", "cosine"]),
    ("factor", 0.5, ["plateau"], ["step"]),
    ("base_lr", 0.01, list(PLAYGROUND_SCHEDULES), []),
]


@pytest.mark.parametrize("control, value, changed, unchanged", CASES)
def test_moving_a_slider_changes_the_plotted_data(pg, control, value, changed, unchanged):
    before = {name: ydata(pg, name) for name in PLAYGROUND_SCHEDULES}
    lines = {name: lr_line(pg, name) for name in PLAYGROUND_SCHEDULES}
    image = pg.image.value
    assert pg.controls[control].value != value
    pg.controls[control].value = value
    for name in changed:
        assert not np.array_equal(ydata(pg, name), before[name]), f"{name} did not change"
    for name in unchanged:
        np.testing.assert_array_equal(ydata(pg, name), before[name])
    # the same Line2D objects were updated in place, and they show the library's numbers
    assert all(lr_line(pg, n) is lines[n] for n in PLAYGROUND_SCHEDULES)
    expected = compare_schedules(PLAYGROUND_SCHEDULES, pg.settings)
    for name in PLAYGROUND_SCHEDULES:
        np.testing.assert_array_equal(ydata(pg, name), expected[name])
    assert getattr(pg.settings, control) == value
    assert pg.image.value != image


def test_epochs_slider_changes_length_and_val_loss(pg):
    pg.controls["num_epochs"].value = 150
    assert len(ydata(pg, "cosine")) == 150
    assert lr_line(pg, "cosine").get_xdata()[-1] == 149
    loss = {line.get_gid(): line for line in pg.loss_ax.lines}
    np.testing.assert_array_equal(loss["val_loss"].get_ydata(), synthetic_val_loss(150))
    assert pg.lr_ax.get_xlim()[1] >= 149
    pg.controls["num_epochs"].value = 30  # and the axes shrink back
    assert 29 <= pg.lr_ax.get_xlim()[1] < 40 and 29 <= pg.loss_ax.get_xlim()[1] < 40


def test_plateau_cuts_are_marked_on_the_val_loss(pg):
    pg.controls["patience"].value = 2
    lr = ydata(pg, "plateau")
    cuts = np.flatnonzero(lr[1:] < lr[:-1])
    assert cuts.size > 0
    markers = {line.get_gid(): line for line in pg.loss_ax.lines}["val_loss:cuts"]
    np.testing.assert_array_equal(markers.get_xdata(), cuts)
    before = markers.get_xdata().copy()
    pg.controls["patience"].value = 12
    assert not np.array_equal(markers.get_xdata(), before)


def test_selecting_schedules_adds_and_removes_lines(pg):
    cosine = lr_line(pg, "cosine")
    pg.controls["schedules"].value = ("cosine", "exponential")
    assert [line.get_gid() for line in pg.lr_ax.lines] == ["lr:cosine", "lr:exponential"]
    assert lr_line(pg, "cosine") is cosine
    assert [t.get_text() for t in pg.lr_ax.get_legend().get_texts()] == ["cosine", "exponential"]
    pg.controls["schedules"].value = ()
    assert len(pg.lr_ax.lines) == 0
    assert pg.lr_ax.get_legend() is None
    assert "0 schedules" in pg.status.value


def test_the_legend_is_kept_while_its_labels_stay(pg):
    legend = pg.lr_ax.get_legend()
    pg.controls["gamma"].value = 0.5
    assert pg.lr_ax.get_legend() is legend                  # same labels: not typeset again
    pg.controls["schedules"].value = ("step", "cosine")
    assert pg.lr_ax.get_legend() is not legend
    assert [t.get_text() for t in pg.lr_ax.get_legend().get_texts()] == ["step", "cosine"]


def test_log_axis_checkbox(pg):
    assert pg.lr_ax.get_yscale() == "linear"
    pg.controls["log_y"].value = True
    assert pg.lr_ax.get_yscale() == "log"


def test_one_figure_is_reused(pg):
    figure, axes = pg.figure, list(pg.figure.axes)
    for value in (5, 10, 15):
        pg.controls["step_size"].value = value
    assert pg.figure is figure and list(pg.figure.axes) == axes
    assert len(pg.lr_ax.lines) == len(PLAYGROUND_SCHEDULES)


def _canvas(pg) -> np.ndarray:
    return np.asarray(pg.figure.canvas.buffer_rgba()).astype(int)


def assert_looks_like_a_fresh_render(pg):
    """The canvas the PNG was made from vs drawing everything again: the same image, up to
    ticks moved by far less than a pixel (limits kept to a ten-thousandth of the axis)."""
    shown = _canvas(pg)
    BlitPNG(pg.figure).render([*pg.lr_ax.lines, *pg.loss_ax.lines])
    difference = np.abs(shown - _canvas(pg))
    assert difference.max() <= 8 and (difference > 0).mean() < 1e-3, (
        f"{(difference > 0).sum()} values differ, by up to {difference.max()}")


@pytest.mark.parametrize("control, value", [("gamma", 0.5), ("step_size", 7), ("patience", 2),
                                            ("T_0", 9), ("factor", 0.3)])
def test_a_slider_that_keeps_the_axes_redraws_only_the_lines(pg, control, value):
    full_renders = pg.png.full_renders
    pg.controls[control].value = value
    assert pg.png.full_renders == full_renders, f"{control} redrew the whole figure"
    assert_looks_like_a_fresh_render(pg)


@pytest.mark.parametrize("control, value, legends_again", [
    ("num_epochs", 90, False), ("base_lr", 0.01, False), ("log_y", True, False),
    ("schedules", ("step", "cosine"), True)])
def test_a_control_that_changes_the_axes_redraws_them(pg, control, value, legends_again):
    full_renders, legend_renders = pg.png.full_renders, pg.png.legend_renders
    pg.controls[control].value = value
    assert pg.png.full_renders == full_renders + 1
    assert pg.png.legend_renders == legend_renders + legends_again
    assert_looks_like_a_fresh_render(pg)


def test_layout_plot_on_top_then_caption_then_controls(pg):
    import ipywidgets as W

    image, status, controls = pg.ui.children
    assert image is pg.image and status is pg.status and isinstance(controls, W.HBox)
    width, _ = pg.figure.canvas.get_width_height()
    assert image.layout.width == f"{width}px" and image.layout.max_width == "100%"
    assert controls.layout.flex_flow == "row wrap"  # columns wrap on a narrow screen
    shown = [c for box in controls.children for c in box.children]
    assert all(c in shown for c in pg.controls.values())
    for name, control in pg.controls.items():  # sliders cannot shrink and cut their readouts
        if isinstance(control, (W.IntSlider, W.FloatSlider, W.FloatLogSlider)):
            assert control.layout.flex == "0 0 auto", name
            assert control.style.description_width == "120px", name


def test_warmup_note_for_schedules_that_cannot_take_it(pg):
    pg.controls["warmup_epochs"].value = 3
    assert "no warmup for plateau and onecycle" in pg.status.value


def test_an_error_is_shown_not_raised(pg, monkeypatch):
    before = ydata(pg, "step")

    def refuse(*args, **kwargs):
        raise ValueError("torch <refuses> this")

    monkeypatch.setattr(widgets_module, "compare_schedules", refuse)
    pg.controls["step_size"].value = 11
    assert "not drawn" in pg.status.value and "&lt;refuses&gt;" in pg.status.value
    np.testing.assert_array_equal(ydata(pg, "step"), before)


def test_static_mode_draws_the_same_comparison_without_widgets():
    pg = scheduler_playground(["step", "cosine", "plateau"], ScheduleSettings(num_epochs=40))
    try:
        assert pg.ui is None and pg.controls == {} and pg.image is None
        assert plt.fignum_exists(pg.figure.number)  # a pyplot figure: shown inline
        expected = compare_schedules(["step", "cosine", "plateau"], ScheduleSettings(num_epochs=40))
        for name, trace in expected.items():
            np.testing.assert_array_equal(ydata(pg, name), trace)
    finally:
        plt.close(pg.figure)


def test_interactive_mode_displays_the_ui(monkeypatch):
    shown = []
    monkeypatch.setattr(widgets_module, "display", shown.append)
    pg = scheduler_playground(["step"], ScheduleSettings(num_epochs=20), interactive=True)
    assert shown == [pg.ui]
    assert "lesson-scheduler-playground" in pg.ui._dom_classes


def test_interactive_figure_is_not_a_pyplot_figure():
    """pyplot would show it a second time, as a static image under the widget."""
    before = plt.get_fignums()
    pg = SchedulerPlayground(["step"], ScheduleSettings(num_epochs=20))
    assert plt.get_fignums() == before
    assert pg.image is not None


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"unknown schedule name\(s\) \['cosin'\]"):
        SchedulerPlayground(["cosin"])
    with pytest.raises(TypeError, match="schedules must be a sequence of names"):
        SchedulerPlayground("cosine")
    with pytest.raises(TypeError, match="settings must be a ScheduleSettings"):
        SchedulerPlayground(["cosine"], {"num_epochs": 10})
