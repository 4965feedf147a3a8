"""lesson_utils.schedules: every trace equals the LR of a real torch training loop.

(Lesson 04's self-checks are tested in tests/test_checks_schedules.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as S

from lesson_utils.schedules import (
    SCHEDULE_NAMES,
    ScheduleSettings,
    build_scheduler,
    compare_schedules,
    is_per_step,
    lr_trace,
    synthetic_val_loss,
)

# Any warning (above all torch's "lr_scheduler.step() before optimizer.step()") fails a test.
pytestmark = pytest.mark.filterwarnings("error")

BASE_LR = 0.2


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(32, 4, generator=g)  # (N, 4)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(32, generator=g)  # (N,)
    model = torch.nn.Linear(4, 1)
    return X, y, model


def train_and_record(make_scheduler, *, num_epochs: int, steps_per_epoch: int = 1,
                     per_step: bool = False, plateau: bool = False):
    """A real training loop (data, loss, backward, optimizer.step, then scheduler.step) with a
    torch scheduler built directly; returns the LR used for each epoch (or batch) and the
    validation losses it fed to a plateau scheduler."""
    torch.manual_seed(0)
    X, y, model = _problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=BASE_LR, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    lrs, val_losses = [], []
    for _epoch in range(num_epochs):
        if not per_step:
            lrs.append(optimizer.param_groups[0]["lr"])
        for Xb, yb in zip(X.chunk(steps_per_epoch), y.chunk(steps_per_epoch), strict=True):
            if per_step:
                lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(Xb).squeeze(1), yb)
            loss.backward()
            optimizer.step()
            if per_step:
                scheduler.step()
        with torch.no_grad():
            val_loss = torch.nn.functional.mse_loss(model(X).squeeze(1), y).item()
        val_losses.append(val_loss)
        if scheduler is not None and not per_step:
            scheduler.step(val_loss) if plateau else scheduler.step()
    return lrs, val_losses


def _no_scheduler(optimizer):
    return None


# name -> (kwargs for lr_trace/build_scheduler, the same schedule built directly from torch)
CASES = {
    "constant": ({}, _no_scheduler),
    "step": ({"step_size": 3, "gamma": 0.5}, lambda o: S.StepLR(o, step_size=3, gamma=0.5)),
    "multistep": ({"milestones": [2, 5], "gamma": 0.3},
                  lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.3)),
    "exponential": ({"gamma": 0.8}, lambda o: S.ExponentialLR(o, gamma=0.8)),
    # 12 epochs with T_max=7: also checks the climb after T_max.
    "cosine": ({"T_max": 7, "eta_min": 0.01},
               lambda o: S.CosineAnnealingLR(o, T_max=7, eta_min=0.01)),
    "cosine_warm_restarts": ({"T_0": 3, "T_mult": 2, "eta_min": 0.001},
                             lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2,
                                                                     eta_min=0.001)),
    "onecycle": ({"max_lr": 0.5, "total_steps": 12},
                 lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=12)),
}
NUM_EPOCHS = 12


@pytest.mark.parametrize("name", list(CASES))
def test_trace_equals_training_loop(name):
    kwargs, make = CASES[name]
    expected, _ = train_and_record(make, num_epochs=NUM_EPOCHS)
    got = lr_trace(name, num_epochs=NUM_EPOCHS, base_lr=BASE_LR, **kwargs)
    assert got == expected
    assert len(got) == NUM_EPOCHS and got[0] == expected[0]


@pytest.mark.parametrize("name", [n for n in CASES if n != "onecycle"])
@pytest.mark.parametrize("warmup_epochs", [1, 4])
def test_trace_with_warmup_equals_sequential_lr(name, warmup_epochs):
    kwargs, make = CASES[name]

    def make_with_warmup(optimizer):
        warmup = S.LinearLR(optimizer, start_factor=1 / (warmup_epochs + 1),
                            total_iters=warmup_epochs)
        main = make(optimizer) or S.ConstantLR(optimizer, factor=1.0, total_iters=0)
        return S.SequentialLR(optimizer, [warmup, main], milestones=[warmup_epochs])

    expected, _ = train_and_record(make_with_warmup, num_epochs=NUM_EPOCHS)
    got = lr_trace(name, num_epochs=NUM_EPOCHS, base_lr=BASE_LR, warmup_epochs=warmup_epochs,
                   **kwargs)
    assert got == expected
    # the ramp climbs in equal steps to the base LR, reached when the schedule takes over
    ramp = [BASE_LR * (i + 1) / (warmup_epochs + 1) for i in range(warmup_epochs + 1)]
    assert got[: warmup_epochs + 1] == pytest.approx(ramp)


def test_warmup_start_factor_is_passed_to_linear_lr():
    got = lr_trace("step", num_epochs=6, base_lr=1.0, step_size=10, warmup_epochs=2,
                   warmup_start_factor=0.5)
    assert got == pytest.approx([0.5, 0.75, 1.0, 1.0, 1.0, 1.0])


def test_plateau_trace_equals_training_loop_with_its_val_losses():
    kwargs = {"patience": 1, "factor": 0.5, "threshold": 0.2}

    expected, val_losses = train_and_record(lambda o: S.ReduceLROnPlateau(o, **kwargs),
                                            num_epochs=NUM_EPOCHS, plateau=True)
    got = lr_trace("plateau", num_epochs=NUM_EPOCHS, base_lr=BASE_LR, metrics=val_losses,
                   **kwargs)
    assert got == expected
    assert len(set(got)) > 1, "the case must actually cut the LR to test anything"


@pytest.mark.parametrize("steps_per_epoch", [4, 8])
def test_onecycle_per_step_equals_per_batch_loop(steps_per_epoch):
    num_epochs = 5
    expected, _ = train_and_record(
        lambda o: S.OneCycleLR(o, max_lr=0.5, epochs=num_epochs, steps_per_epoch=steps_per_epoch),
        num_epochs=num_epochs, steps_per_epoch=steps_per_epoch, per_step=True)
    got = lr_trace("onecycle", num_epochs=num_epochs, base_lr=BASE_LR,
                   steps_per_epoch=steps_per_epoch, max_lr=0.5)
    assert len(got) == num_epochs * steps_per_epoch
    assert got == expected
    assert max(got) == pytest.approx(0.5)


def test_onecycle_defaults_peak_at_base_lr_over_the_whole_run():
    trace = lr_trace("onecycle", num_epochs=20, base_lr=0.3)
    assert max(trace) == pytest.approx(0.3)
    assert trace[0] == pytest.approx(0.3 / 25)  # torch's div_factor
    assert trace.index(max(trace)) == 5  # pct_start=0.3 of 20 steps: peak at step 5


def test_per_epoch_schedule_ignores_steps_per_epoch():
    assert lr_trace("step", num_epochs=6, steps_per_epoch=10, step_size=2) == lr_trace(
        "step", num_epochs=6, step_size=2)


def test_wrong_call_order_does_warn_in_torch():
    """The guard the other tests rely on: torch warns when scheduler.step() comes first, and
    the module-level 'error' filter turns that into a failure."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler("step", optimizer, step_size=1)
    with pytest.warns(UserWarning, match=r"lr_scheduler.step\(\)` before `optimizer.step\(\)"):
        scheduler.step()


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_every_name_traces_without_warnings(name):
    s = ScheduleSettings(num_epochs=30, warmup_epochs=3)
    metrics = synthetic_val_loss(30) if name == "plateau" else None
    trace = lr_trace(name, num_epochs=30, base_lr=0.1, metrics=metrics, **s.kwargs_for(name))
    assert len(trace) == 30 and all(math.isfinite(v) and v >= 0 for v in trace)


# ---- build_scheduler ----

@pytest.mark.parametrize("name, kwargs, cls", [
    ("constant", {}, S.ConstantLR),
    ("step", {"step_size": 2}, S.StepLR),
    ("multistep", {"milestones": [3]}, S.MultiStepLR),
    ("exponential", {"gamma": 0.9}, S.ExponentialLR),
    ("cosine", {"T_max": 5}, S.CosineAnnealingLR),
    ("cosine_warm_restarts", {"T_0": 5}, S.CosineAnnealingWarmRestarts),
    ("onecycle", {"max_lr": 0.1, "total_steps": 10}, S.OneCycleLR),
    ("plateau", {}, S.ReduceLROnPlateau),
])
def test_build_scheduler_maps_names_to_torch_classes(name, kwargs, cls):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler(name, optimizer, **kwargs)
    assert type(scheduler) is cls
    assert scheduler.optimizer is optimizer


def test_build_scheduler_passes_kwargs_through():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = build_scheduler("plateau", optimizer, mode="max", patience=3, factor=0.25)
    assert (s.mode, s.patience, s.factor) == ("max", 3, 0.25)
    c = build_scheduler("constant", optimizer, factor=0.5, total_iters=4)
    assert (c.factor, c.total_iters) == (0.5, 4)


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown schedule name 'cosin'.*'cosine'.*'plateau'"):
        build_scheduler("cosin", _opt())
    with pytest.raises(ValueError, match="unknown schedule name"):
        lr_trace("linear", num_epochs=3)
    with pytest.raises(TypeError, match="name must be a str"):
        build_scheduler(S.StepLR, _opt())


@pytest.mark.parametrize("name, kwargs, missing", [
    ("step", {}, "step_size"),
    ("multistep", {}, "milestones"),
    ("exponential", {}, "gamma"),
    ("cosine", {"eta_min": 0.0}, "T_max"),
    ("cosine_warm_restarts", {}, "T_0"),
    ("onecycle", {"total_steps": 10}, "max_lr"),
    ("onecycle", {"max_lr": 0.1}, r"total_steps \(or epochs and steps_per_epoch\)"),
    ("onecycle", {"max_lr": 0.1, "epochs": 3}, "total_steps"),
])
def test_missing_required_argument_is_named(name, kwargs, missing):
    with pytest.raises(ValueError, match=f"{name}.*needs the argument.*{missing}"):
        build_scheduler(name, _opt(), **kwargs)


def test_unexpected_argument_lists_accepted_ones():
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['Tmax'\].*'T_max'"):
        build_scheduler("cosine", _opt(), Tmax=10)


def test_bad_optimizer_and_warmup_arguments():
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        build_scheduler("step", [torch.zeros(1)], step_size=1)
    with pytest.raises(ValueError, match="warmup_epochs must be an int >= 0"):
        build_scheduler("step", _opt(), step_size=1, warmup_epochs=-1)
    with pytest.raises(TypeError, match="warmup_epochs must be an int"):
        build_scheduler("step", _opt(), step_size=1, warmup_epochs=1.5)
    with pytest.raises(ValueError, match="warmup_start_factor must be in"):
        build_scheduler("step", _opt(), step_size=1, warmup_epochs=2, warmup_start_factor=2.0)
    with pytest.raises(ValueError, match="warmup_start_factor needs warmup_epochs > 0"):
        build_scheduler("step", _opt(), step_size=1, warmup_start_factor=0.5)


@pytest.mark.parametrize("name, kwargs, reason", [
    ("plateau", {}, "SequentialLR cannot chain ReduceLROnPlateau"),
    ("onecycle", {"max_lr": 0.1, "total_steps": 5}, "pct_start"),
])
def test_warmup_refused_where_torch_cannot_compose(name, kwargs, reason):
    with pytest.raises(ValueError, match=f"warmup_epochs must be 0 for '{name}'.*{reason}"):
        build_scheduler(name, _opt(), warmup_epochs=2, **kwargs)


# ---- lr_trace errors ----

def test_plateau_needs_metrics():
    with pytest.raises(ValueError, match="'plateau'.*pass metrics, one value per epoch"):
        lr_trace("plateau", num_epochs=5)
    with pytest.raises(ValueError, match=r"one value per epoch \(num_epochs=5\), got 3"):
        lr_trace("plateau", num_epochs=5, metrics=[1.0, 0.9, 0.8])
    with pytest.raises(ValueError, match="metrics must be finite.*epoch"):
        lr_trace("plateau", num_epochs=3, metrics=[1.0, float("nan"), 0.8])
    with pytest.raises(TypeError, match="metrics must be a sequence"):
        lr_trace("plateau", num_epochs=3, metrics=0.5)


def test_plateau_accepts_a_tensor_of_metrics():
    metrics = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert lr_trace("plateau", num_epochs=4, base_lr=1.0, metrics=metrics, patience=0,
                    factor=0.5) == [1.0, 1.0, 0.5, 0.25]


def test_metrics_refused_for_other_schedules():
    with pytest.raises(ValueError, match="metrics is used only by 'plateau', not by 'step'"):
        lr_trace("step", num_epochs=3, step_size=1, metrics=[1.0, 1.0, 1.0])


@pytest.mark.parametrize("kwargs, match", [
    ({"num_epochs": 0}, "num_epochs must be an int >= 1, got 0"),
    ({"num_epochs": 2.0}, "num_epochs must be an int"),
    ({"num_epochs": 3, "base_lr": 0.0}, "base_lr must be a finite number > 0, got 0.0"),
    ({"num_epochs": 3, "base_lr": float("inf")}, "base_lr must be a finite number > 0"),
    ({"num_epochs": 3, "steps_per_epoch": 0}, "steps_per_epoch must be an int >= 1"),
])
def test_lr_trace_rejects_bad_numbers(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lr_trace("step", step_size=1, **kwargs)


def test_lr_trace_propagates_torch_errors_for_too_short_onecycle():
    with pytest.raises(ValueError, match="Tried to step"):
        lr_trace("onecycle", num_epochs=5, max_lr=0.1, total_steps=3)


# ---- is_per_step ----

def test_is_per_step():
    o = _opt()
    assert is_per_step(build_scheduler("onecycle", o, max_lr=0.1, total_steps=5))
    assert is_per_step(S.CyclicLR(_opt(), base_lr=0.01, max_lr=0.1))
    assert not is_per_step(build_scheduler("plateau", _opt()))
    assert not is_per_step(build_scheduler("cosine", _opt(), T_max=5, warmup_epochs=2))
    o = _opt()
    seq = S.SequentialLR(o, [S.LinearLR(o, total_iters=2), S.CyclicLR(o, 0.01, 0.1)], [2])
    assert is_per_step(seq)
    with pytest.raises(TypeError, match="scheduler must be a torch.optim.lr_scheduler"):
        is_per_step("onecycle")


# ---- synthetic_val_loss, ScheduleSettings, compare_schedules ----

def test_synthetic_val_loss_falls_then_flattens():
    curve = synthetic_val_loss(120, start=2.0, floor=0.4, noise=0.0)
    assert curve[0] == pytest.approx(2.0)
    drops = [a - b for a, b in zip(curve, curve[1:], strict=False)]
    assert all(d > 0 for d in drops)
    assert sum(drops[:20]) > 10 * sum(drops[-60:])  # most of the fall is early
    assert curve[-1] == pytest.approx(0.4, abs=0.01)
    noisy = synthetic_val_loss(120, seed=1)
    assert noisy == synthetic_val_loss(120, seed=1) != synthetic_val_loss(120, seed=2)


def test_synthetic_val_loss_errors():
    with pytest.raises(ValueError, match="start must be greater than floor"):
        synthetic_val_loss(10, start=0.1, floor=0.5)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        synthetic_val_loss(10, noise=-1.0)
    with pytest.raises(ValueError, match="num_epochs must be an int >= 1"):
        synthetic_val_loss(0)


def test_plateau_fires_on_the_synthetic_curve():
    curve = synthetic_val_loss(100)
    trace = lr_trace("plateau", num_epochs=100, base_lr=0.1, metrics=curve, patience=5)
    first_cut = next(i for i, v in enumerate(trace) if v < 0.1)
    assert 20 < first_cut < 100  # not while the curve is still falling fast


def test_settings_kwargs_for():
    s = ScheduleSettings(num_epochs=80, step_size=20, gamma=0.5, warmup_epochs=4)
    assert s.kwargs_for("step") == {"step_size": 20, "gamma": 0.5, "warmup_epochs": 4}
    assert s.kwargs_for("cosine") == {"T_max": 76, "eta_min": 0.0, "warmup_epochs": 4}
    assert "warmup_epochs" not in s.kwargs_for("plateau")
    assert "warmup_epochs" not in s.kwargs_for("onecycle")
    # ExponentialLR meets StepLR at every multiple of step_size
    s0 = ScheduleSettings(num_epochs=80, step_size=20, gamma=0.5)
    t = compare_schedules(["step", "exponential"], s0)
    for e in (0, 20, 40, 60):
        assert t["exponential"][e] == pytest.approx(t["step"][e])


@pytest.mark.parametrize("kwargs, match", [
    ({"num_epochs": 0}, "num_epochs must be an int >= 1"),
    ({"gamma": 1.5}, r"gamma must be in \(0, 1\)"),
    ({"T_max": 0}, "T_max must be an int >= 1"),
    ({"eta_min": -1.0}, "eta_min must be >= 0"),
    ({"base_lr": -0.1}, "base_lr must be a finite number > 0"),
])
def test_settings_validation(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ScheduleSettings(**kwargs)


def test_compare_schedules_equals_individual_traces():
    s = ScheduleSettings(num_epochs=50, warmup_epochs=3)
    names = ["constant", "step", "cosine", "plateau"]
    traces = compare_schedules(names, s)
    assert list(traces) == names
    for name in names:
        metrics = synthetic_val_loss(50) if name == "plateau" else None
        assert traces[name] == lr_trace(name, num_epochs=50, base_lr=s.base_lr, metrics=metrics,
                                        **s.kwargs_for(name))
    own = [1.0] * 50  # never improves: plateau cuts every patience+1 epochs
    cut = compare_schedules(["plateau"], ScheduleSettings(num_epochs=50, patience=4),
                            val_loss=own)["plateau"]
    assert cut[6] == pytest.approx(0.01)


def test_compare_schedules_cache_reuses_only_unchanged_traces(monkeypatch):
    import lesson_utils.schedules as schedules_module

    names = ["constant", "step", "exponential", "cosine", "plateau"]
    cache: dict = {}
    first = compare_schedules(names, ScheduleSettings(num_epochs=40), cache=cache)
    calls = []
    real = schedules_module.lr_trace
    monkeypatch.setattr(schedules_module, "lr_trace",
                        lambda name, **kw: calls.append(name) or real(name, **kw))
    moved = ScheduleSettings(num_epochs=40, gamma=0.5)          # the gamma slider
    again = compare_schedules(names, moved, cache=cache)
    assert calls == ["step", "exponential"]                      # only what gamma feeds
    assert again == compare_schedules(names, moved)              # the same as without a cache
    assert again["cosine"] == first["cosine"] and again["step"] != first["step"]
    again["cosine"][0] = -1.0                                    # the caller's copy, not the cache's
    assert compare_schedules(["cosine"], moved, cache=cache)["cosine"][0] == first["cosine"][0]
    assert len(cache) == 1                                       # only the last call's traces
    calls.clear()
    compare_schedules(["plateau"], moved, val_loss=[1.0] * 40, cache=cache)
    compare_schedules(["plateau"], moved, val_loss=[1.0] * 39 + [0.5], cache=cache)
    assert calls == ["plateau", "plateau"]                       # another loss: traced again


def test_compare_schedules_errors():
    with pytest.raises(ValueError, match="must not repeat"):
        compare_schedules(["step", "step"])
    with pytest.raises(TypeError, match="names must be a sequence of schedule names"):
        compare_schedules("step")
    with pytest.raises(TypeError, match="settings must be a ScheduleSettings"):
        compare_schedules(["step"], {"num_epochs": 3})


@settings(max_examples=25, deadline=None)
@given(step_size=st.integers(1, 6), gamma=st.floats(0.05, 0.95), T_max=st.integers(1, 12),
       num_epochs=st.integers(1, 15), warmup=st.integers(0, 4))
def test_random_settings_match_torch(step_size, gamma, T_max, num_epochs, warmup):
    def wrap(make):
        if not warmup:
            return make
        return lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=1 / (warmup + 1), total_iters=warmup), make(o)],
            milestones=[warmup])

    expected, _ = train_and_record(wrap(lambda o: S.StepLR(o, step_size, gamma)),
                                   num_epochs=num_epochs)
    assert lr_trace("step", num_epochs=num_epochs, base_lr=BASE_LR, step_size=step_size,
                    gamma=gamma, warmup_epochs=warmup) == expected
    expected, _ = train_and_record(wrap(lambda o: S.CosineAnnealingLR(o, T_max)),
                                   num_epochs=num_epochs)
    assert lr_trace("cosine", num_epochs=num_epochs, base_lr=BASE_LR, T_max=T_max,
                    warmup_epochs=warmup) == expected
