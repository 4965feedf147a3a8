"""Metrics for classification, regression and ranking, in vectorised torch.

A metric judges a trained model; it does not train it. Every function here takes array-likes
(Python lists, NumPy arrays or tensors, on any device), works on detached tensors and returns
plain Python ``float`` values (a ``list`` of floats for per-class results), so a metric can never
enter ``backward()`` by accident.

Conventions (scikit-learn's unless stated):

* Class labels are integers ``0 .. num_classes - 1``. When ``num_classes`` is not given it is
  ``max(label) + 1`` over ``y_true`` and ``y_pred``, which is scikit-learn with
  ``labels=range(num_classes)``: a class that never occurs still counts in a macro average.
  Labels may be integer, bool, or whole-number float tensors/arrays; fractional values (for
  example probabilities passed by mistake) raise ``ValueError``.
* The confusion matrix comes from one ``torch.bincount`` over ``y_true * K + y_pred``; every
  classification metric is computed from it. Rows are true classes, columns predicted classes.
* ``average``: ``"micro"`` pools the counts of all classes (equals accuracy for single-label
  data), ``"macro"`` is the unweighted mean over classes, ``"weighted"`` weights each class by
  its support (number of true samples), ``None`` returns the per-class list.
* ``zero_division`` (``0.0``, ``1.0`` or ``nan``) is the value of a ratio whose denominator is
  zero. With ``nan``, averages skip those classes, as scikit-learn does.
* Binary decisions from scores use ``score >= threshold`` (scikit-learn's ROC convention).
* Ranking inputs are ``(Q, D)``: one row per query, one column per document. A higher score
  ranks first; **equal scores are broken by position**: the document in the earlier column ranks
  higher (a stable sort). A document is relevant when its relevance is ``> 0``.

Example:
    >>> y_true = [0, 0, 1, 1, 2, 2]
    >>> y_pred = [0, 1, 1, 1, 2, 0]
    >>> confusion_matrix(y_true, y_pred)
    tensor([[1, 1, 0],
            [0, 2, 0],
            [1, 0, 1]])
    >>> round(f1_score(y_true, y_pred, average="macro"), 4)
    0.6556
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "UndefinedMetricWarning",
    "confusion_matrix",
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1_score",
    "classification_report",
    "roc_auc",
    "roc_curve",
    "precision_recall_curve",
    "average_precision",
    "metrics_at_threshold",
    "mae",
    "mse",
    "rmse",
    "mean_reciprocal_rank",
    "ndcg",
    "mean_average_precision",
    "calibration_bins",
    "expected_calibration_error",
]

Average = Literal["micro", "macro", "weighted"] | None
_AVERAGES = ("micro", "macro", "weighted", None)
_AUC_AVERAGES = ("macro", "weighted", None)
_MULTI_CLASS = ("ovr", "ovo")
_MAX_CELLS = 2**28  # a (K, K) int64 confusion matrix of 2 GiB: K = 16,384 classes


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for this input (for example ROC AUC with one class) and is ``nan``."""


# ---------------------------------------------------------------------------------------------
# Input checking: every public function goes through these, so errors read the same everywhere.
# ---------------------------------------------------------------------------------------------

def _as_tensor(x: Any, name: str) -> torch.Tensor:
    """A detached tensor viewing ``x`` without a copy where possible (tensors, NumPy arrays)."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a list, NumPy array or tensor of numbers, "
                            f"got {type(x).__name__} ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got NumPy dtype {arr.dtype} "
                        f"(map class names to integer indices first)")
    if not arr.flags.writeable:  # torch.from_numpy warns on read-only memory
        arr = arr.copy()
    # from_numpy shares memory: a 1e6-element int64 array is not copied.
    return torch.from_numpy(np.ascontiguousarray(arr))


def _nonempty(t: torch.Tensor, name: str) -> None:
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one sample")


def _as_labels(x: Any, name: str) -> torch.Tensor:
    """1-D int64 class labels; whole-number floats and bools are accepted."""
    t = _as_tensor(x, name)
    if t.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D class labels of shape (N,), got shape {tuple(t.shape)}"
            + ("; for scores or logits of shape (N, K) pass the predicted classes, "
               "e.g. logits.argmax(dim=1)" if t.ndim == 2 else ""))
    _nonempty(t, name)
    if t.dtype == torch.int64:
        return t
    if t.dtype == torch.bool:
        return t.to(torch.int64)
    if t.is_complex():
        raise TypeError(f"{name} must hold real class labels, got dtype {t.dtype}")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or inf; class labels must be integers")
        fractional = t != t.round()
        if bool(fractional.any()):
            bad = float(t[fractional][0])
            raise ValueError(
                f"{name} must hold whole-number class labels, got {bad:g}; did you pass "
                f"probabilities? Use probs.argmax(dim=1), or (probs >= threshold) for binary")
    return t.to(torch.int64)


def _check_same_length(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same length, "
                         f"got {a.shape[0]} and {b.shape[0]}")
    if a.device != b.device:
        raise ValueError(f"{name_a} is on {a.device} but {name_b} is on {b.device}; "
                         f"move both to one device")


def _check_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int or None, got "
                        f"{type(num_classes).__name__} ({num_classes!r})")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def _check_labels_range(labels: torch.Tensor, name: str, num_classes: int | None) -> int:
    """Raise on negative labels or labels >= num_classes; return max label."""
    lo, hi = (int(v) for v in torch.aminmax(labels))
    if lo < 0:
        raise ValueError(f"{name} holds negative label {lo}; class labels must be "
                         f"0 .. num_classes - 1")
    if num_classes is not None and hi >= num_classes:
        raise ValueError(f"{name} holds label {hi}, but num_classes={num_classes} allows "
                         f"only 0 .. {num_classes - 1}")
    return hi


def _check_choice(value: Any, name: str, valid: Sequence[Any]) -> None:
    if not any(value is v or (isinstance(value, str) and value == v) for v in valid):
        raise ValueError(f"{name} must be one of {', '.join(repr(v) for v in valid)}; "
                         f"got {value!r}")


def _check_zero_division(zero_division: Any) -> float:
    if isinstance(zero_division, bool) or not isinstance(zero_division, (int, float)):
        raise TypeError(f"zero_division must be 0.0, 1.0 or nan, got "
                        f"{type(zero_division).__name__} ({zero_division!r})")
    z = float(zero_division)
    if not (z in (0.0, 1.0) or math.isnan(z)):
        raise ValueError(f"zero_division must be 0.0, 1.0 or nan, got {zero_division!r}")
    return z


def _as_scores(x: Any, name: str) -> torch.Tensor:
    """A finite floating tensor (integers are promoted to float64)."""
    t = _as_tensor(x, name)
    if t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    _nonempty(t, name)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf; scores must be finite")
    return t


def _f64(t: torch.Tensor) -> torch.Tensor:
    # MPS has no float64; metric arithmetic is cheap, so do it on the CPU there.
    if t.device.type == "mps":
        t = t.cpu()
    return t.to(torch.float64)


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------

def _confusion(y_true: Any, y_pred: Any, num_classes: Any) -> torch.Tensor:
    num_classes = _check_num_classes(num_classes)
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    _check_same_length(yt, yp, "y_true", "y_pred")
    hi = max(_check_labels_range(yt, "y_true", num_classes),
             _check_labels_range(yp, "y_pred", num_classes))
    k = num_classes if num_classes is not None else hi + 1
    if k * k > _MAX_CELLS:
        raise ValueError(
            f"{k} classes make a {k} x {k} confusion matrix ({k * k:,} cells, over the "
            f"{_MAX_CELLS:,} limit); are y_true and y_pred class indices 0 .. K-1? "
            f"(largest label {hi})")
    # One fused pass pairs (t, p) -> cell t * K + p (the only temporary), one bincount counts.
    cell = torch.add(yp, yt, alpha=k)  # (N,)
    return torch.bincount(cell, minlength=k * k).reshape(k, k)  # (K, K)


def confusion_matrix(y_true: Any, y_pred: Any, *,
                     num_classes: int | None = None) -> torch.Tensor:
    """Count how often each true class (row) was predicted as each class (column).

    Args:
        y_true: true class labels, shape ``(N,)``.
        y_pred: predicted class labels, shape ``(N,)``.
        num_classes: number of classes ``K``; default ``max(label) + 1``.

    Returns:
        An int64 tensor of shape ``(K, K)`` on the inputs' device; ``cm[i, j]`` is the number
        of samples of true class ``i`` predicted as ``j`` (scikit-learn's layout). The diagonal
        holds the correct predictions.

    Example:
        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], num_classes=4)
        tensor([[1, 0, 0, 0],
                [0, 1, 1, 0],
                [0, 0, 1, 0],
                [0, 0, 0, 0]])
    """
    return _confusion(y_true, y_pred, num_classes)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of samples whose predicted label equals the true label.

    Args:
        y_true: true class labels, shape ``(N,)``.
        y_pred: predicted class labels, shape ``(N,)``.

    Returns:
        ``trace(cm) / N`` as a float in ``[0, 1]``.

    Example:
        >>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
        0.75
    """
    cm = _confusion(y_true, y_pred, None)
    return float(cm.diagonal().sum()) / float(cm.sum())


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean recall over the classes that occur in ``y_true`` (scikit-learn's definition).

    A class with no true samples has no recall and is left out of the mean, whatever
    ``y_pred`` says about it. On balanced data this equals accuracy; a majority-class predictor
    gets ``1 / (number of classes)``.

    Args:
        y_true: true class labels, shape ``(N,)``.
        y_pred: predicted class labels, shape ``(N,)``.

    Returns:
        A float in ``[0, 1]``.

    Example:
        >>> balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0])  # accuracy would be 0.75
        0.5
    """
    cm = _f64(_confusion(y_true, y_pred, None))
    support = cm.sum(1)
    present = support > 0
    return float((cm.diagonal()[present] / support[present]).mean())


def _divide(num: torch.Tensor, den: torch.Tensor, zero_division: float) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1), torch.full_like(num, zero_division))


def _nan_average(values: torch.Tensor, weights: torch.Tensor | None) -> float:
    """Mean (or weighted mean) ignoring NaN entries: scikit-learn's ``_nanaverage``."""
    keep = ~torch.isnan(values)
    if not bool(keep.any()):
        return math.nan
    values = values[keep]
    if weights is not None:
        weights = weights[keep]
        total = float(weights.sum())
        if total > 0:
            return float((values * weights).sum()) / total
    return float(values.mean())


def _per_class_counts(y_true: Any, y_pred: Any, num_classes: Any,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True positives, predicted counts and true counts (support) per class, as float64."""
    cm = _f64(_confusion(y_true, y_pred, num_classes))
    return cm.diagonal(), cm.sum(0), cm.sum(1)


def _prf(kind: str, y_true: Any, y_pred: Any, num_classes: Any, average: Any,
         zero_division: Any) -> float | list[float]:
    _check_choice(average, "average", _AVERAGES)
    z = _check_zero_division(zero_division)
    tp, predicted, support = _per_class_counts(y_true, y_pred, num_classes)  # each (K,)
    if average == "micro":
        tp, predicted, support = tp.sum(), predicted.sum(), support.sum()
    if kind == "precision":
        num, den = tp, predicted  # tp + fp
    elif kind == "recall":
        num, den = tp, support  # tp + fn
    elif kind == "f1":
        num, den = 2 * tp, predicted + support  # 2tp + fp + fn
    else:  # internal: only the three public wrappers call this
        raise AssertionError(kind)
    values = _divide(num, den, z)
    if average is None:
        return values.tolist()
    if average == "micro":
        return float(values)
    return _nan_average(values, support if average == "weighted" else None)


def precision(y_true: Any, y_pred: Any, *, num_classes: int | None = None,
              average: Average = "macro", zero_division: float = 0.0) -> float | list[float]:
    """Of the samples predicted as a class, the fraction that truly are: ``tp / (tp + fp)``.

    Args:
        y_true: true class labels, shape ``(N,)``.
        y_pred: predicted class labels, shape ``(N,)``.
        num_classes: number of classes; default ``max(label) + 1``.
        average: ``"micro"``, ``"macro"`` (default; scikit-learn's default is ``"binary"``),
            ``"weighted"``, or ``None`` for one value per class.
        zero_division: value used for a class never predicted (``tp + fp == 0``).

    Returns:
        A float, or a list of ``num_classes`` floats when ``average=None``.

    Example:
        >>> precision([0, 0, 1, 1], [0, 1, 1, 1], average=None)
        [1.0, 0.6666666666666666]
    """
    return _prf("precision", y_true, y_pred, num_classes, average, zero_division)


def recall(y_true: Any, y_pred: Any, *, num_classes: int | None = None,
           average: Average = "macro", zero_division: float = 0.0) -> float | list[float]:
    """Of the samples of a class, the fraction predicted as that class: ``tp / (tp + fn)``.

    Args:
        y_true: true class labels, shape ``(N,)``.
        y_pred: predicted class labels, shape ``(N,)``.
        num_classes: number of classes; default ``max(label) + 1``.
        average: ``"micro"``, ``"macro"`` (default), ``"weighted"``, or ``None`` per class.
        zero_division: value used for a class with no true samples (``tp + fn == 0``).

    Returns:
        A float, or a list of ``num_classes`` floats when ``average=None``.

    Example:
        >>> recall([0, 0, 1, 1], [0, 1, 1, 1], average=None)
        [0.5, 1.0]
    """
    return _prf("recall", y_true, y_pred, num_classes, average, zero_division)


def f1_score(y_true: Any, y_pred: Any, *, num_classes: int | None = None,
             average: Average = "macro", zero_division: float = 0.0) -> float | list[float]:
    """Harmonic mean of precision and recall, per class ``2tp / (2tp + fp + fn)``.

    The formula in counts avoids the 0/0 of ``2PR / (P + R)`` when a class is predicted but
    never right; ``zero_division`` applies only when ``2tp + fp + fn == 0``, i.e. a class that
    is neither present nor predicted (scikit-learn >= 1.3).

    Args:
        y_true: true class labels, shape ``(N,)``.
        y_pred: predicted class labels, shape ``(N,)``.
        num_classes: number of classes; default ``max(label) + 1``.
        average: ``"micro"`` (equals accuracy), ``"macro"`` (default: every class counts the
            same, so rare classes matter), ``"weighted"`` (by support), or ``None`` per class.
        zero_division: value for a class with ``2tp + fp + fn == 0``.

    Returns:
        A float, or a list of ``num_classes`` floats when ``average=None``.

    Example:
        >>> f1_score([0, 0, 1, 1], [0, 1, 1, 1], average=None)
        [0.6666666666666666, 0.8]
        >>> f1_score([0, 0, 1, 1], [0, 1, 1, 1], average="micro")
        0.75
    """
    return _prf("f1", y_true, y_pred, num_classes, average, zero_division)


def classification_report(y_true: Any, y_pred: Any, *,
                          class_names: Sequence[str] | None = None,
                          num_classes: int | None = None, digits: int = 3,
                          zero_division: float = 0.0) -> str:
    """A table of per-class precision, recall, F1 and support, then accuracy and averages.

    Args:
        y_true: true class labels, shape ``(N,)``.
        y_pred: predicted class labels, shape ``(N,)``.
        class_names: one name per class (its length sets ``num_classes`` when that is
            not given); default the class indices.
        num_classes: number of classes; default ``len(class_names)`` or ``max(label) + 1``.
        digits: decimals shown.
        zero_division: as in :func:`precision`.

    Returns:
        The table as a string (``print`` it).

    Example:
        >>> print(classification_report([0, 0, 1, 1], [0, 1, 1, 1], class_names=["no", "yes"]))
                     precision    recall  f1-score   support
        <BLANKLINE>
                  no     1.000     0.500     0.667         2
                 yes     0.667     1.000     0.800         2
        <BLANKLINE>
            accuracy                         0.750         4
           macro avg     0.833     0.750     0.733         4
        weighted avg     0.833     0.750     0.733         4
    """
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an int >= 0, got {digits!r}")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if num_classes is None:
            num_classes = len(class_names)
    cm = _f64(_confusion(y_true, y_pred, num_classes))
    k = cm.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    elif len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names but there are {k} classes")
    z = _check_zero_division(zero_division)
    tp, predicted, support = cm.diagonal(), cm.sum(0), cm.sum(1)
    p = _divide(tp, predicted, z)
    r = _divide(tp, support, z)
    f = _divide(2 * tp, predicted + support, z)
    n = int(support.sum())
    width = max(12, *(len(c) for c in class_names))
    col = max(len("precision"), digits + 2) + 1  # every column right-aligned to this width

    def row(name: str, values: Sequence[float | None], count: int) -> str:
        cells = "".join(" " * col if v is None else f"{v:>{col}.{digits}f}" for v in values)
        return f"{name:>{width}}{cells}{count:>{col}d}"

    header = " " * width + "".join(f"{h:>{col}}" for h in
                                   ("precision", "recall", "f1-score", "support"))
    lines = [header, ""]
    lines += [row(c, (float(p[i]), float(r[i]), float(f[i])), int(support[i]))
              for i, c in enumerate(class_names)]
    lines.append("")
    lines.append(row("accuracy", (None, None, float(tp.sum()) / n), n))
    for name, weights in (("macro avg", None), ("weighted avg", support)):
        lines.append(row(name, tuple(_nan_average(v, weights) for v in (p, r, f)), n))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Scores: ROC AUC, curves, average precision
# ---------------------------------------------------------------------------------------------

def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks along dim 0 of ``x`` ``(N, C)``; tied values share their average rank."""
    n = x.shape[0]
    sorted_x, order = torch.sort(x, dim=0, stable=True)  # (N, C)
    pos = torch.arange(n, device=x.device).unsqueeze(1).expand_as(x)  # (N, C), 0-based
    starts = torch.ones_like(sorted_x, dtype=torch.bool)
    starts[1:] = sorted_x[1:] != sorted_x[:-1]  # first element of each run of equal values
    ends = torch.ones_like(starts)
    ends[:-1] = starts[1:]  # last element of each run
    first = torch.where(starts, pos, 0).cummax(dim=0).values
    last = torch.where(ends, pos, n).flip(0).cummin(dim=0).values.flip(0)
    avg = _f64(first + last) / 2 + 1  # (N, C)
    return torch.empty_like(avg).scatter_(0, order.to(avg.device), avg)


def _auc_from_ranks(ranks: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mann-Whitney AUC per column: P(score+ > score-) + 0.5 P(tie). NaN where undefined."""
    positive = positive.to(ranks.device)
    n_pos = positive.sum(0).to(torch.float64)  # (C,)
    n_neg = positive.shape[0] - n_pos
    rank_sum = (ranks * positive).sum(0)
    u = rank_sum - n_pos * (n_pos + 1) / 2  # pairs where the positive outranks the negative
    defined = (n_pos > 0) & (n_neg > 0)
    return torch.where(defined, u / (n_pos * n_neg).clamp_min(1), torch.nan)


def _binary_labels(y_true: Any, n: int) -> torch.Tensor:
    yt = _as_labels(y_true, "y_true")
    if yt.shape[0] != n:
        raise ValueError(f"y_true and y_score must have the same length, got {yt.shape[0]} and {n}")
    lo, hi = (int(v) for v in torch.aminmax(yt))
    if lo < 0 or hi > 1:
        raise ValueError(f"for 1-D (binary) y_score, y_true must hold 0 (negative) or 1 "
                         f"(positive), got a label {lo if lo < 0 else hi}")
    return yt


def _warn_one_class(yt: torch.Tensor, what: str) -> None:
    present = sorted({int(v) for v in torch.unique(yt)})
    warnings.warn(
        f"{what}: y_true contains only class {present[0]}; it ranks positives against "
        f"negatives, so it needs both, and is undefined (nan) here", UndefinedMetricWarning,
        stacklevel=3)


def roc_auc(y_true: Any, y_score: Any, *, average: Literal["macro", "weighted"] | None = "macro",
            multi_class: Literal["ovr", "ovo"] = "ovr") -> float | list[float]:
    """Area under the ROC curve: the chance that a random positive scores above a random negative.

    Computed from ranks (the Mann-Whitney U statistic), so tied scores count one half and the
    result does not depend on any threshold.

    Args:
        y_true: true labels, shape ``(N,)``: 0/1 for binary, ``0 .. K-1`` for multiclass.
        y_score: 1-D scores of the positive class ``(N,)`` (binary), or ``(N, K)`` scores per
            class (multiclass; any scores, unlike scikit-learn they need not sum to 1).
        average: multiclass only: ``"macro"`` (mean over classes or class pairs),
            ``"weighted"`` (by prevalence), or ``None`` (per-class list, ``"ovr"`` only).
        multi_class: ``"ovr"`` (each class against the rest, scored by its column) or
            ``"ovo"`` (Hand & Till 2001: every pair of classes, both directions averaged).

    Returns:
        A float in ``[0, 1]`` (0.5 is chance), or a list with ``average=None``. If a binary
        ``y_true`` holds only one class, or (multiclass) a class needed by the average is
        absent, the AUC is undefined: ``nan`` with an ``UndefinedMetricWarning`` saying why,
        as scikit-learn >= 1.9 does for the binary case (multiclass scikit-learn raises).

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
        >>> roc_auc([0, 1, 2], [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.2, 0.2, 0.6]])
        1.0
    """
    _check_choice(average, "average", _AUC_AVERAGES)
    _check_choice(multi_class, "multi_class", _MULTI_CLASS)
    scores = _as_scores(y_score, "y_score")
    if scores.ndim == 1:
        yt = _binary_labels(y_true, scores.shape[0])
        _check_same_length(yt, scores, "y_true", "y_score")
        auc = _auc_from_ranks(_average_ranks(scores[:, None]), (yt == 1)[:, None])
        if math.isnan(float(auc[0])):
            _warn_one_class(yt, "roc_auc")
        return float(auc[0])
    if scores.ndim != 2:
        raise ValueError(f"y_score must be (N,) for binary or (N, K) for multiclass, "
                         f"got shape {tuple(scores.shape)}")
    n, k = scores.shape
    if k < 2:
        raise ValueError(f"y_score of shape (N, K) needs K >= 2 classes, got K={k}; "
                         f"for binary pass the positive-class scores as shape (N,)")
    yt = _as_labels(y_true, "y_true")
    _check_same_length(yt, scores, "y_true", "y_score")
    _check_labels_range(yt, "y_true", k)
    onehot = yt[:, None] == torch.arange(k, device=yt.device)  # (N, K)
    prevalence = _f64(onehot.sum(0)) / n  # (K,)
    if multi_class == "ovr":
        auc = _auc_from_ranks(_average_ranks(scores), onehot)  # (K,)
        weights = prevalence
    else:
        if average is None:
            raise ValueError("average=None is only available with multi_class='ovr' "
                             "(one value per class); use 'macro' or 'weighted' with 'ovo'")
        pair_auc, pair_weight = [], []
        for a in range(k):  # K (K - 1) / 2 pairs: K is small, the work per pair is vectorised
            for b in range(a + 1, k):
                in_pair = onehot[:, a] | onehot[:, b]
                sub_scores = scores[in_pair][:, [a, b]]  # (n_ab, 2)
                is_a = onehot[in_pair, a]
                both = _auc_from_ranks(_average_ranks(sub_scores),
                                       torch.stack([is_a, ~is_a], dim=1))
                pair_auc.append(both.mean())
                pair_weight.append(_f64(in_pair.sum()) / n)
        auc = torch.stack(pair_auc)
        weights = torch.stack(pair_weight)
    undefined = torch.isnan(auc)
    if average == "weighted":
        undefined &= weights > 0  # an absent class has weight 0 and does not matter
    if bool(undefined.any()):
        missing = [i for i in range(k) if not bool(onehot[:, i].any())]
        warnings.warn(
            f"roc_auc: class(es) {missing} do not occur in y_true, so their "
            f"{'one-vs-rest' if multi_class == 'ovr' else 'pairwise'} AUC is undefined "
            f"(nan)", UndefinedMetricWarning, stacklevel=2)
    if average is None:
        return auc.tolist()
    if average == "macro":
        return float(auc.mean())
    if bool(undefined.any()):
        return math.nan
    keep = weights > 0
    return float((auc[keep] * weights[keep]).sum() / weights[keep].sum())


def _binary_curve_counts(y_true: Any, y_score: Any,
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cumulative (tp, fp) counts at each distinct threshold, thresholds descending."""
    scores = _as_scores(y_score, "y_score")
    if scores.ndim != 1:
        raise ValueError(f"y_score must be 1-D scores of the positive class, got shape "
                         f"{tuple(scores.shape)}")
    yt = _binary_labels(y_true, scores.shape[0])
    _check_same_length(yt, scores, "y_true", "y_score")
    s, order = torch.sort(scores, descending=True, stable=True)
    tps = torch.cumsum(_f64(yt[order]), 0)  # (N,) positives among the i+1 highest scores
    fps = torch.arange(1, s.shape[0] + 1, device=tps.device, dtype=torch.float64) - tps
    last_of_run = torch.ones_like(s, dtype=torch.bool)
    last_of_run[:-1] = s[1:] != s[:-1]  # a threshold takes every sample with an equal score
    return tps[last_of_run], fps[last_of_run], _f64(s[last_of_run])


def roc_curve(y_true: Any, y_score: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """False- and true-positive rates at every distinct threshold (binary).

    Equals ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``: thresholds descend
    from ``+inf`` (nothing predicted positive, the point (0, 0)) to the lowest score (everything
    positive, the point (1, 1)); a sample is positive when ``score >= threshold``.

    Args:
        y_true: 0/1 labels, shape ``(N,)``.
        y_score: scores of the positive class, shape ``(N,)``.

    Returns:
        ``(fpr, tpr, thresholds)``, float64 tensors of equal length. A rate whose class is
        absent is ``nan`` (with an ``UndefinedMetricWarning``).

    Example:
        >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    tps, fps, thr = _binary_curve_counts(y_true, y_score)
    zero = torch.zeros(1, dtype=torch.float64, device=tps.device)
    tps, fps = torch.cat([zero, tps]), torch.cat([zero, fps])
    thr = torch.cat([torch.full_like(zero, math.inf), thr])
    rates = []
    for counts, what in ((fps, "negative"), (tps, "positive")):
        if counts[-1] > 0:
            rates.append(counts / counts[-1])
        else:
            warnings.warn(f"roc_curve: y_true has no {what} sample, so that rate is undefined "
                          f"(nan)", UndefinedMetricWarning, stacklevel=2)
            rates.append(torch.full_like(counts, math.nan))
    return rates[0], rates[1], thr


def precision_recall_curve(y_true: Any, y_score: Any,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision and recall at every distinct threshold (binary), as scikit-learn returns them.

    Thresholds ascend; ``precision[i]`` and ``recall[i]`` belong to ``score >= thresholds[i]``,
    and a last point ``(precision=1, recall=0)`` with no threshold closes the curve.

    Args:
        y_true: 0/1 labels, shape ``(N,)``.
        y_score: scores of the positive class, shape ``(N,)``.

    Returns:
        ``(precision, recall, thresholds)``: float64 tensors, the first two one longer than
        ``thresholds``. Without positives recall is undefined: ``nan`` with an
        ``UndefinedMetricWarning`` (scikit-learn sets it to 1).

    Example:
        >>> p, r, t = precision_recall_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> [round(v, 3) for v in p.tolist()], r.tolist()
        ([0.5, 0.667, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0])
    """
    tps, fps, thr = _binary_curve_counts(y_true, y_score)
    prec = tps / (tps + fps)  # every threshold selects at least one sample
    if tps[-1] > 0:
        rec = tps / tps[-1]
    else:
        warnings.warn("precision_recall_curve: y_true has no positive sample, so recall is "
                      "undefined (nan)", UndefinedMetricWarning, stacklevel=2)
        rec = torch.full_like(tps, math.nan)
    one, zero = torch.ones_like(prec[:1]), torch.zeros_like(rec[:1])
    return torch.cat([prec.flip(0), one]), torch.cat([rec.flip(0), zero]), thr.flip(0)


def average_precision(y_true: Any, y_score: Any) -> float:
    """Area under the precision-recall curve as a step sum: ``sum (R_i - R_{i-1}) P_i``.

    Equals ``sklearn.metrics.average_precision_score`` (ties included). For untied scores it is
    the mean of precision@i over the positions i of the positives, i.e. the ranking metric
    :func:`mean_average_precision` with one query.

    Args:
        y_true: 0/1 labels, shape ``(N,)``.
        y_score: scores of the positive class, shape ``(N,)``.

    Returns:
        A float in ``[0, 1]``; ``nan`` with a warning when there is no positive sample.

    Example:
        >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
        0.8333
    """
    tps, fps, _ = _binary_curve_counts(y_true, y_score)
    if tps[-1] == 0:
        warnings.warn("average_precision: y_true has no positive sample, so average "
                      "precision is undefined (nan)", UndefinedMetricWarning, stacklevel=2)
        return math.nan
    prec = tps / (tps + fps)
    recall_gain = torch.diff(tps, prepend=torch.zeros_like(tps[:1])) / tps[-1]
    return float((recall_gain * prec).sum())


def metrics_at_threshold(y_true: Any, y_score: Any, threshold: float) -> dict[str, Any]:
    """Binary decisions ``score >= threshold`` and what they give: counts, precision, recall...

    Args:
        y_true: 0/1 labels, shape ``(N,)``.
        y_score: scores or probabilities of the positive class, shape ``(N,)``.
        threshold: the decision threshold.

    Returns:
        A dict with ``threshold``, ``tn``, ``fp``, ``fn``, ``tp`` (ints), ``precision``,
        ``recall``, ``f1``, ``accuracy`` (floats, precision and F1 are 0 when nothing is
        predicted positive) and ``confusion`` (the ``(2, 2)`` tensor ``[[tn, fp], [fn, tp]]``).

    Example:
        >>> m = metrics_at_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.3)
        >>> m["tp"], m["fp"], round(m["precision"], 3), m["recall"]
        (2, 1, 0.667, 1.0)
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
    if math.isnan(threshold):
        raise ValueError("threshold must be a number, got nan")
    scores = _as_scores(y_score, "y_score")
    if scores.ndim != 1:
        raise ValueError(f"y_score must be 1-D scores of the positive class, got shape "
                         f"{tuple(scores.shape)}")
    yt = _binary_labels(y_true, scores.shape[0])
    _check_same_length(yt, scores, "y_true", "y_score")
    cm = _confusion(yt, (scores >= threshold).to(torch.int64), 2)
    tn, fp, fn, tp = (int(v) for v in cm.flatten())
    return {
        "threshold": float(threshold), "tn": tn, "fp": fp, "fn": fn, "tp": tp,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "accuracy": (tp + tn) / (tn + fp + fn + tp),
        "confusion": cm,
    }


# ---------------------------------------------------------------------------------------------
# Regression
# ---------------------------------------------------------------------------------------------

def _regression_errors(y_true: Any, y_pred: Any) -> torch.Tensor:
    yt = _as_scores(y_true, "y_true")
    yp = _as_scores(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {tuple(yt.shape)} and "
            f"{tuple(yp.shape)} (an (N,) vs (N, 1) pair would broadcast to (N, N); "
            f"squeeze or reshape one of them)")
    if yt.device != yp.device:
        raise ValueError(f"y_true is on {yt.device} but y_pred is on {yp.device}")
    return _f64(yp) - _f64(yt)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error: the typical miss, in the units of the target.

    Args:
        y_true: true values, any shape.
        y_pred: predictions, the same shape (no broadcasting).

    Returns:
        ``mean(|y_pred - y_true|)`` over all elements (for ``(N, D)`` this equals
        scikit-learn's ``multioutput="uniform_average"``).

    Example:
        >>> mae([3.0, 5.0, 2.0], [2.0, 5.0, 4.0])
        1.0
    """
    return float(_regression_errors(y_true, y_pred).abs().mean())


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error: squares each miss, so large misses dominate.

    Args:
        y_true: true values, any shape.
        y_pred: predictions, the same shape (no broadcasting).

    Returns:
        ``mean((y_pred - y_true) ** 2)`` over all elements.

    Example:
        >>> mse([3.0, 5.0, 2.0], [2.0, 5.0, 4.0])
        1.6666666666666667
    """
    return float(_regression_errors(y_true, y_pred).square().mean())


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error: ``sqrt(mse)``, back in the units of the target.

    Args:
        y_true: true values, any shape.
        y_pred: predictions, the same shape (no broadcasting).

    Returns:
        ``sqrt(mean((y_pred - y_true) ** 2))`` over all elements. For ``(N, D)`` inputs this
        pools the outputs, whereas scikit-learn's ``root_mean_squared_error`` averages the
        per-output RMSEs; for ``(N,)`` they are equal.

    Example:
        >>> rmse([3.0, 5.0, 2.0], [2.0, 5.0, 5.0])
        1.8257418583505538
    """
    return math.sqrt(mse(y_true, y_pred))


# ---------------------------------------------------------------------------------------------
# Ranking: scores and relevance of shape (Q, D), one row per query
# ---------------------------------------------------------------------------------------------

def _ranked_relevance(scores: Any, relevance: Any, k: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Relevance reordered by descending score (ties: earlier column first), cut at k."""
    s = _as_tensor(scores, "scores")
    r = _as_tensor(relevance, "relevance")
    for t, name in ((s, "scores"), (r, "relevance")):
        if t.ndim != 2:
            raise ValueError(f"{name} must be 2-D (Q, D), one row per query, got shape "
                             f"{tuple(t.shape)}; for a single query pass [{name}]")
    if s.shape != r.shape:
        raise ValueError(f"scores and relevance must have the same shape, got "
                         f"{tuple(s.shape)} and {tuple(r.shape)}")
    s = _as_scores(s, "scores")
    r = _as_scores(r, "relevance")
    if bool((r < 0).any()):
        raise ValueError(f"relevance must be >= 0, got {float(r.min()):g}")
    if k is None:
        k = s.shape[1]
    elif isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int or None, got {type(k).__name__} ({k!r})")
    elif k < 1:
        raise ValueError(f"k must be >= 1 (the number of top results to judge), got {k}")
    k = min(int(k), s.shape[1])
    order = torch.argsort(s, dim=1, descending=True, stable=True)  # (Q, D)
    return _f64(r.to(s.device).gather(1, order)), _f64(r), k


def mean_reciprocal_rank(scores: Any, relevance: Any, *, k: int | None = None) -> float:
    """Mean over queries of 1 / (rank of the first relevant result); 0 if none in the top k.

    Args:
        scores: ``(Q, D)`` model scores; higher ranks first, ties by column order.
        relevance: ``(Q, D)`` relevance, ``> 0`` means relevant.
        k: only the top ``k`` results count (``MRR@k``); default all.

    Returns:
        A float in ``[0, 1]``.

    Example:
        >>> mean_reciprocal_rank([[0.9, 0.8, 0.1], [0.2, 0.9, 0.5]], [[0, 1, 0], [1, 0, 0]])
        0.41666666666666663
    """
    ranked, _, k = _ranked_relevance(scores, relevance, k)
    hit = ranked[:, :k] > 0  # (Q, k)
    first = hit.to(torch.int64).argmax(dim=1)  # index of the first True (0 if none)
    rr = torch.where(hit.any(dim=1), 1.0 / (first + 1).to(torch.float64), 0.0)
    return float(rr.mean())


def _discounts(k: int, device: torch.device) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64, device=device))


def ndcg(scores: Any, relevance: Any, *, k: int | None = None) -> float:
    """Normalised discounted cumulative gain: graded relevance, discounted by position.

    ``DCG@k = sum_{i <= k} rel_i / log2(i + 1)``, divided by the DCG of the ideal order.
    Linear gains, as ``sklearn.metrics.ndcg_score`` (equal to it for untied scores; it averages
    over tied orders instead of breaking ties by column). A query whose ideal DCG is 0 (no
    relevant document) scores 0.

    Args:
        scores: ``(Q, D)`` model scores; higher ranks first, ties by column order.
        relevance: ``(Q, D)`` graded relevance ``>= 0`` (e.g. 0 bad, 1 fair, 3 perfect).
        k: only the top ``k`` positions count; default all.

    Returns:
        The mean NDCG over queries, a float in ``[0, 1]``.

    Example:
        >>> round(ndcg([[0.9, 0.8, 0.1]], [[0, 3, 1]]), 4)
        0.659
    """
    ranked, r, k = _ranked_relevance(scores, relevance, k)
    disc = _discounts(k, ranked.device)  # (k,)
    dcg = (ranked[:, :k] * disc).sum(dim=1)
    ideal = torch.sort(r, dim=1, descending=True).values[:, :k]
    idcg = (ideal * disc).sum(dim=1)
    return float(torch.where(idcg > 0, dcg / idcg.clamp_min(1e-300), 0.0).mean())


def mean_average_precision(scores: Any, relevance: Any, *, k: int | None = None) -> float:
    """Mean over queries of average precision: how early the relevant results come.

    Per query, ``AP@k = sum_{i <= k, rel_i > 0} precision@i / min(R, k)`` with ``R`` the number
    of relevant documents. With ``k=None`` this is ``sklearn.metrics.average_precision_score``
    of the query for untied scores. A query with no relevant document scores 0.

    Args:
        scores: ``(Q, D)`` model scores; higher ranks first, ties by column order.
        relevance: ``(Q, D)``; ``> 0`` means relevant (grades are not used).
        k: only the top ``k`` positions count; default all.

    Returns:
        A float in ``[0, 1]``.

    Example:
        >>> # relevant results at ranks 1 and 3: (1/1 + 2/3) / 2
        >>> round(mean_average_precision([[0.9, 0.8, 0.7]], [[1, 0, 1]]), 4)
        0.8333
    """
    ranked, r, k = _ranked_relevance(scores, relevance, k)
    hit = (ranked[:, :k] > 0).to(torch.float64)  # (Q, k)
    positions = torch.arange(1, k + 1, dtype=torch.float64, device=hit.device)
    precision_at_i = hit.cumsum(dim=1) / positions  # (Q, k)
    n_relevant = (r > 0).sum(dim=1).to(torch.float64)  # (Q,)
    denom = n_relevant.clamp(max=k)
    ap = torch.where(n_relevant > 0, (precision_at_i * hit).sum(dim=1) / denom.clamp_min(1), 0.0)
    return float(ap.mean())


def _probs_and_labels(probs: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, K)`` probabilities and ``(N,)`` labels in ``0 .. K-1``."""
    p = _as_scores(probs, "probs")
    if p.ndim != 2:
        raise ValueError(f"probs must be (N, K) class probabilities, got shape {tuple(p.shape)}")
    y = _as_labels(target, "target")
    _check_same_length(p, y, "probs", "target")
    _check_labels_range(y, "target", p.shape[1])
    return p, y


# --------------------------------------------------------------------------- calibration


def calibration_bins(probs: Any, target: Any, *,
                     num_bins: int = 15) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group predictions by confidence (the max probability) into ``num_bins`` equal-width bins.

    Bin ``b`` holds the confidences in ``(b/num_bins, (b+1)/num_bins]`` (bin 0 also holds 0).

    Args:
        probs: ``(N, K)`` rows of class probabilities (list, NumPy array or tensor).
        target: ``(N,)`` class indices.
        num_bins: number of bins, ``>= 1``.

    Returns:
        ``(confidence, accuracy, count)``, each ``(num_bins,)``: the mean confidence and the
        accuracy in each bin (0 for empty bins) and the number of predictions in it.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
        >>> conf, acc, count = calibration_bins(probs, torch.tensor([0, 1, 1]), num_bins=2)
        >>> conf, acc, count
        (tensor([0.0000, 0.7333]), tensor([0.0000, 0.6667]), tensor([0, 3]))
    """
    probs, target = _probs_and_labels(probs, target)
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be an int >= 1, got {num_bins!r}")
    confidence, y_pred = probs.detach().max(dim=1)  # (N,), (N,)
    correct = (y_pred == target).to(confidence.dtype)  # (N,)
    # ceil(c * B) - 1 puts c in (b/B, (b+1)/B] into bin b; c = 0 lands in bin 0.
    bins = (torch.ceil(confidence * num_bins).long() - 1).clamp(0, num_bins - 1)  # (N,)
    count = torch.bincount(bins, minlength=num_bins)  # (B,)
    conf_sum = torch.zeros(num_bins, dtype=confidence.dtype).index_add_(0, bins, confidence)
    acc_sum = torch.zeros(num_bins, dtype=confidence.dtype).index_add_(0, bins, correct)
    denom = count.clamp_min(1).to(confidence.dtype)
    return conf_sum / denom, acc_sum / denom, count


def expected_calibration_error(probs: Any, target: Any, *, num_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b (n_b / N) * |accuracy_b - confidence_b|``.

    A model is calibrated when, among the predictions it makes with confidence 0.8, 80% are
    right. ECE is the gap between confidence and accuracy, averaged over equal-width confidence
    bins weighted by how many predictions fall in each (Guo et al., "On Calibration of Modern
    Neural Networks", ICML 2017). 0 is perfect; an over-confident model has a large ECE.

    Args:
        probs: ``(N, K)`` rows of class probabilities, ``N >= 1``.
        target: ``(N,)`` class indices.
        num_bins: number of bins, ``>= 1`` (15 as in Guo et al.).

    Returns:
        The ECE as a float in ``[0, 1]``.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
        >>> round(expected_calibration_error(probs, torch.tensor([0, 1, 1]), num_bins=2), 4)
        0.0667
    """
    conf, acc, count = calibration_bins(probs, target, num_bins=num_bins)
    weight = count.to(conf.dtype) / count.sum()
    return float((weight * (acc - conf).abs()).sum())
