"""What every widget of ``lesson_utils.widgets`` shares: whether a widget frontend exists, the figure
it draws into, and how it shows itself."""


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


def display(obj: Any) -> None:
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
