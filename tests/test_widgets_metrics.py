"""Lesson 05 plots and the decision-threshold widget, tested without a browser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lesson_utils import metrics as M  # noqa: E402
from lesson_utils.plotting import (  # noqa: E402
    plot_confusion_matrix,
    plot_operating_point,
    plot_pr_curve,
    plot_roc_curve,
)
from lesson_utils.widgets import ThresholdExplorer, threshold_widget  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.2).astype(np.int64)
    probs = 1 / (1 + np.exp(-(rng.normal(size=300) + 2.0 * y - 1.5)))
    return y, probs


def line(ax, gid):
    (found,) = [ln for ln in ax.lines if ln.get_gid() == gid]
    return found


# ---------------------------------------------------------------- plotting

def test_plot_roc_curve_draws_the_metrics_curve(scored):
    y, s = scored
    ax = plot_roc_curve(y, s, label="m")
    fpr, tpr, _ = M.roc_curve(y, s)
    curve = line(ax, "roc-curve")
    np.testing.assert_allclose(curve.get_xdata(), fpr.numpy())
    np.testing.assert_allclose(curve.get_ydata(), tpr.numpy())
    assert ax.get_legend_handles_labels()[1][0] == f"m (AUC {M.roc_auc(y, s):.3f})"
    plot_roc_curve(y, 1 - s, ax=ax, label="reversed")  # a second curve, one chance line
    assert [ln.get_gid() for ln in ax.lines].count("roc-chance") == 1
    assert len([ln for ln in ax.lines if ln.get_gid() == "roc-curve"]) == 2


def test_plot_pr_curve_draws_the_metrics_curve_and_baseline(scored):
    y, s = scored
    ax = plot_pr_curve(y, s)
    p, r, _ = M.precision_recall_curve(y, s)
    curve = line(ax, "pr-curve")
    np.testing.assert_allclose(curve.get_xdata(), r.numpy())
    np.testing.assert_allclose(curve.get_ydata(), p.numpy())
    assert curve.get_drawstyle() == "steps-post"
    assert line(ax, "pr-chance").get_ydata()[0] == pytest.approx(y.mean())
    assert f"AP {M.average_precision(y, s):.3f}" in ax.get_legend_handles_labels()[1][0]


def test_plot_confusion_matrix_counts_and_normalisation():
    cm = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])
    ax = plot_confusion_matrix(cm, class_names=["a", "b", "c"])
    assert [t.get_text() for t in ax.texts] == ["5", "1", "0", "2", "2", "0", "0", "0", "0"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    plot_confusion_matrix(cm, normalize="true", ax=ax)  # redraw on the same axes
    assert len(ax.images) == 1 and len(ax.texts) == 9
    np.testing.assert_allclose(ax.images[0].get_array()[:2].sum(axis=1), [1.0, 1.0])
    assert ax.texts[0].get_text() == "0.83\n(5)"
    np.testing.assert_allclose(plot_confusion_matrix(cm, normalize="pred").images[0]
                               .get_array()[:, :2].sum(axis=0), [1.0, 1.0])


def test_plot_confusion_matrix_errors():
    with pytest.raises(ValueError, match=r"square \(K, K\) matrix, got shape \(2, 3\)"):
        plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="counts >= 0"):
        plot_confusion_matrix([[1, -1], [0, 1]])
    with pytest.raises(ValueError, match="class_names has 1 names but cm is 2 x 2"):
        plot_confusion_matrix(np.eye(2), class_names=["a"])
    with pytest.raises(ValueError, match="normalize must be one of None, 'true', 'pred'; got 'all'"):
        plot_confusion_matrix(np.eye(2), normalize="all")


def test_plot_operating_point_moves_instead_of_adding():
    ax = plot_operating_point(plt.figure().subplots(), 0.1, 0.2, label="a")
    plot_operating_point(ax, 0.5, 0.6, label="b")
    (pt,) = ax.lines
    assert (pt.get_xdata()[0], pt.get_ydata()[0], pt.get_label()) == (0.5, 0.6, "b")


# ---------------------------------------------------------------- threshold widget

def test_moving_the_slider_updates_numbers_markers_matrix_and_image(scored):
    y, s = scored
    ex = ThresholdExplorer(y, s, threshold=0.5, interactive=True)
    before = {"html": ex.numbers.value, "png": ex.image.value,
              "roc": line(ex.roc_ax, "operating-point").get_xydata().copy(),
              "pr": line(ex.pr_ax, "operating-point").get_xydata().copy(),
              "cm": [t.get_text() for t in ex.cm_ax.texts]}
    assert (ex.slider.min, ex.slider.max) == (0.0, 1.0)

    ex.slider.value = 0.25  # what a user's drag does: the observer runs at once

    m = M.metrics_at_threshold(y, s, 0.25)
    assert ex.current["threshold"] == 0.25
    for key in ("tp", "fp", "fn", "tn", "precision", "recall", "f1"):
        assert ex.current[key] == m[key]
    assert ex.numbers.value != before["html"]
    assert f"<b>precision</b> {m['precision']:.3f}" in ex.numbers.value
    assert f"<b>F1</b> {m['f1']:.3f}" in ex.numbers.value
    assert f"TP {m['tp']}, FP {m['fp']}, FN {m['fn']}, TN {m['tn']}" in ex.numbers.value
    roc = line(ex.roc_ax, "operating-point").get_xydata()[0]
    np.testing.assert_allclose(roc, [m["fp"] / (m["fp"] + m["tn"]), m["recall"]])
    assert not np.allclose(roc, before["roc"][0])
    pr = line(ex.pr_ax, "operating-point").get_xydata()[0]
    np.testing.assert_allclose(pr, [m["recall"], m["precision"]])
    assert not np.allclose(pr, before["pr"][0])
    assert [t.get_text() for t in ex.cm_ax.texts] == [str(v) for v in
                                                      (m["tn"], m["fp"], m["fn"], m["tp"])]
    assert [t.get_text() for t in ex.cm_ax.texts] != before["cm"]
    assert ex.image.value != before["png"] and ex.image.value[:4] == b"\x89PNG"
    # a lower threshold never lowers recall
    assert m["recall"] >= M.metrics_at_threshold(y, s, 0.5)["recall"]


def test_the_operating_point_lies_on_the_curves(scored):
    y, s = scored
    ex = ThresholdExplorer(y, s, interactive=False)
    fpr, tpr, thr = M.roc_curve(y, s)
    t = float(thr[10])  # a threshold equal to a score: exactly one point of the curve
    ex.set_threshold(t)
    point = line(ex.roc_ax, "operating-point").get_xydata()[0]
    np.testing.assert_allclose(point, [float(fpr[10]), float(tpr[10])])


def test_threshold_above_every_score_predicts_nothing(scored):
    y, s = scored
    ex = ThresholdExplorer(y, s, interactive=True)
    ex.slider.value = 1.0
    m = ex.current
    assert s.max() < 1.0
    assert (m["tp"], m["fp"], m["precision"], m["recall"]) == (0, 0, 0.0, 0.0)
    # shown at the PR curve's closing point
    np.testing.assert_allclose(line(ex.pr_ax, "operating-point").get_xydata()[0], [0.0, 1.0])


def test_slider_range_follows_non_probability_scores():
    ex = ThresholdExplorer([0, 1, 0, 1], [-2.0, 3.0, 0.5, 1.0], threshold=0.0)
    assert (ex.slider.min, ex.slider.max) == (-2.0, 3.0)
    ex.slider.value = 0.75
    assert (ex.current["tp"], ex.current["fp"]) == (2, 0)


def test_static_fallback_prints_the_table_and_draws_one_figure(scored, capsys, monkeypatch):
    y, s = scored
    monkeypatch.setenv("LESSON_STATIC_WIDGETS", "1")
    ex = threshold_widget(y, s, threshold=0.4, static_thresholds=[0.2, 0.4])
    out = capsys.readouterr().out.splitlines()
    assert ex.ui is None and ex.slider is None and ex.image is None
    assert out[0] == ex.summary() and out[0].startswith("threshold 0.40: precision")
    assert out[1].split() == ["threshold", "precision", "recall", "F1", "accuracy", "TP", "FP",
                              "FN", "TN"]
    m = M.metrics_at_threshold(y, s, 0.2)
    assert out[2].split() == ["0.20", f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                              f"{m['f1']:.3f}", f"{m['accuracy']:.3f}", str(m["tp"]),
                              str(m["fp"]), str(m["fn"]), str(m["tn"])]
    assert ex.figure in [plt.figure(n) for n in plt.get_fignums()]  # shown inline by pyplot
    assert len(ex.figure.axes) == 3


def test_explorer_rejects_bad_input():
    with pytest.raises(ValueError, match="class_names must name the 2 classes"):
        ThresholdExplorer([0, 1], [0.2, 0.8], class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="y_true must hold 0 .* or 1"):
        ThresholdExplorer([0, 2], [0.2, 0.8])
    with pytest.raises(ValueError, match="y_score must be 1-D"):
        ThresholdExplorer([0, 1], [[0.2, 0.8], [0.3, 0.7]])


def test_plot_confusion_matrix_long_class_names_do_not_overlap():
    # the capstone's six names at its figure size used to run into each other on the x axis.
    # Tilted labels are parallel strips: they cannot touch when the distance between neighbouring
    # strips (tick spacing x sin(angle)) exceeds the text height.
    names = ["arrow", "crescent", "ellipse", "l_shape", "semicircle", "t_shape"]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    plot_confusion_matrix(np.eye(6, dtype=int) * 10, class_names=names, normalize="true", ax=ax)
    fig.canvas.draw()
    labels = ax.get_xticklabels()
    spacing = ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]   # pixels per tick
    height = labels[0].get_fontsize() * fig.dpi / 72                                  # pixels
    angle = np.deg2rad(labels[0].get_rotation())
    assert angle > 0, "long names must be tilted"
    assert spacing * np.sin(angle) > 1.2 * height
    plt.close(fig)
