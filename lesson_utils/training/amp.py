"""Mixed precision for the loop: which low-precision dtype a device uses, the autocast context,
and whether a ``GradScaler`` is needed.

Example:
    >>> amp_dtype("cpu")
    torch.bfloat16
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["amp_dtype", "autocast", "needs_scaler"]


def amp_dtype(device: str | torch.device) -> torch.dtype:
    """The low-precision dtype ``amp=True`` uses on ``device``.

    bfloat16 on the CPU (same exponent range as float32, so no loss scaling is needed), float16
    on CUDA and MPS (wider hardware support; ``fit`` pairs it with a ``GradScaler`` on CUDA).

    Example:
        >>> amp_dtype("cpu")
        torch.bfloat16
        >>> amp_dtype("cuda")
        torch.float16
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16
    if device.type in ("cuda", "mps"):
        return torch.float16
    raise ValueError(f"amp is supported on devices 'cpu', 'cuda' and 'mps', got {device.type!r}")


def autocast(amp: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``amp_dtype(device)`` when ``amp``, else a context that does nothing."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))


def needs_scaler(amp: bool, device: torch.device) -> bool:
    """float16 gradients can underflow: on CUDA, ``amp`` needs a ``GradScaler``."""
    return amp and device.type == "cuda"
