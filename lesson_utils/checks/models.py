"""Self-checks for lesson 01 (models)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lesson_utils.checks._core import fail, passed

__all__ = ["check_count_trainable", "check_buffer_names", "check_from_sizes"]


def _sample_models() -> list[nn.Module]:
    frozen_first = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    frozen_first[0].requires_grad_(False)
    with_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten())
    return [nn.Linear(3, 2), frozen_first, with_bn]


def check_count_trainable(count_trainable: Callable[[nn.Module], int]) -> bool:
    """Check a function that counts the trainable scalar parameters of a model.

    Example:
        >>> check_count_trainable(
        ...     lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad))
        ✅ count_trainable: right on 3 models, including one with a frozen layer
        True
    """
    what = "count_trainable"
    for model in _sample_models():
        expected = sum(p.numel() for p in model.parameters() if p.requires_grad)
        everything = sum(p.numel() for p in model.parameters())
        tensors = sum(1 for p in model.parameters() if p.requires_grad)
        got = count_trainable(model)
        if got is None:
            fail(what, "your function returned None: did you forget `return`?")
        if isinstance(got, torch.Tensor):
            got = got.item()
        if got == expected:
            continue
        if got == everything:
            fail(what, f"got {got}, which counts frozen parameters too (expected {expected}): "
                 "keep only parameters with p.requires_grad")
        if got == tensors:
            fail(what, f"got {got}, the number of parameter *tensors*; count scalars with "
                 f"p.numel() (expected {expected})")
        fail(what, f"got {got}, expected {expected} for {model}")
    return passed(what, "right on 3 models, including one with a frozen layer")


def check_buffer_names(buffer_names: Callable[[nn.Module], list[str]]) -> bool:
    """Check a function that lists the ``state_dict`` keys that are not parameters.

    Example:
        >>> check_buffer_names(lambda m: [k for k, _ in m.named_buffers()])
        ✅ buffer_names: state_dict() = parameters + these buffers
        True
    """
    what = "buffer_names"
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm1d(2))
    expected = [k for k, _ in model.named_buffers()]
    got = buffer_names(model)
    if got is None:
        fail(what, "your function returned None: did you forget `return`?")
    got = list(got)
    params = {k for k, _ in model.named_parameters()}
    if set(got) & params:
        fail(what, f"{sorted(set(got) & params)} are parameters, not buffers")
    if set(got) != set(expected):
        missing = sorted(set(expected) - set(got))
        fail(what, f"missing {missing}" + (" (num_batches_tracked is a buffer too)"
                                           if any("num_batches" in m for m in missing) else ""))
    return passed(what, "state_dict() = parameters + these buffers")


def check_from_sizes(cls: Any) -> bool:
    """Check an ``MLP`` class whose ``from_sizes`` classmethod builds Linear/ReLU layers.

    Example:
        >>> class MLP(nn.Sequential):
        ...     @classmethod
        ...     def from_sizes(cls, sizes):
        ...         layers = []
        ...         for a, b in zip(sizes, sizes[1:]):
        ...             layers += [nn.Linear(a, b), nn.ReLU()]
        ...         return cls(*layers[:-1])
        >>> check_from_sizes(MLP)
        ✅ MLP.from_sizes: builds the right layers, and a subclass builds the subclass
        True
    """
    what = "MLP.from_sizes"
    if not hasattr(cls, "from_sizes"):
        fail(what, "the class has no from_sizes method")
    if not isinstance(cls.__dict__.get("from_sizes"), classmethod):
        fail(what, "from_sizes must be a @classmethod, so it receives the class as `cls`")
    model = cls.from_sizes([4, 8, 2])
    if model is None:
        fail(what, "from_sizes returned None: return the new instance")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    if shapes != [(4, 8), (8, 2)]:
        fail(what, f"expected Linear layers [(4, 8), (8, 2)], got {shapes}")
    if model(torch.zeros(5, 4)).shape != (5, 2):
        fail(what, "the model's output for a (5, 4) input should have shape (5, 2)")
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        fail(what, "put a ReLU between the Linear layers")

    class Sub(cls):  # type: ignore[misc, valid-type]
        pass

    if type(Sub.from_sizes([2, 3])) is not Sub:
        fail(what, "a subclass's from_sizes must build the subclass: use cls(...), not "
             "the class name")
    return passed(what, "builds the right layers, and a subclass builds the subclass")
