"""Tests for lesson_utils.inference: predict against a hand-written no_grad loop, mode
restoration, TTA, top-k, and the predictions CSV."""

from __future__ import annotations

import csv
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lesson_utils.inference import Predictions, hflip, predict, write_predictions_csv


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    # a trained-looking BatchNorm: running statistics away from their initial 0/1
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[1].running_var.uniform_(0.5, 2.0)
    return model


def make_images(n: int = 20, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 6, 6, generator=g), torch.randint(0, 5, (n,), generator=g)


def hand_predict(model: nn.Module, X: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(xb) for xb in X.split(batch_size)])


def test_predict_equals_a_hand_written_eval_no_grad_loop():
    model = make_model()
    X, _ = make_images()
    model.train()
    out = predict(model, X, batch_size=8)
    expected = hand_predict(model, X, 8)
    assert torch.equal(out.logits, expected)
    assert torch.allclose(out.probs, expected.softmax(1))
    assert torch.equal(out.preds, expected.argmax(1))
    assert out.targets is None and len(out) == 20 and out.num_classes == 5


def test_predict_is_deterministic_and_ignores_train_mode_randomness():
    model = make_model()
    X, _ = make_images()
    model.train()
    a, b = predict(model, X), predict(model, X)
    assert torch.equal(a.logits, b.logits)  # no Dropout, no batch statistics
    with torch.no_grad():
        train_mode = model(X)
    assert not torch.allclose(train_mode, a.logits, atol=1e-3)  # the reference can differ


def test_predict_restores_mixed_modes_and_leaves_no_trace():
    model = make_model()
    model.train()
    model[1].eval()  # e.g. a frozen BatchNorm
    flags = [m.training for m in model.modules()]
    stats = (model[1].running_mean.clone(), model[1].running_var.clone(),
             model[1].num_batches_tracked.clone())
    X, _ = make_images()
    out = predict(model, X)
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(a, b) for a, b in zip(stats, (
        model[1].running_mean, model[1].running_var, model[1].num_batches_tracked), strict=True))
    assert all(p.grad is None for p in model.parameters())
    for t in (out.logits, out.probs, out.preds):
        assert not t.requires_grad
        assert not t.is_inference()  # usable later with autograd (e.g. as soft targets)
    model.eval()
    predict(model, X)
    assert not any(m.training for m in model.modules())


class ImagesOnly(Dataset):
    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i]


@pytest.mark.parametrize("kind", ["tensor", "dataset", "dataset_xy", "loader_xy", "list"])
def test_predict_accepts_tensors_datasets_and_loaders(kind):
    model = make_model()
    X, y = make_images()
    data = {
        "tensor": X,
        "dataset": ImagesOnly(X),
        "dataset_xy": TensorDataset(X, y),
        "loader_xy": DataLoader(TensorDataset(X, y), batch_size=7),
        "list": [X[:5], X[5:]],
    }[kind]
    out = predict(model, data, batch_size=6)
    assert torch.allclose(out.logits, hand_predict(model, X, 20), atol=1e-6)
    if kind.endswith("_xy"):
        assert torch.equal(out.targets, y)
        assert out.accuracy() == pytest.approx((out.preds == y).float().mean().item())
    else:
        assert out.targets is None
        with pytest.raises(ValueError, match="targets"):
            out.accuracy()


def test_probabilities_and_topk():
    out = predict(make_model(), make_images()[0])
    assert torch.allclose(out.probs.sum(1), torch.ones(20))
    top = out.topk(3)
    assert top.indices.shape == (20, 3)
    assert torch.equal(top.indices[:, 0], out.preds)
    assert (top.values[:, :-1] >= top.values[:, 1:]).all()
    assert torch.equal(top.values, out.probs.topk(3, dim=1).values)
    with pytest.raises(ValueError, match="k must be in"):
        out.topk(6)
    with pytest.raises(ValueError, match="k must be in"):
        out.topk(0)
    with pytest.raises(TypeError, match="k must be an int"):
        out.topk(2.0)


def test_tta_averages_probabilities_of_the_views():
    model = make_model()
    X, _ = make_images()
    out = predict(model, X, tta=[hflip])
    model.eval()
    with torch.no_grad():
        expected = (model(X).softmax(1) + model(X.flip(-1)).softmax(1)) / 2
    assert torch.allclose(out.probs, expected, atol=1e-6)
    assert torch.allclose(out.logits.softmax(1), out.probs, atol=1e-6)
    assert torch.equal(out.preds, out.probs.argmax(1))
    plain = predict(model, X)
    assert not torch.allclose(plain.probs, out.probs, atol=1e-4)  # the flip changed something
    # a flip-invariant input: TTA with a flip changes nothing
    sym = (X + X.flip(-1)) / 2
    assert torch.allclose(predict(model, sym, tta=[hflip]).probs, predict(model, sym).probs,
                          atol=1e-6)


def test_predict_device_and_model_wrappers():
    model = make_model()
    X, _ = make_images()
    out = predict(nn.DataParallel(model), X, device="cpu")
    assert torch.allclose(out.logits, hand_predict(model, X, 20), atol=1e-6)


class LayoutProbe(nn.Module):
    """Records the memory layout of every batch it sees, then applies ``inner``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.layouts: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_contiguous():
            self.layouts.append("default")
        elif x.is_contiguous(memory_format=torch.channels_last):
            self.layouts.append("channels_last")
        else:
            self.layouts.append("other")
        return self.inner(x)


class ViewCNN(nn.Module):
    """A conv net written the classic way, ``x.view(N, -1)``: that view needs the default layout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).view(x.shape[0], -1))


def test_predict_uses_channels_last_for_cnns_on_cpu_only_where_it_applies():
    X, _ = make_images()
    cnn = LayoutProbe(make_model())
    predict(cnn, X, batch_size=8)
    assert cnn.layouts == ["channels_last"] * 3
    mlp = LayoutProbe(nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 5)))  # no Conv2d
    predict(mlp, X, batch_size=8)
    assert mlp.layouts == ["default"] * 3
    forced = LayoutProbe(nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 5)))
    predict(forced, X, batch_size=8, channels_last=True)
    assert forced.layouts == ["channels_last"] * 3
    off = LayoutProbe(make_model())
    predict(off, X, batch_size=8, channels_last=False)
    assert off.layouts == ["default"] * 3
    vectors = LayoutProbe(nn.Linear(5, 5))  # 2-D inputs are never touched
    predict(vectors, torch.randn(4, 5), channels_last=True)
    assert vectors.layouts == ["default"]


def test_channels_last_matches_to_float_rounding_and_false_is_bit_exact():
    from lesson_utils.models import TinyResNet

    torch.manual_seed(0)
    model = TinyResNet(6).eval()
    X = torch.rand(64, 3, 16, 16)
    expected = hand_predict(model, X, 32)
    assert torch.equal(predict(model, X, batch_size=32, channels_last=False).logits, expected)
    fast = predict(model, X, batch_size=32)
    assert torch.allclose(fast.logits, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(fast.preds, expected.argmax(1))


def test_channels_last_falls_back_for_models_that_need_the_default_layout():
    model = ViewCNN()
    X, _ = make_images()
    with pytest.raises(RuntimeError, match="view"):  # what .view does with channels-last input
        predict(model, X, channels_last=True)
    out = predict(model, X, batch_size=8)  # auto: the first batch is rerun, the default kept
    assert torch.equal(out.logits, hand_predict(model, X, 8))
    # a genuine error is still raised, from the default layout
    with pytest.raises(RuntimeError, match="channels"):
        predict(make_model(), torch.rand(4, 2, 6, 6))


def test_predict_bad_inputs():
    model = make_model()
    X, _ = make_images()
    with pytest.raises(TypeError, match="model"):
        predict("model", X)
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, X, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        predict(model, X, batch_size=2.5)
    with pytest.raises(TypeError, match="tta"):
        predict(model, X, tta=hflip)
    with pytest.raises(TypeError, match="data"):
        predict(model, 5)
    with pytest.raises(ValueError, match="empty"):
        predict(model, X[:0])
    with pytest.raises(ValueError, match="empty"):
        predict(model, [])
    with pytest.raises(ValueError, match=r"logits \(N=20, K\)"):
        predict(nn.Flatten(0), X)
    with pytest.raises(TypeError, match="batch"):
        predict(model, [{"x": X}])
    with pytest.raises(TypeError, match="channels_last"):
        predict(model, X, channels_last="yes")


def test_predictions_from_logits():
    p = Predictions.from_logits(torch.tensor([[0.0, 3.0], [1.0, -1.0]]))
    assert p.preds.tolist() == [1, 0]
    assert torch.allclose(p.probs.sum(1), torch.ones(2))


# --------------------------------------------------------------------------- CSV


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_write_predictions_csv_with_and_without_class_names(tmp_path):
    p = write_predictions_csv([10, 11, 12], torch.tensor([2, 0, 1]), tmp_path / "a.csv")
    assert read_rows(p) == [["id", "label"], ["10", "2"], ["11", "0"], ["12", "1"]]
    names = ["cat", "dog, big", 'say "hi"']  # commas and quotes survive the round trip
    p = write_predictions_csv(["x", "y", "z"], [2, 1, 0], tmp_path / "sub" / "b.csv",
                              class_names=names, columns=("image", "class"))
    assert read_rows(p) == [["image", "class"], ["x", names[2]], ["y", names[1]],
                            ["z", names[0]]]
    p = write_predictions_csv(["a"], ["circle"], tmp_path / "c.csv")
    assert read_rows(p)[1] == ["a", "circle"]


def test_write_predictions_csv_refuses_to_overwrite(tmp_path):
    path = tmp_path / "predictions.csv"
    write_predictions_csv([1, 2], [0, 1], path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_predictions_csv([1, 2], [1, 1], path)
    assert path.read_bytes() == before
    write_predictions_csv([1, 2], [1, 1], path, overwrite=True)
    assert read_rows(path)[1:] == [["1", "1"], ["2", "1"]]


def test_write_predictions_csv_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "predictions.csv"
    write_predictions_csv([1, 2], [0, 1], path)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_predictions_csv([1, 2], [1, 1], path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no temp file left


@pytest.mark.parametrize(
    ("ids", "preds", "kwargs", "error", "match"),
    [
        ([1, 2, 3], [0, 1], {}, ValueError, "3 ids and 2 preds"),
        ([], [], {}, ValueError, "empty"),
        ([1, 1], [0, 1], {}, ValueError, "unique"),
        ([1, 2], torch.tensor([0.2, 0.8]), {}, TypeError, "argmax"),
        ([1, 2], [0.0, 1.0], {}, TypeError, "floats"),
        ([1, 2], [0, 3], {"class_names": ["a", "b"]}, ValueError, r"\[0, 2\)"),
        ([1, 2], torch.zeros(2, 3, dtype=torch.long), {}, ValueError, "one-dimensional"),
        ("ab", [0, 1], {}, TypeError, "ids"),
        ([1, 2], [0, 1], {"columns": ("id",)}, TypeError, "columns"),
    ],
)
def test_write_predictions_csv_bad_inputs(tmp_path, ids, preds, kwargs, error, match):
    with pytest.raises(error, match=match):
        write_predictions_csv(ids, preds, tmp_path / "p.csv", **kwargs)
    assert not (tmp_path / "p.csv").exists()


# --------------------------------------------------------------------------- self-checks

from lesson_utils.checks import CheckFailed  # noqa: E402
from lesson_utils.checks.inference import check_predict_probs, check_tta_probs  # noqa: E402


def _predictor(eval_mode=True, restore=True, grad=False, softmax=True, drop_last=False):
    def predict_probs(model, X, batch_size=16):
        was_training = model.training
        if eval_mode:
            model.eval()
        ctx = torch.enable_grad() if grad else torch.inference_mode()
        with ctx:
            chunks = list(X.split(batch_size))
            if drop_last:
                chunks = chunks[:-1]
            logits = torch.cat([model(xb) for xb in chunks])
        if restore:
            model.train(was_training)
        return logits.softmax(dim=1) if softmax else logits
    return predict_probs


def test_check_predict_probs():
    assert check_predict_probs(_predictor())
    assert check_predict_probs(predict_probs_via_library)
    for kwargs, match in [
        ({"eval_mode": False}, "running statistics"),
        ({"restore": False}, "was_training"),
        ({"grad": True}, "inference_mode"),
        ({"softmax": False}, "logits"),
        ({"drop_last": True}, "dropped"),
    ]:
        with pytest.raises(CheckFailed, match=match):
            check_predict_probs(_predictor(**kwargs))
    with pytest.raises(CheckFailed, match="tensor"):
        check_predict_probs(lambda model, X, batch_size: [0.5])


def predict_probs_via_library(model, X, batch_size=16):
    return predict(model, X, batch_size=batch_size).probs


def test_check_tta_probs():
    def tta(model, X, combine="probs", dim=-1, include_original=True, divide=True):
        model.eval()
        with torch.inference_mode():
            a, b = model(X), model(X.flip(dim))
        if combine == "logits":
            return ((a + b) / 2).softmax(1)
        if not include_original:
            return b.softmax(1)
        s = a.softmax(1) + b.softmax(1)
        return s / 2 if divide else s

    assert check_tta_probs(tta)
    assert check_tta_probs(lambda model, X: predict(model, X, tta=[hflip]).probs)
    for kwargs, match in [({"combine": "logits"}, "not the logits"), ({"dim": -2}, "upside"),
                          ({"include_original": False}, "original"),
                          ({"divide": False}, "number of views")]:
        with pytest.raises(CheckFailed, match=match):
            check_tta_probs(lambda model, X, kw=kwargs: tta(model, X, **kw))

    def train_mode(model, X):
        with torch.no_grad():
            return (model(X).softmax(1) + model(X.flip(-1)).softmax(1)) / 2

    with pytest.raises(CheckFailed, match="eval"):
        check_tta_probs(train_mode)
