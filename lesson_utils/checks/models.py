"""Self-checks for lesson 01 (models).

Each checker takes what the student wrote (a class or a function), runs it on models of its
own, and names the usual mistake when the answer is wrong.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from lesson_utils.checks._core import call_student, fail, passed

__all__ = ["check_centered_mlp", "check_port_state_dict", "check_from_sizes"]


# ----------------------------------------------------------------------------- registration

_LIST_HINT = ("layers kept in a plain Python list are invisible to parameters() (an optimizer "
              "given model.parameters() would train nothing), to state_dict() and to .to(): "
              "put them in an nn.ModuleList")
_PARAMETER_HINT = ("input_mean is an nn.Parameter, so parameters() hands it to the optimizer, "
                   "which would train it like a weight; a running statistic is not trained "
                   "(BatchNorm's running_mean is not): register it with "
                   "self.register_buffer('input_mean', ...)")
_PLAIN_TENSOR_HINT = ("input_mean is a plain tensor attribute: state_dict() does not contain it "
                      "(so it is never saved or loaded) and .to()/.double() leave it behind: "
                      "register it with self.register_buffer('input_mean', ...)")


def _layer_names(sizes: tuple[int, ...]) -> set[str]:
    return {f"layers.{i}.{kind}" for i in range(len(sizes) - 1) for kind in ("weight", "bias")}


def _check_parameters(what: str, model: nn.Module, sizes: tuple[int, ...]) -> None:
    names = {name for name, _ in model.named_parameters()}
    if any(name.split(".")[-1] == "input_mean" for name in names):
        fail(what, _PARAMETER_HINT)
    if not names:
        fail(what, f"parameters() is empty: {_LIST_HINT}")
    if names != _layer_names(sizes):
        fail(what, f"for sizes={sizes} parameters() lists {sorted(names)}, expected "
                   f"{sorted(_layer_names(sizes))}: one nn.Linear per pair of neighbouring "
                   "sizes, stored as self.layers = nn.ModuleList(...) (forward reads "
                   "self.layers)")


def _check_buffer(what: str, model: nn.Module, sizes: tuple[int, ...]) -> None:
    buffers = dict(model.named_buffers())
    if "input_mean" not in buffers:
        if isinstance(getattr(model, "input_mean", None), torch.Tensor):
            fail(what, _PLAIN_TENSOR_HINT)
        fail(what, "the model has no buffer named input_mean (forward reads self.input_mean): "
                   "self.register_buffer('input_mean', torch.zeros(sizes[0]))")
    state = model.state_dict()
    if "input_mean" not in state:
        fail(what, "input_mean is a non-persistent buffer (persistent=False): it is not in "
                   "state_dict(), so a loaded model would centre its inputs with zeros. A "
                   "running statistic must be saved: keep the default persistent=True")
    mean = buffers["input_mean"]
    if mean.shape != (sizes[0],) or not torch.equal(mean, torch.zeros(sizes[0])):
        fail(what, f"input_mean should start as zeros of shape ({sizes[0]},), got "
                   f"{tuple(mean.shape)} {mean.dtype}")
    extra = sorted(set(state) - _layer_names(sizes) - {"input_mean"})
    if extra:
        fail(what, f"state_dict() has unexpected entries {extra}: register only the layers "
                   "and input_mean")


def _check_double(what: str, model: nn.Module) -> None:
    model.double()
    left = sorted(name for name, t in model.state_dict().items() if t.dtype != torch.float64)
    if left or model.input_mean.dtype != torch.float64:
        fail(what, f"after .double() these are still not float64: {left or ['input_mean']}: "
                   ".to()/.double() convert only registered parameters and buffers")


def _check_round_trip(what: str, cls: Any, sizes: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    trained = call_student(what, cls, sizes=sizes).train()
    with torch.no_grad():
        for _ in range(3):  # training-mode forwards move the running mean away from zero
            trained(torch.randn(16, sizes[0], generator=g) + 2.0)
    if torch.equal(trained.input_mean, torch.zeros(sizes[0])):
        fail(what, "input_mean did not move in training mode: keep the given forward")
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    loaded = call_student(what, cls, sizes=sizes)
    try:
        loaded.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    except RuntimeError as exc:
        fail(what, f"a saved state_dict does not load back: {str(exc).splitlines()[-1].strip()}")
    x = torch.randn(4, sizes[0], generator=g)
    with torch.no_grad():
        same = torch.equal(trained.eval()(x), loaded.eval()(x))
    if not same:
        fail(what, "after torch.save/torch.load of the state_dict the loaded model computes "
                   "something else: is every tensor the forward reads registered?")


def check_centered_mlp(cls: Any) -> bool:
    """Check a fixed ``CenteredMLP(sizes, momentum)``: the lesson's ``BuggyCenteredMLP`` with its
    layers in an ``nn.ModuleList`` and its running mean registered as a buffer.

    It checks ``parameters()`` (the layers, not the running mean), ``state_dict()`` (both),
    ``.double()`` and a ``torch.save``/``torch.load(weights_only=True)`` round trip.

    Example:
        >>> class CenteredMLP(nn.Module):
        ...     def __init__(self, sizes=(4, 8, 3), momentum=0.1):
        ...         super().__init__()
        ...         self.momentum = momentum
        ...         self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        ...         self.register_buffer("input_mean", torch.zeros(sizes[0]))
        ...     def forward(self, x):
        ...         if self.training:
        ...             with torch.no_grad():
        ...                 self.input_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(0))
        ...         x = x - self.input_mean
        ...         for layer in self.layers[:-1]:
        ...             x = torch.relu(layer(x))
        ...         return self.layers[-1](x)
        >>> check_centered_mlp(CenteredMLP)
        ✅ CenteredMLP: layers in parameters(), running mean a saved buffer; .double() and save/load carry both
        True
    """
    what = "CenteredMLP"
    sizes = (5, 6, 7, 2)
    model = call_student(what, cls, sizes=sizes)
    if not isinstance(model, nn.Module):
        fail(what, f"CenteredMLP(...) should build an nn.Module, got {type(model).__name__}")
    _check_parameters(what, model, sizes)
    _check_buffer(what, model, sizes)
    _check_double(what, model)
    _check_round_trip(what, cls, sizes)
    return passed(what, "layers in parameters(), running mean a saved buffer; .double() and "
                        "save/load carry both")


# ----------------------------------------------------------------------------- porting a checkpoint

class _SmallNet(nn.Module):
    """Lesson 01's ``SmallNet`` (the notebook's class; a test keeps the two alike)."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, kernel_size=3, padding=1),
                                      nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.classifier = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class _SmallNetV2(nn.Module):
    """Lesson 01's ``SmallNetV2``: ``SmallNet`` refactored, the head registered first."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        self.head = nn.Linear(8, num_classes)
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.norm(self.conv(x))))


def _trained_small_net() -> tuple[_SmallNet, torch.Tensor]:
    """A ``SmallNet`` whose BatchNorm statistics have moved, and a test batch."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    old = _SmallNet().train()
    with torch.no_grad():
        for _ in range(3):
            old(torch.randn(8, 3, 12, 12, generator=g) * 2 + 1)
    return old.eval(), torch.randn(4, 3, 12, 12, generator=g)


def _missing_hint(missing: list[str], unexpected: list[str]) -> str:
    buffers = [k for k in missing if k.split(".")[-1] in
               ("running_mean", "running_var", "num_batches_tracked")]
    if buffers and buffers == missing:  # every parameter is there, only buffers are not
        return (f"missing {buffers}: BatchNorm's running_mean, running_var and "
                "num_batches_tracked are buffers, not parameters, but they are in the "
                "state_dict and strict=True needs them (without them the loaded model "
                "normalises with fresh statistics): rename every key of old_state, not only "
                "the parameters")
    return (f"missing {missing}, unexpected {unexpected}: print SmallNetV2().state_dict() "
            "next to old_state and map every old name to its new one")


def _check_ported(what: str, new_state: Any, expected: Mapping[str, torch.Tensor]) -> None:
    if new_state is None:
        fail(what, "got None: did the function forget to `return` the new state dict?")
    if not isinstance(new_state, Mapping):
        fail(what, f"expected a dict of name -> tensor, got {type(new_state).__name__}")
    missing = [k for k in expected if k not in new_state]
    unexpected = [k for k in new_state if k not in expected]
    if missing or unexpected:
        fail(what, _missing_hint(missing, unexpected))
    wrong = [k for k in expected if not isinstance(new_state[k], torch.Tensor)
             or new_state[k].shape != expected[k].shape]
    if wrong:
        fail(what, f"the names are right but {wrong[:3]} hold tensors of the wrong shape: did "
                   "you pair names by position? SmallNetV2 registers its head first, so its "
                   "state_dict lists the entries in another order: pair them by name")


def check_port_state_dict(port_state_dict: Callable[[dict[str, torch.Tensor]],
                                                    dict[str, torch.Tensor]]) -> bool:
    """Check ``port_state_dict(old_state)``, which renames a ``SmallNet`` state dict so that
    ``SmallNetV2().load_state_dict(new_state, strict=True)`` accepts it and computes the same
    outputs (BatchNorm statistics included), without changing ``old_state``.

    Example:
        >>> def port(old_state):
        ...     rename = {"features.0": "conv", "features.1": "norm", "classifier": "head"}
        ...     return {rename[k.rsplit(".", 1)[0]] + "." + k.rsplit(".", 1)[1]: v
        ...             for k, v in old_state.items()}
        >>> check_port_state_dict(port)
        ✅ port_state_dict: SmallNetV2 loads it with strict=True and gives SmallNet's outputs
        True
    """
    what = "port_state_dict"
    old, x = _trained_small_net()
    buffer = io.BytesIO()
    torch.save(old.state_dict(), buffer)  # the checkpoint file, as torch.load gives it back
    buffer.seek(0)
    old_state = torch.load(buffer, weights_only=True)
    before = {k: v.clone() for k, v in old_state.items()}
    new_state = call_student(what, port_state_dict, old_state)
    if list(old_state) != list(before) or any(not torch.equal(old_state[k], before[k])
                                              for k in before):
        fail(what, "it changed the dict it was given: build and return a new dict (the old "
                   "checkpoint may still be needed, and a caller does not expect its dict to "
                   "change)")
    new = _SmallNetV2()
    _check_ported(what, new_state, new.state_dict())
    try:
        new.load_state_dict(new_state, strict=True)
    except RuntimeError as exc:
        fail(what, f"load_state_dict(strict=True) refused it: {str(exc).splitlines()[-1]}")
    with torch.no_grad():
        same = torch.allclose(new.eval()(x), old(x), rtol=1e-5, atol=1e-6)
    if not same:
        fail(what, "it loads, but the outputs differ from SmallNet's: two tensors of the same "
                   "shape went to each other's names (weight/bias, running_mean/running_var "
                   "all have shape (8,)): keep the last part of every name")
    return passed(what, "SmallNetV2 loads it with strict=True and gives SmallNet's outputs")


# ----------------------------------------------------------------------------- classmethod

def _check_mlp_layers(what: str, model: Any) -> None:
    if model is None:
        fail(what, "from_sizes returned None: return the new instance")
    if not isinstance(model, nn.Module):
        fail(what, f"from_sizes should return a model, got {type(model).__name__}")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    shapes = [(m.in_features, m.out_features) for m in linears]
    if not linears and any(isinstance(v, (list, tuple)) for v in vars(model).values()):
        fail(what, "no Linear layer is registered: layers kept in a Python list are invisible "
                   "to the model (Exercise 1); pass them to cls(*layers)")
    if shapes != [(4, 8), (8, 2)]:
        fail(what, f"for sizes [4, 8, 2] expected Linear layers [(4, 8), (8, 2)], got {shapes}")
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        fail(what, "put a ReLU between the Linear layers: without it two Linear layers are "
                   "one linear map")
    last = list(model.children())[-1] if list(model.children()) else None
    if not isinstance(last, nn.Linear):
        fail(what, f"the last layer is {type(last).__name__}, not Linear: a ReLU after the last "
                   "layer clips the logits at 0, so a class score can never be negative")
    out = call_student(what, model, torch.zeros(5, 4))
    if not isinstance(out, torch.Tensor) or out.shape != (5, 2):
        fail(what, "the model's output for a (5, 4) input should have shape (5, 2)")


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
    if not isinstance(cls, type):
        fail(what, f"expected the class MLP, got {type(cls).__name__}")
    if not hasattr(cls, "from_sizes"):
        fail(what, "the class has no from_sizes method")
    if isinstance(cls.__dict__.get("from_sizes"), staticmethod):
        fail(what, "from_sizes is a @staticmethod: it cannot know which class it was called "
                   "on, so a subclass would get an MLP. Make it a @classmethod and build with "
                   "cls(...)")
    if not isinstance(cls.__dict__.get("from_sizes"), classmethod):
        fail(what, "from_sizes must be a @classmethod, so it receives the class as `cls`")
    _check_mlp_layers(what, call_student(what, cls.from_sizes, [4, 8, 2]))

    class Sub(cls):  # type: ignore[misc, valid-type]
        pass

    if type(call_student(what, Sub.from_sizes, [2, 3])) is not Sub:
        fail(what, "a subclass's from_sizes must build the subclass: use cls(...), not "
             "the class name")
    return passed(what, "builds the right layers, and a subclass builds the subclass")
