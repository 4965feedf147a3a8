"""What ``fit`` keeps between epochs and calls after each one: the ``History`` of epoch records,
``EarlyStopping``'s rule, and ``Callback`` hooks such as ``LiveLossPlot``.

Example:
    >>> h = History([{"epoch": 1, "val_loss": 0.9}], monitor="val_loss", mode="min")
    >>> EarlyStopping(patience=2).is_improvement(0.8, best=0.9)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lesson_utils.validation import check_choice, check_int, check_number

__all__ = ["EarlyStopping", "History", "Callback", "LiveLossPlot", "as_callbacks", "improves",
           "default_mode", "Mode"]

Mode = Literal["min", "max"]


@dataclass(frozen=True)
class EarlyStopping:
    """Stop ``fit`` when ``monitor`` has not improved for ``patience`` epochs.

    Attributes:
        monitor: a key of the epoch record, e.g. ``"val_loss"``, ``"val_accuracy"``,
            ``"val_<metric name>"``, ``"train_loss"``.
        mode: ``"min"`` (lower is better) or ``"max"``; ``None`` picks ``"min"`` when the name
            contains ``"loss"`` and ``"max"`` otherwise.
        patience: epochs without improvement before stopping.
        min_delta: an improvement must beat the best value by more than this.
        restore_best_weights: load the best epoch's weights into the model when training ends.
        start_from_epoch: never stop before this many epochs have run (a fair baseline gets at
            least the step budget of what it is compared with).

    Example:
        >>> EarlyStopping("val_accuracy", patience=3).resolved_mode
        'max'
        >>> EarlyStopping(min_delta=0.01).is_improvement(0.995, best=1.0)
        False
    """

    monitor: str = "val_loss"
    mode: Mode | None = None
    patience: int = 5
    min_delta: float = 0.0
    restore_best_weights: bool = True
    start_from_epoch: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.monitor, str) or not self.monitor:
            raise TypeError(f"monitor must be a non-empty str such as 'val_loss', got "
                            f"{self.monitor!r}")
        check_choice("mode", self.mode, (None, "min", "max"))
        check_int("patience", self.patience, minimum=1)
        check_number("min_delta", self.min_delta, minimum=0)
        check_int("start_from_epoch", self.start_from_epoch, minimum=0)

    @property
    def resolved_mode(self) -> Mode:
        """``mode``, or the one implied by the monitored name."""
        return self.mode or default_mode(self.monitor)

    def is_improvement(self, value: float, best: float | None) -> bool:
        """True when ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
        return improves(value, best, self.resolved_mode, self.min_delta)


def default_mode(monitor: str) -> Mode:
    """``"min"`` for a name with ``loss`` in it, else ``"max"`` (accuracy, F1, ...)."""
    return "min" if "loss" in monitor else "max"


def improves(value: float, best: float | None, mode: Mode, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class History:
    """What ``fit`` measured: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ...).

    ``history["val_loss"]`` is the list of that value over epochs; ``history[-1]`` is the last
    epoch's record. ``best_epoch``/``best_value`` name the best epoch of ``monitor``, and
    ``stopped_early`` says whether early stopping ended the run.

    Example:
        >>> h = History([{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}])
        >>> h["train_loss"], len(h), h[-1]["epoch"]
        ([0.9, 0.5], 2, 2)
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] = (), *, monitor: str | None = None,
                 mode: Mode | None = None) -> None:
        self.records: list[dict[str, Any]] = [dict(r) for r in records]
        self.monitor = monitor
        self.mode = mode
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.stopped_early = False

    def append(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            if not any(key in r for r in self.records):
                raise KeyError(f"no {key!r} in this history; keys are {self.keys()}")
            return [r.get(key, float("nan")) for r in self.records]
        return self.records[key]

    def keys(self) -> list[str]:
        """Every key that appears in some epoch's record, in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def plot(self, key: str = "loss", *, ax: Any = None, mark_best: bool = True) -> Any:
        """Plot ``train_<key>`` and ``val_<key>`` against the epoch (``plotting.plot_history``).

        Returns:
            The matplotlib axes.
        """
        from lesson_utils.plotting import plot_history

        return plot_history(self, key, ax=ax, mark_best=mark_best)

    def state_dict(self) -> dict[str, Any]:
        """Plain containers only, so it can travel in a ``weights_only`` checkpoint."""
        return {"records": [dict(r) for r in self.records], "monitor": self.monitor,
                "mode": self.mode, "best_epoch": self.best_epoch, "best_value": self.best_value,
                "stopped_early": self.stopped_early}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.records = [dict(r) for r in state["records"]]
        self.monitor, self.mode = state["monitor"], state["mode"]
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
        self.stopped_early = bool(state["stopped_early"])

    def __repr__(self) -> str:
        best = ""
        if self.best_epoch is not None and self.best_value is not None:
            best = f", best epoch {self.best_epoch}: {self.monitor}={self.best_value:.4g}"
        stopped = ", stopped early" if self.stopped_early else ""
        return f"History({len(self)} epochs{best}{stopped})"


class Callback:
    """Hooks ``fit`` calls; override the ones you need. A plain function given in
    ``callbacks`` is called as ``on_epoch_end(record, history)``.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, record, history):
        ...         print(record["epoch"], round(record["train_loss"], 2))
    """

    def on_train_begin(self, history: History) -> None:
        """Before the first epoch (after a resume: before the first new epoch)."""

    def on_epoch_end(self, record: dict[str, Any], history: History) -> None:
        """After each epoch, once its record is in ``history`` and ``last.pt`` is written."""

    def on_train_end(self, history: History) -> None:
        """After the last epoch (and after the best weights are restored)."""


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[dict[str, Any], History], Any]) -> None:
        self.fn = fn

    def on_epoch_end(self, record: dict[str, Any], history: History) -> None:
        self.fn(record, history)


class LiveLossPlot(Callback):
    """Redraw the loss (or any ``key``) curves after every epoch, in place, in Jupyter.

    In a notebook the figure is shown once and updated through a display handle, so the
    stored notebook keeps the final curves. Elsewhere nothing is displayed, but
    ``.figure`` still holds the up-to-date plot.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> live = LiveLossPlot()
        >>> h = History([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
        >>> live.on_train_begin(h); live.on_epoch_end(h[-1], h)
        >>> live.figure.axes[0].lines[0].get_ydata().tolist()
        [1.0, 0.5]
    """

    def __init__(self, key: str = "loss", *, figsize: tuple[float, float] = (6.0, 3.5)) -> None:
        self.key = key
        self.figsize = figsize
        self.figure: Any = None
        self._handle: Any = None

    def on_train_begin(self, history: History) -> None:
        import matplotlib.pyplot as plt

        self.figure, _ = plt.subplots(figsize=self.figsize)
        plt.close(self.figure)  # shown through the display handle only, not again at cell end
        self._handle = None
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self._handle = display(self.figure, display_id=True)
        except ImportError:
            pass
        if len(history):
            self._redraw(history)

    def _redraw(self, history: History) -> None:
        ax = self.figure.axes[0]
        ax.clear()
        history.plot(self.key, ax=ax)
        if self._handle is not None:
            self._handle.update(self.figure)

    def on_epoch_end(self, record: dict[str, Any], history: History) -> None:
        if self.figure is None:
            self.on_train_begin(history)
        else:
            self._redraw(history)


def as_callbacks(callbacks: Any) -> list[Callback]:
    """A list of ``Callback`` objects; plain functions become ``on_epoch_end`` hooks."""
    if isinstance(callbacks, (Callback,)) or callable(callbacks) and not isinstance(
            callbacks, (list, tuple)):
        callbacks = [callbacks]
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(_FunctionCallback(cb))
        else:
            raise TypeError(f"callbacks must be Callback objects or functions "
                            f"fn(record, history), got {type(cb).__name__}")
    return out
