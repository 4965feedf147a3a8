"""Self-checks for lesson 05 (metrics).

Each checker takes the student's function, runs it on a few cases (including the edge cases
that catch the usual mistakes) and compares it with ``lesson_utils.metrics``. A wrong answer is
recognised where possible (micro instead of macro, dividing by k instead of min(R, k), ...)
and the hint names the mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lesson_utils import metrics as M
from lesson_utils.checks._core import call_for_number, fail, passed

__all__ = ["check_macro_f1_from_confusion", "check_average_precision_at_k",
           "check_best_f1_threshold"]


_call = call_for_number

def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _labels_from_confusion(cm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = cm.shape[0]
    cells = torch.arange(k * k).repeat_interleave(cm.flatten())
    return cells // k, cells % k  # y_true, y_pred


def check_macro_f1_from_confusion(fn: Callable[[torch.Tensor], Any]) -> bool:
    """Check ``fn(cm) -> float``: macro-F1 from a ``(K, K)`` confusion matrix (rows = true).

    The reference is ``lesson_utils.metrics.f1_score(..., average="macro")`` on the labels the
    matrix counts, with every class of ``range(K)`` included and ``zero_division=0``.

    Example:
        >>> def macro_f1(cm):
        ...     tp = cm.diagonal().double()
        ...     denom = cm.sum(0) + cm.sum(1)  # (tp + fp) + (tp + fn)
        ...     f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), 0.0)
        ...     return f1.mean().item()
        >>> check_macro_f1_from_confusion(macro_f1)
        ✅ macro-F1: equals lesson_utils.metrics.f1_score on 4 confusion matrices
        True
    """
    what = "macro-F1"
    cases = [
        torch.tensor([[5, 1, 0], [2, 3, 1], [0, 1, 7]]),
        torch.tensor([[90, 0], [10, 0]]),  # class 1 never predicted: precision is 0/0
        torch.tensor([[4, 1, 0, 0], [1, 3, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0]]),  # class 3 empty
        torch.tensor([[50, 3, 2], [4, 8, 1], [1, 0, 3]]),
    ]
    for cm in cases:
        y_true, y_pred = _labels_from_confusion(cm)
        k = cm.shape[0]
        expected = M.f1_score(y_true, y_pred, num_classes=k, average="macro")
        got = _call(what, fn, cm.clone())
        if _close(got, expected):
            continue
        shown = cm.tolist()
        if math.isnan(got):
            fail(what, f"got nan for cm={shown}. A class that is never predicted makes its "
                       f"precision 0/0. Compute F1 in counts, 2tp / (2tp + fp + fn), and use 0 "
                       f"when even that is 0/0 (scikit-learn's zero_division=0).")
        per_class = M.f1_score(y_true, y_pred, num_classes=k, average=None)
        support = cm.sum(1).tolist()
        defined = [f for f, s, p in zip(per_class, support, cm.sum(0).tolist(), strict=True)
                   if s + p > 0]
        p_macro = M.precision(y_true, y_pred, num_classes=k)
        r_macro = M.recall(y_true, y_pred, num_classes=k)
        known = [
            (M.f1_score(y_true, y_pred, num_classes=k, average="micro"),
             "that is micro-F1, which pools the counts of all classes and equals accuracy. "
             "Macro-F1 computes F1 for each class, then takes the plain mean."),
            (M.f1_score(y_true, y_pred, num_classes=k, average="weighted"),
             "that is the support-weighted mean. Macro-F1 gives every class the same weight 1/K, "
             "which is what makes rare classes count."),
            (sum(defined) / len(defined),
             "you left out the class that is neither present nor predicted. Macro averages over "
             "every class in range(K), and that class scores 0 (zero_division=0)."),
            (2 * p_macro * r_macro / (p_macro + r_macro) if p_macro + r_macro else 0.0,
             "that is the F1 of macro-precision and macro-recall. Compute F1 for each class "
             "first, then average: the mean of harmonic means is not the harmonic mean of the "
             "means."),
        ]
        for value, hint in known:
            if _close(got, value):
                fail(what, f"for cm={shown} expected {expected:.4f}, got {got:.4f}: {hint}")
        fail(what, f"for cm={shown} expected {expected:.4f}, got {got:.4f}. For class k: "
                   f"tp = cm[k, k], fp = column k sum - tp, fn = row k sum - tp, "
                   f"F1_k = 2tp / (2tp + fp + fn); macro-F1 is the mean over the K classes.")
    return passed(what, f"equals lesson_utils.metrics.f1_score on {len(cases)} confusion matrices")


def check_average_precision_at_k(fn: Callable[[list[int], int], Any]) -> bool:
    """Check ``fn(ranked, k) -> float``: AP@k of one ranked result list.

    ``ranked`` holds 1 (relevant) or 0 for every result, in the order shown to the user, so the
    number of relevant results is ``R = sum(ranked)``; ``AP@k`` is the sum of precision@i over
    the relevant positions ``i <= k``, divided by ``min(R, k)``, and 0 when ``R == 0``. The
    reference is ``lesson_utils.metrics.mean_average_precision`` with one query.

    Example:
        >>> def ap_at_k(ranked, k):
        ...     hits, total = 0, 0.0
        ...     for i, rel in enumerate(ranked[:k], start=1):
        ...         if rel:
        ...             hits += 1
        ...             total += hits / i
        ...     r = sum(ranked)
        ...     return total / min(r, k) if r else 0.0
        >>> check_average_precision_at_k(ap_at_k)
        ✅ AP@k: equals lesson_utils.metrics.mean_average_precision on 5 ranked lists
        True
    """
    what = "AP@k"
    cases = [([1, 0, 1, 0, 0, 1], 6), ([1, 0, 1, 0, 0, 1], 3), ([0, 1, 1, 1, 1], 2),
             ([0, 0, 0, 0], 2), ([0, 0, 1, 0, 1, 1, 0, 1], 5)]
    for ranked, k in cases:
        n = len(ranked)
        scores = [[float(n - i) for i in range(n)]]  # already in rank order
        expected = M.mean_average_precision(scores, [ranked], k=k)
        got = _call(what, fn, list(ranked), k)
        if _close(got, expected):
            continue
        if math.isnan(got):
            fail(what, f"got nan for ranked={ranked}, k={k}: a list with no relevant result "
                       f"scores 0.")
        top = ranked[:k]
        hits = [sum(top[: i + 1]) for i in range(len(top))]
        numerator = sum(h / (i + 1) for i, h in enumerate(hits) if top[i])
        r = sum(ranked)
        known = [
            (numerator / k if k else math.nan,
             "you divided by k. Divide by min(R, k): when fewer than k results are relevant, "
             "a perfect list must still score 1."),
            (numerator / r if r else math.nan,
             "you divided by R, all relevant results. Divide by min(R, k): with k < R not "
             "even a perfect top k could reach 1 otherwise."),
            (numerator / sum(top) if sum(top) else math.nan,
             "you divided by the relevant results found in the top k. Divide by min(R, k), "
             "the number that could be there: otherwise a list that finds one relevant result "
             "at rank 1 and misses the rest scores a perfect 1."),
            (sum(h / (i + 1) for i, h in enumerate(hits)) / max(min(r, k), 1),
             "you summed precision@i at every rank. Sum it only at the ranks that hold a "
             "relevant result."),
        ]
        for value, hint in known:
            if not math.isnan(value) and _close(got, value):
                fail(what, f"for ranked={ranked}, k={k} expected {expected:.4f}, "
                           f"got {got:.4f}: {hint}")
        fail(what, f"for ranked={ranked}, k={k} expected {expected:.4f}, got {got:.4f}. "
                   f"Walk the first k results; at each relevant rank i add "
                   f"(relevant so far) / i; divide by min(R, k) (0 if R == 0).")
    return passed(what, f"equals lesson_utils.metrics.mean_average_precision on {len(cases)} "
                        f"ranked lists")


def _best_f1(y_true: torch.Tensor, probs: torch.Tensor) -> tuple[float, float]:
    """(best F1, a threshold reaching it) over every distinct score as threshold."""
    precision, recall, thresholds = M.precision_recall_curve(y_true, probs)
    precision, recall = precision[:-1], recall[:-1]  # drop the closing point (no threshold)
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-12), 0.0)
    i = int(torch.argmax(f1))
    return float(f1[i]), float(thresholds[i])


def check_best_f1_threshold(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """Check ``fn(y_true, probs) -> threshold``: a threshold whose F1 is the best possible.

    A sample is predicted positive when ``probs >= threshold``. Any threshold reaching the
    maximal F1 passes (many do: every value between two neighbouring scores is equivalent).

    Example:
        >>> def best_threshold(y_true, probs):
        ...     candidates = torch.unique(probs)
        ...     f1 = [M.metrics_at_threshold(y_true, probs, float(t))["f1"] for t in candidates]
        ...     return float(candidates[int(torch.tensor(f1).argmax())])
        >>> check_best_f1_threshold(best_threshold)
        ✅ best-F1 threshold: reaches the best F1 on 3 validation sets
        True
    """
    what = "best-F1 threshold"
    g = torch.Generator().manual_seed(5)
    cases = []
    for n, rate, shift in ((200, 0.1, 2.0), (300, 0.3, 1.0), (150, 0.05, 3.0)):
        y = (torch.rand(n, generator=g) < rate).to(torch.int64)
        y[0] = 1  # at least one positive
        logits = torch.randn(n, generator=g, dtype=torch.float64) + shift * y - shift / 2
        cases.append((y, torch.sigmoid(logits)))
    for y, probs in cases:
        best, at = _best_f1(y, probs)
        t = _call(what, fn, y.clone(), probs.clone())
        if math.isnan(t):
            fail(what, "got nan: return the threshold itself, a number")
        got = M.metrics_at_threshold(y, probs, t)
        if _close(got["f1"], best) or got["f1"] > best:
            continue
        hint = ""
        if t >= 1 and float(probs.max()) < 1 and t == int(t):
            hint = (" Your value looks like a position in a list: return the threshold "
                    "(a probability), not its index.")
        else:
            accuracies = [M.metrics_at_threshold(y, probs, float(c))["accuracy"]
                          for c in torch.unique(probs)]
            if _close(got["accuracy"], max(accuracies)):
                hint = (" Your threshold maximises accuracy, not F1: on imbalanced data that "
                        "threshold is high and misses positives.")
        fail(what, f"F1 at your threshold {t:.4g} is {got['f1']:.4f}, but {best:.4f} is "
                   f"reachable (e.g. at {at:.4g}). Try every distinct score as the threshold "
                   f"and keep the one with the highest F1.{hint}")
    return passed(what, f"reaches the best F1 on {len(cases)} validation sets")
