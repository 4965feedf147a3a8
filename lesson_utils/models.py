"""Models for the lessons: a small ResNet split torchvision-style into backbone and head, and
the tools to inspect, freeze and re-head models (pretrained weights come from
``lesson_utils.pretrained``).

``TinyResNet`` has the anatomy of torchvision's ResNets at a size a laptop CPU trains in
seconds: ``backbone`` (stem, three residual stages, global average pooling) maps images
``(N, C, H, W)`` to features ``(N, feature_dim)``, and ``head`` (``nn.Linear``) maps features to
class logits ``(N, num_classes)``. Transfer learning keeps the backbone and replaces the head.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "BasicBlock",
    "TinyResNet",
    "count_parameters",
    "freeze",
    "unfreeze",
    "modes_restored",
    "SUPPORTED_HEADS",
    "head_of",
    "replace_head",
    "param_groups",
]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a skip connection (He et al., 2016).

    When the block changes width or stride, the skip path is a 1x1 convolution so the two
    paths can be added.

    Example:
        >>> BasicBlock(8, 16, stride=2)(torch.zeros(1, 8, 16, 16)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    """A small residual CNN: ``backbone`` (images to features) plus ``head`` (``nn.Linear``).

    Args:
        num_classes: number of output logits.
        widths: channels of the stem and the three stages; stages 2 and 3 halve the
            resolution. The default (16, 32, 64) has about 78k parameters.
        in_channels: image channels (3 for RGB).

    Example:
        >>> model = TinyResNet(6)
        >>> model(torch.zeros(2, 3, 32, 32)).shape  # logits (N, num_classes)
        torch.Size([2, 6])
        >>> model.backbone(torch.zeros(2, 3, 32, 32)).shape  # features (N, feature_dim)
        torch.Size([2, 64])
        >>> model.head
        Linear(in_features=64, out_features=6, bias=True)
    """

    def __init__(self, num_classes: int, *, widths: Sequence[int] = (16, 32, 64),
                 in_channels: int = 3) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be three positive ints (stem/stage 1, stage 2, "
                             f"stage 3), got {widths!r}")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be an int >= 1, got {in_channels!r}")
        self.num_classes = num_classes
        self.widths = widths
        self.in_channels = in_channels
        w1, w2, w3 = widths
        self.backbone = nn.Sequential(
            nn.Conv2d(in_channels, w1, 3, 1, 1, bias=False),  # stem
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            BasicBlock(w1, w1),  # (N, w1, H, W)
            BasicBlock(w1, w2, stride=2),  # (N, w2, H/2, W/2)
            BasicBlock(w2, w3, stride=2),  # (N, w3, H/4, W/4)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (N, w3)
        )
        self.feature_dim = w3
        self.head = nn.Linear(w3, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images of shape (N, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")
        return self.head(self.backbone(x))

    @property
    def config(self) -> dict[str, Any]:
        """The arguments that rebuild this architecture (see ``from_config``)."""
        return {"num_classes": self.num_classes, "widths": list(self.widths),
                "in_channels": self.in_channels}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TinyResNet:
        """Alternative constructor from a plain dict (e.g. read from JSON).

        Because it is a ``classmethod``, ``cls`` is the class it is called on: a subclass's
        ``from_config`` builds the subclass.

        Example:
            >>> TinyResNet.from_config({"num_classes": 4, "widths": [8, 16, 32]}).feature_dim
            32
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        allowed = {"num_classes", "widths", "in_channels"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys are {sorted(allowed)}")
        if "num_classes" not in config:
            raise ValueError("config is missing the required key 'num_classes'")
        kwargs = dict(config)
        num_classes = kwargs.pop("num_classes")
        return cls(num_classes, **kwargs)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` when
    ``trainable_only``).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
        >>> layer = nn.Linear(3, 2); layer.bias.requires_grad_(False)
        Parameter containing:
        tensor([...])
        >>> count_parameters(layer, trainable_only=True)
        6
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


_BATCH_NORMS = (nn.modules.batchnorm._BatchNorm,)


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """``train()`` of a frozen BatchNorm layer: it stays in eval mode whatever is asked."""
    return nn.Module.train(self, False)


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no gradients for its parameters, and its BatchNorm layers
    keep their running statistics even while the surrounding model trains.

    ``requires_grad=False`` alone is not enough: a BatchNorm layer in train mode normalises
    with the batch's statistics and updates its running mean/variance whatever
    ``requires_grad`` says. So frozen BatchNorm layers are put in eval mode and stay there when
    ``model.train()`` is called later.

    Returns:
        ``module``, for chaining.

    Example:
        >>> model = TinyResNet(3)
        >>> _ = freeze(model.backbone)
        >>> count_parameters(model, trainable_only=True)  # only the head: 64 * 3 + 3
        195
        >>> _ = model.train()
        >>> model.backbone[1].training, model.head.training
        (False, True)
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    for sub in module.modules():
        if isinstance(sub, _BATCH_NORMS):
            sub.train = types.MethodType(_stay_in_eval, sub)  # instance override
            nn.Module.train(sub, False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Undo ``freeze``: gradients on again, BatchNorm layers follow ``train()``/``eval()``.

    The BatchNorm layers take the mode of ``module`` itself.

    Example:
        >>> model = TinyResNet(3)
        >>> _ = unfreeze(freeze(model))
        >>> count_parameters(model, trainable_only=True) == count_parameters(model)
        True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    for sub in module.modules():
        if isinstance(sub, _BATCH_NORMS) and "train" in sub.__dict__:
            del sub.train
            sub.train(module.training)
    return module


@contextlib.contextmanager
def modes_restored(model: nn.Module) -> Iterator[None]:
    """Remember every submodule's ``training`` flag and put each one back on exit.

    ``model.train(was_training)`` is not enough: a model can mix modes (a frozen BatchNorm stays
    in eval while the rest trains), and that mix must survive an evaluation or a prediction.

    Example:
        >>> model = TinyResNet(3)
        >>> _ = freeze(model.backbone).train()
        >>> with modes_restored(model):
        ...     _ = model.eval()
        >>> model.head.training, model.backbone[1].training
        (True, False)
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


# --------------------------------------------------------------------------- heads


#: Where ``replace_head`` finds the classifier, by model family.
SUPPORTED_HEADS: dict[str, str] = {
    "TinyResNet": "head",
    "resnet, resnext, wide_resnet, regnet, googlenet, inception, shufflenet": "fc",
    "densenet": "classifier",
    "vgg, alexnet, mobilenet, efficientnet, mnasnet, maxvit": "classifier[-1]",
    "convnext": "classifier[2] (= classifier[-1])",
    "vit": "heads.head",
    "swin": "head",
}


def _supported_heads_text() -> str:
    return "; ".join(f"{families} (.{where})" for families, where in SUPPORTED_HEADS.items())


def head_of(model: nn.Module) -> tuple[str, nn.Linear]:
    """Find the final classification layer of ``model``: its dotted name and the layer.

    Works for ``TinyResNet`` and the torchvision families in ``SUPPORTED_HEADS``.

    Example:
        >>> head_of(TinyResNet(3))
        ('head', Linear(in_features=64, out_features=3, bias=True))
        >>> import torchvision
        >>> head_of(torchvision.models.mobilenet_v3_small(num_classes=5))[0]
        'classifier.3'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    candidates: list[tuple[str, nn.Module | None]] = [
        ("head", model.head if isinstance(model, TinyResNet) else None),
    ]
    heads = getattr(model, "heads", None)
    if isinstance(heads, nn.Module):
        candidates.append(("heads.head", getattr(heads, "head", None)))
    candidates.append(("fc", getattr(model, "fc", None)))
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Sequential) and len(classifier) > 0:
        candidates.append((f"classifier.{len(classifier) - 1}", classifier[-1]))
    else:
        candidates.append(("classifier", classifier))
    candidates.append(("head", getattr(model, "head", None)))
    for name, layer in candidates:
        if isinstance(layer, nn.Linear):
            return name, layer
    raise ValueError(
        f"cannot find the classification head of {type(model).__name__}: expected a final "
        f"nn.Linear at one of the supported places: {_supported_heads_text()}. For another "
        "architecture, find its last layer with print(model) and assign a new nn.Linear there.")


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the classification layer of ``model`` with a fresh ``nn.Linear`` that has
    ``num_classes`` outputs (same input features, device and dtype), in place.

    The new layer is trainable even when the rest of the model was frozen: freeze first, then
    replace the head, and only the head learns.

    Args:
        model: ``TinyResNet`` or a torchvision classifier (see ``SUPPORTED_HEADS``).
        num_classes: outputs of the new head.

    Returns:
        ``model``, for chaining.

    Example:
        >>> import torchvision
        >>> model = replace_head(torchvision.models.resnet18(), 10)
        >>> model.fc
        Linear(in_features=512, out_features=10, bias=True)
        >>> replace_head(TinyResNet(6), 3).head.out_features
        3
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    name, old = head_of(model)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attribute, new)
    if isinstance(model, TinyResNet):
        model.num_classes = num_classes  # keeps model.config true to the architecture
    return model


def param_groups(model: nn.Module, *, backbone_lr: float,
                 head_lr: float) -> list[dict[str, Any]]:
    """Two optimizer parameter groups: the head at ``head_lr``, everything else (the
    backbone) at ``backbone_lr``, usually 10-100x smaller so pretrained features change slowly.

    Every parameter is included, frozen ones too (an optimizer skips parameters without a
    gradient), so unfreezing later needs no new optimizer.

    Returns:
        ``[{"name": "backbone", "params": [...], "lr": backbone_lr},
        {"name": "head", "params": [...], "lr": head_lr}]``, ready for ``torch.optim``.

    Example:
        >>> groups = param_groups(TinyResNet(3), backbone_lr=1e-3, head_lr=1e-2)
        >>> optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
        >>> [(g["name"], g["lr"], len(g["params"])) for g in optimizer.param_groups]
        [('backbone', 0.001, 27), ('head', 0.01, 2)]
    """
    for name, value in (("backbone_lr", backbone_lr), ("head_lr", head_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    _, head = head_of(model)
    head_ids = {id(p) for p in head.parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return [
        {"name": "backbone", "params": backbone, "lr": float(backbone_lr)},
        {"name": "head", "params": list(head.parameters()), "lr": float(head_lr)},
    ]
