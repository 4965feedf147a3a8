"""Interactive widgets for the lessons (ipywidgets over ``lesson_utils.plotting``).

Widgets hold no logic of their own: they read slider values, call a plotting or computing
function, and redraw. Outside a widget frontend (plain Python, a script, a test, a static render
on GitHub) each widget function draws the same comparison as a static matplotlib figure instead.
"""

from lesson_utils.widgets._figure import widget_figure, widgets_available
from lesson_utils.widgets.losses import FocalGammaExplorer, focal_gamma_widget
from lesson_utils.widgets.metrics import ThresholdExplorer, threshold_widget
from lesson_utils.widgets.schedules import (
    PLAYGROUND_SCHEDULES,
    SchedulerPlayground,
    scheduler_playground,
)

__all__ = [
    "widgets_available",
    "widget_figure",
    "PLAYGROUND_SCHEDULES",
    "SchedulerPlayground",
    "scheduler_playground",
    "ThresholdExplorer",
    "threshold_widget",
    "FocalGammaExplorer",
    "focal_gamma_widget",
]
