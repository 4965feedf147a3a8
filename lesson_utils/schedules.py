"""Learning-rate schedules: a thin, checked layer over ``torch.optim.lr_scheduler``.

Nothing here re-implements a schedule. ``build_scheduler`` maps a short name to the torch class
(and optionally prepends a linear warmup through ``SequentialLR``); ``lr_trace`` runs that real
scheduler on a dummy parameter, in the same order a training loop would, and records the LR in
effect at each epoch (or step). A plotted trace is therefore exactly what training would see.

The call order that every loop here follows, and that torch expects since 1.1::

    for epoch in range(num_epochs):
        for X, y in loader:
            ...
            optimizer.step()
            if is_per_step(scheduler):   # OneCycleLR, CyclicLR: once per batch
                scheduler.step()
        val_loss = evaluate(...)
        if not is_per_step(scheduler):   # everything else: once per epoch
            scheduler.step(val_loss) if plateau else scheduler.step()
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch.optim import Optimizer
from torch.optim import lr_scheduler as sched

from lesson_utils.validation import check_int, check_number

__all__ = [
    "SCHEDULE_NAMES",
    "ScheduleName",
    "ScheduleSettings",
    "build_scheduler",
    "compare_schedules",
    "is_per_step",
    "lr_trace",
    "synthetic_val_loss",
]

ScheduleName = Literal[
    "constant", "step", "multistep", "exponential", "cosine", "cosine_warm_restarts",
    "onecycle", "plateau",
]

# name -> torch class; kwargs are passed through unchanged.
_CLASSES: dict[str, type] = {
    "constant": sched.ConstantLR,
    "step": sched.StepLR,
    "multistep": sched.MultiStepLR,
    "exponential": sched.ExponentialLR,
    "cosine": sched.CosineAnnealingLR,
    "cosine_warm_restarts": sched.CosineAnnealingWarmRestarts,
    "onecycle": sched.OneCycleLR,
    "plateau": sched.ReduceLROnPlateau,
}
SCHEDULE_NAMES: tuple[str, ...] = tuple(_CLASSES)

# ConstantLR's own defaults (factor=1/3 for 5 epochs) are a warmup, not a constant: "constant"
# means "keep the optimizer's LR", so factor=1.0 unless the caller asks for torch's behaviour.
_DEFAULTS: dict[str, dict[str, Any]] = {"constant": {"factor": 1.0, "total_iters": 0}}

# Schedulers that must be stepped after every batch rather than every epoch.
_PER_STEP_CLASSES = (sched.OneCycleLR, sched.CyclicLR)


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {list(SCHEDULE_NAMES)}; got "
                        f"{type(name).__name__} ({name!r})")
    if name not in _CLASSES:
        raise ValueError(f"unknown schedule name {name!r}; valid names are {list(SCHEDULE_NAMES)}")
    return name


def _check_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Name a missing required argument or an unexpected one before torch does (its messages
    are either generic or name the class rather than the schedule)."""
    cls = _CLASSES[name]
    params = {k: p for k, p in inspect.signature(cls.__init__).parameters.items()
              if k not in ("self", "optimizer")}
    unexpected = sorted(set(kwargs) - set(params))
    if unexpected:
        raise TypeError(f"{name!r} ({cls.__name__}) got unexpected argument(s) {unexpected}; "
                        f"it accepts {sorted(params)}")
    missing = [k for k, p in params.items()
               if p.default is inspect.Parameter.empty and k not in kwargs]
    if name == "onecycle" and kwargs.get("total_steps") is None and (
            kwargs.get("epochs") is None or kwargs.get("steps_per_epoch") is None):
        missing.append("total_steps (or epochs and steps_per_epoch)")
    if missing:
        raise ValueError(f"schedule {name!r} ({cls.__name__}) needs the argument(s) "
                         f"{', '.join(missing)}; got {sorted(kwargs) or 'none'}")


def build_scheduler(name: ScheduleName, optimizer: Optimizer, *, warmup_epochs: int = 0,
                    warmup_start_factor: float | None = None,
                    **kwargs: Any) -> sched.LRScheduler:
    """Build the torch scheduler called ``name`` for ``optimizer``.

    Names and classes: ``constant`` (ConstantLR, ``factor=1.0`` unless given), ``step``
    (StepLR), ``multistep`` (MultiStepLR), ``exponential`` (ExponentialLR), ``cosine``
    (CosineAnnealingLR), ``cosine_warm_restarts`` (CosineAnnealingWarmRestarts), ``onecycle``
    (OneCycleLR, stepped per batch) and ``plateau`` (ReduceLROnPlateau, ``step(val_loss)``).

    Args:
        name: one of ``SCHEDULE_NAMES``.
        optimizer: the optimizer whose ``param_groups[i]["lr"]`` the scheduler sets.
        warmup_epochs: when > 0, a ``LinearLR`` ramp runs first for this many scheduler steps
            and the named schedule starts after it (``SequentialLR``); the named schedule's own
            clock (``T_max``, ``step_size``, ...) starts at the end of the warmup. Not available
            for ``plateau`` (torch's ``SequentialLR`` refuses it) or ``onecycle`` (it has its own
            warmup: ``pct_start``).
        warmup_start_factor: the warmup's first LR as a fraction of the base LR; by default
            ``1 / (warmup_epochs + 1)``, so the ramp climbs in equal steps and reaches the base LR
            exactly when the named schedule takes over.
        **kwargs: passed unchanged to the torch class (``step_size``, ``gamma``, ``T_max``,
            ``eta_min``, ``T_0``, ``max_lr``, ``total_steps``, ``patience``, ``factor``, ...).

    Returns:
        The scheduler (a ``torch.optim.lr_scheduler.LRScheduler``).

    Raises:
        ValueError: unknown name (the message lists the valid ones), a missing required
            argument (the message names it), or warmup with ``plateau``/``onecycle``.
        TypeError: an argument the torch class does not accept, or a non-optimizer.

    Example:
        >>> p = torch.nn.Parameter(torch.zeros(1))
        >>> opt = torch.optim.SGD([p], lr=0.1)
        >>> s = build_scheduler("step", opt, step_size=2, gamma=0.5)
        >>> type(s).__name__
        'StepLR'
        >>> type(build_scheduler("cosine", opt, T_max=10, warmup_epochs=3)).__name__
        'SequentialLR'
        >>> build_scheduler("cosine", opt)
        Traceback (most recent call last):
        ...
        ValueError: schedule 'cosine' (CosineAnnealingLR) needs the argument(s) T_max; got none
    """
    name = _check_name(name)  # type: ignore[assignment]
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    warmup_epochs = check_int("warmup_epochs", warmup_epochs, minimum=0)
    kwargs = {**_DEFAULTS.get(name, {}), **kwargs}
    _check_kwargs(name, kwargs)
    if warmup_epochs == 0:
        if warmup_start_factor is not None:
            raise ValueError("warmup_start_factor needs warmup_epochs > 0, got warmup_epochs=0")
        return _CLASSES[name](optimizer, **kwargs)
    if name in ("plateau", "onecycle"):
        reason = ("torch's SequentialLR cannot chain ReduceLROnPlateau" if name == "plateau"
                  else "OneCycleLR has its own warmup: set pct_start instead")
        raise ValueError(f"warmup_epochs must be 0 for {name!r} ({reason}), got {warmup_epochs}")
    if warmup_start_factor is None:
        warmup_start_factor = 1.0 / (warmup_epochs + 1)
    start = check_number("warmup_start_factor", warmup_start_factor, minimum=0,
                         exclusive_minimum=True)
    if start > 1:
        raise ValueError(f"warmup_start_factor must be in (0, 1], got {start}")
    warmup = sched.LinearLR(optimizer, start_factor=start, end_factor=1.0,
                            total_iters=warmup_epochs)
    main = _CLASSES[name](optimizer, **kwargs)
    return sched.SequentialLR(optimizer, schedulers=[warmup, main], milestones=[warmup_epochs])


def is_per_step(scheduler: Any) -> bool:
    """True if ``scheduler`` must be stepped after every batch (``OneCycleLR``, ``CyclicLR``),
    False if once per epoch. A ``SequentialLR``/``ChainedScheduler`` is per-step when any
    scheduler inside it is.

    Args:
        scheduler: a torch LR scheduler (``ReduceLROnPlateau`` included).

    Returns:
        Whether the training loop should call ``scheduler.step()`` per batch.

    Example:
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> is_per_step(build_scheduler("onecycle", opt, max_lr=0.1, total_steps=100))
        True
        >>> is_per_step(build_scheduler("cosine", opt, T_max=10))
        False
    """
    if not isinstance(scheduler, sched.LRScheduler):
        raise TypeError(f"scheduler must be a torch.optim.lr_scheduler.LRScheduler (or "
                        f"ReduceLROnPlateau), got {type(scheduler).__name__}")
    if isinstance(scheduler, _PER_STEP_CLASSES):
        return True
    inner = getattr(scheduler, "_schedulers", None)  # SequentialLR, ChainedScheduler
    return bool(inner) and any(is_per_step(s) for s in inner)


def _check_metrics(metrics: Any, num_epochs: int) -> list[float]:
    if isinstance(metrics, (str, bytes)) or not isinstance(metrics, (Sequence, np.ndarray,
                                                                     torch.Tensor)):
        raise TypeError(f"metrics must be a sequence of numbers (one validation loss per "
                        f"epoch), got {type(metrics).__name__}")
    values = [float(m) for m in metrics]
    if len(values) != num_epochs:
        raise ValueError(f"metrics must have one value per epoch (num_epochs={num_epochs}), "
                         f"got {len(values)} values")
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"metrics must be finite, got NaN or inf at epoch(s) {bad[:5]}")
    return values


def lr_trace(name: ScheduleName, *, num_epochs: int, base_lr: float = 0.1,
             steps_per_epoch: int = 1, metrics: Sequence[float] | None = None,
             **kwargs: Any) -> list[float]:
    """The LR a training loop would use, simulated with the real torch scheduler.

    A dummy parameter and an SGD optimizer with ``lr=base_lr`` go through the loop in the
    module docstring (``optimizer.step()`` first, then ``scheduler.step()``) without any data,
    so the trace equals what torch does in training and no call-order warning is raised.
    (Schedulers never look at the gradients, so the dummy run is exact; the tests compare it
    with real training loops.)

    Args:
        name: one of ``SCHEDULE_NAMES``.
        num_epochs: how many epochs to simulate.
        base_lr: the optimizer's initial LR. For ``onecycle`` it is also the default
            ``max_lr``.
        steps_per_epoch: batches per epoch. It matters only for per-step schedules
            (``onecycle``), whose default ``total_steps`` is ``num_epochs * steps_per_epoch``.
        metrics: ``plateau`` only and required there: the validation loss after each epoch
            (``num_epochs`` values); the value after epoch ``e`` decides the LR of epoch
            ``e + 1``.
        **kwargs: passed to ``build_scheduler`` (``warmup_epochs`` and the torch arguments).

    Returns:
        ``num_epochs`` floats (the LR in effect during each epoch, starting with the initial
        LR), or ``num_epochs * steps_per_epoch`` floats (one per batch) for a per-step
        schedule when ``steps_per_epoch > 1``.

    Example:
        >>> lr_trace("step", num_epochs=5, base_lr=1.0, step_size=2, gamma=0.5)
        [1.0, 1.0, 0.5, 0.5, 0.25]
        >>> lr_trace("plateau", num_epochs=5, base_lr=1.0, patience=1, factor=0.5,
        ...          metrics=[3.0, 2.0, 2.0, 2.0, 2.0])
        [1.0, 1.0, 1.0, 1.0, 0.5]
    """
    name = _check_name(name)  # type: ignore[assignment]
    num_epochs = check_int("num_epochs", num_epochs, minimum=1)
    base_lr = check_number("base_lr", base_lr, minimum=0, exclusive_minimum=True)
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    if name == "plateau":
        if metrics is None:
            raise ValueError("'plateau' (ReduceLROnPlateau) reacts to a validation loss: pass "
                             f"metrics, one value per epoch (num_epochs={num_epochs})")
        values = _check_metrics(metrics, num_epochs)
    elif metrics is not None:
        raise ValueError(f"metrics is used only by 'plateau', not by {name!r}; leave it None")
    if name == "onecycle":
        kwargs.setdefault("max_lr", base_lr)
        if kwargs.get("total_steps") is None and kwargs.get("epochs") is None:
            kwargs["total_steps"] = num_epochs * steps_per_epoch

    param = torch.nn.Parameter(torch.zeros(1))  # no grad: optimizer.step() leaves it alone
    optimizer = torch.optim.SGD([param], lr=base_lr)
    scheduler = build_scheduler(name, optimizer, **kwargs)  # type: ignore[arg-type]
    group = optimizer.param_groups[0]
    per_step = is_per_step(scheduler)
    record_steps = per_step and steps_per_epoch > 1
    trace: list[float] = []
    for epoch in range(num_epochs):
        if not record_steps:
            trace.append(float(group["lr"]))
        for _ in range(steps_per_epoch if per_step else 1):
            if record_steps:
                trace.append(float(group["lr"]))
            if epoch == 0:
                # optimizer.step() before scheduler.step(), as in training. Once is enough:
                # torch checks the order only at the first scheduler.step(), and later calls
                # would change nothing (the dummy parameter has no gradient) but cost 25 us each.
                optimizer.step()
            if per_step:
                scheduler.step()
        if not per_step:
            if name == "plateau":
                scheduler.step(values[epoch])
            else:
                scheduler.step()
    return trace


def synthetic_val_loss(num_epochs: int, *, start: float = 2.0, floor: float = 0.4,
                       decay_epochs: float | None = None, noise: float = 0.005,
                       seed: int = 0) -> list[float]:
    """A made-up validation loss that falls fast, then flattens: food for ``plateau``.

    ``floor + (start - floor) * exp(-epoch / decay_epochs)`` times ``1 + noise * N(0, 1)``
    (seeded). It does not respond to the LR: it only shows when ``ReduceLROnPlateau`` would
    fire on a curve of this shape.

    Args:
        num_epochs: length of the curve.
        start: the loss at epoch 0 (before noise).
        floor: the value it flattens towards.
        decay_epochs: epochs for the gap to the floor to shrink by e; default
            ``num_epochs / 10``, so the curve is flat for the last half or so of the run.
        noise: relative noise; 0 for a smooth curve.
        seed: seed of the noise.

    Returns:
        ``num_epochs`` floats.

    Example:
        >>> [round(v, 3) for v in synthetic_val_loss(4, noise=0.0, decay_epochs=1.0)]
        [2.0, 0.989, 0.617, 0.48]
    """
    num_epochs = check_int("num_epochs", num_epochs, minimum=1)
    if decay_epochs is None:
        decay_epochs = max(num_epochs / 10, 1.0)
    decay_epochs = check_number("decay_epochs", decay_epochs, minimum=0, exclusive_minimum=True)
    if not (math.isfinite(start) and math.isfinite(floor) and start > floor):
        raise ValueError(f"start must be greater than floor (both finite), got start={start}, "
                         f"floor={floor}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be >= 0, got {noise}")
    epochs = np.arange(num_epochs)
    clean = floor + (start - floor) * np.exp(-epochs / decay_epochs)
    rng = np.random.default_rng(seed)
    return (clean * (1 + noise * rng.standard_normal(num_epochs))).tolist()


@dataclass(frozen=True)
class ScheduleSettings:
    """One set of knobs for comparing schedules side by side (what the playground's sliders
    set). ``kwargs_for(name)`` turns it into the arguments of each torch scheduler."""

    num_epochs: int = 100       # length of the comparison
    base_lr: float = 0.1        # the optimizer's LR; also OneCycle's peak (max_lr)
    step_size: int = 30         # StepLR: decay every step_size epochs
    gamma: float = 0.1          # StepLR/MultiStepLR factor; ExponentialLR uses gamma**(1/step_size)
    T_max: int | None = None    # CosineAnnealingLR: epochs from base_lr to eta_min (None: the
                                # rest of the run after warmup; past T_max the LR climbs again)
    eta_min: float = 0.0        # cosine and warm restarts: the lowest LR
    T_0: int = 25               # CosineAnnealingWarmRestarts: length of the first cycle
    warmup_epochs: int = 0      # linear warmup before every schedule that supports it
    patience: int = 5           # ReduceLROnPlateau: bad epochs tolerated before a cut
    factor: float = 0.1         # ReduceLROnPlateau: multiply the LR by this at a cut
    threshold: float = 1e-4     # ReduceLROnPlateau: relative improvement that counts (torch's)
    pct_start: float = 0.3      # OneCycleLR: fraction of the run spent warming up

    def __post_init__(self) -> None:
        for arg, minimum in (("num_epochs", 1), ("step_size", 1), ("T_0", 1),
                             ("warmup_epochs", 0), ("patience", 0)):
            check_int(arg, getattr(self, arg), minimum=minimum)
        if self.T_max is not None:
            check_int("T_max", self.T_max, minimum=1)
        check_number("base_lr", self.base_lr, minimum=0, exclusive_minimum=True)
        for arg in ("gamma", "factor", "pct_start", "threshold"):
            value = check_number(arg, getattr(self, arg), minimum=0, exclusive_minimum=True)
            if value >= 1:
                raise ValueError(f"{arg} must be in (0, 1), got {value}")
        if not (math.isfinite(self.eta_min) and 0 <= self.eta_min):
            raise ValueError(f"eta_min must be >= 0, got {self.eta_min}")

    def kwargs_for(self, name: ScheduleName) -> dict[str, Any]:
        """``lr_trace`` keyword arguments for ``name`` under these settings.

        ExponentialLR gets ``gamma ** (1 / step_size)``: the smooth schedule that meets StepLR at
        every multiple of ``step_size``. MultiStepLR cuts at 1/2 and 3/4 of the run. OneCycleLR
        peaks at ``base_lr`` and is traced one step per epoch (``total_steps=num_epochs``). Warmup is
        left out for ``plateau`` and ``onecycle``, which cannot take it (see
        ``build_scheduler``).

        Example:
            >>> ScheduleSettings(num_epochs=40).kwargs_for("multistep")
            {'milestones': [20, 30], 'gamma': 0.1}
        """
        name = _check_name(name)  # type: ignore[assignment]
        kw: dict[str, Any]
        if name == "constant":
            kw = {}
        elif name == "step":
            kw = {"step_size": self.step_size, "gamma": self.gamma}
        elif name == "multistep":
            kw = {"milestones": [self.num_epochs // 2, (3 * self.num_epochs) // 4],
                  "gamma": self.gamma}
        elif name == "exponential":
            kw = {"gamma": self.gamma ** (1.0 / self.step_size)}
        elif name == "cosine":
            t_max = self.T_max if self.T_max is not None else max(
                self.num_epochs - self.warmup_epochs, 1)
            kw = {"T_max": t_max, "eta_min": self.eta_min}
        elif name == "cosine_warm_restarts":
            kw = {"T_0": self.T_0, "eta_min": self.eta_min}
        elif name == "onecycle":
            kw = {"max_lr": self.base_lr, "total_steps": self.num_epochs,
                  "pct_start": self.pct_start}
        elif name == "plateau":
            kw = {"patience": self.patience, "factor": self.factor,
                  "threshold": self.threshold}
        else:  # pragma: no cover - _check_name already refused it
            raise ValueError(f"unknown schedule name {name!r}; valid: {list(SCHEDULE_NAMES)}")
        if self.warmup_epochs and name not in ("plateau", "onecycle"):
            kw["warmup_epochs"] = self.warmup_epochs
        return kw


def compare_schedules(names: Sequence[ScheduleName], settings: ScheduleSettings | None = None,
                      *, val_loss: Sequence[float] | None = None,
                      cache: dict[tuple, list[float]] | None = None) -> dict[str, list[float]]:
    """LR traces of several schedules under one ``ScheduleSettings`` (per epoch).

    Args:
        names: schedule names, each at most once.
        settings: the knobs; ``ScheduleSettings()`` when None.
        val_loss: the validation-loss curve ``plateau`` reacts to; by default
            ``synthetic_val_loss(settings.num_epochs)``.
        cache: a dict to keep between calls (a widget's): a trace whose inputs (name, length,
            base LR, that scheduler's own arguments, the loss ``plateau`` watched) did not change
            since the last call is taken from it instead of running torch's scheduler again. It
            keeps only the traces of the last call.

    Returns:
        ``{name: trace}`` in the order of ``names``.

    Example:
        >>> traces = compare_schedules(["step", "cosine"], ScheduleSettings(num_epochs=60))
        >>> [round(traces["step"][i], 4) for i in (0, 29, 30, 59)]
        [0.1, 0.1, 0.01, 0.01]
        >>> cache = {}
        >>> _ = compare_schedules(["step", "cosine"], ScheduleSettings(gamma=0.1), cache=cache)
        >>> _ = compare_schedules(["step", "cosine"], ScheduleSettings(gamma=0.5), cache=cache)
        >>> sorted(key[0] for key in cache)  # cosine reused, step computed again
        ['cosine', 'step']
    """
    if settings is None:
        settings = ScheduleSettings()
    if not isinstance(settings, ScheduleSettings):
        raise TypeError(f"settings must be a ScheduleSettings, got {type(settings).__name__}")
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of schedule names, got the str {names!r}")
    names = [_check_name(n) for n in names]  # type: ignore[misc]
    if len(set(names)) != len(names):
        raise ValueError(f"names must not repeat a schedule, got {names}")
    traces: dict[str, list[float]] = {}
    used: dict[tuple, list[float]] = {}
    for name in names:
        metrics = None
        if name == "plateau":
            metrics = (val_loss if val_loss is not None
                       else synthetic_val_loss(settings.num_epochs))
        kwargs = settings.kwargs_for(name)
        key = (name, settings.num_epochs, settings.base_lr, repr(sorted(kwargs.items())),
               None if metrics is None else tuple(float(m) for m in metrics))
        if cache is not None and key in cache:
            trace = cache[key]
        else:
            trace = lr_trace(name, num_epochs=settings.num_epochs, base_lr=settings.base_lr,
                             metrics=metrics, **kwargs)
        used[key] = trace
        traces[name] = list(trace)  # a copy: the caller may change it
    if cache is not None:
        cache.clear()
        cache.update(used)
    return traces
