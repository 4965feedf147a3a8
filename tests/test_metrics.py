"""lesson_utils.metrics against scikit-learn (property-based), hand-worked cases and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lesson_utils import metrics as M
from lesson_utils.checks import CheckFailed
from lesson_utils.checks import metrics as C

pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")
PROPERTY = settings(max_examples=60, deadline=None)
AVERAGES = ["micro", "macro", "weighted", None]
ZERO_DIVISIONS = [0.0, 1.0, math.nan]


def same(a, b, tol=1e-9):
    """Equal floats or lists of floats, nan equal to nan."""
    a = np.atleast_1d(np.asarray(a, dtype=float))
    b = np.atleast_1d(np.asarray(b, dtype=float))
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True))


@st.composite
def label_pairs(draw, max_classes=6, max_n=40):
    """(y_true, y_pred, num_classes or None): sometimes classes that never occur."""
    k = draw(st.integers(1, max_classes))
    n = draw(st.integers(1, max_n))
    y_true = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    y_pred = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    num_classes = draw(st.sampled_from([None, k, k + 2]))
    return y_true, y_pred, num_classes


def sk_labels(y_true, y_pred, num_classes):
    k = num_classes if num_classes is not None else int(max(y_true.max(), y_pred.max())) + 1
    return list(range(k))


# ---------------------------------------------------------------- classification vs sklearn

@PROPERTY
@given(label_pairs())
def test_confusion_matrix_matches_sklearn(case):
    y_true, y_pred, num_classes = case
    labels = sk_labels(y_true, y_pred, num_classes)
    cm = M.confusion_matrix(y_true, y_pred, num_classes=num_classes)
    assert cm.dtype == torch.int64
    np.testing.assert_array_equal(cm.numpy(), skm.confusion_matrix(y_true, y_pred, labels=labels))


@PROPERTY
@given(label_pairs())
def test_accuracy_and_balanced_accuracy_match_sklearn(case):
    y_true, y_pred, _ = case
    assert same(M.accuracy(y_true, y_pred), skm.accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when y_pred has classes absent from y_true
        expected = skm.balanced_accuracy_score(y_true, y_pred)
    assert same(M.balanced_accuracy(y_true, y_pred), expected)


@pytest.mark.parametrize("zero_division", ZERO_DIVISIONS, ids=["zd0", "zd1", "zdnan"])
@pytest.mark.parametrize("average", AVERAGES, ids=str)
def test_precision_recall_f1_match_sklearn(average, zero_division):
    @PROPERTY
    @given(label_pairs())
    def check(case):
        y_true, y_pred, num_classes = case
        labels = sk_labels(y_true, y_pred, num_classes)
        for ours, theirs in ((M.precision, skm.precision_score), (M.recall, skm.recall_score),
                             (M.f1_score, skm.f1_score)):
            got = ours(y_true, y_pred, num_classes=num_classes, average=average,
                       zero_division=zero_division)
            expected = theirs(y_true, y_pred, labels=labels, average=average,
                              zero_division=zero_division)
            assert same(got, expected), (ours.__name__, got, expected)
            if average is None:
                assert isinstance(got, list) and all(isinstance(v, float) for v in got)
            else:
                assert isinstance(got, float)

    check()


def test_zero_division_cases_by_hand():
    # class 2 is never predicted, class 3 neither occurs nor is predicted
    y_true, y_pred = [0, 1, 2], [0, 1, 1]
    assert M.precision(y_true, y_pred, num_classes=4, average=None) == [1.0, 0.5, 0.0, 0.0]
    assert M.precision(y_true, y_pred, num_classes=4, average=None,
                       zero_division=1.0) == [1.0, 0.5, 1.0, 1.0]
    # F1's denominator 2tp + fp + fn is 0 only for class 3: class 2 has F1 = 0, not zero_division
    assert M.f1_score(y_true, y_pred, num_classes=4, average=None,
                      zero_division=1.0) == pytest.approx([1.0, 2 / 3, 0.0, 1.0])
    # nan: classes with an undefined value are left out of the average
    assert M.precision(y_true, y_pred, num_classes=4, zero_division=math.nan) == pytest.approx(0.75)
    assert math.isnan(M.precision(y_true, y_pred, num_classes=4, average=None,
                                  zero_division=math.nan)[3])


def test_micro_f1_equals_accuracy_and_majority_paradox():
    y_true = [0] * 90 + [1] * 8 + [2] * 2
    y_pred = [0] * 100  # always the majority class
    assert M.accuracy(y_true, y_pred) == 0.9
    assert M.f1_score(y_true, y_pred, average="micro") == pytest.approx(0.9)
    assert M.f1_score(y_true, y_pred, average="macro") == pytest.approx((2 * 90 / 190) / 3)
    assert M.balanced_accuracy(y_true, y_pred) == pytest.approx(1 / 3)


def test_input_types_give_the_same_answer():
    y_true, y_pred = [0, 1, 2, 2, 1], [0, 2, 2, 1, 1]
    expected = M.f1_score(y_true, y_pred)
    for conv in (np.array, lambda v: np.array(v, dtype=np.int32), torch.tensor,
                 lambda v: torch.tensor(v, dtype=torch.float32),  # whole-number floats
                 lambda v: np.array(v, dtype=np.uint8), tuple):
        assert M.f1_score(conv(y_true), conv(y_pred)) == expected
    # bool predictions are class 0 / 1
    assert M.accuracy([0, 1, 1], np.array([False, True, False])) == pytest.approx(2 / 3)
    # a tensor that requires grad is detached: metrics never enter backward()
    s = torch.tensor([0.2, 0.9, 0.4], requires_grad=True)
    out = M.roc_auc([0, 1, 1], s)
    assert isinstance(out, float) and s.grad is None


def test_numpy_input_is_not_copied():
    a = np.arange(10, dtype=np.int64)
    t = M._as_tensor(a, "y_true")
    assert t.data_ptr() == a.ctypes.data
    b = np.arange(10, dtype=np.int32)
    assert M._as_tensor(b, "y_true").data_ptr() == b.ctypes.data
    ro = np.arange(4)
    ro.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable" warning from torch
        assert M.accuracy(ro, ro) == 1.0


def test_classification_report_numbers_match_sklearn():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    names = ["cat", "dog", "rabbit", "fox"]
    text = M.classification_report(y_true, y_pred, class_names=names, digits=4)
    ref = skm.classification_report(y_true, y_pred, target_names=names, output_dict=True,
                                    zero_division=0.0)
    rows = {}
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        parts = line.split()
        if parts[0] == "accuracy":
            rows["accuracy"] = float(parts[1])
            continue
        name = " ".join(parts[:-4])
        rows[name] = [float(v) for v in parts[-4:]]
    assert rows["accuracy"] == pytest.approx(ref["accuracy"], abs=5e-5)
    for name in [*names, "macro avg", "weighted avg"]:
        p, r, f, support = rows[name]
        assert [p, r, f] == pytest.approx(
            [ref[name]["precision"], ref[name]["recall"], ref[name]["f1-score"]], abs=5e-5)
        assert support == ref[name]["support"]
    # default names are the class indices
    assert M.classification_report([0, 1], [0, 1]).splitlines()[2].split()[0] == "0"


# ---------------------------------------------------------------- ROC AUC and curves

@st.composite
def binary_scores(draw, max_n=40, tied=True):
    n = draw(st.integers(2, max_n))
    y = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    # few distinct values make ties likely
    values = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) if tied else st.floats(-5, 5)
    s = draw(arrays(np.float64, n, elements=values))
    return y, s


@PROPERTY
@given(binary_scores())
def test_binary_roc_auc_matches_sklearn_with_ties(case):
    y, s = case
    if y.min() == y.max():
        with pytest.warns(M.UndefinedMetricWarning, match="only class"):
            assert math.isnan(M.roc_auc(y, s))
        return
    assert same(M.roc_auc(y, s), skm.roc_auc_score(y, s))


@PROPERTY
@given(binary_scores())
def test_curves_and_average_precision_match_sklearn(case):
    y, s = case
    if y.min() == y.max():
        return
    fpr, tpr, thr = M.roc_curve(y, s)
    r_fpr, r_tpr, r_thr = skm.roc_curve(y, s, drop_intermediate=False)
    assert same(fpr, r_fpr) and same(tpr, r_tpr) and same(thr, r_thr)
    p, r, t = M.precision_recall_curve(y, s)
    r_p, r_r, r_t = skm.precision_recall_curve(y, s)
    assert same(p, r_p) and same(r, r_r) and same(t, r_t)
    assert same(M.average_precision(y, s), skm.average_precision_score(y, s))


@st.composite
def multiclass_scores(draw, max_classes=5, max_n=40):
    k = draw(st.integers(2, max_classes))
    n = draw(st.integers(k, max_n))
    y = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    y[:k] = np.arange(k)  # sklearn needs every class present
    logits = draw(arrays(np.float64, (n, k), elements=st.sampled_from([0.0, 1.0, 2.0])))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # rows sum to 1 for sklearn
    return y, probs


@pytest.mark.parametrize("multi_class", ["ovr", "ovo"])
@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_multiclass_roc_auc_matches_sklearn(multi_class, average):
    @PROPERTY
    @given(multiclass_scores())
    def check(case):
        y, probs = case
        got = M.roc_auc(y, probs, multi_class=multi_class, average=average)
        if probs.shape[1] == 2:  # sklearn takes two classes as binary, scored by column 1
            expected = skm.roc_auc_score(y, probs[:, 1])
        else:
            expected = skm.roc_auc_score(y, probs, multi_class=multi_class, average=average)
        assert same(got, expected)

    check()


@PROPERTY
@given(multiclass_scores())
def test_ovr_per_class_is_binary_auc_of_each_column(case):
    y, probs = case
    got = M.roc_auc(y, probs, average=None)
    if probs.shape[1] > 2:
        assert same(got, skm.roc_auc_score(y, probs, multi_class="ovr", average=None))
    assert same(got, [M.roc_auc((y == c).astype(int), probs[:, c]) for c in range(probs.shape[1])])


def test_roc_auc_by_hand_counts_pairs_and_half_ties():
    # positives 0.8, 0.5; negatives 0.5, 0.1: pairs (0.8>0.5), (0.8>0.1), (0.5=0.5 tie), (0.5>0.1)
    assert M.roc_auc([1, 1, 0, 0], [0.8, 0.5, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    assert M.roc_auc([0, 1], [0.9, 0.1]) == 0.0
    assert M.roc_auc([0, 0, 1], [5.0, 5.0, 5.0]) == 0.5  # all tied: chance
    # scores need not be probabilities
    assert M.roc_auc([0, 1, 0, 1], [-3.0, 10.0, 0.0, 2.0]) == 1.0


def test_roc_auc_one_class_is_nan_with_warning_like_sklearn():
    with pytest.warns(M.UndefinedMetricWarning, match=r"only class 1.*needs both.*nan"):
        assert math.isnan(M.roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))
    with pytest.warns(M.UndefinedMetricWarning, match="only class 0"):
        assert math.isnan(M.roc_auc([0, 0], [0.2, 0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(skm.roc_auc_score([1, 1, 1], [0.2, 0.5, 0.9]))
    # multiclass with an absent class: that class's one-vs-rest AUC is undefined
    probs = [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]
    with pytest.warns(M.UndefinedMetricWarning, match=r"class\(es\) \[2\] do not occur"):
        per_class = M.roc_auc([0, 1, 0], probs, average=None)
    assert per_class[:2] == [1.0, 1.0] and math.isnan(per_class[2])
    with pytest.warns(M.UndefinedMetricWarning):
        assert math.isnan(M.roc_auc([0, 1, 0], probs, average="macro"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weighted: an absent class has weight 0, no warning
        assert M.roc_auc([0, 1, 0], probs, average="weighted") == 1.0
    with pytest.warns(M.UndefinedMetricWarning, match="pairwise"):
        assert math.isnan(M.roc_auc([0, 1, 0], probs, multi_class="ovo"))


def test_curve_warnings_without_a_class():
    with pytest.warns(M.UndefinedMetricWarning, match="no negative"):
        fpr, tpr, _ = M.roc_curve([1, 1], [0.3, 0.6])
    assert torch.isnan(fpr).all() and tpr.tolist() == [0.0, 0.5, 1.0]
    with pytest.warns(M.UndefinedMetricWarning, match="no positive"):
        _, r, _ = M.precision_recall_curve([0, 0], [0.3, 0.6])
    assert torch.isnan(r[:-1]).all()
    with pytest.warns(M.UndefinedMetricWarning, match="no positive"):
        assert math.isnan(M.average_precision([0, 0], [0.3, 0.6]))


@PROPERTY
@given(binary_scores(), st.sampled_from([0.0, 0.3, 0.5, 0.75, 1.1]))
def test_metrics_at_threshold_match_sklearn(case, threshold):
    y, s = case
    m = M.metrics_at_threshold(y, s, threshold)
    y_hat = (s >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, y_hat, labels=[0, 1]).ravel()
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (tn, fp, fn, tp)
    assert m["confusion"].tolist() == [[tn, fp], [fn, tp]]
    for key, fn_ in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):
        assert same(m[key], fn_(y, y_hat, zero_division=0.0)), key
    assert same(m["accuracy"], skm.accuracy_score(y, y_hat))


# ---------------------------------------------------------------- regression

@st.composite
def regression_pairs(draw, two_d=False):
    n = draw(st.integers(1, 30))
    shape = (n, draw(st.integers(1, 3))) if two_d else (n,)
    floats = st.floats(-1e3, 1e3, allow_nan=False)
    return draw(arrays(np.float64, shape, elements=floats)), draw(arrays(np.float64, shape,
                                                                          elements=floats))


@PROPERTY
@given(regression_pairs())
def test_regression_metrics_match_sklearn(case):
    y_true, y_pred = case
    assert same(M.mae(y_true, y_pred), skm.mean_absolute_error(y_true, y_pred))
    assert same(M.mse(y_true, y_pred), skm.mean_squared_error(y_true, y_pred))
    assert same(M.rmse(y_true, y_pred), skm.root_mean_squared_error(y_true, y_pred))


@PROPERTY
@given(regression_pairs(two_d=True))
def test_regression_2d_pools_outputs(case):
    y_true, y_pred = case
    assert same(M.mae(y_true, y_pred), skm.mean_absolute_error(y_true, y_pred))
    assert same(M.mse(y_true, y_pred), skm.mean_squared_error(y_true, y_pred))
    assert same(M.rmse(y_true, y_pred), math.sqrt(skm.mean_squared_error(y_true, y_pred)))


def test_regression_by_hand_and_outlier():
    y_true = [100.0, 200.0, 300.0, 400.0]
    good = [110.0, 190.0, 310.0, 390.0]  # four misses of 10
    outlier = [100.0, 200.0, 300.0, 440.0]  # one miss of 40: same MAE, larger RMSE
    assert M.mae(y_true, good) == M.mae(y_true, outlier) == 10.0
    assert M.rmse(y_true, good) == 10.0
    assert M.rmse(y_true, outlier) == 20.0
    assert M.mse(torch.tensor(y_true), torch.tensor(outlier)) == 400.0
    # 2-D: pooled RMSE, documented to differ from sklearn's mean of per-output RMSEs
    a, b = np.zeros((2, 2)), np.array([[0.0, 0.0], [0.0, 2.0]])
    assert M.rmse(a, b) == 1.0
    assert skm.root_mean_squared_error(a, b) == pytest.approx(math.sqrt(2) / 2)


# ---------------------------------------------------------------- ranking

def ref_rankings(scores, relevance, k):
    """Plain-Python reference: stable sort by descending score, then the textbook formulas."""
    rr, nd, ap = [], [], []
    for s, r in zip(scores, relevance, strict=True):
        order = sorted(range(len(s)), key=lambda i: -s[i])  # sorted() is stable
        ranked = [r[i] for i in order]
        kk = len(s) if k is None else min(k, len(s))
        top = ranked[:kk]
        rr.append(next((1 / (i + 1) for i, v in enumerate(top) if v > 0), 0.0))
        dcg = sum(v / math.log2(i + 2) for i, v in enumerate(top))
        idcg = sum(v / math.log2(i + 2) for i, v in enumerate(sorted(r, reverse=True)[:kk]))
        nd.append(dcg / idcg if idcg > 0 else 0.0)
        hits, total = 0, 0.0
        for i, v in enumerate(top):
            if v > 0:
                hits += 1
                total += hits / (i + 1)
        n_rel = sum(v > 0 for v in r)
        ap.append(total / min(n_rel, kk) if n_rel else 0.0)
    return sum(rr) / len(rr), sum(nd) / len(nd), sum(ap) / len(ap)


@st.composite
def rankings(draw, untied=True, max_q=5, max_d=8):
    q = draw(st.integers(1, max_q))
    d = draw(st.integers(2, max_d))
    relevance = draw(arrays(np.int64, (q, d), elements=st.integers(0, 3)))
    if untied:
        scores = np.stack([draw(st.permutations(range(d))) for _ in range(q)]).astype(float)
        scores = scores + draw(arrays(np.float64, (q, d), elements=st.floats(0, 0.5)))
    else:
        scores = draw(arrays(np.float64, (q, d), elements=st.sampled_from([0.0, 0.5, 1.0])))
    k = draw(st.sampled_from([None, 1, 2, 3, d, d + 3]))
    return scores, relevance, k


@PROPERTY
@given(rankings())
def test_ranking_matches_sklearn_per_query_on_untied_scores(case):
    scores, relevance, k = case
    assert same(M.ndcg(scores, relevance, k=k), skm.ndcg_score(relevance, scores, k=k))
    ap = [skm.average_precision_score(r > 0, s) if (r > 0).any() else 0.0
          for s, r in zip(scores, relevance, strict=True)]
    assert same(M.mean_average_precision(scores, relevance), np.mean(ap))


@PROPERTY
@given(rankings(untied=False))
def test_ranking_matches_reference_with_ties_and_k(case):
    scores, relevance, k = case
    mrr, nd, ap = ref_rankings(scores.tolist(), relevance.tolist(), k)
    assert same(M.mean_reciprocal_rank(scores, relevance, k=k), mrr)
    assert same(M.ndcg(scores, relevance, k=k), nd)
    assert same(M.mean_average_precision(scores, relevance, k=k), ap)


def test_ranking_hand_worked_search_results():
    # One query, six results in the order the engine shows them; graded relevance 0..3.
    scores = [[6, 5, 4, 3, 2, 1]]
    relevance = [[0, 3, 0, 1, 2, 0]]
    assert M.mean_reciprocal_rank(scores, relevance) == 0.5  # first relevant at rank 2
    # AP: relevant at ranks 2, 4, 5 -> (1/2 + 2/4 + 3/5) / 3
    assert M.mean_average_precision(scores, relevance) == pytest.approx((0.5 + 0.5 + 0.6) / 3)
    # AP@3: only rank 2 is inside, divided by min(R=3, k=3) = 3
    assert M.mean_average_precision(scores, relevance, k=3) == pytest.approx(0.5 / 3)
    dcg = 3 / math.log2(3) + 1 / math.log2(5) + 2 / math.log2(6)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg(scores, relevance) == pytest.approx(dcg / idcg)
    # NDCG@1: the top result is irrelevant
    assert M.ndcg(scores, relevance, k=1) == 0.0
    # a query with nothing relevant scores 0 everywhere, and counts in the mean
    two = [[6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6]]
    rel2 = [[0, 3, 0, 1, 2, 0], [0, 0, 0, 0, 0, 0]]
    assert M.mean_reciprocal_rank(two, rel2) == 0.25
    assert M.ndcg(two, rel2) == pytest.approx(dcg / idcg / 2)
    assert M.mean_average_precision(two, rel2) == pytest.approx((0.5 + 0.5 + 0.6) / 6)


def test_ranking_ties_are_broken_by_column_order():
    # all scores equal: the ranking is the column order
    assert M.mean_reciprocal_rank([[1.0, 1.0, 1.0]], [[0, 0, 1]]) == pytest.approx(1 / 3)
    assert M.mean_reciprocal_rank([[1.0, 1.0, 1.0]], [[1, 0, 0]]) == 1.0
    # long rows of ties too (an unstable sort reorders these)
    rel = np.zeros((1, 5000))
    rel[0, 1] = 1
    assert M.mean_reciprocal_rank(np.zeros((1, 5000)), rel) == 0.5
    # sklearn's ndcg_score averages over the tied orders instead
    ours = M.ndcg([[1.0, 1.0]], [[0, 1]])
    assert ours == pytest.approx(1 / math.log2(3))
    assert skm.ndcg_score([[0, 1]], [[1.0, 1.0]]) > ours


def test_ranking_accepts_bool_relevance_and_tensors():
    s = torch.tensor([[0.1, 0.9, 0.5]])
    assert M.mean_average_precision(s, torch.tensor([[True, False, True]])) == pytest.approx(
        (1 / 2 + 2 / 3) / 2)
    assert M.ndcg(s, s) == 1.0  # ranking by the relevance itself is ideal


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("fn", [M.confusion_matrix, M.accuracy, M.balanced_accuracy, M.precision,
                                M.recall, M.f1_score, M.classification_report])
def test_label_errors(fn):
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        fn([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true is empty"):
        fn([], [])
    with pytest.raises(ValueError, match="y_pred holds negative label -1"):
        fn([0, 1], [0, -1])
    with pytest.raises(ValueError, match=r"y_true must be 1-D.*\(2, 2\).*argmax"):
        fn([[0, 1], [1, 0]], [0, 1])
    with pytest.raises(ValueError, match=r"whole-number class labels, got 0.7.*probabilities"):
        fn([0, 1], [0.7, 0.2])
    with pytest.raises(ValueError, match="y_true contains NaN"):
        fn([0.0, math.nan], [0, 1])
    with pytest.raises(TypeError, match="y_true must hold numbers"):
        fn(["cat", "dog"], [0, 1])


@pytest.mark.parametrize("fn", [M.confusion_matrix, M.precision, M.recall, M.f1_score,
                                M.classification_report])
def test_num_classes_errors(fn):
    with pytest.raises(ValueError, match=r"y_pred holds label 3, but num_classes=3 allows only 0 \.\. 2"):
        fn([0, 1, 2], [0, 1, 3], num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        fn([0], [0], num_classes=0)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        fn([0], [0], num_classes=2.0)
    with pytest.raises(ValueError, match=r"20000 x 20000 confusion matrix .* class indices.*19999"):
        fn([0, 19_999], [0, 1])  # e.g. pixel values or ids passed as labels


@pytest.mark.parametrize("fn", [M.precision, M.recall, M.f1_score])
def test_average_and_zero_division_errors(fn):
    with pytest.raises(ValueError, match=r"average must be one of 'micro', 'macro', 'weighted', None; got 'binary'"):
        fn([0, 1], [0, 1], average="binary")
    with pytest.raises(ValueError, match=r"zero_division must be 0.0, 1.0 or nan, got 0.5"):
        fn([0, 1], [0, 1], zero_division=0.5)
    with pytest.raises(TypeError, match="zero_division must be"):
        fn([0, 1], [0, 1], zero_division="warn")


def test_classification_report_errors():
    with pytest.raises(ValueError, match="class_names has 2 names but there are 3 classes"):
        M.classification_report([0, 1, 2], [0, 1, 2], class_names=["a", "b"], num_classes=3)
    with pytest.raises(ValueError, match="y_true holds label 2, but num_classes=2"):
        M.classification_report([0, 1, 2], [0, 1, 1], class_names=["a", "b"])
    with pytest.raises(ValueError, match="digits must be an int >= 0"):
        M.classification_report([0], [0], digits=-1)


def test_roc_auc_errors():
    with pytest.raises(ValueError, match=r"average must be one of 'macro', 'weighted', None; got 'micro'"):
        M.roc_auc([0, 1], [0.1, 0.9], average="micro")
    with pytest.raises(ValueError, match=r"multi_class must be one of 'ovr', 'ovo'; got 'raise'"):
        M.roc_auc([0, 1], [0.1, 0.9], multi_class="raise")
    with pytest.raises(ValueError, match="y_score contains NaN or inf"):
        M.roc_auc([0, 1], [0.1, math.inf])
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        M.roc_auc([0, 1, 1], [0.1, 0.9])
    with pytest.raises(ValueError, match="y_score is empty"):
        M.roc_auc([], [])
    with pytest.raises(ValueError, match=r"y_true must hold 0 \(negative\) or 1 \(positive\), got a label 2"):
        M.roc_auc([0, 2], [0.1, 0.9])
    with pytest.raises(ValueError, match="y_true holds label 3, but num_classes=3"):
        M.roc_auc([0, 1, 3], np.eye(3))
    with pytest.raises(ValueError, match="y_true holds negative label -1"):
        M.roc_auc([0, -1, 2], np.eye(3))
    with pytest.raises(ValueError, match="needs K >= 2"):
        M.roc_auc([0, 0], [[0.1], [0.2]])
    with pytest.raises(ValueError, match=r"y_score must be \(N,\) for binary or \(N, K\)"):
        M.roc_auc([0, 1], np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="average=None is only available with multi_class='ovr'"):
        M.roc_auc([0, 1, 2], np.eye(3), average=None, multi_class="ovo")


@pytest.mark.parametrize("fn", [M.roc_curve, M.precision_recall_curve, M.average_precision])
def test_curve_errors(fn):
    with pytest.raises(ValueError, match="y_score must be 1-D"):
        fn([0, 1], [[0.1, 0.9], [0.2, 0.8]])
    with pytest.raises(ValueError, match="y_score contains NaN"):
        fn([0, 1], [0.1, math.nan])
    with pytest.raises(ValueError, match="same length"):
        fn([0, 1, 0], [0.1, 0.2])


def test_metrics_at_threshold_errors():
    with pytest.raises(ValueError, match="threshold must be a number, got nan"):
        M.metrics_at_threshold([0, 1], [0.1, 0.9], math.nan)
    with pytest.raises(TypeError, match="threshold must be a number"):
        M.metrics_at_threshold([0, 1], [0.1, 0.9], "0.5")
    with pytest.raises(ValueError, match="y_score must be 1-D"):
        M.metrics_at_threshold([0, 1], [[0.1], [0.9]], 0.5)
    with pytest.raises(ValueError, match="got a label 3"):
        M.metrics_at_threshold([0, 3], [0.1, 0.9], 0.5)


@pytest.mark.parametrize("fn", [M.mae, M.mse, M.rmse])
def test_regression_errors(fn):
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(3, 1\).*broadcast"):
        fn([1.0, 2.0, 3.0], [[1.0], [2.0], [3.0]])
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(2,\)"):
        fn([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="y_true is empty"):
        fn([], [])
    with pytest.raises(ValueError, match="y_pred contains NaN or inf"):
        fn([1.0, 2.0], [1.0, math.nan])
    with pytest.raises(TypeError, match="y_true must hold numbers"):
        fn(["a"], [1.0])


@pytest.mark.parametrize("fn", [M.mean_reciprocal_rank, M.ndcg, M.mean_average_precision])
def test_ranking_errors(fn):
    with pytest.raises(ValueError, match=r"scores must be 2-D \(Q, D\), one row per query, got shape \(3,\)"):
        fn([0.3, 0.2, 0.1], [[1, 0, 0]])
    with pytest.raises(ValueError, match=r"relevance must be 2-D \(Q, D\)"):
        fn([[0.3, 0.2, 0.1]], [1, 0, 0])
    with pytest.raises(ValueError, match=r"same shape, got \(1, 3\) and \(1, 2\)"):
        fn([[0.3, 0.2, 0.1]], [[1, 0]])
    with pytest.raises(ValueError, match="scores is empty"):
        fn(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="scores contains NaN or inf"):
        fn([[0.3, math.nan]], [[1, 0]])
    with pytest.raises(ValueError, match="relevance must be >= 0, got -1"):
        fn([[0.3, 0.2]], [[1, -1]])
    with pytest.raises(ValueError, match="k must be >= 1 .*got 0"):
        fn([[0.3, 0.2]], [[1, 0]], k=0)
    with pytest.raises(TypeError, match="k must be an int or None"):
        fn([[0.3, 0.2]], [[1, 0]], k=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_give_the_same_numbers():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 1000), rng.integers(0, 5, 1000)
    cm = M.confusion_matrix(torch.from_numpy(y_true).cuda(), torch.from_numpy(y_pred).cuda())
    assert cm.device.type == "cuda"
    assert cm.cpu().tolist() == skm.confusion_matrix(y_true, y_pred).tolist()
    for average in AVERAGES:
        assert same(M.f1_score(torch.from_numpy(y_true).cuda(), torch.from_numpy(y_pred).cuda(),
                               average=average), skm.f1_score(y_true, y_pred, average=average))
    s = rng.random(1000)
    assert same(M.roc_auc(torch.from_numpy(y_true == 1).cuda(), torch.from_numpy(s).cuda()),
                skm.roc_auc_score(y_true == 1, s))
    with pytest.raises(ValueError, match="on cuda:0 but y_pred is on cpu"):
        M.accuracy(torch.from_numpy(y_true).cuda(), torch.from_numpy(y_pred))


# ---------------------------------------------------------------- self-checks (lesson 05)


def _per_class_f1(cm):
    tp = cm.diagonal().double()
    denom = (cm.sum(0) + cm.sum(1)).double()
    return tp, denom, torch.where(denom > 0, 2 * tp / denom.clamp_min(1), 0.0)


def test_check_macro_f1_passes_a_solution_and_names_each_mistake(capsys):
    assert C.check_macro_f1_from_confusion(lambda cm: _per_class_f1(cm)[2].mean())
    assert "✅ macro-F1" in capsys.readouterr().out

    def micro(cm):
        return cm.diagonal().sum() / cm.sum()

    def weighted(cm):
        return (_per_class_f1(cm)[2] * cm.sum(1)).sum() / cm.sum()

    def skips_empty(cm):
        _, denom, f1 = _per_class_f1(cm)
        return f1[denom > 0].mean()

    def via_precision_recall(cm):  # 0/0 for a class never predicted
        tp = cm.diagonal().double()
        p, r = tp / cm.sum(0), tp / cm.sum(1)
        return (2 * p * r / (p + r)).mean()

    def f1_of_means(cm):
        tp = cm.diagonal().double()
        p = torch.where(cm.sum(0) > 0, tp / cm.sum(0).clamp_min(1), 0.0).mean()
        r = torch.where(cm.sum(1) > 0, tp / cm.sum(1).clamp_min(1), 0.0).mean()
        return 2 * p * r / (p + r)

    for fn, match in ((micro, "micro-F1"), (weighted, "support-weighted"),
                      (skips_empty, "left out the class"), (via_precision_recall, "got nan"),
                      (f1_of_means, "F1 of macro-precision and macro-recall"),
                      (lambda cm: 0.5, r"F1_k = 2tp"), (lambda cm: None, "forget to `return`"),
                      (lambda cm: 1 / 0, "divided by zero"), ("nope", "expected a function")):
        with pytest.raises(CheckFailed, match=match):
            C.check_macro_f1_from_confusion(fn)


def _ap_at_k(ranked, k, divide_by="min"):
    hits, total = 0, 0.0
    for i, rel in enumerate(ranked[:k], start=1):
        if rel:
            hits += 1
            total += hits / i
    r = sum(ranked)
    denom = {"min": min(r, k), "k": k, "R": r, "found": hits}[divide_by]
    return total / denom if denom else 0.0


def test_check_average_precision_at_k_passes_a_solution_and_names_each_mistake():
    assert C.check_average_precision_at_k(_ap_at_k)

    def every_rank(ranked, k):
        r = sum(ranked)
        precisions = [sum(ranked[:i]) / i for i in range(1, min(k, len(ranked)) + 1)]
        return sum(precisions) / min(r, k) if r else 0.0

    def nan_when_empty(ranked, k):
        return _ap_at_k(ranked, k) if sum(ranked) else math.nan

    for fn, match in ((lambda r, k: _ap_at_k(r, k, "k"), "divided by k"),
                      (lambda r, k: _ap_at_k(r, k, "R"), "divided by R"),
                      (lambda r, k: _ap_at_k(r, k, "found"), "found in the top k"),
                      (every_rank, "at every rank"), (nan_when_empty, "no relevant result"),
                      (lambda r, k: sum(r[:k]) / k, "Walk the first k results")):
        with pytest.raises(CheckFailed, match=match):
            C.check_average_precision_at_k(fn)


def test_check_best_f1_threshold_passes_a_solution_and_names_each_mistake():
    def best(y_true, probs):
        candidates = torch.unique(probs)
        f1 = torch.tensor([M.metrics_at_threshold(y_true, probs, float(t))["f1"]
                           for t in candidates])
        return candidates[int(f1.argmax())]  # a 0-d tensor is fine too

    def best_accuracy(y_true, probs):
        candidates = torch.unique(probs)
        acc = torch.tensor([M.metrics_at_threshold(y_true, probs, float(t))["accuracy"]
                            for t in candidates])
        return float(candidates[int(acc.argmax())])

    def index_not_threshold(y_true, probs):
        candidates = torch.unique(probs)
        f1 = torch.tensor([M.metrics_at_threshold(y_true, probs, float(t))["f1"]
                           for t in candidates])
        return int(f1.argmax())

    assert C.check_best_f1_threshold(best)
    for fn, match in ((best_accuracy, "maximises accuracy"),
                      (index_not_threshold, "position in a list"),
                      (lambda y, p: 0.5, "Try every distinct score")):
        with pytest.raises(CheckFailed, match=match):
            C.check_best_f1_threshold(fn)


# ---------------------------------------------------------------------------- calibration

def _ece_reference(probs: np.ndarray, y: np.ndarray, num_bins: int) -> float:
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, num_bins + 1)
    ece = 0.0
    for b in range(num_bins):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (conf > lo) & (conf <= hi) if b > 0 else (conf >= lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs((pred[in_bin] == y[in_bin]).mean() - conf[in_bin].mean())
    return float(ece)


@pytest.mark.parametrize("num_bins", [1, 5, 15])
@pytest.mark.parametrize("seed", range(3))
def test_ece_matches_loop_reference(num_bins, seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(500, 4, generator=g, dtype=torch.float64) * 3, 1)
    target = torch.randint(0, 4, (500,), generator=g)
    ours = M.expected_calibration_error(probs, target, num_bins=num_bins)
    assert ours == pytest.approx(_ece_reference(probs.numpy(), target.numpy(), num_bins), abs=1e-12)


def test_ece_perfect_and_overconfident():
    # Always 100% confident and always right: perfectly calibrated.
    y = torch.tensor([0, 1, 2, 1])
    assert M.expected_calibration_error(torch.nn.functional.one_hot(y, 3).float(), y) == 0.0
    # 100% confident, right half the time: ECE = 0.5.
    assert M.expected_calibration_error(torch.nn.functional.one_hot(y, 3).float(), torch.tensor([0, 1, 0, 0])) == 0.5


def test_calibration_bins_edges():
    # 0.5 belongs to bin 0 of two bins (its upper edge is included), 0.51 to bin 1.
    probs = torch.tensor([[0.5, 0.5], [0.51, 0.49]])
    conf, acc, count = M.calibration_bins(probs, torch.tensor([0, 1]), num_bins=2)
    assert count.tolist() == [1, 1]
    torch.testing.assert_close(conf, torch.tensor([0.5, 0.51]))
    assert acc.tolist() == [1.0, 0.0]



def test_calibration_errors():
    probs, target = torch.tensor([[0.7, 0.3]]), torch.tensor([0])
    with pytest.raises(ValueError, match="num_bins must be an int >= 1, got 0"):
        M.expected_calibration_error(probs, target, num_bins=0)
    with pytest.raises(ValueError, match="probs is empty"):
        M.expected_calibration_error(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="same length"):
        M.calibration_bins(probs, torch.tensor([0, 1]))




def test_calibration_takes_lists_and_checks_labels():
    assert M.expected_calibration_error([[1.0, 0.0], [0.0, 1.0]], [0, 1]) == 0.0
    with pytest.raises(ValueError, match="probs must be \\(N, K\\)"):
        M.expected_calibration_error([0.5, 0.5], [0, 1])
    with pytest.raises(ValueError, match="target holds label 2, but num_classes=2"):
        M.expected_calibration_error([[0.5, 0.5]], [2])
