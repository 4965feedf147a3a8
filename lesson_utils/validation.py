"""Argument checks shared by every module: one wording, one rule for the exception type.

A value of the wrong *type* raises ``TypeError``; a value of the right type but outside what is
allowed raises ``ValueError``. Every message names the argument, what was expected and what was
given, e.g. ``num_epochs must be an int >= 1, got 0``.

Example:
    >>> check_int("num_epochs", 3, minimum=1)
    3
    >>> check_int("num_epochs", 0, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: num_epochs must be an int >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["check_int", "check_number", "check_choice", "check_instance", "check_callable",
           "check_loader"]


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: Any, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``value`` as an ``int`` (NumPy integers accepted, bools refused) within the bounds.

    Example:
        >>> check_int("batch_size", np.int64(8), minimum=1)
        8
        >>> check_int("batch_size", 2.0)
        Traceback (most recent call last):
        ...
        TypeError: batch_size must be an int, got float (2.0)
    """
    bounds = (f" >= {minimum}" if minimum is not None and maximum is None else
              f" in [{minimum}, {maximum}]" if minimum is not None else
              f" <= {maximum}" if maximum is not None else "")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int{bounds}, got {type(value).__name__} "
                        f"({_describe(value)})")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int{bounds}, got {value}")
    return int(value)


def check_number(name: str, value: Any, *, minimum: float | None = None,
                 maximum: float | None = None, exclusive_minimum: bool = False) -> float:
    """``value`` as a finite ``float`` within the bounds (``exclusive_minimum``: ``> minimum``).

    Example:
        >>> check_number("lr", 0.1, minimum=0, exclusive_minimum=True)
        0.1
        >>> check_number("lr", 0, minimum=0, exclusive_minimum=True)
        Traceback (most recent call last):
        ...
        ValueError: lr must be a finite number > 0, got 0
    """
    low = (f" > {minimum:g}" if exclusive_minimum else f" >= {minimum:g}") \
        if minimum is not None else ""
    high = f" <= {maximum:g}" if maximum is not None else ""
    expected = f"a finite number{low}{' and' if low and high else ''}{high}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} "
                        f"({_describe(value)})")
    number = float(value)
    too_low = minimum is not None and (number <= minimum if exclusive_minimum
                                       else number < minimum)
    too_high = maximum is not None and number > maximum
    if not math.isfinite(number) or too_low or too_high:
        raise ValueError(f"{name} must be {expected}, got {value}")
    return number


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``; the error lists them all.

    Example:
        >>> check_choice("mode", "max", ("min", "max"))
        'max'
        >>> check_choice("mode", "best", ("min", "max"))
        Traceback (most recent call last):
        ...
        ValueError: mode must be one of 'min', 'max'; got 'best'
    """
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; "
                         f"got {_describe(value)}")
    return value


def check_instance(name: str, value: Any, types: type | tuple[type, ...], expected: str) -> Any:
    """``value`` if it is an instance of ``types``; else ``TypeError`` saying ``expected``.

    Example:
        >>> check_instance("model", 3, dict, "an nn.Module")
        Traceback (most recent call last):
        ...
        TypeError: model must be an nn.Module, got int (3)
    """
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} "
                        f"({_describe(value)})")
    return value


def check_callable(name: str, value: Any, expected: str) -> Any:
    """``value`` if it can be called; else ``TypeError`` saying ``expected``.

    Example:
        >>> check_callable("criterion", "ce", "a loss such as nn.CrossEntropyLoss()")
        Traceback (most recent call last):
        ...
        TypeError: criterion must be a loss such as nn.CrossEntropyLoss(), got str ('ce')
    """
    if not callable(value):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} "
                        f"({_describe(value)})")
    return value


def check_loader(name: str, value: Any) -> Any:
    """An iterable of ``(inputs, targets)`` batches (a ``DataLoader``, a list of pairs).

    Example:
        >>> check_loader("loader", [(1, 2)])
        [(1, 2)]
        >>> check_loader("loader", None)
        Traceback (most recent call last):
        ...
        TypeError: loader must be an iterable of (inputs, targets) batches such as a DataLoader, got NoneType (None)
    """
    if value is None or isinstance(value, (torch.Tensor, str, bytes)) or not isinstance(
            value, Iterable):
        raise TypeError(f"{name} must be an iterable of (inputs, targets) batches such as a "
                        f"DataLoader, got {type(value).__name__} ({_describe(value)})")
    return value
