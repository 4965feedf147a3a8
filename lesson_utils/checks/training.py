"""Self-checks for lesson 06 (the training loop).

Each checker runs the student's function on a tiny float64 model, compares the weights after
every call with what a correct step gives, and, when they differ, replays the classic mistakes
(no ``zero_grad``, ``step`` before ``backward``, no scaling in accumulation, ...) to say which
one it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lesson_utils.checks._core import fail, passed

__all__ = ["check_training_step", "check_accumulation_step", "check_early_stopping"]

_TOL = 1e-10


class _Probe(nn.Module):
    """A linear classifier that records whether it was in train mode at each forward."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.linear = nn.Linear(4, 3).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(3, 4, generator=g, dtype=torch.float64))
            self.linear.bias.copy_(torch.randn(3, generator=g, dtype=torch.float64))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.linear(x)


def _batches(sizes: Sequence[int], seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 4, generator=g, dtype=torch.float64),
             torch.randint(0, 3, (n,), generator=g)) for n in sizes]


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() < _TOL)


def _trajectory(batches: Sequence[tuple[torch.Tensor, torch.Tensor]], lr: float,
                variant: str) -> list[torch.Tensor]:
    """Weights after each step for the correct loop and for common mistakes."""
    model = _Probe()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for X, y in batches:
        if variant == "correct":
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.step()
        elif variant == "no_zero_grad":
            F.cross_entropy(model(X), y).backward()
            opt.step()
        elif variant == "step_before_backward":  # without zero_grad: the step lags one batch
            loss = F.cross_entropy(model(X), y)
            opt.step()
            loss.backward()
        out.append(_weights(model))
    return out


def _call(fn: Callable[..., Any], what: str, *args: Any) -> Any:
    try:
        return fn(*args)
    except NotImplementedError:
        fail(what, "not implemented yet: replace `raise NotImplementedError()` with your code")
    except Exception as exc:  # the student's error, shown with a hint
        fail(what, f"your function raised {type(exc).__name__}: {exc}")


def check_training_step(training_step: Callable[..., Any]) -> bool:
    """Check ``training_step(model, X, y, criterion, optimizer) -> float``.

    The function must put the model in train mode, clear old gradients, run the forward pass
    and the loss, back-propagate, take the optimizer step, and return the loss as a Python
    float (``loss.item()``).

    Example:
        >>> def training_step(model, X, y, criterion, optimizer):
        ...     model.train()
        ...     optimizer.zero_grad()
        ...     loss = criterion(model(X), y)
        ...     loss.backward()
        ...     optimizer.step()
        ...     return loss.item()
        >>> check_training_step(training_step)
        ✅ training_step: correct: 3 steps match a reference loop to 1e-10
        True
    """
    what = "training_step"
    if not callable(training_step):
        fail(what, f"expected a function, got {type(training_step).__name__}")
    lr = 0.5
    batches = _batches([5, 6, 7])
    expected = _trajectory(batches, lr, "correct")
    model = _Probe()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for i, (X, y) in enumerate(batches):
        model.eval()  # as if the last thing done was an evaluation
        model.modes.clear()
        before = _weights(model)
        with torch.no_grad():
            expected_loss = F.cross_entropy(model(X), y).item()
        model.modes.clear()
        value = _call(training_step, what, model, X, y, nn.CrossEntropyLoss(), opt)
        if not model.modes:
            fail(what, "the model was never called: run the forward pass `model(X)`")
        if not all(model.modes):
            fail(what, "the forward pass ran in eval mode: call `model.train()` first (Dropout "
                       "and BatchNorm behave differently in training)")
        if isinstance(value, torch.Tensor):
            fail(what, "return `loss.item()`, a Python float, not the loss tensor: a tensor "
                       "keeps its whole autograd graph (and memory) alive")
        if not isinstance(value, float):
            fail(what, f"return the loss as a float (`loss.item()`), got "
                       f"{type(value).__name__}")
        after = _weights(model)
        if _close(after, before):
            if all(p.grad is None or not p.grad.abs().sum() for p in model.parameters()):
                fail(what, "the weights did not change and there are no gradients: call "
                           "`loss.backward()` (it computes the gradients) before "
                           "`optimizer.step()` (it applies them), and do not zero the "
                           "gradients between the two")
            fail(what, "the weights did not change although gradients exist: call "
                       "`optimizer.step()` after `loss.backward()`")
        if not _close(after, expected[i]):
            for variant, hint in [
                ("no_zero_grad", "gradients add up across batches: call "
                                 "`optimizer.zero_grad()` at the start of every step"),
                ("step_before_backward", "the step used the previous batch's gradients: call "
                                         "`loss.backward()` before `optimizer.step()`"),
            ]:
                if _close(after, _trajectory(batches[:i + 1], lr, variant)[i]):
                    fail(what, hint)
            fail(what, f"after step {i + 1} the weights differ from a correct step (max abs "
                       f"difference {float((after - expected[i]).abs().max()):.3g})")
        if not math.isclose(value, expected_loss, rel_tol=1e-9):
            fail(what, f"returned loss {value:.6g}, expected {expected_loss:.6g} (the loss of "
                       f"this batch before the step)")
    return passed(what, f"correct: {len(batches)} steps match a reference loop to {_TOL:g}")


def check_accumulation_step(accumulation_step: Callable[..., Any]) -> bool:
    """Check ``accumulation_step(model, micro_batches, criterion, optimizer)``: one optimizer
    update from a list of ``(X, y)`` micro-batches that equals one step on their concatenation.

    Each micro-batch's mean loss must be weighted by its share of the samples, ``n_i / N``,
    so unequal micro-batches (an incomplete last group) are averaged correctly.

    Example:
        >>> def accumulation_step(model, micro_batches, criterion, optimizer):
        ...     total = sum(len(y) for _, y in micro_batches)
        ...     optimizer.zero_grad()
        ...     for X, y in micro_batches:
        ...         (criterion(model(X), y) * len(y) / total).backward()
        ...     optimizer.step()
        >>> check_accumulation_step(accumulation_step)
        ✅ accumulation_step: correct: equals one big batch for micro-batches [4, 4, 4] and [4, 4, 2]
        True
    """
    what = "accumulation_step"
    if not callable(accumulation_step):
        fail(what, f"expected a function, got {type(accumulation_step).__name__}")
    lr = 0.5
    for sizes in ([4, 4, 4], [4, 4, 2]):
        micro = _batches(sizes, seed=2)
        X = torch.cat([x for x, _ in micro])
        y = torch.cat([t for _, t in micro])
        big = _Probe()
        opt = torch.optim.SGD(big.parameters(), lr=lr)
        opt.zero_grad()
        F.cross_entropy(big(X), y).backward()
        opt.step()
        expected = _weights(big)

        model = _Probe()
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        with torch.no_grad():  # a stale gradient, as a previous step may leave behind
            for p in model.parameters():
                p.grad = torch.ones_like(p)
        before = _weights(model)
        _call(accumulation_step, what, model, [(a.clone(), b.clone()) for a, b in micro],
              nn.CrossEntropyLoss(), opt)
        after = _weights(model)
        if _close(after, expected):
            continue
        if _close(after, before):
            fail(what, "the weights did not change: back-propagate each micro-batch, then call "
                       "`optimizer.step()` once at the end")
        # Replay the usual mistakes: the update direction tells them apart.
        update = after - before
        big_update = expected - before
        candidates = {}
        for name, weights in {
            "sum": [1.0] * len(sizes),
            "divide_by_count": [1.0 / len(sizes)] * len(sizes),
            "last_only": [0.0] * (len(sizes) - 1) + [sizes[-1] / sum(sizes)],
        }.items():
            probe = _Probe()
            o = torch.optim.SGD(probe.parameters(), lr=lr)
            o.zero_grad()
            for (xb, yb), w in zip(micro, weights, strict=True):
                (F.cross_entropy(probe(xb), yb) * w).backward()
            o.step()
            candidates[name] = _weights(probe)
        stale = _weights(_Probe()) - lr * 1.0 + big_update
        if _close(after, stale):
            fail(what, "the old gradients were still there: call `optimizer.zero_grad()` once "
                       "before the first micro-batch")
        if _close(after, candidates["sum"]):
            fail(what, f"the update is {len(sizes)}x too large: each micro-batch's mean loss "
                       f"must be scaled (by n_i / N) before backward()")
        if _close(after, candidates["divide_by_count"]):
            fail(what, "dividing by the number of micro-batches is right only when they are all "
                       "the same size; with sizes " + str(sizes) + " weight each loss by "
                       "n_i / N (its share of the samples)")
        if _close(after, candidates["last_only"]):
            fail(what, "only the last micro-batch counted: do not call `zero_grad()` between "
                       "micro-batches (gradients must add up)")
        ratio = float(update.norm() / big_update.norm())
        fail(what, f"with micro-batches {sizes} the update differs from one big batch "
                   f"(its size is {ratio:.3g}x the expected one)")
    return passed(what, "correct: equals one big batch for micro-batches [4, 4, 4] and "
                        "[4, 4, 2]")


def _reference_stop(values: Sequence[float], patience: int,
                    min_delta: float) -> tuple[int, int | None]:
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, v in enumerate(values, start=1):
        if v < best - min_delta:
            best, best_epoch, wait = v, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return best_epoch, epoch
    return best_epoch, None


_STOP_CASES: list[tuple[list[float], int, float]] = [
    ([1.0, 0.8, 0.7, 0.72, 0.71, 0.69, 0.75], 2, 0.0),
    ([1.0, 0.8, 0.7, 0.72, 0.71, 0.69, 0.75], 3, 0.0),
    ([1.0, 0.9, 0.85, 0.84, 0.835, 0.83], 2, 0.02),  # tiny improvements do not count
    ([1.0, 0.9, 0.8, 0.7], 1, 0.0),  # never stops
    ([0.5, 0.5, 0.5], 2, 0.0),  # equal is not better
]


def check_early_stopping(early_stopping: Callable[..., Any]) -> bool:
    """Check ``early_stopping(val_losses, patience, min_delta) -> (best_epoch, stop_epoch)``.

    Epochs count from 1. ``stop_epoch`` is the epoch after which training stops (``patience``
    epochs in a row without a new best, where "better" means lower by more than
    ``min_delta``), or ``None`` when it never stops.

    Example:
        >>> def early_stopping(val_losses, patience, min_delta=0.0):
        ...     best, best_epoch, wait = float("inf"), 0, 0
        ...     for epoch, v in enumerate(val_losses, start=1):
        ...         if v < best - min_delta:
        ...             best, best_epoch, wait = v, epoch, 0
        ...         else:
        ...             wait += 1
        ...             if wait >= patience:
        ...                 return best_epoch, epoch
        ...     return best_epoch, None
        >>> check_early_stopping(early_stopping)
        ✅ early_stopping: correct on 5 loss curves
        True
    """
    what = "early_stopping"
    if not callable(early_stopping):
        fail(what, f"expected a function, got {type(early_stopping).__name__}")
    for values, patience, min_delta in _STOP_CASES:
        expected = _reference_stop(values, patience, min_delta)
        got = _call(early_stopping, what, list(values), patience, min_delta)
        if not isinstance(got, tuple) or len(got) != 2:
            fail(what, f"return a tuple (best_epoch, stop_epoch), got {got!r}")
        if tuple(got) == expected:
            continue
        case = f"for val_losses={values}, patience={patience}, min_delta={min_delta}"
        if got[0] == expected[0] - 1 or (expected[1] is not None and got[1] == expected[1] - 1):
            fail(what, f"{case}: expected {expected}, got {got}: epochs count from 1 "
                       f"(enumerate(values, start=1))")
        if min_delta and got == _reference_stop(values, patience, 0.0):
            fail(what, f"{case}: expected {expected}, got {got}: an improvement must beat the "
                       f"best by more than min_delta")
        fail(what, f"{case}: expected (best_epoch, stop_epoch) = {expected}, got {got}")
    return passed(what, f"correct on {len(_STOP_CASES)} loss curves")

