"""Models for the lessons: a small ResNet split torchvision-style into backbone and head, and
the tools to inspect, freeze and re-head models.

``TinyResNet`` has the anatomy of torchvision's ResNets at a size a laptop CPU trains in
seconds: ``backbone`` (stem, three residual stages, global average pooling) maps images
``(N, C, H, W)`` to features ``(N, feature_dim)``, and ``head`` (``nn.Linear``) maps features to
class logits ``(N, num_classes)``. Transfer learning keeps the backbone and replaces the head.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "BasicBlock",
    "TinyResNet",
    "count_parameters",
    "freeze",
    "unfreeze",
    "is_frozen",
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


def is_frozen(module: nn.Module) -> bool:
    """True when no parameter of ``module`` requires a gradient.

    Example:
        >>> is_frozen(freeze(nn.Linear(2, 2)))
        True
    """
    return all(not p.requires_grad for p in module.parameters())


# ---- transfer learning (issue 3): re-heading, discriminative LRs, pretrained loaders ----
import os  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlparse  # noqa: E402

__all__ += [
    "SUPPORTED_HEADS",
    "WeightsNotCachedError",
    "head_of",
    "replace_head",
    "param_groups",
    "load_course_backbone",
    "load_torchvision_model",
    "describe_weights",
]

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


class WeightsNotCachedError(FileNotFoundError):
    """Pretrained weights were asked for, but their file is not in the torch hub cache."""


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


def load_course_backbone(num_classes: int, *,
                         checkpoint: str | os.PathLike | None = None) -> TinyResNet:
    """The course-pretrained ``TinyResNet`` (Shapes source family) with a fresh head of
    ``num_classes`` outputs, after checking the file's sha256 against its card.

    Feed it images of ``lesson_utils.pretrain.COURSE_IMAGE_SIZE`` pixels, the size it was
    pretrained on. The model comes back in train mode with every parameter trainable; call
    ``freeze(model.backbone)`` for feature extraction.

    Args:
        num_classes: outputs of the new head.
        checkpoint: the ``.pt`` file (default: ``data/pretrained/tinyresnet_shapes.pt``); its
            card is the ``.json`` beside it.

    Raises:
        FileNotFoundError: the checkpoint or its card is missing.
        lesson_utils.checkpoints.CheckpointError: the checksum does not match the card, or the
            file does not fit the current ``TinyResNet``.
        Both messages name the command that rebuilds the file.

    Example:
        >>> model = load_course_backbone(4)
        >>> model.head, model.training
        (Linear(in_features=64, out_features=4, bias=True), True)
    """
    from lesson_utils.pretrain import COURSE_CHECKPOINT, load_source_model

    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    model = load_source_model(COURSE_CHECKPOINT if checkpoint is None else checkpoint)
    return replace_head(model, num_classes).train()


_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torch.hub's convention: name-<sha256 prefix>.pth


def _classification_models() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _resolve_weights(name: str, weights: Any) -> Any:
    """The ``WeightsEnum`` member for ``weights`` ("DEFAULT", "IMAGENET1K_V1",
    "ResNet18_Weights.IMAGENET1K_V1" or the member itself) of model ``name``."""
    import difflib

    from torchvision.models import get_model_weights

    known = _classification_models()
    if not isinstance(name, str):
        raise TypeError(f"name must be a str such as 'resnet18', got {type(name).__name__}")
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5)
        raise ValueError(f"unknown torchvision classification model {name!r}"
                         + (f"; did you mean {close}?" if close else "")
                         + f" torchvision.models.list_models(module=torchvision.models) lists "
                         f"all {len(known)}.")
    enum = get_model_weights(name)
    valid = ["DEFAULT", *(w.name for w in enum)]
    try:
        return enum.verify(weights)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"weights for {name} must be None or one of {valid} (or a "
                         f"{enum.__name__} member), got {weights!r}") from exc


def _cache_file(weights: Any) -> Path:
    import torch.hub

    filename = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def describe_weights(name: str, weights: Any = "DEFAULT") -> dict[str, Any]:
    """What torchvision knows about pretrained ``weights`` of model ``name``, offline: ImageNet
    accuracy, size, preprocessing, and whether the file is already in the local cache.

    Example:
        >>> info = describe_weights("resnet18")
        >>> info["weights"], info["acc@1"], info["params_M"], info["file"]
        ('ResNet18_Weights.IMAGENET1K_V1', 69.758, 11.7, 'resnet18-f37072fd.pth')
    """
    resolved = _resolve_weights(name, weights)
    if resolved is None:
        raise ValueError("describe_weights needs weights, got None")
    meta = resolved.meta
    metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
    preprocess = resolved.transforms()
    return {
        "model": name,
        "weights": repr(resolved),
        "acc@1": metrics.get("acc@1"),
        "acc@5": metrics.get("acc@5"),
        "params_M": round(meta["num_params"] / 1e6, 1),
        "GFLOPS": meta.get("_ops"),
        "file_MB": meta.get("_file_size"),
        "num_classes": len(meta["categories"]),
        "min_size": tuple(meta.get("min_size", ())),
        "crop_size": list(getattr(preprocess, "crop_size", [])),
        "resize_size": list(getattr(preprocess, "resize_size", [])),
        "mean": list(getattr(preprocess, "mean", [])),
        "std": list(getattr(preprocess, "std", [])),
        "file": _cache_file(resolved).name,
        "cached": _cache_file(resolved).is_file(),
    }


def load_torchvision_model(name: str, *, weights: Any = "DEFAULT",
                           num_classes: int | None = None,
                           check_hash: bool = True) -> nn.Module:
    """Build torchvision model ``name`` with the ``weights=`` API, offline-aware.

    With pretrained weights, the file must already be in the torch hub cache
    (``torch.hub.get_dir()/checkpoints``): then it is checked (the sha256 prefix in its name,
    and that it loads with ``weights_only=True``) and loaded. If it is not there, no network
    connection is attempted: ``WeightsNotCachedError`` says which file is needed, where to put
    it and how to download it. ``weights=None`` builds random weights and always works.

    Args:
        name: a classification model of ``torchvision.models.list_models()``, e.g. "resnet18".
        weights: None, "DEFAULT", a weights name ("IMAGENET1K_V1" or
            "ResNet18_Weights.IMAGENET1K_V1") or a ``WeightsEnum`` member.
        num_classes: when given, the head has this many outputs (a fresh ``nn.Linear`` for
            pretrained weights, via ``replace_head``).
        check_hash: compare the file's sha256 with the prefix in its name, as torch.hub does
            when it downloads.

    Raises:
        WeightsNotCachedError: the weights file is not in the cache.
        lesson_utils.checkpoints.CheckpointError: the cached file is corrupt or unsafe.

    Example:
        >>> model = load_torchvision_model("resnet18", weights=None, num_classes=3)
        >>> model.fc.out_features
        3
    """
    import pickle

    from torchvision.models import get_model

    from lesson_utils.checkpoints import CheckpointError

    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be None or an int >= 1, got {num_classes!r}")
    resolved = _resolve_weights(name, weights)
    if resolved is None:
        extra = {} if num_classes is None else {"num_classes": num_classes}
        return get_model(name, weights=None, **extra)

    cached = _cache_file(resolved)
    if not cached.is_file():
        size = resolved.meta.get("_file_size")
        raise WeightsNotCachedError(
            f"pretrained weights {resolved!r} for {name} are not in the torch hub cache, and "
            "this function never downloads.\n"
            f"  needed file: {cached.name}" + (f" ({size:.0f} MB)" if size else "") + "\n"
            f"  put it in:   {cached.parent}\n"
            f"  download it: on a machine with internet, run\n"
            f"      python -c \"import torchvision; torchvision.models.get_model('{name}', "
            f"weights='{resolved!r}')\"\n"
            f"    which saves it in that machine's cache, or fetch {resolved.url}\n"
            f"    then copy the file into the folder above (set TORCH_HOME to move the cache).\n"
            "  or build the model without pretrained weights: weights=None.")
    match = _HASH_IN_NAME.search(cached.name)
    if check_hash and match:
        from lesson_utils.pretrain import sha256_of

        if not sha256_of(cached).startswith(match.group(1)):
            raise CheckpointError(
                f"{cached} is corrupt or incomplete: its sha256 does not start with "
                f"{match.group(1)!r} as its name says. Delete it and download it again.")
    try:  # refuse a file that would run code before torchvision opens it
        torch.load(cached, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if "Unsupported" in line),
                      "not a PyTorch state dict")
        raise CheckpointError(
            f"refused {cached}: torch.load(weights_only=True) cannot read it ({reason}), so it "
            "holds objects that would run code when unpickled, or it is not a checkpoint at "
            "all. Delete it and download it again from the official URL.") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"could not read {cached}: corrupt or truncated ({exc}). Delete it "
                              "and download it again.") from exc
    model = get_model(name, weights=resolved, progress=False)
    if num_classes is not None and head_of(model)[1].out_features != num_classes:
        replace_head(model, num_classes)
    return model
