"""Self-checks for lesson 02 (pretrained models and transfer learning).

Each checker takes the student's function, applies it to a freshly built model (never a
notebook global) and inspects the result: which parameters train, what BatchNorm does in train
mode, which learning rate each parameter gets. The hints name the usual mistakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lesson_utils.checks._core import fail, passed
from lesson_utils.models import TinyResNet, count_parameters, freeze, head_of

__all__ = ["check_freeze_all_but_head", "check_trainable_count", "check_unfreeze_last_stage",
           "check_finetune_optimizer"]

_BN = nn.modules.batchnorm._BatchNorm


def _apply(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    if not callable(fn):
        fail(what, f"expected a function, got {type(fn).__name__}")
    try:
        return fn(*args)
    except Exception as exc:  # the student's error becomes a hint, not a traceback
        fail(what, f"calling it raised {type(exc).__name__}: {exc}")


def _trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _bn_statistics_move(model: nn.Module, image_size: int) -> bool:
    """Whether a train-mode forward pass changes any BatchNorm running statistic."""
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, image_size, image_size) * 3 + 1)
    after = model.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before)


def check_freeze_all_but_head(freeze_all_but_head: Callable[[nn.Module], Any]) -> bool:
    """Check a function that freezes every layer of a model except its classification head.

    It is applied to a torchvision ``resnet18`` with a 5-class head and to a ``TinyResNet``:
    only the head may train, and the BatchNorm running statistics must not move when the model
    is put in train mode and sees a batch.

    Example:
        >>> from lesson_utils.models import freeze, head_of
        >>> def solution(model):
        ...     freeze(model)
        ...     for p in head_of(model)[1].parameters():
        ...         p.requires_grad_(True)
        ...     return model
        >>> check_freeze_all_but_head(solution)
        ✅ freeze_all_but_head: only the head trains (2,565 of 11,179,077 parameters in resnet18) and BatchNorm statistics stay put
        True
    """
    import torchvision

    what = "freeze_all_but_head"
    torch.manual_seed(0)
    details = ""
    for name, model, size in (("resnet18", torchvision.models.resnet18(num_classes=5), 32),
                              ("TinyResNet", TinyResNet(5), 16)):
        result = _apply(what, freeze_all_but_head, model)
        if result is not None and result is not model:
            fail(what, "return the model you were given (or nothing), not a new one")
        head_name, head = head_of(model)
        expected = {f"{head_name}.{n}" for n, _ in head.named_parameters()}
        got = _trainable_names(model)
        if not got:
            fail(what, f"nothing trains in {name}: the head ({head_name}) must keep "
                       "requires_grad=True")
        if got - expected:
            extra = sorted(got - expected)
            fail(what, f"{len(extra)} parameter tensors outside the head still train in {name}, "
                       f"e.g. {extra[:3]}")
        if expected - got:
            fail(what, f"the head of {name} ({head_name}) is frozen too: only the layers before "
                       "it should be")
        if _bn_statistics_move(model, size):
            fail(what, f"BatchNorm running statistics of {name} still change in train mode: "
                       "requires_grad=False does not stop them. Put the frozen BatchNorm layers "
                       "in eval mode (lesson_utils.models.freeze does it for you).")
        if name == "resnet18":
            details = (f"only the head trains ({count_parameters(model, trainable_only=True):,} "
                       f"of {count_parameters(model):,} parameters in resnet18)")
    return passed(what, f"{details} and BatchNorm statistics stay put")


def check_trainable_count(n_trainable: Any, num_classes: int = 5) -> bool:
    """Check the number of trainable parameters of a ``resnet18`` whose layers are all frozen
    except a new ``num_classes``-way head.

    Example:
        >>> check_trainable_count(512 * 5 + 5)
        ✅ trainable parameters: correct
        True
    """
    what = "trainable parameters"
    if isinstance(n_trainable, torch.Tensor):
        n_trainable = n_trainable.item()
    if isinstance(n_trainable, bool) or not isinstance(n_trainable, int):
        fail(what, f"expected an int, got {type(n_trainable).__name__}")
    expected = 512 * num_classes + num_classes
    if n_trainable == expected:
        return passed(what)
    if n_trainable == 512 * num_classes:
        fail(what, "you counted the weight but not the bias of the head")
    if n_trainable > 1_000_000:
        fail(what, f"{n_trainable:,} is about the whole network: count only parameters with "
                   "requires_grad=True (count_parameters(model, trainable_only=True))")
    fail(what, f"expected {expected:,} (the head: in_features x num_classes + num_classes), "
               f"got {n_trainable:,}")


def check_unfreeze_last_stage(unfreeze_last_stage: Callable[[TinyResNet], Any]) -> bool:
    """Check a function that, given a fully frozen ``TinyResNet``, unfreezes its last residual
    stage (``backbone[5]``) and its head, and nothing else.

    Example:
        >>> from lesson_utils.models import unfreeze
        >>> def solution(model):
        ...     unfreeze(model.backbone[5]); unfreeze(model.head)
        ...     return model
        >>> check_unfreeze_last_stage(solution)
        ✅ unfreeze_last_stage: 58,118 of 77,782 parameters train (the last stage and the head), and that stage's BatchNorm layers follow train()
        True
    """
    what = "unfreeze_last_stage"
    torch.manual_seed(0)
    model = freeze(TinyResNet(6))
    result = _apply(what, unfreeze_last_stage, model)
    if result is not None and result is not model:
        fail(what, "return the model you were given (or nothing), not a new one")
    expected = {f"backbone.5.{n}" for n, _ in model.backbone[5].named_parameters()}
    expected |= {f"head.{n}" for n, _ in model.head.named_parameters()}
    got = _trainable_names(model)
    if not got:
        fail(what, "nothing trains: unfreeze model.backbone[5] and model.head")
    if not {n for n in got if n.startswith("head.")}:
        fail(what, "the head is still frozen: a model whose head cannot learn cannot adapt")
    if got - expected:
        fail(what, f"too much trains, e.g. {sorted(got - expected)[:3]}: only backbone[5] (the "
                   "last residual stage) and the head should")
    if expected - got:
        fail(what, f"still frozen: {sorted(expected - got)[:3]}: unfreeze all of backbone[5]")
    model.train()
    stage_bns = [m for m in model.backbone[5].modules() if isinstance(m, _BN)]
    early_bns = [m for m in model.backbone[:5].modules() if isinstance(m, _BN)]
    if not all(m.training for m in stage_bns):
        fail(what, "the BatchNorm layers of the unfrozen stage stay in eval mode after "
                   "model.train(): use lesson_utils.models.unfreeze, which undoes freeze's "
                   "eval lock")
    if any(m.training for m in early_bns):
        fail(what, "BatchNorm layers of the still-frozen stages went back to train mode")
    trainable = count_parameters(model, trainable_only=True)
    return passed(what, f"{trainable:,} of {count_parameters(model):,} parameters train (the last "
                        "stage and the head), and that stage's BatchNorm layers follow train()")


def check_finetune_optimizer(finetune_optimizer: Callable[[nn.Module, float],
                                                          torch.optim.Optimizer]) -> bool:
    """Check a function ``finetune_optimizer(model, lr)`` that returns an optimizer in which
    the head learns at ``lr`` and every other parameter at ``lr / 10``.

    Example:
        >>> from lesson_utils.models import param_groups
        >>> def solution(model, lr):
        ...     return torch.optim.AdamW(param_groups(model, backbone_lr=lr / 10, head_lr=lr))
        >>> check_finetune_optimizer(solution)
        ✅ finetune_optimizer: 2 head tensors at lr=0.01, 27 backbone tensors at lr=0.001
        True
    """
    what = "finetune_optimizer"
    lr = 0.01
    model = TinyResNet(4)
    optimizer = _apply(what, finetune_optimizer, model, lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        fail(what, f"expected a torch.optim optimizer, got {type(optimizer).__name__}")
    lr_of: dict[int, float] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:  # torch itself refuses a tensor in two groups
            lr_of[id(p)] = float(group["lr"])
    head_ids = {id(p) for p in model.head.parameters()}
    missing = [n for n, p in model.named_parameters() if id(p) not in lr_of]
    if missing:
        fail(what, f"{len(missing)} parameter tensors are in no group (e.g. {missing[:2]}): they "
                   "would never train")
    wrong_head = [lr_of[i] for i in head_ids if abs(lr_of[i] - lr) > 1e-12]
    if wrong_head:
        fail(what, f"the head learns at lr={wrong_head[0]}, expected {lr}")
    backbone = [(n, lr_of[id(p)]) for n, p in model.named_parameters() if id(p) not in head_ids]
    wrong = [(n, v) for n, v in backbone if abs(v - lr / 10) > 1e-12]
    if wrong:
        name, value = wrong[0]
        hint = (" (the same as the head: the backbone should be 10x slower)"
                if abs(value - lr) < 1e-12 else "")
        fail(what, f"{name} learns at lr={value}, expected {lr / 10}{hint}")
    return passed(what, f"{len(head_ids)} head tensors at lr={lr}, {len(backbone)} backbone "
                        f"tensors at lr={lr / 10:g}")
