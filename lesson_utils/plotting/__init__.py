"""Plots for the lessons, matplotlib only.

Every function takes an optional ``ax`` (a new figure is made when it is ``None``), draws on it
and returns it, so a notebook can place several plots side by side and a widget can redraw one
axes in place.
"""

from lesson_utils.plotting._axes import new_axes
from lesson_utils.plotting.losses import (
    plot_class_counts,
    plot_confidence_histogram,
    plot_focal_curves,
    plot_focal_downweighting,
    plot_per_class_recall,
    plot_reliability_diagram,
)
from lesson_utils.plotting.metrics import (
    plot_confusion_matrix,
    plot_operating_point,
    plot_pr_curve,
    plot_roc_curve,
)
from lesson_utils.plotting.scaling import plot_scaling_times
from lesson_utils.plotting.schedules import plot_lr_traces, plot_val_loss_curve, schedule_color
from lesson_utils.plotting.training import plot_history
from lesson_utils.plotting.transfer import (
    plot_transfer_by_size,
    plot_transfer_curves,
)

__all__ = [
    "new_axes",
    "plot_history",
    "schedule_color",
    "plot_lr_traces",
    "plot_val_loss_curve",
    "plot_roc_curve",
    "plot_pr_curve",
    "plot_confusion_matrix",
    "plot_operating_point",
    "plot_transfer_curves",
    "plot_transfer_by_size",
    "plot_focal_curves",
    "plot_focal_downweighting",
    "plot_class_counts",
    "plot_per_class_recall",
    "plot_confidence_histogram",
    "plot_reliability_diagram",
    "plot_scaling_times",
]
