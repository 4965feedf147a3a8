"""Pretrained weights: where they come from and how they are checked before use.

- The **course backbone**, a ``TinyResNet`` pretrained on the Shapes source family by
  ``python -m lesson_utils.pretrain`` and committed in ``data/pretrained/`` with a JSON *card*
  (recipe, data, accuracy, torch version, sha256). ``load_course_backbone(num_classes)`` and
  ``load_source_model()`` verify the file against its card before loading it.
- **torchvision's ImageNet weights**, through the ``weights=`` API, offline-aware:
  ``load_torchvision_model`` uses a file already in the torch hub cache (checked: hash prefix,
  ``weights_only=True``) and otherwise says exactly which file is needed and where to put it;
  it never downloads. ``describe_weights`` reads the weights' metadata without any file.

Example:
    >>> model = load_course_backbone(4)
    >>> model.head.out_features, read_card()["image_size"] == COURSE_IMAGE_SIZE
    (4, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from lesson_utils.checkpoints import CheckpointError, load_checkpoint
from lesson_utils.models import TinyResNet, head_of, replace_head

__all__ = [
    "COURSE_IMAGE_SIZE",
    "COURSE_CHECKPOINT",
    "REBUILD_COMMAND",
    "sha256_of",
    "read_card",
    "verify_checkpoint",
    "load_source_model",
    "load_course_backbone",
    "WeightsNotCachedError",
    "describe_weights",
    "load_torchvision_model",
]

#: Side length (pixels) of the images the course backbone was pretrained on. Lessons that use the
#: backbone feed it images of this size: features learnt at one scale transfer best at that scale.
COURSE_IMAGE_SIZE = 16

_REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where the recipe writes the checkpoint and the card by default (``data/pretrained/``).
COURSE_CHECKPOINT = _REPO_ROOT / "data" / "pretrained" / "tinyresnet_shapes.pt"
COURSE_CARD = COURSE_CHECKPOINT.with_suffix(".json")
#: The command that rebuilds the checkpoint; every error about a missing or bad file names it.
REBUILD_COMMAND = "python -m lesson_utils.pretrain"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"; _ = p.write_bytes(b"abc")
        >>> sha256_of(p)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rebuild_hint(path: Path) -> str:
    command = REBUILD_COMMAND
    if path.resolve() != COURSE_CHECKPOINT:
        command += f" --output {path}"
    return f"rebuild it from the repository root with `{command}` (a few minutes on a CPU)"


def read_card(checkpoint: str | os.PathLike = COURSE_CHECKPOINT) -> dict[str, Any]:
    """The JSON card beside ``checkpoint`` (same name, ``.json``).

    Raises:
        FileNotFoundError: the card is missing (the message names the rebuild command).
        CheckpointError: the card is not valid JSON or lacks required keys.

    Example:
        >>> read_card()["image_size"] == COURSE_IMAGE_SIZE
        True
    """
    card_path = Path(checkpoint).with_suffix(".json")
    if not card_path.is_file():
        raise FileNotFoundError(f"no card at {card_path} for the course checkpoint; "
                                f"{_rebuild_hint(card_path)}")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"card {card_path} is not valid JSON ({exc}); "
                              f"{_rebuild_hint(card_path)}") from exc
    required = {"sha256", "architecture", "image_size", "val_accuracy"}
    if not isinstance(card, Mapping) or not required <= set(card):
        missing = sorted(required - set(card)) if isinstance(card, Mapping) else sorted(required)
        raise CheckpointError(f"card {card_path} lacks {missing}; {_rebuild_hint(card_path)}")
    return dict(card)


def verify_checkpoint(checkpoint: str | os.PathLike = COURSE_CHECKPOINT) -> dict[str, Any]:
    """Check that ``checkpoint`` exists and its sha256 matches its card; return the card.

    Raises:
        FileNotFoundError: the checkpoint or its card is missing.
        CheckpointError: the file's sha256 differs from the card's (corrupt, truncated, or
            replaced without rebuilding the card).

    Example:
        >>> verify_checkpoint()["architecture"]["class"]
        'TinyResNet'
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"the course checkpoint {path} is missing; {_rebuild_hint(path)}")
    card = read_card(path)
    actual = sha256_of(path)
    if actual != card["sha256"]:
        raise CheckpointError(
            f"{path.name} is corrupt or was changed: its sha256 is {actual[:12]}... but its card "
            f"says {str(card['sha256'])[:12]}...; {_rebuild_hint(path)}")
    return card


def load_source_model(checkpoint: str | os.PathLike = COURSE_CHECKPOINT) -> TinyResNet:
    """The pretrained model with its source head (6 shape classes), checksum verified, in eval
    mode. Use ``lesson_utils.models.load_course_backbone`` for a new task.

    Example:
        >>> model = load_source_model()
        >>> model.head.out_features, model.training
        (6, False)
    """
    path = Path(checkpoint)
    card = verify_checkpoint(path)
    architecture = card["architecture"]
    if architecture.get("class") != "TinyResNet":
        raise CheckpointError(f"card says the checkpoint is a {architecture.get('class')!r}, "
                              "expected 'TinyResNet'")
    model = TinyResNet.from_config(architecture["config"])
    try:
        load_checkpoint(path, model=model)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. The architecture in lesson_utils/models.py changed since "
                              f"the checkpoint was made; {_rebuild_hint(path)}") from exc
    return model.eval()


# --------------------------------------------------------------------------- torchvision


class WeightsNotCachedError(FileNotFoundError):
    """Pretrained weights were asked for, but their file is not in the torch hub cache."""


def load_course_backbone(num_classes: int, *,
                         checkpoint: str | os.PathLike | None = None) -> TinyResNet:
    """The course-pretrained ``TinyResNet`` (Shapes source family) with a fresh head of
    ``num_classes`` outputs, after checking the file's sha256 against its card.

    Feed it images of ``COURSE_IMAGE_SIZE`` pixels, the size it was
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
    from torchvision.models import get_model

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
