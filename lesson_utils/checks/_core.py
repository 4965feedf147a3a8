"""The two outcomes of every self-check, and small comparisons the checkers share."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

import torch

__all__ = ["CheckFailed", "passed", "fail", "check_close", "check_equal", "call_student",
           "call_for_number"]


class CheckFailed(AssertionError):
    """An exercise's answer is wrong; the message says what to look at."""


def passed(what: str, detail: str = "correct") -> bool:
    """Print the pass message for ``what`` and return ``True``.

    Example:
        >>> passed("count", "3 trainable tensors")
        ✅ count: 3 trainable tensors
        True
    """
    print(f"✅ {what}: {detail}")
    return True


def fail(what: str, hint: str) -> NoReturn:
    """Raise ``CheckFailed`` with a hint for ``what``.

    Example:
        >>> fail("loss", "it is 4x too large: did you sum instead of averaging?")
        Traceback (most recent call last):
        ...
        lesson_utils.checks._core.CheckFailed: ❌ loss: it is 4x too large: did you sum instead of averaging?
    """
    raise CheckFailed(f"❌ {what}: {hint}")


def _as_float_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def check_close(what: str, got: Any, expected: Any, *, rtol: float = 1e-5,
                atol: float = 1e-6, hint: str | None = None) -> bool:
    """Pass when ``got`` equals ``expected`` within tolerance (numbers or tensors).

    A mismatch names the shapes, or the two values and their ratio, which often tells the
    mistake (a ratio of exactly N usually means a sum where a mean was wanted).

    Example:
        >>> check_close("mean", 2.0, 2.0)
        ✅ mean: correct
        True
        >>> check_close("mean", 8.0, 2.0)
        Traceback (most recent call last):
        ...
        lesson_utils.checks._core.CheckFailed: ❌ mean: expected 2, got 8 (4x the expected value)
    """
    if got is None:
        fail(what, "got None: did the function forget to `return` its result?")
    try:
        g, e = _as_float_tensor(got), _as_float_tensor(expected)
    except (TypeError, ValueError, RuntimeError) as exc:
        fail(what, f"expected a number or tensor, got {type(got).__name__} ({exc})")
    if g.shape != e.shape:
        fail(what, f"expected shape {tuple(e.shape)}, got {tuple(g.shape)}")
    if not torch.isfinite(g).all():
        fail(what, "the result contains NaN or inf")
    if torch.allclose(g, e, rtol=rtol, atol=atol):
        return passed(what)
    if hint is None and g.numel() == 1:
        gv, ev = float(g), float(e)
        ratio = f" ({gv / ev:.3g}x the expected value)" if ev != 0 and math.isfinite(gv / ev) else ""
        fail(what, f"expected {ev:.6g}, got {gv:.6g}{ratio}")
    diff = float((g - e).abs().max())
    fail(what, hint or f"values differ (max abs difference {diff:.3g})")


def check_equal(what: str, got: Any, expected: Any, *, hint: str | None = None) -> bool:
    """Pass when ``got == expected`` (for tensors: same shape and values).

    Example:
        >>> check_equal("classes", ["a", "b"], ["a", "b"])
        ✅ classes: correct
        True
    """
    if isinstance(got, torch.Tensor) or isinstance(expected, torch.Tensor):
        ok = (isinstance(got, torch.Tensor) and isinstance(expected, torch.Tensor)
              and got.shape == expected.shape and torch.equal(got.cpu(), expected.cpu()))
    else:
        ok = got == expected
    if ok:
        return passed(what)
    fail(what, hint or f"expected {expected!r}, got {got!r}")


def call_student(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a student's ``fn`` (a function or a class) and return what it returns, turning a
    failure into a hint: not callable, not implemented yet, or an exception.

    Example:
        >>> call_student("f", lambda x: x + 1, 1)
        2
        >>> def todo():
        ...     raise NotImplementedError()
        >>> call_student("f", todo)
        Traceback (most recent call last):
        ...
        lesson_utils.checks._core.CheckFailed: ❌ f: not implemented yet: replace `raise NotImplementedError()` with your code
    """
    if not callable(fn):
        fail(what, f"expected a function, got {type(fn).__name__}")
    shown = kwargs or args
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        fail(what, "not implemented yet: replace `raise NotImplementedError()` with your code")
    except ZeroDivisionError:
        fail(what, f"calling it on {shown!r} raised ZeroDivisionError: it divided by zero; "
                   "which case has an empty denominator, and what should it score?")
    except Exception as exc:  # report the student's error as a hint, not a traceback
        fail(what, f"calling it on {shown!r} raised {type(exc).__name__}: {exc}")


def call_for_number(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Call a student's ``fn`` (see ``call_student``) and return its result as a float; None or
    a non-number becomes a hint too.

    Example:
        >>> call_for_number("f1", lambda tp, fp: 2 * tp / (2 * tp + fp), 1, 0)
        1.0
        >>> call_for_number("f1", lambda tp, fp: 2 * tp / (2 * tp + fp), 0, 0)
        Traceback (most recent call last):
        ...
        lesson_utils.checks._core.CheckFailed: ❌ f1: calling it on (0, 0) raised ZeroDivisionError: it divided by zero; which case has an empty denominator, and what should it score?
    """
    value = call_student(what, fn, *args, **kwargs)
    if value is None:
        fail(what, "got None: did the function forget to `return` its result?")
    try:
        return float(value)
    except (TypeError, ValueError):
        fail(what, f"expected a single number, got {type(value).__name__}")
