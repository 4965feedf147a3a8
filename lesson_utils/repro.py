"""Reproducibility: one call seeds every random number generator, one call picks the device.

The lessons promise the same numbers on every run. That needs three things: every RNG seeded
(Python, NumPy, torch on CPU and GPU), deterministic kernels where torch has them, and DataLoaders
that shuffle with their own seeded ``torch.Generator`` instead of the global one.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "pick_device", "resolve_device", "mps_available", "seed_worker"]

_DEVICE_ENV = "LESSON_DEVICE"


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed ``random``, NumPy and torch (CPU and every CUDA device) and return a seeded generator.

    Args:
        seed: a non-negative integer.
        deterministic: also ask torch for deterministic algorithms (``warn_only=True``, so an
            operation without a deterministic version warns instead of failing), and turn off
            cuDNN's benchmark autotuner, whose choice of kernel can change between runs.

    Returns:
        A ``torch.Generator`` seeded with ``seed``: pass it to ``DataLoader(generator=...)`` so
        shuffling does not depend on how many random numbers other code drew before.

    Example:
        >>> g = seed_everything(0)
        >>> a = torch.rand(2)
        >>> _ = seed_everything(0)
        >>> torch.equal(a, torch.rand(2))
        True
        >>> torch.randint(0, 10, (3,), generator=g).tolist() == torch.randint(
        ...     0, 10, (3,), generator=seed_everything(0)).tolist()
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} ({seed!r})")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS needs this set before its first use to be deterministic on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders with ``num_workers > 0``: seeds NumPy and ``random``
    in each worker from the seed torch already gave it.

    Example:
        >>> seed_worker(0)  # outside a worker it just seeds from torch's initial seed
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def mps_available() -> bool:
    """Whether Apple's MPS device can be used here."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device() -> torch.device:
    """Return the best device here: CUDA, then Apple's MPS, then the CPU.

    The environment variable ``LESSON_DEVICE`` (e.g. ``cpu``, ``cuda``, ``cuda:1``, ``mps``)
    overrides the choice, so a lesson can be forced onto the CPU to reproduce stored outputs.

    Example:
        >>> import os
        >>> os.environ["LESSON_DEVICE"] = "cpu"
        >>> pick_device()
        device(type='cpu')
        >>> del os.environ["LESSON_DEVICE"]
    """
    requested = os.environ.get(_DEVICE_ENV, "").strip()
    if requested:
        try:
            return resolve_device(requested)
        except ValueError as exc:
            raise ValueError(f"{_DEVICE_ENV}={requested!r}: {exc}") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps_available():
        return torch.device("mps")
    return torch.device("cpu")



def resolve_device(device: str | torch.device | None, model: torch.nn.Module | None = None
                   ) -> torch.device:
    """The one device rule of ``lesson_utils``: every function that takes ``device`` uses it.

    ``device`` given: that device, checked to exist here. ``device=None``: where ``model``
    already is (the device of its first parameter or buffer), so nothing moves behind your
    back; the CPU for a model without tensors or no model. To use the best device available,
    pass ``pick_device()`` (CUDA, then MPS, then the CPU, or ``LESSON_DEVICE``).

    Example:
        >>> resolve_device(None, torch.nn.Linear(2, 2))
        device(type='cpu')
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device must name a torch device such as 'cpu', 'cuda', 'cuda:0' or 'mps', got 'gpu'
    """
    if device is None:
        tensors = [] if model is None else [*model.parameters(), *model.buffers()]
        return tensors[0].device if tensors else torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str, a torch.device or None, got "
                        f"{type(device).__name__} ({device!r})")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must name a torch device such as 'cpu', 'cuda', 'cuda:0' or "
                         f"'mps', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here")
    if resolved.type == "mps" and not mps_available():
        raise ValueError(f"device={device!r} but MPS is not available here")
    return resolved
