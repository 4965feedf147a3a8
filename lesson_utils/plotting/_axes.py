"""What every plot of ``lesson_utils.plotting`` shares: the axes to draw on, tensors as arrays."""


from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

__all__: list[str] = ["new_axes"]


def new_axes(ax: Axes | None = None, *, figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    """Return ``ax``, or the axes of a new figure of ``figsize`` when ``ax`` is ``None``.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> ax = new_axes()
        >>> new_axes(ax) is ax
        True
    """
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
