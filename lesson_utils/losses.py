"""Losses for classification, and what to do about class imbalance (lesson 03).

Functions first, ``nn.Module`` wrappers second. Every loss takes ``logits`` of shape ``(N, K)``
and integer class indices ``target`` of shape ``(N,)``, and follows the conventions of
``torch.nn.functional.cross_entropy`` unless an argument says otherwise, in particular:

* ``reduction="none"`` returns one value per example, ``0`` for examples whose target is
  ``ignore_index``;
* ``reduction="mean"`` divides by the *sum of the weights* of the non-ignored examples
  (``sum_i weight[target_i]``), not by ``N``: with no weights that is the number of non-ignored
  examples, and with every example ignored it is ``0/0 = nan``, as in torch.

Every loss starts from one ``log_softmax`` (or ``softmax``) and one ``gather``: never
``log(softmax(x))``, which underflows to ``log(0) = -inf`` for confident wrong predictions. The
per-example formulas are short, but letting autograd differentiate them term by term makes a
dozen extra passes and small operations; each loss therefore has a hand-written backward (a
``torch.autograd.Function``), so that it costs about what ``F.cross_entropy`` costs
(``benchmarks/bench_losses.py``). Every backward is tested against torch's own losses or
against autograd through the plain formula (``tests/test_losses.py``). They support one
backward pass (no gradients of gradients), and class weights get no gradient.

What label smoothing does to a model's confidence is measured with
``lesson_utils.metrics.expected_calibration_error``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = [
    "focal_loss",
    "FocalLoss",
    "focal_term",
    "smooth_targets",
    "label_smoothing_cross_entropy",
    "LabelSmoothingCrossEntropy",
    "soft_f1_score",
    "soft_f1_loss",
    "SoftF1Loss",
    "class_weights",
]

Reduction = Literal["mean", "sum", "none"]
WeightScheme = Literal["inverse", "inverse_sqrt", "effective_number"]

_REDUCTIONS = ("mean", "sum", "none")
_SCHEMES = ("inverse", "inverse_sqrt", "effective_number")


# ---------------------------------------------------------------------------------------------
# Input validation shared by every loss
# ---------------------------------------------------------------------------------------------


def _check_logits_target(logits: Tensor, target: Tensor, ignore_index: int | None) -> bool:
    """Validate ``logits (N, K)`` and ``target (N,)``; return whether some target may equal
    ``ignore_index`` (``False`` lets the caller skip masking)."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits must be a torch.Tensor of shape (N, K), got {type(logits).__name__}")
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor of shape (N,), got {type(target).__name__}")
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (N, K), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.shape[1] < 1:
        raise ValueError(f"logits must have at least one class (K >= 1), got shape {tuple(logits.shape)}")
    if target.dim() != 1:
        raise ValueError(
            f"target must have shape (N,) with class indices, got shape {tuple(target.shape)}"
            + (" (one-hot or probability targets are not supported)" if target.dim() == 2 else "")
        )
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"logits and target must have the same batch size N, got logits {tuple(logits.shape)} "
            f"and target {tuple(target.shape)}"
        )
    num_classes = logits.shape[1]
    ignorable_class = ignore_index is not None and 0 <= ignore_index < num_classes
    if target.numel() == 0:
        return ignorable_class
    low, high = torch.aminmax(target)
    if int(low) >= 0 and int(high) < num_classes:  # the common case: one reduction, no mask
        return ignorable_class
    valid = target if ignore_index is None else target[target != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        bad = valid[(valid < 0) | (valid >= num_classes)]
        raise ValueError(
            f"target must hold class indices in [0, {num_classes - 1}]"
            + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
            + f", got {bad[:5].tolist()}"
        )
    return True


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")


def _check_class_vector(name: str, value: Tensor | None, num_classes: int | None) -> None:
    if value is None:
        return
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be None or a tensor of K per-class weights, got {type(value).__name__}")
    if value.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor of K per-class weights, got shape {tuple(value.shape)}")
    if num_classes is not None and value.numel() != num_classes:
        raise ValueError(
            f"{name} must have one weight per class (length K={num_classes}), got length {value.numel()}"
        )
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"{name} must have one weight per class, got an empty tensor")
    low, high = torch.aminmax(value)
    if not (float(low) >= 0 and float(high) < math.inf):  # also catches nan
        raise ValueError(f"{name} must hold finite, non-negative weights, got {value.tolist()[:8]}")


def _check_gamma(gamma: float) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
        raise TypeError(f"gamma must be a number >= 0, got {type(gamma).__name__}")
    if not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma}")


def _check_smoothing(smoothing: float) -> None:
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
        raise TypeError(f"smoothing must be a number in [0, 1], got {type(smoothing).__name__}")
    if not 0.0 <= smoothing <= 1.0:  # also rejects nan
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")


def _check_eps(eps: float) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps must be a number >= 0, got {eps!r}")


def _prepare_target(target: Tensor, ignore_index: int, may_ignore: bool,
                    class_weight: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | int]:
    """Return ``(safe_target, keep, w_target, denominator)``.

    ``safe_target`` (N,) int64 points ignored rows at class 0 so that ``gather`` works; ``keep``
    (N,) bool is ``None`` when no row is ignored; ``w_target`` (N,) is ``class_weight[target]``
    with 0 on ignored rows (``None`` without class weights); ``denominator`` is what
    ``reduction="mean"`` divides by, as in ``F.cross_entropy``.
    """
    keep = (target != ignore_index) if may_ignore else None  # (N,)
    safe_target = target.long() if keep is None else target.long().masked_fill(~keep, 0)  # (N,)
    if class_weight is None:
        w_target = None
        denominator = target.shape[0] if keep is None else keep.sum()
    else:
        w_target = class_weight[safe_target]  # (N,)
        if keep is not None:
            w_target = w_target.masked_fill(~keep, 0.0)
        denominator = w_target.sum()
    return safe_target, keep, w_target, denominator


def _reduce(loss: Tensor, denominator: Tensor | int, reduction: str) -> Tensor:
    """``loss`` is per example (0 where ignored); ``denominator`` is what "mean" divides by."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / denominator
    raise ValueError(f"reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")


# ---------------------------------------------------------------------------------------------
# Focal loss
# ---------------------------------------------------------------------------------------------


def focal_term(p_t: Tensor | float, gamma: float) -> Tensor:
    """The focal loss of one example as a function of ``p_t``: ``-(1 - p_t)**gamma * log(p_t)``.

    ``p_t`` is the probability the model gives to the true class. With ``gamma=0`` this is the
    cross-entropy ``-log(p_t)``; the factor ``(1 - p_t)**gamma`` shrinks the loss of examples
    that are already classified well (Lin et al., 2017, eq. 4).

    Args:
        p_t: probabilities in ``[0, 1]``, any shape.
        gamma: the focusing parameter, ``>= 0``.

    Returns:
        A float64 tensor of the shape of ``p_t``.

    Example:
        >>> ce, fl = focal_term(0.9, 0.0), focal_term(0.9, 2.0)
        >>> round(float(ce / fl), 6)  # the paper: 100x less loss at p_t = 0.9
        100.0
    """
    _check_gamma(gamma)
    p_t = torch.as_tensor(p_t, dtype=torch.float64)
    if bool(((p_t < 0) | (p_t > 1)).any()) or bool(p_t.isnan().any()):
        raise ValueError(f"p_t must hold probabilities in [0, 1], got min {float(p_t.min())}, max {float(p_t.max())}")
    return -((1.0 - p_t) ** gamma) * torch.log(p_t) + 0.0  # + 0.0 turns -0.0 (at p_t = 1) into 0.0


def focal_loss(
    logits: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    reduction: Reduction = "mean",
    ignore_index: int = -100,
) -> Tensor:
    """Multiclass softmax focal loss: ``-alpha[y] * (1 - p_t)**gamma * log(p_t)``.

    From T.-Y. Lin, P. Goyal, R. Girshick, K. He, P. Dollár, "Focal Loss for Dense Object
    Detection", ICCV 2017 (arXiv:1708.02002), written for a softmax over K classes. The factor
    ``(1 - p_t)**gamma`` down-weights easy examples (``p_t`` near 1), so the many easy examples
    of frequent classes no longer swamp the gradient of the few hard ones.

    ``log p_t`` comes from ``log_softmax`` (stable for any logits), and ``p_t = exp(log p_t)``.
    With ``gamma=0`` this equals ``F.cross_entropy(logits, target, weight=alpha,
    ignore_index=ignore_index, reduction=reduction)`` exactly, including what ``"mean"`` divides
    by: ``sum_i alpha[y_i]`` over the non-ignored examples.

    Args:
        logits: ``(N, K)`` unnormalised scores.
        target: ``(N,)`` class indices in ``[0, K)``, or ``ignore_index``.
        gamma: focusing parameter ``>= 0``; ``0`` gives cross-entropy, the paper uses ``2``.
        alpha: ``None`` or ``(K,)`` per-class weights (e.g. from ``class_weights``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example, 0 where ignored).
        ignore_index: target value whose examples contribute nothing.

    Returns:
        A scalar, or ``(N,)`` for ``reduction="none"``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        >>> target = torch.tensor([0, 2])
        >>> torch.allclose(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))
        True
        >>> focal_loss(logits, target, gamma=2.0, reduction="none")
        tensor([0.0041, 0.9635])
    """
    may_ignore = _check_logits_target(logits, target, ignore_index)
    _check_gamma(gamma)
    _check_class_vector("alpha", alpha, logits.shape[1])
    _check_reduction(reduction)

    alpha = None if alpha is None else alpha.to(logits.dtype)
    safe_target, keep, w_target, denominator = _prepare_target(target, ignore_index, may_ignore, alpha)
    if w_target is None and keep is not None:
        w_target = keep.to(logits.dtype)  # weight 1 on kept rows, 0 on ignored ones
    loss = _FocalLoss.apply(logits, safe_target, w_target, float(gamma))  # (N,)
    return _reduce(loss, denominator, reduction)


class _FocalLoss(torch.autograd.Function):
    """Per-example focal loss ``-a[y] (1 - p_t)**gamma log p_t`` with a fused backward pass.

    With ``u = log p_t`` the loss is ``l(u) = -a (1 - e^u)**gamma u`` and
    ``dl/du = -a ((1 - p_t)**gamma - gamma (1 - p_t)**(gamma - 1) p_t u)``; since
    ``du/dx_k = [k = y] - p_k``, the gradient is ``dl/du ([k = y] - p_k)``: one ``exp`` of the
    saved log-probabilities, one in-place scale and one ``scatter_add`` over ``(N, K)``, about what
    cross-entropy's own backward costs. (Autograd through the element-wise formula spends about
    as much again on a dozen small operations.) ``alpha`` gets no gradient.
    """

    @staticmethod
    def forward(ctx, logits, target, weight, gamma):  # type: ignore[override]
        # weight: (N,) alpha[y] with 0 on ignored rows, or None for all ones.
        log_probs = F.log_softmax(logits, dim=1)  # (N, K)
        log_pt = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)  # (N,)
        if gamma == 0:
            one_minus_pt = modulating = None
            loss = -log_pt
        else:
            # 1 - p_t as -expm1(log p_t): accurate when p_t is close to 1 (1 - exp cancels).
            one_minus_pt = (-torch.expm1(log_pt)).clamp_min(0.0)  # (N,)
            modulating = one_minus_pt.pow(gamma)  # (N,)
            loss = -modulating * log_pt
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(log_probs, target, log_pt, one_minus_pt, modulating, weight)
        ctx.gamma = gamma
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):  # type: ignore[override]
        log_probs, target, log_pt, one_minus_pt, modulating, weight = ctx.saved_tensors
        gamma = ctx.gamma
        if gamma == 0:
            dl_du = -grad_loss if weight is None else -grad_loss * weight  # (N,)
        else:
            # gamma (1 - p)**(gamma - 1) p u -> 0 as p -> 1 (u ~ -(1 - p)); written with a
            # `where` so that gamma < 1 gives 0 there, not inf * 0 = nan.
            focusing = torch.where(
                one_minus_pt > 0,
                gamma * one_minus_pt.pow(gamma - 1) * log_pt.exp() * log_pt,
                torch.zeros_like(log_pt),
            )
            dl_du = -grad_loss * (modulating - focusing)  # (N,)
            if weight is not None:
                dl_du = dl_du * weight
        grad = log_probs.exp().mul_(-dl_du.unsqueeze(1))  # (N, K) = -dl/du * p
        grad.scatter_add_(1, target.unsqueeze(1), dl_du.unsqueeze(1))
        return grad, None, None, None


class FocalLoss(nn.Module):
    """``nn.Module`` wrapper of ``focal_loss`` (Lin et al., 2017): ``criterion(logits, target)``.

    ``alpha`` is stored as a buffer, so ``criterion.to(device)`` moves it with the model.

    Example:
        >>> criterion = FocalLoss(gamma=2.0)
        >>> logits, target = torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
        >>> round(criterion(logits, target).item(), 4)  # (1 - 1/3)**2 * log(3)
        0.4883
    """

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: Tensor | None = None,
        reduction: Reduction = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        _check_gamma(gamma)
        _check_class_vector("alpha", alpha, None)
        _check_reduction(reduction)
        self.gamma = float(gamma)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.register_buffer("alpha", None if alpha is None else alpha.detach().clone())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, gamma=self.gamma, alpha=self.alpha,
                          reduction=self.reduction, ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={'None' if self.alpha is None else 'tensor'}, reduction={self.reduction!r}"


# ---------------------------------------------------------------------------------------------
# Label smoothing
# ---------------------------------------------------------------------------------------------


def smooth_targets(target: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """The smoothed target distribution: ``1 - smoothing + smoothing/K`` on the true class and
    ``smoothing/K`` on every other class.

    Args:
        target: ``(N,)`` class indices in ``[0, K)``.
        num_classes: ``K``.
        smoothing: in ``[0, 1]``.

    Returns:
        ``(N, K)`` float32 rows that sum to 1.

    Example:
        >>> smooth_targets(torch.tensor([1]), 4, 0.2)
        tensor([[0.0500, 0.8500, 0.0500, 0.0500]])
    """
    _check_smoothing(smoothing)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if not isinstance(target, Tensor) or target.dim() != 1:
        raise ValueError(f"target must be a (N,) tensor of class indices, got {target!r}")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target must hold class indices in [0, {num_classes - 1}], got {target.tolist()[:5]}")
    one_hot = F.one_hot(target.long(), num_classes).float()  # (N, K)
    return one_hot * (1.0 - smoothing) + smoothing / num_classes


def label_smoothing_cross_entropy(
    logits: Tensor,
    target: Tensor,
    *,
    smoothing: float = 0.1,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy against smoothed targets (Szegedy et al., 2016, "Rethinking the Inception
    Architecture", section 7).

    The target distribution ``q`` puts ``1 - smoothing + smoothing/K`` on the true class and
    ``smoothing/K`` on each other class (``smooth_targets``). With class weights ``w`` the loss of
    one example is ``-sum_k w[k] * q[k] * log p[k]``, which splits into two terms that need no
    ``(N, K)`` one-hot tensor::

        (1 - smoothing) * w[y] * (-log p[y])  +  (smoothing / K) * sum_k w[k] * (-log p[k])

    ``"mean"`` divides by ``sum_i w[y_i]`` over the non-ignored examples. This is exactly
    ``F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index,
    reduction=reduction, label_smoothing=smoothing)``.

    Args:
        logits: ``(N, K)`` unnormalised scores.
        target: ``(N,)`` class indices in ``[0, K)``, or ``ignore_index``.
        smoothing: in ``[0, 1]``; ``0`` is plain cross-entropy.
        weight: ``None`` or ``(K,)`` per-class weights.
        ignore_index: target value whose examples contribute nothing.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or ``(N,)`` for ``reduction="none"``.

    Example:
        >>> logits, target = torch.tensor([[3.0, 0.0, 0.0]]), torch.tensor([0])
        >>> a = label_smoothing_cross_entropy(logits, target, smoothing=0.1)
        >>> b = F.cross_entropy(logits, target, label_smoothing=0.1)
        >>> torch.allclose(a, b)
        True
    """
    may_ignore = _check_logits_target(logits, target, ignore_index)
    _check_smoothing(smoothing)
    _check_class_vector("weight", weight, logits.shape[1])
    _check_reduction(reduction)

    weight = None if weight is None else weight.to(logits.dtype)
    safe_target, keep, w_target, denominator = _prepare_target(target, ignore_index, may_ignore, weight)
    loss = _SmoothedCrossEntropy.apply(logits, safe_target, keep, weight, w_target,
                                       float(smoothing))  # (N,)
    return _reduce(loss, denominator, reduction)


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Per-example label-smoothed cross-entropy with a fused backward pass.

    Forward: one ``log_softmax``, one ``gather`` and one row sum (or ``@ weight``). Backward:
    with ``c[i, k] = (1 - s) w[y_i] [k = y_i] + (s/K) w[k]`` the loss is
    ``-sum_k c[i, k] log p[i, k]`` and its gradient is ``(sum_k c[i, k]) p[i, k] - c[i, k]``,
    written in three in-place passes over ``(N, K)``. Letting autograd differentiate the two
    terms separately costs about twice as much (two ``(N, K)`` gradients to add before the
    ``log_softmax`` backward). ``weight`` gets no gradient.
    """

    @staticmethod
    def forward(ctx, logits, target, keep, weight, w_target, smoothing):  # type: ignore[override]
        # keep: (N,) bool or None (nothing ignored); weight: (K,) or None; w_target: (N,)
        # weight[target], 0 on ignored rows, or None.
        num_classes = logits.shape[1]
        log_probs = F.log_softmax(logits, dim=1)  # (N, K)
        nll = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)  # (N,)
        if weight is None:
            uniform = -log_probs.sum(dim=1)  # (N,)
        else:
            nll = nll * w_target
            uniform = -(log_probs @ weight)  # (N,) = -sum_k w[k] log p[k]
        loss = (1.0 - smoothing) * nll + (smoothing / num_classes) * uniform
        if keep is not None:
            loss = loss.masked_fill(~keep, 0.0)
        ctx.save_for_backward(log_probs, target, keep, weight, w_target)
        ctx.smoothing = smoothing
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):  # type: ignore[override]
        log_probs, target, keep, weight, w_target = ctx.saved_tensors
        s, num_classes = ctx.smoothing, log_probs.shape[1]
        g = grad_loss if keep is None else grad_loss.masked_fill(~keep, 0.0)  # (N,)
        grad = log_probs.exp()  # (N, K) = p
        if weight is None:
            # sum_k c[i, k] = (1 - s) + s = 1
            grad.mul_(g.unsqueeze(1)).sub_((g * (s / num_classes)).unsqueeze(1))
            true_class = -(1.0 - s) * g  # (N,)
        else:
            row_total = (1.0 - s) * w_target + (s / num_classes) * weight.sum()  # (N,)
            grad.mul_((g * row_total).unsqueeze(1))
            grad.addr_(g, weight, alpha=-s / num_classes)  # - (s/K) g[i] w[k]
            true_class = -(1.0 - s) * g * w_target  # (N,)
        grad.scatter_add_(1, target.unsqueeze(1), true_class.unsqueeze(1))
        return grad, None, None, None, None, None


class LabelSmoothingCrossEntropy(nn.Module):
    """``nn.Module`` wrapper of ``label_smoothing_cross_entropy``; equals
    ``nn.CrossEntropyLoss(label_smoothing=smoothing)``.

    Example:
        >>> criterion = LabelSmoothingCrossEntropy(smoothing=0.1)
        >>> logits, target = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
        >>> torch.allclose(criterion(logits, target),
        ...                nn.CrossEntropyLoss(label_smoothing=0.1)(logits, target))
        True
    """

    def __init__(
        self,
        *,
        smoothing: float = 0.1,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        _check_smoothing(smoothing)
        _check_class_vector("weight", weight, None)
        _check_reduction(reduction)
        self.smoothing = float(smoothing)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.register_buffer("weight", None if weight is None else weight.detach().clone())

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(
            logits, target, smoothing=self.smoothing, weight=self.weight,
            ignore_index=self.ignore_index, reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}, reduction={self.reduction!r}"


# ---------------------------------------------------------------------------------------------
# Soft-F1
# ---------------------------------------------------------------------------------------------


def soft_f1_score(probs: Tensor, target: Tensor, *, eps: float = 1e-7) -> Tensor:
    """Macro F1 computed from probabilities instead of hard predictions (differentiable).

    Per class k: ``tp = sum_i p[i,k] * [y_i = k]``, ``fp = sum_i p[i,k] * [y_i != k]``,
    ``fn = sum_i (1 - p[i,k]) * [y_i = k]``, and ``F1_k = 2 tp / (2 tp + fp + fn + eps)``; the
    result is the mean over the K classes. With one-hot ``probs`` (hard predictions) the counts
    are the usual ones and this is scikit-learn's ``f1_score(average="macro",
    labels=range(K), zero_division=0)`` up to ``eps``.

    Args:
        probs: ``(N, K)`` rows of class probabilities.
        target: ``(N,)`` class indices in ``[0, K)``.
        eps: ``>= 0``, keeps classes absent from both ``target`` and ``probs`` at ``0/eps = 0``.

    Returns:
        A scalar in ``[0, 1]``.

    Example:
        >>> probs = F.one_hot(torch.tensor([0, 1, 1]), 2).float()
        >>> round(soft_f1_score(probs, torch.tensor([0, 1, 0])).item(), 4)  # (2/3 + 2/3) / 2
        0.6667
    """
    _check_logits_target(probs, target, None)
    _check_eps(eps)
    one_hot = F.one_hot(target.long(), probs.shape[1]).to(probs.dtype)  # (N, K)
    tp = (probs * one_hot).sum(dim=0)  # (K,)
    predicted = probs.sum(dim=0)  # (K,) = tp + fp
    actual = one_hot.sum(dim=0)  # (K,) = tp + fn
    # 2tp + fp + fn = (tp + fp) + (tp + fn)
    f1 = 2 * tp / (predicted + actual + eps)  # (K,)
    return f1.mean()


def soft_f1_loss(logits: Tensor, target: Tensor, *, eps: float = 1e-7) -> Tensor:
    """``1 - soft_f1_score(softmax(logits), target)``: a differentiable surrogate of 1 - macro F1.

    The real macro F1 counts hard predictions (``argmax``), whose gradient is zero almost
    everywhere, so it cannot be trained on directly; replacing the counts by sums of
    probabilities gives a smooth function that equals the real one when the probabilities are
    one-hot. The loss is computed over the whole batch (it is not a sum over examples), so
    its value depends on the batch, and small batches give noisy estimates of the F1.

    Args:
        logits: ``(N, K)`` unnormalised scores.
        target: ``(N,)`` class indices in ``[0, K)``.
        eps: ``>= 0``, added to each class's denominator.

    Returns:
        A scalar in ``[0, 1]``.

    Example:
        >>> logits = torch.tensor([[9.0, -9.0], [-9.0, 9.0]], requires_grad=True)
        >>> loss = soft_f1_loss(logits, torch.tensor([0, 1]))
        >>> round(loss.item(), 6)
        0.0
        >>> loss.backward(); logits.grad.abs().sum().item() > 0  # differentiable
        True
    """
    _check_logits_target(logits, target, None)
    _check_eps(eps)
    return _SoftF1Loss.apply(logits, target.long(), float(eps))


class _SoftF1Loss(torch.autograd.Function):
    """``1 - soft_f1_score(softmax(logits), target)`` with a fused backward pass.

    Forward needs no one-hot tensor: ``tp[k]`` adds up ``p[i, y_i]`` by class (``index_add``),
    ``tp + fn`` is the class count and ``tp + fp`` the column sum of ``p``. Backward: with
    ``L = 1 - mean_k 2 tp[k] / D[k]``, ``dL/dp[i, k] = a[k] + [k = y_i] b[k]`` where
    ``a = (2/K) tp / D**2`` and ``b = -(2/K) / D``; the softmax backward of that is
    ``p[i, k] (a[k] - s[i]) + [k = y_i] p[i, y_i] b[y_i]`` with ``s[i] = sum_k p[i, k] a[k] +
    p[i, y_i] b[y_i]``, about three passes over ``(N, K)`` instead of autograd's six.
    """

    @staticmethod
    def forward(ctx, logits, target, eps):  # type: ignore[override]
        num_classes = logits.shape[1]
        probs = F.softmax(logits, dim=1)  # (N, K)
        p_t = probs.gather(1, target.unsqueeze(1)).squeeze(1)  # (N,)
        tp = torch.zeros(num_classes, dtype=probs.dtype, device=probs.device).index_add_(0, target, p_t)
        actual = torch.bincount(target, minlength=num_classes).to(probs.dtype)  # (K,) = tp + fn
        denominator = probs.sum(dim=0) + actual + eps  # (K,) = 2 tp + fp + fn + eps
        f1 = 2 * tp / denominator  # (K,)
        ctx.save_for_backward(probs, target, p_t, tp, denominator)
        return 1.0 - f1.mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):  # type: ignore[override]
        probs, target, p_t, tp, denominator = ctx.saved_tensors
        scale = grad_loss * (2.0 / probs.shape[1])
        a = scale * tp / denominator.square()  # (K,) dL/d(column sum of p)
        b = -scale / denominator  # (K,) dL/dtp
        b_t_p_t = b[target] * p_t  # (N,)
        s = probs @ a + b_t_p_t  # (N,)
        grad = torch.sub(a.unsqueeze(0), s.unsqueeze(1)).mul_(probs)  # (N, K)
        grad.scatter_add_(1, target.unsqueeze(1), b_t_p_t.unsqueeze(1))
        return grad, None, None


class SoftF1Loss(nn.Module):
    """``nn.Module`` wrapper of ``soft_f1_loss``.

    Example:
        >>> criterion = SoftF1Loss()
        >>> round(criterion(torch.zeros(4, 2), torch.tensor([0, 0, 1, 1])).item(), 4)
        0.5
    """

    def __init__(self, *, eps: float = 1e-7) -> None:
        super().__init__()
        _check_eps(eps)
        self.eps = float(eps)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return soft_f1_loss(logits, target, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


# ---------------------------------------------------------------------------------------------
# Class weights
# ---------------------------------------------------------------------------------------------


def class_weights(
    targets: Tensor | Sequence[int],
    num_classes: int,
    *,
    scheme: WeightScheme = "inverse",
    beta: float = 0.999,
) -> Tensor:
    """Per-class weights from the class counts in ``targets``, normalised to mean 1.

    Schemes (``n_k`` is the number of examples of class k):

    * ``"inverse"``: ``1 / n_k``; a balanced loss, every class weighs as much in total.
    * ``"inverse_sqrt"``: ``1 / sqrt(n_k)``; a milder correction.
    * ``"effective_number"``: ``(1 - beta) / (1 - beta**n_k)`` from Cui et al., "Class-Balanced
      Loss Based on Effective Number of Samples", CVPR 2019; ``beta -> 1`` approaches
      ``"inverse"``, ``beta = 0`` gives equal weights.

    Normalising to mean 1 keeps the loss on the scale of the unweighted one, so the learning
    rate does not need retuning. (With ``reduction="mean"`` torch divides by the total weight
    anyway; the scale matters for ``"sum"``.)

    Args:
        targets: ``(N,)`` class indices, a tensor or a sequence of ints (e.g. ``dataset.targets``).
        num_classes: ``K``; every class must occur at least once.
        scheme: ``"inverse"``, ``"inverse_sqrt"`` or ``"effective_number"``.
        beta: in ``[0, 1)``, only used by ``"effective_number"``.

    Returns:
        A ``(K,)`` float32 tensor with mean 1.

    Example:
        >>> class_weights([0, 0, 0, 1], 2)
        tensor([0.5000, 1.5000])
        >>> class_weights([0, 0, 0, 1], 2, scheme="inverse_sqrt")
        tensor([0.7321, 1.2679])
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {list(_SCHEMES)}, got {scheme!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r}")
    targets = torch.as_tensor(targets)
    if targets.dim() != 1:
        raise ValueError(f"targets must be a 1-D sequence of class indices, got shape {tuple(targets.shape)}")
    if targets.numel() == 0:
        raise ValueError("targets must not be empty: class weights need at least one example per class")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer class indices, got dtype {targets.dtype}")
    if int(targets.min()) < 0 or int(targets.max()) >= num_classes:
        raise ValueError(
            f"targets must hold class indices in [0, {num_classes - 1}], "
            f"got values from {int(targets.min())} to {int(targets.max())}"
        )
    counts = torch.bincount(targets.long(), minlength=num_classes).double()  # (K,)
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"targets has no example of classes {missing}: every one of the num_classes={num_classes} "
            "classes needs at least one example to get a weight"
        )
    if scheme == "inverse":
        raw = 1.0 / counts
    elif scheme == "inverse_sqrt":
        raw = counts.rsqrt()
    elif scheme == "effective_number":
        raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    else:  # pragma: no cover - checked above
        raise ValueError(f"scheme must be one of {list(_SCHEMES)}, got {scheme!r}")
    return (raw / raw.mean()).float()
