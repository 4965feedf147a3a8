"""Self-checks for lesson 03 (losses).

Each checker calls the student's function on a few fixed random batches, compares the result
with ``lesson_utils.losses`` (itself tested against torch), and when it differs, tries the
usual mistakes one by one so that the hint names the likely one.

Example:
    >>> from lesson_utils.losses import focal_loss
    >>> check_focal_loss(lambda logits, target, gamma, alpha=None:
    ...                  focal_loss(logits, target, gamma=gamma, alpha=alpha))
    ✅ focal loss: matches the library on 6 random batches (gamma 0, 0.5, 2; with and without alpha), keeps the gradient and stays finite for extreme logits
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from lesson_utils.checks._core import fail, passed
from lesson_utils.losses import focal_loss, soft_f1_score

__all__ = ["check_focal_loss", "check_label_smoothing", "check_soft_f1"]


def _batch(seed: int, n: int, k: int, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, generator=g) * scale).requires_grad_(True)  # (N, K)
    target = torch.randint(0, k, (n,), generator=g)  # (N,)
    return logits, target


def _call(what: str, fn: Callable[..., Any], description: str, *args: Any, **kwargs: Any) -> torch.Tensor:
    """Call the student's function; turn every way it can go wrong into a hint."""
    if not callable(fn):
        fail(what, f"expected a function, got {type(fn).__name__}")
    try:
        got = fn(*args, **kwargs)
    except Exception as exc:  # the student's code: report whatever it raised
        fail(what, f"calling it on {description} raised {type(exc).__name__}: {exc}")
    if got is None:
        fail(what, "it returned None: did the function forget to `return` its result?")
    if not isinstance(got, torch.Tensor):
        fail(what, f"expected a torch.Tensor (so that autograd can use it), got {type(got).__name__}: "
                   "did you call .item() or use numpy?")
    if got.shape != ():
        fail(what, f"expected one number (a 0-d tensor: the mean over the batch), got shape "
                   f"{tuple(got.shape)}: did you forget the reduction?")
    return got


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=1e-4, atol=1e-6))


def _mismatch(what: str, got: torch.Tensor, expected: torch.Tensor, description: str,
              wrong_answers: list[tuple[torch.Tensor, str]]) -> None:
    for candidate, hint in wrong_answers:
        if _close(got, candidate):
            fail(what, f"on {description}: {hint}")
    g, e = float(got), float(expected)
    ratio = f" ({g / e:.3g}x the expected value)" if e else ""
    fail(what, f"on {description} expected {e:.6g}, got {g:.6g}{ratio}")


def _check_gradient(what: str, got: torch.Tensor, description: str) -> None:
    if not got.requires_grad:
        fail(what, f"on {description} the result carries no gradient: keep every step in torch "
                   "(no .item(), .detach(), numpy or argmax) so that backward() can train with it")


def check_focal_loss(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logits, target, gamma, alpha=None)``: the mean multiclass focal loss.

    It must equal ``lesson_utils.losses.focal_loss(logits, target, gamma=gamma, alpha=alpha)``
    (``reduction="mean"``: with ``alpha`` the sum is divided by ``sum alpha[target]``, as in
    ``F.cross_entropy``), keep the gradient, and stay finite for extreme logits.

    Example:
        >>> def plain_ce(logits, target, gamma, alpha=None):
        ...     return F.cross_entropy(logits, target, weight=alpha)
        >>> check_focal_loss(plain_ce)
        Traceback (most recent call last):
        ...
        lesson_utils.checks._core.CheckFailed: ❌ focal loss: on a batch of 16 examples, 5 classes, gamma=2, no alpha: this is plain cross-entropy: the modulating factor (1 - p_t)**gamma is missing
    """
    what = "focal loss"
    cases = [(2.0, False), (0.0, False), (0.5, False), (2.0, True), (0.0, True), (0.5, True)]
    for i, (gamma, use_alpha) in enumerate(cases):
        logits, target = _batch(100 + i, 16, 5)
        alpha = (torch.rand(5, generator=torch.Generator().manual_seed(i)) + 0.2) if use_alpha else None
        description = (f"a batch of 16 examples, 5 classes, gamma={gamma:g}, "
                       + ("alpha=a tensor of 5 class weights" if use_alpha else "no alpha"))
        got = _call(what, fn, description, logits, target, gamma, alpha=alpha)
        expected = focal_loss(logits, target, gamma=gamma, alpha=alpha)
        if not _close(got, expected):
            log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)  # (N,)
            p = log_p.exp()
            a = torch.ones_like(p) if alpha is None else alpha[target]
            per_example = -a * (1 - p) ** gamma * log_p
            wrong = [
                (-expected, "the sign is flipped: the loss is -(1 - p_t)**gamma * log(p_t), "
                            "which is >= 0 because log(p_t) <= 0"),
                (per_example.sum(), "you summed over the batch; the loss is the mean"),
                (-(a * p**gamma * log_p).sum() / a.sum(),
                 "the modulating factor is (1 - p_t)**gamma, not p_t**gamma: it must shrink "
                 "the loss of examples that are already right (p_t near 1)"),
            ]
            if gamma != 0:
                wrong.append((F.cross_entropy(logits, target, weight=alpha),
                              "this is plain cross-entropy: the modulating factor (1 - p_t)**gamma "
                              "is missing"))
            if alpha is not None:
                wrong += [
                    (per_example.mean(), "with alpha, torch's mean divides by the sum of "
                                         "alpha[target] over the batch, not by N"),
                    (focal_loss(logits, target, gamma=gamma),
                     "alpha is ignored: multiply each example's loss by alpha[target] (its "
                     "class's weight)"),
                ]
            _mismatch(what, got, expected, description, wrong)
        _check_gradient(what, got, description)

    # Confident and wrong: log(softmax) underflows to log(0) = -inf, log_softmax does not.
    logits = torch.tensor([[200.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    target = torch.tensor([1, 0])
    got = _call(what, fn, "extreme logits", logits, target, 2.0, alpha=None)
    if not torch.isfinite(got):
        fail(what, "with a logit of 200 the loss is not finite: take log p_t from "
                   "F.log_softmax(logits, dim=1); torch.log(torch.softmax(...)) gives log(0) = -inf")
    if not _close(got, focal_loss(logits, target, gamma=2.0)):
        _mismatch(what, got, focal_loss(logits, target, gamma=2.0), "extreme logits", [])
    return passed(what, "matches the library on 6 random batches (gamma 0, 0.5, 2; with and "
                        "without alpha), keeps the gradient and stays finite for extreme logits")


def check_label_smoothing(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logits, target, smoothing)``: the mean label-smoothed cross-entropy, which must
    equal ``F.cross_entropy(logits, target, label_smoothing=smoothing)``.

    Example:
        >>> check_label_smoothing(lambda logits, target, smoothing:
        ...     F.cross_entropy(logits, target, label_smoothing=smoothing))
        ✅ label smoothing: equals F.cross_entropy(label_smoothing=...) for smoothing 0, 0.1, 0.3 and 4 or 7 classes, and keeps the gradient
        True
    """
    what = "label smoothing"
    cases = [(0.1, 4), (0.3, 7), (0.0, 4), (0.3, 4)]
    for i, (smoothing, k) in enumerate(cases):
        logits, target = _batch(200 + i, 12, k)
        description = f"a batch of 12 examples, {k} classes, smoothing={smoothing:g}"
        got = _call(what, fn, description, logits, target, smoothing)
        expected = F.cross_entropy(logits, target, label_smoothing=smoothing)
        if not _close(got, expected):
            log_p = F.log_softmax(logits, dim=1)  # (N, K)
            one_hot = F.one_hot(target, k).float()
            smooth = one_hot * (1 - smoothing) + smoothing / k  # the right targets

            def soft_ce(q: torch.Tensor, log_p: torch.Tensor = log_p) -> torch.Tensor:
                return -(q * log_p).sum(1).mean()

            wrong = [
                (F.cross_entropy(logits, target), "this is plain cross-entropy: the smoothing is "
                                                  "ignored"),
                (soft_ce(one_hot * (1 - smoothing) + (1 - one_hot) * smoothing / (k - 1)),
                 "you spread smoothing/(K-1) over the other classes; torch spreads smoothing/K "
                 "over all K classes, so the true class gets 1 - smoothing + smoothing/K"),
                (soft_ce(one_hot * (1 - smoothing) + (1 - one_hot) * smoothing / k),
                 "the true class must get 1 - smoothing + smoothing/K (your targets do not sum "
                 "to 1: the true class is missing its smoothing/K share)"),
                (-(smooth * log_p).sum(), "you summed over the batch; the loss is the mean"),
                (soft_ce(smooth) * k,
                 "the result is K times too large: average over the batch, not over classes"),
                (-(smooth * log_p.exp()).sum(1).mean(),
                 "use log-probabilities (F.log_softmax), not probabilities"),
            ]
            _mismatch(what, got, expected, description, wrong)
        _check_gradient(what, got, description)
    return passed(what, "equals F.cross_entropy(label_smoothing=...) for smoothing 0, 0.1, 0.3 "
                        "and 4 or 7 classes, and keeps the gradient")


def check_soft_f1(fn: Callable[..., Any]) -> bool:
    """Check ``fn(probs, target)``: the soft macro-F1 *score* (higher is better) from
    probabilities ``(N, K)`` and class indices ``(N,)``; it must equal
    ``lesson_utils.losses.soft_f1_score`` (eps 1e-7) and be differentiable.

    Example:
        >>> check_soft_f1(lambda probs, target: soft_f1_score(probs, target))
        ✅ soft-F1: matches soft_f1_score on 3 batches (one of them with hard one-hot predictions, where it is the usual macro F1) and is differentiable
        True
    """
    what = "soft-F1"
    for i, (n, k, hard) in enumerate([(20, 4, False), (30, 3, True), (25, 5, False)]):
        logits, target = _batch(300 + i, n, k)
        if hard:  # one-hot "probabilities": the usual F1 of hard predictions
            probs = F.one_hot(logits.detach().argmax(1), k).float().requires_grad_(True)
        else:
            probs = torch.softmax(logits.detach(), dim=1).requires_grad_(True)
        description = (f"{n} examples, {k} classes" + (", one-hot predictions" if hard else ""))
        got = _call(what, fn, description, probs, target)
        expected = soft_f1_score(probs, target)
        if not _close(got, expected):
            one_hot = F.one_hot(target, k).float()
            tp = (probs * one_hot).sum(0)
            fp = (probs * (1 - one_hot)).sum(0)
            fn_ = ((1 - probs) * one_hot).sum(0)
            wrong = [
                (1 - expected, "this is 1 - F1 (the loss); the function should return the score"),
                (2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn_.sum()),
                 "this is the micro F1 (counts pooled over classes); macro F1 is the mean of the "
                 "per-class F1s, so that rare classes count as much as frequent ones"),
                ((tp / (tp + fp + fn_ + 1e-7)).mean(), "F1 = 2 tp / (2 tp + fp + fn): the factor "
                                                       "2 is missing"),
            ]
            if torch.isnan(got):
                fail(what, f"on {description} the result is nan: add a small eps to each class's "
                           "denominator (2 tp + fp + fn can be 0)")
            _mismatch(what, got, expected, description, wrong)
        _check_gradient(what, got, description)
    return passed(what, "matches soft_f1_score on 3 batches (one of them with hard one-hot "
                        "predictions, where it is the usual macro F1) and is differentiable")
