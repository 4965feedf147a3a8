"""Checkpoints that are never lost and never run code.

* ``save_checkpoint`` writes to a temporary file in the same folder, flushes it to disk, then
  renames it over the target with ``os.replace`` (atomic on POSIX and Windows). A crash or a full
  disk mid-write leaves the previous checkpoint intact.
* ``load_checkpoint`` always uses ``torch.load(..., weights_only=True)``: only tensors and plain
  Python containers are unpickled, so a file crafted to run code is refused, not executed.
* Loading into a model of another architecture lists the missing and unexpected keys and the
  shape mismatches instead of torch's long traceback.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "save_checkpoint",
    "load_checkpoint",
]

PathLike = str | os.PathLike


class CheckpointError(RuntimeError):
    """A checkpoint could not be used: unsafe, corrupt, or for another architecture."""


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write_bytes(d / "a.txt", b"hello").read_bytes()
        b'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file private (0600); give it the mode a plain open() would, or
        # keep the mode of the file it replaces.
        if path.exists():
            mode = path.stat().st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp_name, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return path


def _state_of(obj: Any) -> Any:
    if obj is None:
        return None
    # DistributedDataParallel and DataParallel wrap the real model in `.module`.
    inner = getattr(obj, "module", None)
    if isinstance(obj, nn.Module) and isinstance(inner, nn.Module):
        obj = inner
    return obj.state_dict()


def save_checkpoint(
    path: PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    epoch: int | None = None,
    **extra: Any,
) -> Path:
    """Save model (and optionally optimizer, scheduler, epoch and extras) to ``path`` atomically.

    The file is a plain dict: ``{"model": state_dict, "optimizer": ..., "scheduler": ...,
    "epoch": ..., "extra": {...}, "torch_version": ...}``. Everything in it must be loadable with
    ``weights_only=True``: tensors, numbers, strings, lists, tuples and dicts.

    Args:
        path: the target file; its folder is created if needed.
        model: the model whose ``state_dict()`` is saved (a DDP wrapper is unwrapped).
        optimizer: optional optimizer to save.
        scheduler: optional LR scheduler to save.
        epoch: optional number of completed epochs.
        **extra: anything else worth keeping (metrics, config, RNG state).

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> model = nn.Linear(2, 1)
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "ck.pt", model=model, epoch=3)
        >>> load_checkpoint(p, model=nn.Linear(2, 1))["epoch"]
        3
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    payload = {
        "model": _state_of(model),
        "optimizer": _state_of(optimizer),
        "scheduler": _state_of(scheduler),
        "epoch": epoch,
        "extra": dict(extra),
        "torch_version": str(torch.__version__),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state_dict)`` with an error that says what does not fit.

    Example:
        >>> _load_state_dict_checked(nn.Linear(2, 1), nn.Linear(3, 1).state_dict())
        Traceback (most recent call last):
        ...
        lesson_utils.checkpoints.CheckpointError: checkpoint does not fit Linear: shape mismatch: weight: checkpoint (1, 3) vs model (1, 2)
    """
    target = model.module if isinstance(getattr(model, "module", None), nn.Module) else model
    own = target.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict
        and hasattr(state_dict[k], "shape")
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}"
                         + (" ..." if len(missing) > 10 else ""))
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}"
                         + (" ..." if len(unexpected) > 10 else ""))
        if mismatched:
            parts.append("shape mismatch: " + "; ".join(mismatched[:10]))
        raise CheckpointError(
            f"checkpoint does not fit {type(target).__name__}: " + "; ".join(parts)
        )
    target.load_state_dict(state_dict)


def _unpickler_reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines()]
    reason = [line for line in lines if "Unsupported global" in line or "WeightsUnpickler" in line]
    return (reason or lines or ["unknown"])[0]


def load_checkpoint(
    path: PathLike,
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and restore what you pass in.

    Args:
        path: a file written by ``save_checkpoint`` (or a bare state dict from ``torch.save``).
        model, optimizer, scheduler: objects to restore in place, when given.
        map_location: where tensors go; ``"cpu"`` works on every machine.

    Returns:
        The checkpoint dict (``model``, ``optimizer``, ``scheduler``, ``epoch``, ``extra``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file would run code when unpickled, is corrupt, or does not fit
            ``model``.

    Example:
        >>> import tempfile, pathlib
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "ck.pt", model=nn.Linear(2, 1))
        >>> sorted(load_checkpoint(p))
        ['epoch', 'extra', 'model', 'optimizer', 'scheduler', 'torch_version']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path.name}: it contains objects that would run code when "
            "unpickled, and this course only loads checkpoints with weights_only=True. "
            "Load only files you created, or re-save the state_dict from a trusted source. "
            f"(torch said: {_unpickler_reason(exc)})"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"could not read checkpoint {path}: it is corrupt or truncated "
                              f"({exc})") from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path.name} holds a {type(checkpoint).__name__}, expected a dict")
    if "model" not in checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        checkpoint = {"model": checkpoint, "optimizer": None, "scheduler": None,
                      "epoch": None, "extra": {}, "torch_version": None}
    if model is not None:
        _load_state_dict_checked(model, checkpoint["model"])
    if optimizer is not None:
        if checkpoint.get("optimizer") is None:
            raise CheckpointError(f"{path.name} has no optimizer state to restore")
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        if checkpoint.get("scheduler") is None:
            raise CheckpointError(f"{path.name} has no scheduler state to restore")
        scheduler.load_state_dict(checkpoint["scheduler"])
    return checkpoint
