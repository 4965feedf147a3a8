"""Tests for lesson_utils.losses: every loss against torch's built-ins (values and gradients),
soft-F1 against scikit-learn, and every bad-input error by its message."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score
from torch import nn

from lesson_utils.losses import (
    FocalLoss,
    LabelSmoothingCrossEntropy,
    SoftF1Loss,
    class_weights,
    focal_loss,
    focal_term,
    label_smoothing_cross_entropy,
    smooth_targets,
    soft_f1_loss,
    soft_f1_score,
)

N, K = 32, 5
REDUCTIONS = ["mean", "sum", "none"]


def _batch(seed: int = 0, n: int = N, k: int = K, *, scale: float = 3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, k, generator=g, dtype=dtype) * scale).requires_grad_(True)
    target = torch.randint(0, k, (n,), generator=g)
    return logits, target


def _weights(k: int = K, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(k, generator=g, dtype=dtype) * 2 + 0.1


# Targets: none ignored; some rows ignored with the default -100; class 1 used as ignore_index.
def _ignore_cases(target: torch.Tensor):
    some_ignored = target.clone()
    some_ignored[::4] = -100
    return [("none_ignored", target, -100), ("some_ignored", some_ignored, -100),
            ("class_as_ignore_index", target, 1)]


def _assert_same_value_and_grad(ours_fn, ref_fn, logits):
    """Same values, and the same vector-Jacobian product for a random upstream gradient."""
    ours = ours_fn(logits)
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(99), dtype=ours.dtype)
    (g_ours,) = torch.autograd.grad(ours, logits, upstream)
    ref = ref_fn(logits)
    (g_ref,) = torch.autograd.grad(ref, logits, upstream)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- focal loss

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("use_alpha", [False, True], ids=["no_alpha", "alpha"])
@pytest.mark.parametrize("case", range(3), ids=["none_ignored", "some_ignored", "class_ignored"])
def test_focal_gamma0_equals_cross_entropy(reduction, use_alpha, case):
    logits, target = _batch(0)
    _, tgt, ignore_index = _ignore_cases(target)[case]
    alpha = _weights() if use_alpha else None
    _assert_same_value_and_grad(
        lambda x: focal_loss(x, tgt, gamma=0.0, alpha=alpha, reduction=reduction,
                             ignore_index=ignore_index),
        lambda x: F.cross_entropy(x, tgt, weight=alpha, reduction=reduction,
                                  ignore_index=ignore_index),
        logits,
    )


def test_focal_gamma0_equals_cross_entropy_float32():
    logits, target = _batch(3, n=256, k=10, dtype=torch.float32)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))


def _focal_reference(logits, target, gamma, alpha, reduction, ignore_index):
    """The formula written the slow, obvious way: a loop over examples, float64."""
    probs = torch.softmax(logits.double(), dim=1)
    losses, weights = [], []
    for i in range(len(target)):
        y = int(target[i])
        if y == ignore_index:
            losses.append(torch.zeros((), dtype=torch.float64))
            weights.append(0.0)
            continue
        a = 1.0 if alpha is None else float(alpha[y])
        p = probs[i, y]
        losses.append(-a * (1 - p) ** gamma * torch.log(p))
        weights.append(a)
    loss = torch.stack(losses)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / sum(weights)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("use_alpha", [False, True], ids=["no_alpha", "alpha"])
def test_focal_matches_formula(gamma, reduction, use_alpha):
    logits, target = _batch(1)
    target = target.clone()
    target[::5] = -100
    alpha = _weights() if use_alpha else None
    _assert_same_value_and_grad(
        lambda x: focal_loss(x, target, gamma=gamma, alpha=alpha, reduction=reduction),
        lambda x: _focal_reference(x, target, gamma, alpha, reduction, -100),
        logits,
    )


def test_focal_gradcheck():
    logits, target = _batch(2, n=6, k=4)
    assert torch.autograd.gradcheck(
        lambda x: focal_loss(x, target, gamma=2.0, alpha=_weights(4)), (logits,))


@pytest.mark.parametrize("gamma", [0.25, 0.5, 2.0])
def test_focal_no_nan_when_confident(gamma):
    # p_t rounds to exactly 1 in float32: x**gamma has an infinite slope at 0 for gamma < 1.
    logits = torch.tensor([[60.0, 0.0, -60.0], [0.0, 80.0, 0.0]], requires_grad=True)
    target = torch.tensor([0, 1])
    loss = focal_loss(logits, target, gamma=gamma)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(0.0, abs=1e-20)


def test_focal_extreme_logits_are_stable():
    # A confident wrong prediction: log(softmax) would give -inf, log_softmax gives -100.
    logits = torch.tensor([[100.0, 0.0]])
    loss = focal_loss(logits, torch.tensor([1]), gamma=2.0)
    assert loss.item() == pytest.approx(100.0)


def test_focal_all_ignored_mean_is_nan_like_torch():
    logits, target = _batch(0, n=4)
    target = torch.full_like(target, -100)
    assert math.isnan(F.cross_entropy(logits, target).item())
    assert math.isnan(focal_loss(logits, target, gamma=2.0).item())
    assert focal_loss(logits, target, reduction="sum").item() == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch_matches_torch(reduction):
    logits = torch.zeros(0, K, dtype=torch.float64, requires_grad=True)
    target = torch.zeros(0, dtype=torch.long)
    weight = _weights()
    expected = F.cross_entropy(logits, target, weight=weight, reduction=reduction, label_smoothing=0.1)
    for ours in (focal_loss(logits, target, gamma=0.0, alpha=weight, reduction=reduction),
                 label_smoothing_cross_entropy(logits, target, smoothing=0.1, weight=weight,
                                               reduction=reduction)):
        torch.testing.assert_close(ours, expected, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), g1=st.floats(0, 5), g2=st.floats(0, 5))
def test_focal_never_above_ce_and_decreasing_in_gamma(seed, g1, g2):
    logits, target = _batch(seed, n=8, k=3)
    lo, hi = sorted((g1, g2))
    ce = F.cross_entropy(logits, target, reduction="none")
    f_lo = focal_loss(logits, target, gamma=lo, reduction="none")
    f_hi = focal_loss(logits, target, gamma=hi, reduction="none")
    assert (f_lo <= ce + 1e-12).all()
    assert (f_hi <= f_lo + 1e-12).all()


def test_focal_loss_int32_target_and_module():
    logits, target = _batch(4, dtype=torch.float32)
    ours = FocalLoss(gamma=1.5)(logits, target.int())
    torch.testing.assert_close(ours, focal_loss(logits, target, gamma=1.5))


def test_focal_term_paper_numbers():
    # Lin et al. 2017: with gamma=2, 100x lower loss at p_t=0.9, ~1000x at p_t~0.968.
    ratio = lambda p: float(focal_term(p, 0.0) / focal_term(p, 2.0))  # noqa: E731
    assert ratio(0.9) == pytest.approx(100.0)
    assert ratio(0.968) == pytest.approx(1 / 0.032**2) and 950 < ratio(0.968) < 1000
    assert focal_term(torch.tensor([0.5, 1.0]), 2.0).tolist() == pytest.approx([0.25 * math.log(2), 0.0])


def test_focal_term_matches_focal_loss():
    logits, target = _batch(5)
    p_t = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(focal_term(p_t.detach(), 2.0),
                               focal_loss(logits, target, gamma=2.0, reduction="none").detach())


# ---------------------------------------------------------------------------- FocalLoss module

def test_focal_module_is_a_module_with_alpha_buffer():
    alpha = _weights(dtype=torch.float32)
    criterion = FocalLoss(gamma=2.0, alpha=alpha, reduction="sum", ignore_index=3)
    assert isinstance(criterion, nn.Module)
    assert "alpha" in dict(criterion.named_buffers())
    assert torch.equal(criterion.state_dict()["alpha"], alpha)
    assert criterion.double().alpha.dtype == torch.float64  # buffers follow .to()/.double()
    logits, target = _batch(6)
    torch.testing.assert_close(
        criterion(logits, target),
        focal_loss(logits, target, gamma=2.0, alpha=alpha.double(), reduction="sum", ignore_index=3))
    assert "gamma=2.0" in repr(criterion)


def test_focal_module_gamma0_equals_cross_entropy_loss():
    logits, target = _batch(7, dtype=torch.float32)
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target), nn.CrossEntropyLoss()(logits, target))


# ---------------------------------------------------------------------------- label smoothing

SMOOTH_CASES = list(itertools.product(
    [0.0, 0.1, 0.5, 1.0],  # smoothing
    [False, True],  # weight
    range(3),  # ignore case
    REDUCTIONS,
))


@pytest.mark.parametrize("smoothing,use_weight,case,reduction", SMOOTH_CASES)
def test_label_smoothing_equals_torch(smoothing, use_weight, case, reduction):
    logits, target = _batch(10)
    _, tgt, ignore_index = _ignore_cases(target)[case]
    weight = _weights() if use_weight else None
    _assert_same_value_and_grad(
        lambda x: label_smoothing_cross_entropy(x, tgt, smoothing=smoothing, weight=weight,
                                                ignore_index=ignore_index, reduction=reduction),
        lambda x: F.cross_entropy(x, tgt, weight=weight, ignore_index=ignore_index,
                                  reduction=reduction, label_smoothing=smoothing),
        logits,
    )


@pytest.mark.parametrize("use_weight", [False, True])
def test_label_smoothing_is_cross_entropy_against_smoothed_targets(use_weight):
    # The definition written out: -sum_k w[k] q[k] log p[k], q from smooth_targets.
    logits, target = _batch(11)
    weight = _weights() if use_weight else torch.ones(K, dtype=torch.float64)
    q = smooth_targets(target, K, 0.2).double()
    per_example = -(weight * q * torch.log_softmax(logits, 1)).sum(1)
    ours = label_smoothing_cross_entropy(logits, target, smoothing=0.2,
                                         weight=weight if use_weight else None, reduction="none")
    torch.testing.assert_close(ours, per_example)


def test_smooth_targets_values():
    q = smooth_targets(torch.tensor([0, 2]), 3, 0.3)
    torch.testing.assert_close(q, torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    torch.testing.assert_close(q.sum(1), torch.ones(2))


def test_label_smoothing_module_equals_nn_module():
    weight = _weights(dtype=torch.float32)
    ours = LabelSmoothingCrossEntropy(smoothing=0.15, weight=weight, ignore_index=2)
    ref = nn.CrossEntropyLoss(weight=weight, ignore_index=2, label_smoothing=0.15)
    logits, target = _batch(12, dtype=torch.float32)
    torch.testing.assert_close(ours(logits, target), ref(logits, target))
    assert torch.equal(ours.state_dict()["weight"], weight)
    assert "smoothing=0.15" in repr(ours)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), smoothing=st.floats(0, 1), n=st.integers(1, 20),
       k=st.integers(1, 7))
def test_label_smoothing_equals_torch_property(seed, smoothing, n, k):
    logits, target = _batch(seed, n=n, k=k)
    torch.testing.assert_close(
        label_smoothing_cross_entropy(logits, target, smoothing=smoothing),
        F.cross_entropy(logits, target, label_smoothing=smoothing))


# ---------------------------------------------------------------------------- soft-F1

@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), k=st.integers(1, 6))
def test_soft_f1_with_one_hot_probs_equals_sklearn_macro_f1(seed, n, k):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = rng.integers(0, k, n)
    probs = F.one_hot(torch.as_tensor(y_pred), k).double()
    expected = f1_score(y_true, y_pred, average="macro", labels=list(range(k)), zero_division=0)
    ours = soft_f1_score(probs, torch.as_tensor(y_true))
    assert ours.item() == pytest.approx(expected, abs=1e-6)
    # The loss takes logits: large margins make softmax exactly one-hot.
    loss = soft_f1_loss(probs * 1e4, torch.as_tensor(y_true))
    assert loss.item() == pytest.approx(1 - expected, abs=1e-6)


def test_soft_f1_absent_class_counts_as_zero_like_sklearn():
    # Class 2 appears in neither y_true nor y_pred: sklearn (labels=range(K)) counts its F1 as 0.
    y_true, y_pred = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0])
    expected = f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2], zero_division=0)
    assert soft_f1_score(F.one_hot(y_pred, 3).float(), y_true).item() == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 2, 7])
def test_soft_f1_loss_fused_backward_equals_autograd(seed, k):
    # soft_f1_loss has a hand-written backward; soft_f1_score is plain autograd.
    logits, target = _batch(seed, n=24, k=k)
    _assert_same_value_and_grad(
        lambda x: soft_f1_loss(x, target),
        lambda x: 1 - soft_f1_score(torch.softmax(x, 1), target),
        logits,
    )


@pytest.mark.parametrize("use_weight", [False, True])
def test_label_smoothing_gradcheck(use_weight):
    logits, target = _batch(16, n=6, k=4)
    target[0] = -100
    weight = _weights(4) if use_weight else None
    assert torch.autograd.gradcheck(
        lambda x: label_smoothing_cross_entropy(x, target, smoothing=0.3, weight=weight,
                                                reduction="none"), (logits,))


def test_soft_f1_is_differentiable():
    logits, target = _batch(13, n=10, k=3)
    assert torch.autograd.gradcheck(lambda x: soft_f1_loss(x, target), (logits,))
    loss = SoftF1Loss()(logits, target)
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_soft_f1_training_step_raises_hard_f1():
    # One gradient step on the surrogate should not lower the soft F1 (small lr).
    logits, target = _batch(14, n=64, k=4, scale=0.5)
    before = soft_f1_loss(logits, target)
    (grad,) = torch.autograd.grad(before, logits)
    after = soft_f1_loss(logits - 0.5 * grad, target)
    assert after < before


def test_soft_f1_module():
    logits, target = _batch(15)
    assert SoftF1Loss(eps=0.0)(logits, target).item() == pytest.approx(
        soft_f1_loss(logits, target, eps=0.0).item())
    assert "eps=" in repr(SoftF1Loss())


# ---------------------------------------------------------------------------- class weights

def test_class_weights_inverse():
    targets = [0] * 8 + [1] * 4 + [2] * 1
    w = class_weights(targets, 3)
    raw = torch.tensor([1 / 8, 1 / 4, 1.0])
    torch.testing.assert_close(w, raw / raw.mean())
    assert w.dtype == torch.float32 and w.mean().item() == pytest.approx(1.0)
    # A balanced loss: every class carries the same total weight (count * weight).
    counts = torch.tensor([8.0, 4.0, 1.0])
    torch.testing.assert_close(counts * w, torch.full((3,), float((counts * w)[0])))


def test_class_weights_inverse_sqrt_and_effective_number():
    targets = torch.tensor([0] * 100 + [1] * 10 + [2] * 1)
    counts = torch.tensor([100.0, 10.0, 1.0], dtype=torch.float64)
    w = class_weights(targets, 3, scheme="inverse_sqrt")
    raw = counts.rsqrt()
    torch.testing.assert_close(w, (raw / raw.mean()).float())
    beta = 0.99
    w = class_weights(targets, 3, scheme="effective_number", beta=beta)
    raw = (1 - beta) / (1 - beta**counts)
    torch.testing.assert_close(w, (raw / raw.mean()).float())
    # beta = 0: every class has effective number 1, so the weights are equal.
    torch.testing.assert_close(class_weights(targets, 3, scheme="effective_number", beta=0.0),
                               torch.ones(3))
    # beta close to 1 approaches inverse frequency.
    torch.testing.assert_close(class_weights(targets, 3, scheme="effective_number", beta=0.999999),
                               class_weights(targets, 3), rtol=1e-3, atol=1e-3)


def test_class_weights_are_ordered_by_rarity():
    targets = torch.tensor([0] * 50 + [1] * 20 + [2] * 5 + [3] * 1)
    for scheme in ("inverse", "inverse_sqrt", "effective_number"):
        w = class_weights(targets, 4, scheme=scheme)
        assert (w[1:] > w[:-1]).all(), scheme


# ---------------------------------------------------------------------------- calibration

# ---------------------------------------------------------------------------- bad input

def _ok():
    return torch.randn(4, 3), torch.tensor([0, 1, 2, 0])


LOSS_FNS = {
    "focal": lambda x, t, **kw: focal_loss(x, t, **kw),
    "smoothing": lambda x, t, **kw: label_smoothing_cross_entropy(x, t, **kw),
    "soft_f1": lambda x, t, **kw: soft_f1_loss(x, t, **kw),
}


@pytest.mark.parametrize("name", LOSS_FNS)
def test_shape_errors(name):
    fn = LOSS_FNS[name]
    logits, target = _ok()
    with pytest.raises(ValueError, match=r"logits must have shape \(N, K\), got shape \(4,\)"):
        fn(logits[:, 0], target)
    with pytest.raises(ValueError, match=r"target must have shape \(N,\).*one-hot"):
        fn(logits, F.one_hot(target, 3))
    with pytest.raises(ValueError, match=r"same batch size N.*\(4, 3\).*\(3,\)"):
        fn(logits, target[:3])
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\].*got \[3\]"):
        fn(logits, torch.tensor([0, 1, 3, 0]))
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        fn(logits, target.float())
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        fn(logits.long(), target)
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        fn(logits.tolist(), target)


@pytest.mark.parametrize("name", ["focal", "smoothing"])
def test_target_error_mentions_ignore_index(name):
    logits, _ = _ok()
    with pytest.raises(ValueError, match=r"\[0, 2\] or ignore_index=-100, got \[-1\]"):
        LOSS_FNS[name](logits, torch.tensor([0, -1, 2, 0]))


@pytest.mark.parametrize("name", ["focal", "smoothing"])
def test_unknown_reduction(name):
    with pytest.raises(ValueError, match=r"reduction must be one of \['mean', 'sum', 'none'\], got 'avg'"):
        LOSS_FNS[name](*_ok(), reduction="avg")


@pytest.mark.parametrize("gamma", [-0.5, float("nan"), float("inf")])
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        focal_loss(*_ok(), gamma=gamma)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        FocalLoss(gamma=gamma)
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0"):
        focal_term(0.5, gamma)


def test_bad_gamma_type():
    with pytest.raises(TypeError, match="gamma must be a number"):
        focal_loss(*_ok(), gamma="2")


def test_bad_alpha():
    with pytest.raises(ValueError, match=r"alpha must have one weight per class \(length K=3\), got length 2"):
        focal_loss(*_ok(), alpha=torch.ones(2))
    with pytest.raises(ValueError, match=r"alpha must be a 1-D tensor"):
        focal_loss(*_ok(), alpha=torch.ones(3, 1))
    with pytest.raises(ValueError, match="alpha must hold finite, non-negative weights"):
        focal_loss(*_ok(), alpha=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(TypeError, match="alpha must be a floating-point tensor"):
        focal_loss(*_ok(), alpha=torch.ones(3, dtype=torch.long))
    with pytest.raises(TypeError, match="alpha must be None or a tensor"):
        FocalLoss(alpha=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"alpha must have one weight per class \(length K=3\)"):
        FocalLoss(alpha=torch.ones(4))(*_ok())


def test_bad_weight():
    with pytest.raises(ValueError, match=r"weight must have one weight per class \(length K=3\), got length 5"):
        label_smoothing_cross_entropy(*_ok(), weight=torch.ones(5))


@pytest.mark.parametrize("smoothing", [-0.1, 1.5, float("nan")])
def test_bad_smoothing(smoothing):
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\]"):
        label_smoothing_cross_entropy(*_ok(), smoothing=smoothing)
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\]"):
        LabelSmoothingCrossEntropy(smoothing=smoothing)
    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\]"):
        smooth_targets(torch.tensor([0]), 2, smoothing)


def test_bad_smooth_targets():
    with pytest.raises(ValueError, match="num_classes must be an int >= 1"):
        smooth_targets(torch.tensor([0]), 0, 0.1)
    with pytest.raises(ValueError, match=r"class indices in \[0, 1\]"):
        smooth_targets(torch.tensor([2]), 2, 0.1)
    with pytest.raises(ValueError, match=r"target must be a \(N,\) tensor"):
        smooth_targets(torch.tensor([[0]]), 2, 0.1)


def test_bad_eps():
    with pytest.raises(ValueError, match="eps must be a number >= 0"):
        soft_f1_loss(*_ok(), eps=-1.0)
    with pytest.raises(ValueError, match="eps must be a number >= 0"):
        SoftF1Loss(eps=float("nan"))


def test_bad_p_t():
    with pytest.raises(ValueError, match=r"p_t must hold probabilities in \[0, 1\]"):
        focal_term(torch.tensor([0.5, 1.2]), 2.0)


def test_class_weights_errors():
    with pytest.raises(ValueError, match=r"scheme must be one of \['inverse', 'inverse_sqrt', 'effective_number'\], got 'balanced'"):
        class_weights([0, 1], 2, scheme="balanced")
    with pytest.raises(ValueError, match="num_classes must be an int >= 1, got 0"):
        class_weights([0, 1], 0)
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\), got 1.0"):
        class_weights([0, 1], 2, scheme="effective_number", beta=1.0)
    with pytest.raises(ValueError, match="targets has no example of classes \\[1, 3\\]"):
        class_weights([0, 2, 2], 4)
    with pytest.raises(ValueError, match=r"class indices in \[0, 1\], got values from 0 to 5"):
        class_weights([0, 5], 2)
    with pytest.raises(ValueError, match="targets must not be empty"):
        class_weights([], 2)
    with pytest.raises(ValueError, match="targets must be a 1-D sequence"):
        class_weights([[0, 1]], 2)
    with pytest.raises(TypeError, match="targets must hold integer class indices"):
        class_weights([0.0, 1.0], 2)


# ---------------------------------------------------------------------------- self-checks

from lesson_utils.checks import CheckFailed  # noqa: E402
from lesson_utils.checks.losses import (  # noqa: E402
    check_focal_loss,
    check_label_smoothing,
    check_soft_f1,
)


def _focal_from_scratch(logits, target, gamma, alpha=None):
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    a = torch.ones_like(log_p) if alpha is None else alpha[target]
    return (-a * (1 - log_p.exp()) ** gamma * log_p).sum() / a.sum()


def test_check_focal_loss_passes_a_correct_solution(capsys):
    assert check_focal_loss(_focal_from_scratch) is True
    assert "✅ focal loss" in capsys.readouterr().out


def _p(logits, target):
    return torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)


FOCAL_MISTAKES = {
    "plain CE": (lambda x, t, gamma, alpha=None: F.cross_entropy(x, t, weight=alpha),
                 r"modulating factor \(1 - p_t\)\*\*gamma is missing"),
    "p_t**gamma": (lambda x, t, gamma, alpha=None: (-(_p(x, t) ** gamma) * torch.log(_p(x, t))).mean(),
                   r"not p_t\*\*gamma"),
    "sum": (lambda x, t, gamma, alpha=None: focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="sum"),
            "you summed over the batch"),
    "sign": (lambda x, t, gamma, alpha=None: -focal_loss(x, t, gamma=gamma, alpha=alpha),
             "the sign is flipped"),
    "alpha mean over N": (
        lambda x, t, gamma, alpha=None: focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="none").mean(),
        "not by N"),
    "alpha ignored": (lambda x, t, gamma, alpha=None: focal_loss(x, t, gamma=gamma),
                      r"alpha is ignored"),
    "log(softmax)": (
        lambda x, t, gamma, alpha=None: (-(1 - _p(x, t)) ** gamma * torch.log(_p(x, t))
                                         * (1 if alpha is None else alpha[t])).sum()
        / (len(t) if alpha is None else alpha[t].sum()),
        "not finite: take log p_t from F.log_softmax"),
    ".item()": (lambda x, t, gamma, alpha=None: focal_loss(x, t, gamma=gamma, alpha=alpha).item(),
                "expected a torch.Tensor"),
    "per example": (lambda x, t, gamma, alpha=None: focal_loss(x, t, gamma=gamma, alpha=alpha, reduction="none"),
                    r"expected one number .* got shape \(16,\)"),
    "no return": (lambda x, t, gamma, alpha=None: None, "forget to `return`"),
    "raises": (lambda x, t, gamma: focal_loss(x, t, gamma=gamma), "raised TypeError"),
    "detached": (lambda x, t, gamma, alpha=None: focal_loss(x.detach(), t, gamma=gamma, alpha=alpha),
                 "carries no gradient"),
}


@pytest.mark.parametrize("mistake", FOCAL_MISTAKES)
def test_check_focal_loss_names_the_mistake(mistake):
    fn, message = FOCAL_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=message):
        check_focal_loss(fn)


def _smoothed_ce(logits, target, smoothing, spread_over=None, true_share=True, use_log=True):
    k = logits.shape[1]
    one_hot = F.one_hot(target, k).float()
    if spread_over == "others":
        q = one_hot * (1 - smoothing) + (1 - one_hot) * smoothing / (k - 1)
    elif not true_share:
        q = one_hot * (1 - smoothing) + (1 - one_hot) * smoothing / k
    else:
        q = one_hot * (1 - smoothing) + smoothing / k
    log_p = F.log_softmax(logits, 1)
    return -(q * (log_p if use_log else log_p.exp())).sum(1).mean()


LS_MISTAKES = {
    "ignored": (lambda x, t, s: F.cross_entropy(x, t), "smoothing is ignored"),
    "K-1": (lambda x, t, s: _smoothed_ce(x, t, s, spread_over="others"), r"smoothing/\(K-1\)"),
    "no true share": (lambda x, t, s: _smoothed_ce(x, t, s, true_share=False),
                      r"missing its smoothing/K share"),
    "probabilities": (lambda x, t, s: _smoothed_ce(x, t, s, use_log=False), "not probabilities"),
    "sum": (lambda x, t, s: F.cross_entropy(x, t, label_smoothing=s, reduction="sum"), "you summed"),
}


def test_check_label_smoothing_passes_a_correct_solution():
    assert check_label_smoothing(_smoothed_ce) is True


@pytest.mark.parametrize("mistake", LS_MISTAKES)
def test_check_label_smoothing_names_the_mistake(mistake):
    fn, message = LS_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=message):
        check_label_smoothing(fn)


def _soft_f1_from_scratch(probs, target, eps=1e-7):
    one_hot = F.one_hot(target, probs.shape[1]).float()
    tp = (probs * one_hot).sum(0)
    fp = (probs * (1 - one_hot)).sum(0)
    fn = ((1 - probs) * one_hot).sum(0)
    return (2 * tp / (2 * tp + fp + fn + eps)).mean()


SOFT_F1_MISTAKES = {
    "loss": (lambda p, t: 1 - _soft_f1_from_scratch(p, t), "this is 1 - F1"),
    "micro": (lambda p, t: 2 * (p * F.one_hot(t, p.shape[1])).sum() / (2 * len(t)), "micro F1"),
    "no 2": (lambda p, t: (lambda one_hot: ((p * one_hot).sum(0) / (
        (p * one_hot).sum(0) + (p * (1 - one_hot)).sum(0) + ((1 - p) * one_hot).sum(0) + 1e-7)).mean())(
        F.one_hot(t, p.shape[1]).float()), "factor 2 is missing"),
    "nan result": (lambda p, t: _soft_f1_from_scratch(p, t) * torch.tensor(float("nan")),
               "add a small eps"),
    "detached": (lambda p, t: _soft_f1_from_scratch(p.detach(), t), "carries no gradient"),
}


def test_check_soft_f1_passes_a_correct_solution():
    assert check_soft_f1(_soft_f1_from_scratch) is True


@pytest.mark.parametrize("mistake", SOFT_F1_MISTAKES)
def test_check_soft_f1_names_the_mistake(mistake):
    fn, message = SOFT_F1_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=message):
        check_soft_f1(fn)


def test_checkers_reject_non_callables():
    with pytest.raises(CheckFailed, match="expected a function, got int"):
        check_focal_loss(3)
