"""Self-checks for lesson 04 (optimizers and LR schedulers).

Each checker takes the student's answer (a prediction, a function, a loop), runs or compares it
with the real torch scheduler through ``lesson_utils.schedules.lr_trace``, and names the usual
misreading when it is wrong.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from lesson_utils.checks._core import call_for_number, fail, passed
from lesson_utils.schedules import build_scheduler, is_per_step, lr_trace

__all__ = ["PREDICTION_CASES", "prediction_traces", "check_lr_predictions", "check_warmup_cosine",
           "check_training_loop"]


_call = call_for_number


# ----------------------------------------------------------------------------- predict, then verify

# The three setups of lesson 04's prediction exercise: base LR 0.1, 8 epochs, the scheduler
# stepped once per epoch after optimizer.step() (plateau with the validation loss of the epoch).
PREDICTION_EPOCHS = 8
PREDICTION_BASE_LR = 0.1
PREDICTION_CASES: dict[str, dict[str, Any]] = {
    "warmup_step": {"name": "step", "step_size": 3, "gamma": 0.1, "warmup_epochs": 2},
    "plateau": {"name": "plateau", "patience": 1, "factor": 0.5,
                "metrics": [1.0, 0.9, 0.9, 0.95, 0.85, 0.9, 0.9, 0.9]},
    "cosine_short": {"name": "cosine", "T_max": 4},
}
_TOLERANCE = 1e-3  # predictions written to 3 decimals pass

_SHIFT_HINT = ("you wrote each epoch's LR one epoch early. The LR in effect during epoch e is "
               "the one before that epoch's scheduler.step(): epoch 0 runs at the optimizer's "
               "LR (or the warmup's first value), and a change made at the end of epoch e "
               "shows from epoch e + 1")
_REGION_HINTS = {
    "warmup_step": ("during the warmup LinearLR climbs in equal steps from base_lr / "
                    "(warmup_epochs + 1) and reaches base_lr at epoch warmup_epochs",
                    "after the warmup, SequentialLR starts StepLR at its own epoch 0: it drops "
                    "the LR every step_size epochs counted from the end of the warmup"),
    "plateau": ("ReduceLROnPlateau multiplies the LR by factor once the loss has not improved "
                "(strictly) for more than patience epochs, then counts again from zero",) * 2,
    "cosine_short": ("up to T_max the LR follows half a cosine: eta_min + (base_lr - eta_min) "
                     "* (1 + cos(pi * t / T_max)) / 2",
                     "CosineAnnealingLR is not clamped at T_max: the cosine goes on, so past "
                     "T_max the LR climbs back up. Set T_max to the length of the run"),
}


def _plateau_trace(metrics: list[float], *, patience: int, factor: float,
                   ties_improve: bool = False, cut_at_patience: bool = False) -> list[float]:
    """ReduceLROnPlateau by hand (mode min, threshold 1e-4 rel), or one of two misreadings."""
    lr, best, bad, trace = PREDICTION_BASE_LR, math.inf, 0, []
    for loss in metrics:
        trace.append(lr)
        improved = loss <= best if ties_improve else loss < best * (1 - 1e-4)
        best, bad = (loss, 0) if improved else (best, bad + 1)
        if bad >= patience + (0 if cut_at_patience else 1):
            lr, bad = lr * factor, 0
    return trace


def _known_mistakes(case: str, expected: list[float]) -> list[tuple[list[float], str]]:
    """What a usual misreading of ``case`` predicts, with the hint that explains it."""
    if case == "warmup_step":
        c = PREDICTION_CASES[case]
        w, base = c["warmup_epochs"], PREDICTION_BASE_LR
        from_zero = [v if e < w else base * c["gamma"] ** (e // c["step_size"])
                     for e, v in enumerate(expected)]
        ramp_from_0 = [base * e / w if e < w else v for e, v in enumerate(expected)]
        return [(from_zero, "StepLR's clock does not start at epoch 0 of training: "
                            "SequentialLR starts StepLR when the warmup ends, so its first "
                            "drop comes step_size epochs later (epoch 5, not epoch 3)"),
                (ramp_from_0, "the warmup does not start at 0 (a whole epoch without "
                              "learning): LinearLR starts at base_lr * start_factor, here "
                              "base_lr / (warmup_epochs + 1)")]
    if case == "plateau":
        c = PREDICTION_CASES[case]
        kw = {"patience": c["patience"], "factor": c["factor"]}
        return [(_plateau_trace(c["metrics"], ties_improve=True, **kw),
                 "an equal loss is not an improvement: the comparison is strict (and needs a "
                 "relative gain of threshold=1e-4), so a repeated 0.9 counts as a bad epoch"),
                (_plateau_trace(c["metrics"], cut_at_patience=True, **kw),
                 "patience=1 tolerates one bad epoch: the LR is cut only when the number of "
                 "bad epochs in a row is more than patience, not equal to it"),
                (_plateau_trace(c["metrics"], ties_improve=True, cut_at_patience=True, **kw),
                 "two misreadings at once: an equal loss is not an improvement (the "
                 "comparison is strict), and the cut waits for more than patience bad epochs")]
    t_max = PREDICTION_CASES[case]["T_max"]
    return [([v if e <= t_max else 0.0 for e, v in enumerate(expected)],
             _REGION_HINTS[case][1]),
            ([expected[e % t_max] for e in range(len(expected))],
             "that is CosineAnnealingWarmRestarts: plain CosineAnnealingLR never jumps back "
             "to base_lr, it climbs back along the cosine")]


def _close(got: list[float], expected: list[float]) -> bool:
    return len(got) == len(expected) and all(
        math.isclose(g, e, rel_tol=0, abs_tol=_TOLERANCE) for g, e in zip(got, expected, strict=True))


def _prediction_hint(case: str, got: list[float], expected: list[float]) -> str:
    if _close(got[:-1], expected[1:]):
        return _SHIFT_HINT
    for mistake, hint in _known_mistakes(case, expected):
        if _close(got, mistake):
            return hint
    first = next(e for e, (g, x) in enumerate(zip(got, expected, strict=True))
                 if not math.isclose(g, x, rel_tol=0, abs_tol=_TOLERANCE))
    boundary = {"warmup_step": PREDICTION_CASES["warmup_step"]["warmup_epochs"],
                "cosine_short": PREDICTION_CASES["cosine_short"]["T_max"] + 1}.get(case, 0)
    return f"epoch {first} is the first wrong one; " + _REGION_HINTS[case][first >= boundary]


def _as_predictions(what: str, predicted: Any) -> dict[str, list[float]]:
    if not isinstance(predicted, dict):
        fail(what, f"expected a dict {{case: list of {PREDICTION_EPOCHS} LRs}} with the keys "
                   f"{list(PREDICTION_CASES)}, got {type(predicted).__name__}")
    missing = [k for k in PREDICTION_CASES if k not in predicted]
    if missing:
        fail(what, f"missing the case(s) {missing}; the keys are {list(PREDICTION_CASES)}")
    out = {}
    for case in PREDICTION_CASES:
        try:
            values = [float(v) for v in predicted[case]]
        except (TypeError, ValueError):
            fail(what, f"{case}: expected a list of {PREDICTION_EPOCHS} numbers, got "
                       f"{predicted[case]!r}")
        if len(values) != PREDICTION_EPOCHS:
            fail(what, f"{case}: expected {PREDICTION_EPOCHS} LRs (epochs 0 to "
                       f"{PREDICTION_EPOCHS - 1}), got {len(values)}")
        out[case] = values
    return out


def prediction_traces() -> dict[str, list[float]]:
    """The true LR of each ``PREDICTION_CASES`` setup, from the real torch schedulers.

    Example:
        >>> [round(v, 3) for v in prediction_traces()["warmup_step"]]
        [0.033, 0.067, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
    """
    return {case: lr_trace(num_epochs=PREDICTION_EPOCHS, base_lr=PREDICTION_BASE_LR, **kwargs)
            for case, kwargs in PREDICTION_CASES.items()}


def check_lr_predictions(predicted: Any) -> bool:
    """Check predicted LRs (``{case: [LR during epoch 0, ..., 7]}``) for ``PREDICTION_CASES``
    against the real torch schedulers, and explain the misreading behind a wrong prediction.

    Example:
        >>> check_lr_predictions({k: [round(v, 3) for v in t]
        ...                       for k, t in prediction_traces().items()})
        ✅ LR predictions: all 3 right (the warmup delays StepLR's clock, plateau waits for more than patience bad epochs, cosine climbs back past T_max)
        True
    """
    what = "LR predictions"
    predicted = _as_predictions(what, predicted)
    for case, expected in prediction_traces().items():
        got = predicted[case]
        if not _close(got, expected):
            fail(what, f"{case}: the LRs are {[round(v, 4) for v in expected]}, you predicted "
                       f"{[round(v, 4) for v in got]}: {_prediction_hint(case, got, expected)}")
    return passed(what, "all 3 right (the warmup delays StepLR's clock, plateau waits for more "
                        "than patience bad epochs, cosine climbs back past T_max)")


def check_warmup_cosine(fn: Callable[..., float]) -> bool:
    """Check ``fn(epoch, *, base_lr, warmup_epochs, num_epochs, eta_min)`` against
    ``build_scheduler("cosine", warmup_epochs=w, T_max=num_epochs - w, eta_min=...)``.

    Example:
        >>> def f(epoch, *, base_lr, warmup_epochs, num_epochs, eta_min):
        ...     if epoch < warmup_epochs:
        ...         return base_lr * (epoch + 1) / (warmup_epochs + 1)
        ...     t, T = epoch - warmup_epochs, num_epochs - warmup_epochs
        ...     return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / T)) / 2
        >>> check_warmup_cosine(f)
        ✅ warmup + cosine: equals torch's LinearLR -> CosineAnnealingLR on 3 settings
        True
    """
    what = "warmup + cosine"
    cases = [(0.1, 3, 20, 0.0), (0.5, 5, 40, 0.01), (1.0, 1, 12, 0.1)]
    for base_lr, warmup, num_epochs, eta_min in cases:
        expected = lr_trace("cosine", num_epochs=num_epochs, base_lr=base_lr,
                            warmup_epochs=warmup, T_max=num_epochs - warmup, eta_min=eta_min)
        got = [_call(what, fn, e, base_lr=base_lr, warmup_epochs=warmup,
                     num_epochs=num_epochs, eta_min=eta_min) for e in range(num_epochs)]
        first_wrong = next((e for e, (g, x) in enumerate(zip(got, expected, strict=True))
                            if not math.isclose(g, x, rel_tol=1e-6, abs_tol=1e-12)), None)
        if first_wrong is None:
            continue
        if first_wrong < warmup:
            hint = ("during warmup the LR climbs in equal steps from base_lr / (warmup_epochs "
                    "+ 1) and reaches base_lr at epoch warmup_epochs")
        else:
            hint = ("after warmup the cosine starts again at t = 0 (t = epoch - warmup_epochs) "
                    "and runs for T = num_epochs - warmup_epochs epochs from base_lr to eta_min")
        fail(what, f"(base_lr={base_lr}, warmup_epochs={warmup}, num_epochs={num_epochs}, "
                   f"eta_min={eta_min}) epoch {first_wrong}: expected "
                   f"{expected[first_wrong]:.6g}, got {got[first_wrong]:.6g}; {hint}")
    return passed(what, f"equals torch's LinearLR -> CosineAnnealingLR on {len(cases)} settings")


def check_training_loop(fn: Callable[..., Any]) -> bool:
    """Check a loop ``fn(model, X, y, optimizer, scheduler, *, num_epochs, batch_size)`` that
    trains and returns the LR used for every batch, stepping the scheduler in the right place.

    It is run with a per-step schedule (``onecycle``) and a per-epoch one (``step``) under
    ``warnings`` as errors, so calling ``scheduler.step()`` before ``optimizer.step()`` fails.

    Example:
        >>> def loop(model, X, y, optimizer, scheduler, *, num_epochs, batch_size):
        ...     lrs = []
        ...     for epoch in range(num_epochs):
        ...         for i in range(0, len(X), batch_size):
        ...             lrs.append(optimizer.param_groups[0]["lr"])
        ...             optimizer.zero_grad()
        ...             loss = torch.nn.functional.cross_entropy(model(X[i:i + batch_size]),
        ...                                                      y[i:i + batch_size])
        ...             loss.backward()
        ...             optimizer.step()
        ...             if is_per_step(scheduler):
        ...                 scheduler.step()
        ...         if not is_per_step(scheduler):
        ...             scheduler.step()
        ...     return lrs
        >>> check_training_loop(loop)
        ✅ training loop: right LR at every batch, scheduler stepped after the optimizer
        True
    """
    what = "training loop"
    if not callable(fn):
        fail(what, f"expected a function, got {type(fn).__name__}")
    num_epochs, batch_size, n = 4, 8, 32
    steps = n // batch_size
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    for name, kwargs in [("onecycle", {"max_lr": 0.5, "total_steps": num_epochs * steps}),
                         ("step", {"step_size": 1, "gamma": 0.5})]:
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = build_scheduler(name, optimizer, **kwargs)  # type: ignore[arg-type]
        per_step = is_per_step(scheduler)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                got = fn(model, X, y, optimizer, scheduler, num_epochs=num_epochs,
                         batch_size=batch_size)
        except NotImplementedError:
            fail(what, "not implemented yet: replace `raise NotImplementedError()` with your code")
        except UserWarning as exc:
            fail(what, f"torch warned: {str(exc)[:90]}... Call optimizer.step() first, then "
                       "scheduler.step()")
        except Exception as exc:
            fail(what, f"with {name!r} it raised {type(exc).__name__}: {exc}")
        if got is None:
            fail(what, "got None: return the list of LRs, one per batch")
        got = [float(v) for v in got]
        if len(got) != num_epochs * steps:
            fail(what, f"expected {num_epochs * steps} LRs ({num_epochs} epochs x {steps} "
                       f"batches), got {len(got)}: record one per batch")
        trace = lr_trace(name, num_epochs=num_epochs, base_lr=0.1, steps_per_epoch=steps,
                         **kwargs)
        expected = trace if per_step else [v for v in trace for _ in range(steps)]
        if any(not math.isclose(a, b, rel_tol=1e-9) for a, b in zip(got, expected,
                                                                     strict=True)):
            within_epoch_changes = any(len(set(got[e * steps:(e + 1) * steps])) > 1
                                       for e in range(num_epochs))
            if per_step:
                hint = ("OneCycleLR is a per-batch schedule: call scheduler.step() after every "
                        "optimizer.step() (is_per_step(scheduler) is True)")
            elif within_epoch_changes:
                hint = ("StepLR counts epochs: call scheduler.step() once per epoch, after the "
                        "batches (is_per_step(scheduler) is False)")
            else:
                hint = "record the LR before the optimizer step of each batch"
            fail(what, f"with {name!r} the LRs were {[round(v, 4) for v in got[:8]]}..., "
                       f"expected {[round(v, 4) for v in expected[:8]]}...; {hint}")
    return passed(what, "right LR at every batch, scheduler stepped after the optimizer")
