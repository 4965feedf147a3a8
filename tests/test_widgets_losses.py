"""Lesson 03's plots and the focal-loss gamma slider, driven without a browser: set the slider,
check the plotted data."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import lesson_utils.widgets.losses as widgets_module  # noqa: E402
from lesson_utils.losses import focal_term  # noqa: E402
from lesson_utils.metrics import expected_calibration_error  # noqa: E402
from lesson_utils.plotting import (  # noqa: E402
    plot_class_counts,
    plot_confidence_histogram,
    plot_focal_curves,
    plot_focal_downweighting,
    plot_per_class_recall,
    plot_reliability_diagram,
)
from lesson_utils.widgets import FocalGammaExplorer, focal_gamma_widget  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def ex():
    explorer = FocalGammaExplorer(gamma=2.0, reference_gammas=(0.0, 1.0, 5.0))
    yield explorer
    plt.close(explorer.figure)


def _line(ax, gid):
    lines = [line for line in ax.lines if line.get_gid() == gid]
    assert len(lines) == 1, f"expected one line {gid!r}, got {[line.get_gid() for line in ax.lines]}"
    return lines[0]


def _xy(line):
    return np.asarray(line.get_xdata(), float).copy(), np.asarray(line.get_ydata(), float).copy()


# ---------------------------------------------------------------------------- the slider

def test_initial_state_draws_the_slider_gamma(ex):
    assert [line.get_gid() for line in ex.curve_ax.lines] == [
        "focal:0", "focal:1", "focal:5", "focal:highlight"]
    x, y = _xy(_line(ex.curve_ax, "focal:highlight"))
    np.testing.assert_allclose(y, focal_term(torch.as_tensor(x), 2.0).numpy())
    x, y = _xy(_line(ex.ratio_ax, "focal:2"))
    np.testing.assert_allclose(y, 1 / (1 - x) ** 2)
    assert ex.current[0.9] == pytest.approx(100.0)
    assert ex.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<b>100x</b>" in ex.numbers.value


@pytest.mark.parametrize("new_gamma", [0.0, 0.5, 1.0, 5.0, 10.0])
def test_moving_the_slider_changes_the_plotted_data(ex, new_gamma):
    _, before = _xy(_line(ex.curve_ax, "focal:highlight"))
    reference_before = _xy(_line(ex.curve_ax, "focal:1"))[1]
    image_before, numbers_before = ex.image.value, ex.numbers.value

    ex.slider.value = new_gamma  # runs the observer, as a user's drag does

    assert ex.gamma == new_gamma
    x, after = _xy(_line(ex.curve_ax, "focal:highlight"))
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, focal_term(torch.as_tensor(x), new_gamma).numpy())
    # the reference curves stay put
    np.testing.assert_array_equal(_xy(_line(ex.curve_ax, "focal:1"))[1], reference_before)
    # the ratio axes now shows the new gamma only, with its mark at p_t = 0.9
    gids = [line.get_gid() for line in ex.ratio_ax.lines if line.get_gid()]
    assert gids == [f"focal:{new_gamma:g}", f"mark:{new_gamma:g}"]
    _, mark = _xy(_line(ex.ratio_ax, f"mark:{new_gamma:g}"))
    assert mark[0] == pytest.approx(1 / 0.1**new_gamma)
    assert ex.current[0.9] == pytest.approx(1 / 0.1**new_gamma)
    assert ex.image.value != image_before
    assert ex.numbers.value != numbers_before


def test_paper_numbers_in_the_readout(ex):
    # Lin et al. 2017: gamma = 2 gives 100x less loss at p_t = 0.9, ~1000x at p_t ~ 0.968.
    assert ex.current[0.9] == pytest.approx(100.0)
    assert 950 < ex.current[0.968] < 1000
    assert "976.6x at p_t=0.968" in ex.summary()


def test_table_lists_each_gamma():
    table = FocalGammaExplorer.table([0, 2]).splitlines()
    assert table[0].split() == ["gamma", "p_t=0.1", "p_t=0.5", "p_t=0.9", "p_t=0.968"]
    assert table[2].split() == ["2", "1.235x", "4x", "100x", "976.6x"]


def test_static_fallback_prints_table_and_draws_pyplot_figure(capsys, monkeypatch):
    monkeypatch.setattr(widgets_module, "widgets_available", lambda: False)
    ex = focal_gamma_widget(3.0, reference_gammas=[0, 2])
    out = capsys.readouterr().out
    assert "p_t=0.9" in out and "100x" in out
    assert ex.ui is None and ex.slider is None and ex.image is None
    assert plt.fignum_exists(ex.figure.number)  # static mode: a pyplot figure, shown inline
    x, y = _xy(_line(ex.curve_ax, "focal:highlight"))
    np.testing.assert_allclose(y, focal_term(torch.as_tensor(x), 3.0).numpy())


def test_interactive_mode_displays_the_ui(monkeypatch):
    shown = []
    monkeypatch.setattr(widgets_module, "widgets_available", lambda: True)
    monkeypatch.setattr(widgets_module, "display", shown.append)
    ex = focal_gamma_widget(1.0)
    assert shown == [ex.ui]
    # not registered with pyplot, so the inline backend does not show it twice
    assert not any(plt.figure(n) is ex.figure for n in plt.get_fignums())


def test_bad_gamma():
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 10\], got -1"):
        FocalGammaExplorer(gamma=-1)
    with pytest.raises(ValueError, match=r"reference_gammas\[i\] must be in \[0, 10\], got 11"):
        FocalGammaExplorer(reference_gammas=[0, 11])
    with pytest.raises(TypeError, match="reference_gammas must be a sequence"):
        FocalGammaExplorer(reference_gammas="0,2")
    with pytest.raises(TypeError, match="gamma must be a number"):
        focal_gamma_widget("2", interactive=False)


# ---------------------------------------------------------------------------- plots

def test_plot_focal_curves_data():
    ax = plot_focal_curves([0, 2], highlight=0.5, num_points=50)
    for gid, gamma in [("focal:0", 0.0), ("focal:2", 2.0), ("focal:highlight", 0.5)]:
        x, y = _xy(_line(ax, gid))
        np.testing.assert_allclose(y, focal_term(torch.as_tensor(x), gamma).numpy())
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="num_points must be an int >= 2"):
        plot_focal_curves([0], num_points=1)
    with pytest.raises(ValueError, match=r"p_min must be in \(0, 1\)"):
        plot_focal_curves([0], p_min=0.0)
    with pytest.raises(ValueError, match="nothing to draw"):
        plot_focal_curves([])


def test_plot_focal_downweighting_marks():
    ax = plot_focal_downweighting([1.0, 2.0], mark=0.5)
    assert _xy(_line(ax, "mark:1"))[1][0] == pytest.approx(2.0)
    assert _xy(_line(ax, "mark:2"))[1][0] == pytest.approx(4.0)
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match=r"mark must be in \[0, 1\) or None"):
        plot_focal_downweighting([2.0], mark=1.0)


def test_plot_class_counts():
    ax = plot_class_counts([500, 100, 10], class_names=["a", "b", "c"], log=True)
    assert [p.get_height() for p in ax.patches] == [500, 100, 10]
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="class_names must have one name per count"):
        plot_class_counts([1, 2], class_names=["a"])
    with pytest.raises(ValueError, match="counts must be a non-empty 1-D sequence"):
        plot_class_counts([])


def test_plot_per_class_recall_means_and_errors():
    recalls = {"CE": np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.2]]), "sampler": np.array([0.6, 0.5, 0.4])}
    ax = plot_per_class_recall(recalls, class_names=["a", "b", "c"])
    heights = [float(p.get_height()) for p in ax.patches]
    np.testing.assert_allclose(heights, [0.8, 0.2, 0.1, 0.6, 0.5, 0.4])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="same number of classes"):
        plot_per_class_recall({"a": [0.1, 0.2], "b": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="class_names must have 2 names"):
        plot_per_class_recall({"a": [0.1, 0.2]}, class_names=["x"])


def test_plot_confidence_histogram_counts():
    ax = plot_confidence_histogram({"CE": [0.99, 0.98, 0.4], "LS": torch.tensor([[0.6, 0.4], [0.3, 0.7]])},
                                   bins=10)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["CE (mean 0.790)", "LS (mean 0.650)"]
    with pytest.raises(ValueError, match="expected a non-empty 1-D array"):
        plot_confidence_histogram({"x": []})


def test_plot_reliability_diagram_points_and_ece():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(300, 4, generator=g) * 2, 1)
    target = torch.randint(0, 4, (300,), generator=g)
    ax = plot_reliability_diagram(probs, target, num_bins=5, label="m")
    ax = plot_reliability_diagram(probs, target, num_bins=5, label="again", ax=ax)
    assert [line.get_gid() for line in ax.lines].count("diagonal") == 1
    ece = expected_calibration_error(probs, target, num_bins=5)
    assert ax.lines[1].get_label() == f"m (ECE {ece:.3f})"
