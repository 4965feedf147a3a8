"""Tests for lesson_utils.training: the loop against a hand-written one, accumulation against a
big batch, exact resume, the NaN guard, checkpoints, early stopping, schedulers, DDP."""

from __future__ import annotations

import copy
import math
import os
import random
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, TensorDataset

from lesson_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from lesson_utils.training import (
    Callback,
    EarlyStopping,
    History,
    LiveLossPlot,
    amp_dtype,
    evaluate,
    fit,
    train_one_epoch,
)
from lesson_utils.training import fitting as fit_module
from lesson_utils.training.loop import _FiniteGuard

# --------------------------------------------------------------------------- helpers


def make_data(n: int = 48, d: int = 6, k: int = 3, seed: int = 0,
              dtype: torch.dtype = torch.float32) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randint(0, k, (n,), generator=g)
    return TensorDataset(X, y)


def mlp(d: int = 6, k: int = 3, *, dropout: float = 0.0, bn: bool = False,
        dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(d, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(16, k))
    model = nn.Sequential(*layers).to(dtype)
    with torch.no_grad():  # initialise from a private generator: the global RNG is untouched
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.3)
    return model


def params_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def hand_epoch(model, loader, criterion, optimizer, *, max_grad_norm=None):
    """The loop as a student writes it in lesson 06."""
    model.train()
    total, correct, n = 0.0, 0, 0
    for X, y in loader:
        optimizer.zero_grad()
        out = model(X)
        loss = criterion(out, y)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        total += loss.item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    return total / n, correct / n


def shuffled(ds, batch_size=8, seed=0):
    return DataLoader(ds, batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- train_one_epoch


@pytest.mark.parametrize("max_grad_norm", [None, 0.5])
def test_train_one_epoch_equals_hand_written_loop(max_grad_norm):
    ds = make_data()
    results = []
    for use_library in (False, True):
        model = mlp(dropout=0.3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        torch.manual_seed(7)  # Dropout draws from the global RNG
        loader = shuffled(ds)
        if use_library:
            stats = train_one_epoch(model, loader, nn.CrossEntropyLoss(), opt,
                                    max_grad_norm=max_grad_norm)
            loss, acc = stats["loss"], stats["accuracy"]
        else:
            loss, acc = hand_epoch(model, loader, nn.CrossEntropyLoss(), opt,
                                   max_grad_norm=max_grad_norm)
        results.append((params_of(model), loss, acc))
    (p_hand, l_hand, a_hand), (p_lib, l_lib, a_lib) = results
    assert all(torch.equal(a, b) for a, b in zip(p_hand, p_lib, strict=True))
    assert l_lib == pytest.approx(l_hand, rel=1e-12)
    assert a_lib == a_hand


def test_train_one_epoch_mean_loss_is_per_sample_with_a_smaller_last_batch():
    ds = make_data(n=20)  # batches 8, 8, 4
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # no change: compare with a plain pass
    stats = train_one_epoch(model, DataLoader(ds, batch_size=8), nn.CrossEntropyLoss(), opt)
    X, y = ds.tensors
    with torch.no_grad():
        expected = F.cross_entropy(model(X), y).item()
    assert stats["loss"] == pytest.approx(expected, rel=1e-6)
    assert stats["num_samples"] == 20 and stats["num_steps"] == 3
    # the mean of the three batch means weights the 4-sample batch like the others: different
    with torch.no_grad():
        batch_means = [F.cross_entropy(model(X[i:i + 8]), y[i:i + 8]).item() for i in (0, 8, 16)]
    assert abs(np.mean(batch_means) - expected) > 1e-4


def big_batch_loader(ds, group_sizes):
    bounds = np.cumsum([0, *group_sizes])
    groups = [list(range(bounds[i], bounds[i + 1])) for i in range(len(group_sizes))]
    return DataLoader(ds, batch_sampler=groups)


@pytest.mark.parametrize(
    ("n", "batch_size", "accumulation_steps", "groups"),
    [
        (32, 8, 4, [32]),  # equal micro-batches
        (40, 8, 4, [32, 8]),  # an incomplete last group of one micro-batch
        (44, 8, 4, [32, 12]),  # last group: micro-batches of 8 and 4
        (30, 4, 3, [12, 12, 6]),  # last group: 4 and 2
    ],
)
@pytest.mark.parametrize("optimizer_name", ["sgd", "adamw"])
def test_accumulation_equals_one_big_batch_in_float64(n, batch_size, accumulation_steps, groups,
                                                      optimizer_name):
    ds = make_data(n=n, dtype=torch.float64)

    def make_opt(model):
        if optimizer_name == "sgd":
            return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        return torch.optim.AdamW(model.parameters(), lr=1e-2)

    big = mlp(dtype=torch.float64)
    opt = make_opt(big)
    for _ in range(2):
        big_stats = train_one_epoch(big, big_batch_loader(ds, groups), nn.CrossEntropyLoss(), opt)
    acc = mlp(dtype=torch.float64)
    opt = make_opt(acc)
    for _ in range(2):
        acc_stats = train_one_epoch(acc, DataLoader(ds, batch_size=batch_size),
                                    nn.CrossEntropyLoss(), opt,
                                    accumulation_steps=accumulation_steps)
    assert acc_stats["num_steps"] == len(groups)
    assert max_diff(params_of(big), params_of(acc)) < 1e-12
    assert acc_stats["loss"] == pytest.approx(big_stats["loss"], rel=1e-12)


def test_naive_accumulation_divides_an_incomplete_group_wrongly():
    """The reference above can fail: dividing every loss by accumulation_steps is off when the
    last group is smaller."""
    ds = make_data(n=44, dtype=torch.float64)
    big = mlp(dtype=torch.float64)
    opt = torch.optim.SGD(big.parameters(), lr=0.1)
    train_one_epoch(big, big_batch_loader(ds, [32, 12]), nn.CrossEntropyLoss(), opt)
    naive = mlp(dtype=torch.float64)
    opt = torch.optim.SGD(naive.parameters(), lr=0.1)
    opt.zero_grad()
    for i, (X, y) in enumerate(DataLoader(ds, batch_size=8), start=1):
        (F.cross_entropy(naive(X), y) / 4).backward()
        if i % 4 == 0 or i == 6:
            opt.step()
            opt.zero_grad()
    assert max_diff(params_of(big), params_of(naive)) > 1e-4


class _Batches(IterableDataset):
    """An iterable of ready-made batches with no len(): the loop cannot see the end coming."""

    def __init__(self, ds, batch_size):
        self.ds, self.batch_size = ds, batch_size

    def __iter__(self):
        X, y = self.ds.tensors
        for i in range(0, len(y), self.batch_size):
            yield X[i:i + self.batch_size], y[i:i + self.batch_size]


def test_accumulation_with_a_loader_without_len():
    ds = make_data(n=44, dtype=torch.float64)
    big = mlp(dtype=torch.float64)
    train_one_epoch(big, big_batch_loader(ds, [32, 12]), nn.CrossEntropyLoss(),
                    torch.optim.SGD(big.parameters(), lr=0.1))
    acc = mlp(dtype=torch.float64)
    stats = train_one_epoch(acc, DataLoader(_Batches(ds, 8), batch_size=None),
                            nn.CrossEntropyLoss(), torch.optim.SGD(acc.parameters(), lr=0.1),
                            accumulation_steps=4)
    assert stats["num_steps"] == 2
    assert max_diff(params_of(big), params_of(acc)) < 1e-12


def test_accumulation_with_batchnorm_is_not_a_big_batch():
    """BatchNorm normalises each micro-batch by its own statistics: a documented limit."""
    ds = make_data(n=32, dtype=torch.float64)
    big = mlp(bn=True, dtype=torch.float64)
    train_one_epoch(big, big_batch_loader(ds, [32]), nn.CrossEntropyLoss(),
                    torch.optim.SGD(big.parameters(), lr=0.1))
    acc = mlp(bn=True, dtype=torch.float64)
    train_one_epoch(acc, DataLoader(ds, batch_size=8), nn.CrossEntropyLoss(),
                    torch.optim.SGD(acc.parameters(), lr=0.1), accumulation_steps=4)
    assert max_diff(params_of(big), params_of(acc)) > 1e-6


def test_clipping_reports_the_mean_pre_clip_norm_and_bounds_the_update():
    ds = make_data(n=16)
    model = mlp()
    before = params_of(model)
    X, y = ds.tensors
    F.cross_entropy(model(X), y).backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())).item()
    model.zero_grad()
    stats = train_one_epoch(model, DataLoader(ds, batch_size=16), nn.CrossEntropyLoss(),
                            torch.optim.SGD(model.parameters(), lr=1.0), max_grad_norm=1e-3)
    assert stats["grad_norm"] == pytest.approx(norm, rel=1e-5)
    step = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(params_of(model), before,
                                                                strict=True)))
    assert step.item() == pytest.approx(1e-3, rel=1e-3)  # lr 1 x clipped norm


def test_amp_on_cpu_runs_the_forward_in_bfloat16():
    ds = make_data(n=16)
    model = mlp()
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    stats = train_one_epoch(model, DataLoader(ds, batch_size=8), nn.CrossEntropyLoss(),
                            torch.optim.SGD(model.parameters(), lr=0.1), amp=True)
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert math.isfinite(stats["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert amp_dtype("cpu") == torch.bfloat16 and amp_dtype("cuda") == torch.float16
    with pytest.raises(ValueError, match="amp"):
        amp_dtype("meta")


@pytest.mark.parametrize("accumulation_steps", [1, 3])
def test_per_step_scheduler_steps_once_per_optimizer_step(accumulation_steps):
    ds = make_data(n=40)  # 5 batches of 8
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20)
    stats = train_one_epoch(model, DataLoader(ds, batch_size=8), nn.CrossEntropyLoss(), opt,
                            scheduler=sched, accumulation_steps=accumulation_steps)
    assert sched.last_epoch == stats["num_steps"] == math.ceil(5 / accumulation_steps)
    epoch_sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    train_one_epoch(model, DataLoader(ds, batch_size=8), nn.CrossEntropyLoss(), opt,
                    scheduler=epoch_sched)
    assert epoch_sched.last_epoch == 0  # per-epoch schedulers are the caller's (fit's) job


def test_train_one_epoch_bad_inputs():
    ds = make_data(n=8)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(ds, batch_size=4)
    ce = nn.CrossEntropyLoss()
    with pytest.raises(TypeError, match="model"):
        train_one_epoch("model", loader, ce, opt)
    with pytest.raises(TypeError, match="loader"):
        train_one_epoch(model, torch.zeros(3), ce, opt)
    with pytest.raises(TypeError, match="optimizer"):
        train_one_epoch(model, loader, ce, "sgd")
    with pytest.raises(ValueError, match="accumulation_steps"):
        train_one_epoch(model, loader, ce, opt, accumulation_steps=0)
    with pytest.raises(TypeError, match="accumulation_steps"):
        train_one_epoch(model, loader, ce, opt, accumulation_steps=2.0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        train_one_epoch(model, loader, ce, opt, max_grad_norm=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        train_one_epoch(model, loader, nn.CrossEntropyLoss(reduction="sum"), opt)
    with pytest.raises(TypeError, match="criterion"):
        train_one_epoch(model, loader, "ce", opt)
    with pytest.raises(ValueError, match="scalar"):
        train_one_epoch(model, loader, lambda out, y: F.cross_entropy(out, y, reduction="none"),
                        opt)
    with pytest.raises(TypeError, match="amp"):
        train_one_epoch(model, loader, ce, opt, amp="bf16")
    with pytest.raises(TypeError, match=r"pair \(inputs, targets\)"):
        train_one_epoch(model, [ds.tensors[0]], ce, opt)
    with pytest.raises(ValueError, match="no batches"):
        train_one_epoch(model, [], ce, opt)
    with pytest.raises(TypeError, match="progress"):
        train_one_epoch(model, loader, ce, opt, progress="yes")


# --------------------------------------------------------------------------- evaluate


def test_evaluate_restores_mixed_modes_and_records_no_gradients():
    ds = make_data(n=24)
    model = mlp(bn=True, dropout=0.5)
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model
    flags = [m.training for m in model.modules()]
    running = model[1].running_mean.clone()
    out = evaluate(model, DataLoader(ds, batch_size=10), nn.CrossEntropyLoss())
    assert [m.training for m in model.modules()] == flags
    assert torch.equal(model[1].running_mean, running)
    assert all(p.grad is None for p in model.parameters())
    X, y = ds.tensors
    model.eval()
    with torch.no_grad():
        logits = model(X)
    assert out["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert out["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert out["num_samples"] == 24


def test_evaluate_metrics_and_regression_without_accuracy():
    X = torch.randn(12, 3)
    y = X.sum(1, keepdim=True)
    model = nn.Linear(3, 1)
    out = evaluate(model, DataLoader(TensorDataset(X, y), batch_size=5), nn.MSELoss(),
                   metrics={"mae": lambda o, t: (o - t).abs().mean()})
    with torch.no_grad():
        pred = model(X)
    assert "accuracy" not in out
    assert out["loss"] == pytest.approx(F.mse_loss(pred, y).item(), rel=1e-5)
    assert out["mae"] == pytest.approx((pred - y).abs().mean().item(), rel=1e-5)
    with pytest.raises(TypeError, match="metrics"):
        evaluate(model, DataLoader(TensorDataset(X, y)), None, metrics=[len])
    with pytest.raises(ValueError, match="no batches"):
        evaluate(model, [], None)


# --------------------------------------------------------------------------- fit


def loaders(n_train=48, n_val=24, batch_size=8, seed=0):
    return shuffled(make_data(n=n_train, seed=1), batch_size, seed), \
        DataLoader(make_data(n=n_val, seed=2), batch_size=16)


def test_fit_history_records_and_plot():
    train, val = loaders()
    model = mlp()
    history = fit(model, train, val, nn.CrossEntropyLoss(),
                  torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=3, device="cpu",
                  progress=False)
    assert len(history) == 3 and history["epoch"] == [1, 2, 3]
    for key in ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "time_s"):
        assert len(history[key]) == 3
    assert history.best_epoch == int(np.argmin(history["val_loss"])) + 1
    assert history.best_value == min(history["val_loss"])
    ax = history.plot("loss")
    assert [line.get_label() for line in ax.lines][:2] == ["train_loss", "val_loss"]
    assert list(ax.lines[0].get_ydata()) == history["train_loss"]
    with pytest.raises(KeyError, match="val_f1"):
        history["val_f1"]
    assert "best epoch" in repr(history)


def test_fit_without_validation_monitors_training_loss():
    train, _ = loaders()
    model = mlp()
    history = fit(model, train, None, nn.CrossEntropyLoss(),
                  torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=2, progress=False)
    assert history.monitor == "train_loss" and "val_loss" not in history.keys()
    with pytest.raises(ValueError, match="val_loader"):
        fit(model, train, None, nn.CrossEntropyLoss(),
            torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, progress=False,
            early_stopping=EarlyStopping("val_loss"))


def test_fit_steps_epoch_schedulers_per_epoch_and_step_schedulers_per_step():
    train, val = loaders()  # 6 batches per epoch
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=3, scheduler=sched,
                  progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=3 * 3)
    fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=3, scheduler=sched,
        accumulation_steps=2, progress=False)
    assert sched.last_epoch == 9  # no "stepped too many times" error either


class RecordingPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[float] = []

    def step(self, metrics, epoch=None):  # noqa: D102
        self.seen.append(float(metrics))
        super().step(metrics)


def test_plateau_gets_the_monitored_validation_value():
    train, val = loaders()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = RecordingPlateau(opt, mode="max", patience=0)
    history = fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=3, scheduler=sched,
                  monitor="val_accuracy", progress=False)
    assert sched.seen == history["val_accuracy"]
    with pytest.raises(ValueError, match="mode"):
        fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=1,
            scheduler=RecordingPlateau(opt, mode="min"), monitor="val_accuracy", progress=False)


class Scripted:
    """A validation 'metric' that returns prescribed values, one per epoch."""

    def __init__(self, values, start=0):
        self.values, self.i = list(values), start

    def __call__(self, outputs, targets):
        value = self.values[self.i]
        self.i += 1
        return value


class Snapshots(Callback):
    def __init__(self):
        self.states = {}

    def on_epoch_end(self, record, history):
        self.states[record["epoch"]] = copy.deepcopy(self.model.state_dict())


@pytest.mark.parametrize(
    ("scores", "patience", "min_delta", "stopped_at", "best"),
    [
        ([0.5, 0.7, 0.6, 0.65, 0.69, 0.9], 3, 0.0, 5, 2),
        ([0.5, 0.7, 0.6, 0.65, 0.72, 0.9], 3, 0.0, 6, 6),
        ([0.5, 0.7, 0.6, 0.65, 0.72, 0.73], 3, 0.05, 5, 2),  # +0.02 is not enough
        ([0.5, 0.4, 0.3], 1, 0.0, 2, 1),
    ],
)
def test_early_stopping_stops_and_restores_the_best_weights(tmp_path, scores, patience,
                                                            min_delta, stopped_at, best):
    train, val = loaders()
    model = mlp()
    snaps = Snapshots()
    snaps.model = model
    stopper = EarlyStopping("val_score", patience=patience, min_delta=min_delta)
    history = fit(model, train, val, nn.CrossEntropyLoss(),
                  torch.optim.SGD(model.parameters(), lr=0.5), num_epochs=len(scores),
                  early_stopping=stopper, metrics={"score": Scripted(scores)},
                  checkpoint_dir=tmp_path, progress=False, callbacks=[snaps])
    assert len(history) == stopped_at
    assert history.stopped_early == (stopped_at < len(scores))
    assert history.best_epoch == best
    final = model.state_dict()
    assert all(torch.equal(final[k], snaps.states[best][k]) for k in final)
    best_ckpt = load_checkpoint(tmp_path / "best.pt", model=mlp())
    assert best_ckpt["epoch"] == best
    assert all(torch.equal(best_ckpt["model"][k], snaps.states[best][k]) for k in final)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == stopped_at
    assert all(torch.equal(last["model"][k], snaps.states[stopped_at][k]) for k in final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temp files


def test_early_stopping_config_validation():
    assert EarlyStopping().resolved_mode == "min"
    assert EarlyStopping("val_f1").resolved_mode == "max"
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(min_delta=-0.1)
    with pytest.raises(TypeError, match="monitor"):
        EarlyStopping(monitor="")
    assert not EarlyStopping().is_improvement(float("nan"), best=1.0)


def _resume_setup(scheduler_name, accumulation_steps):
    model = mlp(dropout=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    if scheduler_name == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    elif scheduler_name == "onecycle":
        steps = math.ceil(6 / accumulation_steps) * 4
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=steps)
    elif scheduler_name == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    else:
        sched = None
    train, val = loaders()
    return model, opt, sched, train, val


def _seed_all(seed):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def _perturb_rngs():
    _seed_all(12345)


@pytest.mark.parametrize(("scheduler_name", "accumulation_steps"),
                         [("step", 1), ("onecycle", 2), ("plateau", 1)])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, scheduler_name,
                                                               accumulation_steps):
    kwargs = {"progress": False, "accumulation_steps": accumulation_steps,
              "early_stopping": EarlyStopping(patience=10)}

    def noisy_dropout_run(num_epochs, ckpt_dir, resume=None):
        model, opt, sched, train, val = _resume_setup(scheduler_name, accumulation_steps)
        if resume is not None:
            _perturb_rngs()  # a new process starts from other RNG states
        # NumPy/random are drawn each step, as augmentation pipelines do
        history = fit(model, train, val, lambda o, y: F.cross_entropy(o, y) * (
            1 + 0.1 * (np.random.rand() + random.random())), opt, num_epochs=num_epochs,
            scheduler=sched,
            checkpoint_dir=ckpt_dir, resume=resume, **kwargs)
        return model, opt, history

    _seed_all(0)
    full_model, full_opt, full_history = noisy_dropout_run(4, tmp_path / "full")
    _seed_all(0)
    noisy_dropout_run(2, tmp_path / "part")
    resumed_model, resumed_opt, resumed_history = noisy_dropout_run(
        4, tmp_path / "part", resume=tmp_path / "part" / "last.pt")
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)  # the restored best weights
    full_last = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    resumed_last = load_checkpoint(tmp_path / "part" / "last.pt")["model"]
    assert all(torch.equal(full_last[k], resumed_last[k]) for k in full_last)  # the final ones
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in full_history]
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in resumed_history] == strip
    assert resumed_history.best_epoch == full_history.best_epoch
    assert str(full_opt.state_dict()) == str(resumed_opt.state_dict())


def test_resume_without_restoring_rng_would_differ(tmp_path, monkeypatch):
    """The resume test above can fail: skip the RNG restore and the weights differ."""
    def run(num_epochs, resume=None):
        model, opt, sched, train, val = _resume_setup("step", 1)
        if resume is not None:
            _perturb_rngs()
        fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=num_epochs,
            scheduler=sched, checkpoint_dir=tmp_path, resume=resume, progress=False)
        return model

    torch.manual_seed(0)
    full = params_of(run(3))
    torch.manual_seed(0)
    run(1)
    monkeypatch.setattr(fit_module, "set_rng_state", lambda state, loaders: None)
    assert max_diff(full, params_of(run(3, resume=tmp_path / "last.pt"))) > 1e-6


def test_resume_errors(tmp_path):
    train, val = loaders()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plain = save_checkpoint(tmp_path / "plain.pt", model=model, optimizer=opt, epoch=1)
    with pytest.raises(CheckpointError, match="not written by fit"):
        fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=2, resume=plain,
            progress=False)
    fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=2, checkpoint_dir=tmp_path,
        progress=False)
    with pytest.raises(ValueError, match="num_epochs"):
        fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=1,
            resume=tmp_path / "last.pt", progress=False)
    with pytest.raises(FileNotFoundError):
        fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=3,
            resume=tmp_path / "missing.pt", progress=False)
    with pytest.raises(CheckpointError, match="does not fit"):
        other = mlp(k=4)
        fit(other, train, val, nn.CrossEntropyLoss(), torch.optim.SGD(other.parameters(), lr=1),
            num_epochs=3, resume=tmp_path / "last.pt", progress=False)
    # resuming a finished run trains nothing more and returns its history
    history = fit(model, train, val, nn.CrossEntropyLoss(), opt, num_epochs=2,
                  resume=tmp_path / "last.pt", progress=False)
    assert len(history) == 2


class NonFiniteAt:
    """Cross-entropy whose n-th training call (counted across epochs) is NaN or inf."""

    reduction = "mean"

    def __init__(self, call, value):
        self.call, self.value, self.calls = call, value, 0

    def __call__(self, outputs, targets):
        loss = F.cross_entropy(outputs, targets)
        if outputs.requires_grad:  # training only; evaluate runs in inference mode
            self.calls += 1
            if self.calls == self.call:
                return loss * self.value
        return loss


@pytest.mark.parametrize(("value", "word"), [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_nonfinite_loss_stops_with_epoch_and_step_and_keeps_checkpoints(tmp_path, value, word):
    train, val = loaders()  # 6 steps per epoch: call 9 is epoch 2, step 3
    model = mlp()
    snaps = Snapshots()
    snaps.model = model
    with pytest.raises(FloatingPointError, match=f"{word} at epoch 2, step 3"):
        fit(model, train, val, NonFiniteAt(9, value), torch.optim.SGD(model.parameters(), lr=0.1),
            num_epochs=3, checkpoint_dir=tmp_path, progress=False, callbacks=[snaps])
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 1
    assert all(torch.equal(last["model"][k], v) for k, v in snaps.states[1].items())
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step never ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_lazy_nonfinite_guard_names_the_first_bad_step():
    """The accelerator path (no per-step sync), exercised on CPU tensors."""
    guard = _FiniteGuard(torch.device("cpu"), epoch=4)
    guard.eager = False
    guard.first_bad = torch.full((), -1, dtype=torch.int64)
    for step, v in enumerate([1.0, float("inf"), float("nan"), 2.0], start=1):
        guard.update(torch.tensor(v), step)
    with pytest.raises(FloatingPointError, match="epoch 4, step 2"):
        guard.flush()


def test_callbacks_functions_and_live_plot():
    train, val = loaders()
    model = mlp()
    seen = []
    live = LiveLossPlot()
    history = fit(model, train, val, nn.CrossEntropyLoss(),
                  torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=3, progress=False,
                  callbacks=[lambda record, h: seen.append((record["epoch"], len(h))), live])
    assert seen == [(1, 1), (2, 2), (3, 3)]
    lines = live.figure.axes[0].lines
    assert list(lines[0].get_ydata()) == history["train_loss"]
    assert list(lines[1].get_ydata()) == history["val_loss"]
    with pytest.raises(TypeError, match="callbacks"):
        fit(model, train, val, nn.CrossEntropyLoss(),
            torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, progress=False,
            callbacks=[3])


def test_progress_bar_in_a_terminal(capsys):
    train, val = loaders()
    model = mlp()
    fit(model, train, val, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
        num_epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "12/12" in err and "val_loss=" in err


def test_train_one_epoch_own_progress_bar_and_fit_with_amp(capsys):
    train, val = loaders()
    model = mlp()
    train_one_epoch(model, train, nn.CrossEntropyLoss(),
                    torch.optim.SGD(model.parameters(), lr=0.1), progress=True, epoch=7)
    assert "epoch 7" in capsys.readouterr().err
    history = fit(model, train, val, nn.CrossEntropyLoss(),
                  torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=2, amp=True,
                  progress=False)
    assert all(math.isfinite(v) for v in history["train_loss"] + history["val_loss"])


def test_fit_bad_inputs():
    train, val = loaders()
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ce = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="num_epochs"):
        fit(model, train, val, ce, opt, num_epochs=0)
    with pytest.raises(TypeError, match="val_loader"):
        fit(model, train, 5, ce, opt, num_epochs=1)
    with pytest.raises(TypeError, match="early_stopping"):
        fit(model, train, val, ce, opt, num_epochs=1, early_stopping={"patience": 2})
    with pytest.raises(TypeError, match="scheduler"):
        fit(model, train, val, ce, opt, num_epochs=1, scheduler="cosine")
    with pytest.raises(ValueError, match="differs"):
        fit(model, train, val, ce, opt, num_epochs=1, monitor="val_accuracy",
            early_stopping=EarlyStopping("val_loss"))
    with pytest.raises(ValueError, match="val_f1"):
        fit(model, train, val, ce, opt, num_epochs=1, monitor="val_f1", progress=False)


class RecordingSampler(DistributedSampler):
    def set_epoch(self, epoch):
        self.epochs = [*getattr(self, "epochs", []), epoch]
        super().set_epoch(epoch)


def test_fit_calls_set_epoch_on_a_distributed_sampler():
    ds = make_data(n=24)
    sampler = RecordingSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=0)
    model = mlp()
    fit(model, DataLoader(ds, batch_size=8, sampler=sampler), None, nn.CrossEntropyLoss(),
        torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=3, progress=False)
    assert sampler.epochs == [1, 2, 3]


@pytest.fixture
def process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0,
                            world_size=1)
    yield
    dist.destroy_process_group()


def test_fit_on_a_ddp_model_equals_the_plain_model(process_group, tmp_path):
    ds = make_data(n=44, dtype=torch.float64)
    results = []
    for wrap in (False, True):
        model = mlp(dtype=torch.float64)
        net = nn.parallel.DistributedDataParallel(model) if wrap else model
        sampler = DistributedSampler(ds, shuffle=True, seed=0)
        history = fit(net, DataLoader(ds, batch_size=8, sampler=sampler),
                      DataLoader(ds, batch_size=16), nn.CrossEntropyLoss(),
                      torch.optim.SGD(net.parameters(), lr=0.1), num_epochs=2,
                      accumulation_steps=3, checkpoint_dir=tmp_path / str(wrap), progress=False)
        results.append((params_of(model), history["val_loss"]))
    assert max_diff(results[0][0], results[1][0]) < 1e-12
    assert results[0][1] == pytest.approx(results[1][1], rel=1e-12)
    ckpt = load_checkpoint(tmp_path / "True" / "last.pt", model=mlp(dtype=torch.float64))
    assert not any(k.startswith("module.") for k in ckpt["model"])  # saved unwrapped


def _two_rank_worker(rank, store, ds, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        model = mlp(dtype=torch.float64)
        net = nn.parallel.DistributedDataParallel(model)
        sampler = DistributedSampler(ds, shuffle=False)
        history = fit(net, DataLoader(ds, batch_size=4, sampler=sampler),
                      DataLoader(ds, batch_size=8, sampler=DistributedSampler(ds, shuffle=False)),
                      nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), lr=0.1),
                      num_epochs=1, accumulation_steps=2, checkpoint_dir=out_dir,
                      progress=rank == 0)
        torch.save({"params": params_of(model), "val_loss": history["val_loss"]},
                   os.path.join(out_dir, f"rank{rank}.result"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_with_accumulation_equal_one_process_with_the_union_batch(tmp_path):
    """2 ranks x micro-batches of 4 x 2 accumulation steps, 20 samples: each rank holds 10
    (micro-batches 4, 4 | 2), so the last group is incomplete and must still be all-reduced."""
    ds = make_data(n=20, dtype=torch.float64)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    torch.multiprocessing.spawn(_two_rank_worker, args=(str(tmp_path / "store"), ds,
                                                         str(out_dir)), nprocs=2, join=True)
    r0 = torch.load(out_dir / "rank0.result")
    r1 = torch.load(out_dir / "rank1.result")
    assert max_diff(r0["params"], r1["params"]) == 0.0
    assert r0["val_loss"] == r1["val_loss"]
    # rank r sees indices r, r+2, ...: groups of 8 per rank, then 2 per rank
    rank_idx = [list(range(0, 20, 2)), list(range(1, 20, 2))]
    groups = [rank_idx[0][:8] + rank_idx[1][:8], rank_idx[0][8:] + rank_idx[1][8:]]
    single = mlp(dtype=torch.float64)
    train_one_epoch(single, DataLoader(ds, batch_sampler=groups), nn.CrossEntropyLoss(),
                    torch.optim.SGD(single.parameters(), lr=0.1))
    assert max_diff(params_of(single), r0["params"]) < 1e-12
    X, y = ds.tensors
    with torch.no_grad():
        full_val = F.cross_entropy(single(X), y).item()
    assert r0["val_loss"][0] == pytest.approx(full_val, rel=1e-12)  # averaged over both ranks
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "best.pt", "last.pt", "rank0.result", "rank1.result"]


def test_history_from_records_and_state_round_trip():
    h = History([{"epoch": 1, "val_loss": 1.0}], monitor="val_loss", mode="min")
    h.best_epoch, h.best_value = 1, 1.0
    other = History()
    other.load_state_dict(h.state_dict())
    assert other.records == h.records and other.best_epoch == 1 and other.mode == "min"
    with tempfile.TemporaryDirectory() as d:  # the state survives a weights_only checkpoint
        p = save_checkpoint(os.path.join(d, "h.pt"), model=nn.Linear(1, 1), h=h.state_dict())
        assert load_checkpoint(p)["extra"]["h"] == h.state_dict()


# --------------------------------------------------------------------------- self-checks

from lesson_utils.checks import CheckFailed  # noqa: E402
from lesson_utils.checks.training import (  # noqa: E402
    check_accumulation_step,
    check_early_stopping,
    check_training_step,
)


def _step(order):
    """A training step whose body follows ``order`` (a mistake catalogue for the checker)."""
    def training_step(model, X, y, criterion, optimizer):
        loss = None
        for op in order:
            if op == "train":
                model.train()
            elif op == "zero":
                optimizer.zero_grad()
            elif op == "forward":
                loss = criterion(model(X), y)
            elif op == "backward":
                loss.backward()
            elif op == "step":
                optimizer.step()
        return loss.item()
    return training_step


def test_check_training_step_accepts_both_correct_orders():
    assert check_training_step(_step(["train", "zero", "forward", "backward", "step"]))
    assert check_training_step(_step(["train", "forward", "backward", "step", "zero"]))


@pytest.mark.parametrize(("order", "match"), [
    (["train", "forward", "backward", "step"], "zero_grad"),
    (["train", "zero", "forward", "step", "backward"], "step"),
    (["train", "forward", "step", "backward"], "backward"),
    (["zero", "forward", "backward", "step"], "model.train"),
    (["train", "zero", "forward", "step"], "backward"),
    (["train", "zero", "forward", "backward"], "optimizer.step"),
    (["train", "forward", "backward", "zero", "step"], "do not zero"),
])
def test_check_training_step_names_the_mistake(order, match):
    with pytest.raises(CheckFailed, match=match):
        check_training_step(_step(order))


def test_check_training_step_wants_a_float_and_the_forward():
    def returns_tensor(model, X, y, criterion, optimizer):
        model.train()
        optimizer.zero_grad()
        loss = criterion(model(X), y)
        loss.backward()
        optimizer.step()
        return loss

    with pytest.raises(CheckFailed, match=r"loss\.item\(\)"):
        check_training_step(returns_tensor)
    with pytest.raises(CheckFailed, match="forward pass"):
        check_training_step(lambda model, X, y, criterion, optimizer: 0.0)

    def todo(model, X, y, criterion, optimizer):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented"):
        check_training_step(todo)


def _accumulate(weighting, zero_each=False, zero_first=True):
    def accumulation_step(model, micro_batches, criterion, optimizer):
        total = sum(len(y) for _, y in micro_batches)
        if zero_first:
            optimizer.zero_grad()
        for X, y in micro_batches:
            if zero_each:
                optimizer.zero_grad()
            w = {"share": len(y) / total, "count": 1 / len(micro_batches), "none": 1.0}[weighting]
            (criterion(model(X), y) * w).backward()
        optimizer.step()
    return accumulation_step


def test_check_accumulation_step():
    assert check_accumulation_step(_accumulate("share"))
    with pytest.raises(CheckFailed, match="same size"):
        check_accumulation_step(_accumulate("count"))
    with pytest.raises(CheckFailed, match="too large"):
        check_accumulation_step(_accumulate("none"))
    with pytest.raises(CheckFailed, match="only the last"):
        check_accumulation_step(_accumulate("share", zero_each=True))
    with pytest.raises(CheckFailed, match="old gradients"):
        check_accumulation_step(_accumulate("share", zero_first=False))
    with pytest.raises(CheckFailed, match="did not change"):
        check_accumulation_step(lambda model, mb, criterion, optimizer: None)


def _stopper(off_by_one=False, ignore_delta=False, strict=True):
    def early_stopping(val_losses, patience, min_delta=0.0):
        best, best_epoch, wait = float("inf"), 0, 0
        delta = 0.0 if ignore_delta else min_delta
        for epoch, v in enumerate(val_losses, start=0 if off_by_one else 1):
            better = v < best - delta if strict else v <= best - delta
            if better:
                best, best_epoch, wait = v, epoch, 0
            else:
                wait += 1
                if wait >= patience:
                    return best_epoch, epoch
        return best_epoch, None
    return early_stopping


def test_check_early_stopping():
    assert check_early_stopping(_stopper())
    with pytest.raises(CheckFailed, match="count from 1"):
        check_early_stopping(_stopper(off_by_one=True))
    with pytest.raises(CheckFailed, match="min_delta"):
        check_early_stopping(_stopper(ignore_delta=True))
    with pytest.raises(CheckFailed, match=r"\[0\.5, 0\.5, 0\.5\]"):
        check_early_stopping(_stopper(strict=False))
    with pytest.raises(CheckFailed, match="tuple"):
        check_early_stopping(lambda v, p, d: 3)
