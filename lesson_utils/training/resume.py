"""Exact resume: every random state the next epoch depends on, saved with a checkpoint and put
back, so a resumed run equals an uninterrupted one bit for bit.

Example:
    >>> state = rng_state([])
    >>> a = torch.rand(1); set_rng_state(state, []); torch.equal(a, torch.rand(1))
    True
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["FIT_STATE_VERSION", "rng_state", "set_rng_state"]

#: Version of the ``fit_state`` dict that ``fit`` stores in ``last.pt``.
FIT_STATE_VERSION = 1


def _loader_generators(loaders: Sequence[Any]) -> list[torch.Generator]:
    """Every distinct ``torch.Generator`` that decides a loader's order, in a fixed order."""
    found: list[torch.Generator] = []
    for loader in loaders:
        if loader is None:
            continue
        candidates = [getattr(loader, "generator", None)]
        for sampler in (getattr(loader, "sampler", None),
                        getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
            candidates.append(getattr(sampler, "generator", None))
        for g in candidates:
            if isinstance(g, torch.Generator) and all(g is not f for f in found):
                found.append(g)
    return found


def rng_state(loaders: Sequence[Any]) -> dict[str, Any]:
    """Every random state the next epoch depends on, as ``weights_only``-safe containers."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "loaders": [g.get_state() for g in _loader_generators(loaders)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], loaders: Sequence[Any]) -> None:
    """Put back what ``rng_state`` saved; warns when the loaders' generators do not match."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, key.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    generators = _loader_generators(loaders)
    if len(generators) != len(state["loaders"]):
        warnings.warn(f"the checkpoint has {len(state['loaders'])} DataLoader generator state(s) "
                      f"but the loaders given have {len(generators)}: the data order after "
                      f"resuming may differ from an uninterrupted run", stacklevel=3)
    for g, s in zip(generators, state["loaders"], strict=False):
        g.set_state(s.cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
