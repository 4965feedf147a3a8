"""What lets the same loop run on one process or under ``torchrun``: unwrapping a
``DistributedDataParallel`` model, the rank that writes files, sums over processes, and the
per-epoch reshuffle of a ``DistributedSampler``. On a single process every helper is a no-op.

Example:
    >>> from torch import nn
    >>> layer = nn.Linear(2, 2)
    >>> unwrap_model(layer) is layer, world_size(), is_main_process()
    (True, 1, True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["unwrap_model", "is_ddp", "world_size", "is_main_process", "all_reduce_sum",
           "set_epoch"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The real model inside a ``DistributedDataParallel``/``DataParallel`` wrapper.

    Example:
        >>> layer = torch.nn.Linear(2, 2)
        >>> unwrap_model(torch.nn.DataParallel(layer)) is layer
        True
    """
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def is_ddp(model: nn.Module) -> bool:
    """Whether ``model`` is wrapped in ``DistributedDataParallel``."""
    return isinstance(model, nn.parallel.DistributedDataParallel)


def _initialized() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the current process group (1 without one)."""
    return torch.distributed.get_world_size() if _initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (or without a process group): the process that saves and prints."""
    return not _initialized() or torch.distributed.get_rank() == 0


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over every process, in place (unchanged on a single process)."""
    if world_size() > 1:
        torch.distributed.all_reduce(values)
    return values


def set_epoch(loader: Any, epoch: int) -> None:
    """``sampler.set_epoch(epoch)`` for a ``DistributedSampler`` (or any sampler with it), so
    that each epoch shuffles differently and every rank shuffles alike.

    Example:
        >>> set_epoch([], 3)  # a loader without such a sampler: nothing to do
    """
    for sampler in (getattr(loader, "sampler", None),
                    getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return
