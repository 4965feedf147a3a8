"""Self-checks for lesson 04 (optimizers and LR schedulers).

Each checker takes the student's function, runs it on a few settings, and compares it with the
real torch scheduler through ``lesson_utils.schedules.lr_trace``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch

from lesson_utils.checks._core import call_for_number, fail, passed
from lesson_utils.schedules import build_scheduler, is_per_step, lr_trace

__all__ = ["check_step_decay", "check_warmup_cosine", "check_training_loop"]


_call = call_for_number

def _compare(what: str, got: list[float], expected: list[float], hint: str) -> None:
    for epoch, (g, e) in enumerate(zip(got, expected, strict=True)):
        if not math.isclose(g, e, rel_tol=1e-6, abs_tol=1e-12):
            fail(what, f"epoch {epoch}: expected {e:.6g}, got {g:.6g}. {hint}")


def check_step_decay(fn: Callable[..., float]) -> bool:
    """Check ``fn(epoch, *, base_lr, step_size, gamma)`` against torch's ``StepLR``.

    Example:
        >>> check_step_decay(lambda epoch, *, base_lr, step_size, gamma:
        ...                  base_lr * gamma ** (epoch // step_size))
        ✅ step decay: equals torch's StepLR on 3 settings
        True
    """
    what = "step decay"
    cases = [(0.1, 3, 0.5, 10), (1.0, 1, 0.9, 6), (0.05, 10, 0.1, 35)]
    for base_lr, step_size, gamma, num_epochs in cases:
        expected = lr_trace("step", num_epochs=num_epochs, base_lr=base_lr,
                            step_size=step_size, gamma=gamma)
        got = [_call(what, fn, e, base_lr=base_lr, step_size=step_size, gamma=gamma)
               for e in range(num_epochs)]
        hint = (f"(base_lr={base_lr}, step_size={step_size}, gamma={gamma}) The LR is "
                "multiplied by gamma once every step_size epochs: how many full steps have "
                "passed at this epoch? (integer division)")
        _compare(what, got, expected, hint)
    return passed(what, f"equals torch's StepLR on {len(cases)} settings")


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
