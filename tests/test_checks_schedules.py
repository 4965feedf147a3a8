"""Tests for lesson 04's self-checks (``lesson_utils.checks.schedules``): each passes on the
notebook's solution, fails on the student version of the exercise cell, and names the typical
mistake."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from lesson_utils.assignments.student import grade_id_of, make_student_notebook
from lesson_utils.checks import CheckFailed
from lesson_utils.checks.schedules import (
    PREDICTION_CASES,
    _plateau_trace,
    check_lr_predictions,
    check_training_loop,
    check_warmup_cosine,
    prediction_traces,
)
from lesson_utils.schedules import is_per_step, lr_trace

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_optimizers_schedulers.ipynb"
EXERCISES = ["04-predict-lrs", "04-warmup-cosine", "04-training-loop"]


@pytest.fixture(scope="module")
def lesson():
    instructor = nbformat.read(NOTEBOOK, as_version=4)
    return instructor, make_student_notebook(instructor)


def _exercise(lesson, grade_id: str, *, student: bool) -> tuple[str, str]:
    """(exercise cell, check cell) sources, as the instructor or the student has them."""
    instructor, student_nb = lesson
    (i,) = [i for i, c in enumerate(instructor.cells) if grade_id_of(c) == grade_id]
    assert grade_id_of(instructor.cells[i + 1]) == f"{grade_id}-check"
    return (student_nb if student else instructor).cells[i].source, instructor.cells[i + 1].source


def _namespace() -> dict:
    return {"math": math, "torch": torch, "F": F, "is_per_step": is_per_step}


@pytest.mark.parametrize("grade_id", EXERCISES)
def test_the_notebook_solution_passes(lesson, grade_id, capsys):
    exercise, check = _exercise(lesson, grade_id, student=False)
    namespace = _namespace()
    exec(exercise, namespace)
    exec(check, namespace)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("grade_id", EXERCISES[1:])
def test_the_student_stub_fails_with_not_implemented(lesson, grade_id):
    exercise, check = _exercise(lesson, grade_id, student=True)
    namespace = _namespace()
    exec(exercise, namespace)  # defines the function; calling it raises
    with pytest.raises(CheckFailed, match="not implemented yet"):
        exec(check, namespace)


def test_the_prediction_stub_stops_at_the_exercise_and_the_check_cannot_pass(lesson):
    exercise, check = _exercise(lesson, "04-predict-lrs", student=True)
    namespace = _namespace()
    with pytest.raises(NotImplementedError):
        exec(exercise, namespace)
    with pytest.raises(NameError, match="predicted_lrs"):
        exec(check, namespace)


# ----------------------------------------------------------------------------- predictions

def test_the_exercise_text_describes_the_checked_setups(lesson):
    text = next(c.source for c in lesson[0].cells if c.source.startswith("## 8. Exercises"))
    assert 'build_scheduler("step", optimizer, step_size=3, gamma=0.1, warmup_epochs=2)' in text
    assert 'build_scheduler("plateau", optimizer, patience=1, factor=0.5)' in text
    assert str(PREDICTION_CASES["plateau"]["metrics"]) in text
    assert 'build_scheduler("cosine", optimizer, T_max=4)' in text
    assert PREDICTION_CASES["warmup_step"] == {"name": "step", "step_size": 3, "gamma": 0.1,
                                               "warmup_epochs": 2}
    assert PREDICTION_CASES["cosine_short"] == {"name": "cosine", "T_max": 4}
    assert "LR 0.1" in text and "8 epochs" in text.replace("\n", " ")


@pytest.mark.parametrize("metrics", [
    PREDICTION_CASES["plateau"]["metrics"], [3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0],
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.125]])
@pytest.mark.parametrize("patience", [0, 1, 2])
def test_the_hand_written_plateau_equals_torch(metrics, patience):
    assert _plateau_trace(metrics, patience=patience, factor=0.5) == pytest.approx(
        lr_trace("plateau", num_epochs=8, base_lr=0.1, patience=patience, factor=0.5,
                 metrics=metrics))


def _right() -> dict[str, list[float]]:
    return {case: [round(v, 3) for v in trace] for case, trace in prediction_traces().items()}


def _with(case: str, values: list[float]) -> dict[str, list[float]]:
    return {**_right(), case: values}


def test_check_lr_predictions_passes_on_3_decimals_and_on_exact_values(capsys):
    assert check_lr_predictions(_right())
    assert check_lr_predictions(prediction_traces())
    assert check_lr_predictions(_with("warmup_step", [0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.1, 0.01, 0.01,
                                                      0.01]))
    assert capsys.readouterr().out.count("✅") == 3


@pytest.mark.parametrize("case, values, match", [
    ("warmup_step", [0.033, 0.067, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001],
     "SequentialLR starts StepLR when the warmup ends"),
    ("warmup_step", [0.0, 0.05, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01], "does not start at 0"),
    ("warmup_step", [0.05, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01],
     "epoch 0 is the first wrong one; during the warmup LinearLR climbs"),
    ("warmup_step", [0.033, 0.067, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01],
     "epoch 5 is the first wrong one; after the warmup, SequentialLR starts StepLR"),
    ("warmup_step", [0.067, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01], "one epoch early"),
    ("plateau", [0.1] * 7 + [0.05], "an equal loss is not an improvement"),
    ("plateau", [0.1, 0.1, 0.1, 0.05, 0.025, 0.025, 0.0125, 0.00625],
     "more than patience, not equal to it"),
    ("plateau", [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.0125], "two misreadings at once"),
    ("plateau", [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025], "one epoch early"),
    ("plateau", [0.1] * 8, "more than patience epochs, then counts again"),
    ("cosine_short", [0.1, 0.085, 0.05, 0.015, 0.0, 0.0, 0.0, 0.0], "not clamped at T_max"),
    ("cosine_short", [0.1, 0.085, 0.05, 0.015, 0.1, 0.085, 0.05, 0.015],
     "that is CosineAnnealingWarmRestarts"),
    ("cosine_short", [0.1, 0.075, 0.05, 0.025, 0.0, 0.025, 0.05, 0.075],
     "epoch 1 is the first wrong one; up to T_max the LR follows half a cosine"),
    ("cosine_short", [0.1, 0.085, 0.05, 0.015, 0.0, 0.01, 0.02, 0.03],
     "epoch 5 is the first wrong one; CosineAnnealingLR is not clamped"),
], ids=["step-from-0", "warmup-from-0", "warmup-too-fast", "step-late", "warmup-shift",
        "ties", "at-patience", "both", "plateau-shift", "never-cut", "clamped", "restarts",
        "linear", "other"])
def test_check_lr_predictions_names_the_misreading(case, values, match):
    with pytest.raises(CheckFailed, match=match) as info:
        check_lr_predictions(_with(case, values))
    assert str(info.value).startswith(f"❌ LR predictions: {case}: the LRs are [")


@pytest.mark.parametrize("predicted, match", [
    (None, "expected a dict"),
    ([0.1] * 8, "expected a dict"),
    ({"warmup_step": [0.1] * 8}, "missing the case\\(s\\) \\['plateau', 'cosine_short'\\]"),
    ({**_right(), "plateau": [0.1] * 7}, "plateau: expected 8 LRs"),
    ({**_right(), "plateau": ["high"] * 8}, "plateau: expected a list of 8 numbers"),
    ({**_right(), "plateau": 0.1}, "plateau: expected a list of 8 numbers"),
])
def test_check_lr_predictions_rejects_malformed_answers(predicted, match):
    with pytest.raises(CheckFailed, match=match):
        check_lr_predictions(predicted)


# ----------------------------------------------------------------------------- warmup + cosine

def _warmup_cosine(e, *, base_lr, warmup_epochs, num_epochs, eta_min):
    if e < warmup_epochs:
        return base_lr * (e + 1) / (warmup_epochs + 1)
    t, T = e - warmup_epochs, num_epochs - warmup_epochs
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / T)) / 2


def test_check_warmup_cosine(capsys):
    assert check_warmup_cosine(_warmup_cosine)
    assert "✅" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="during warmup"):
        check_warmup_cosine(lambda e, **kw: _warmup_cosine(e, **kw) if e >= kw["warmup_epochs"]
                            else kw["base_lr"] * e / kw["warmup_epochs"])
    with pytest.raises(CheckFailed, match="after warmup the cosine starts again"):
        check_warmup_cosine(lambda e, *, base_lr, warmup_epochs, num_epochs, eta_min:
                            _warmup_cosine(e, base_lr=base_lr, warmup_epochs=warmup_epochs,
                                           num_epochs=num_epochs + warmup_epochs,
                                           eta_min=eta_min))
    with pytest.raises(CheckFailed, match="forget to `return`"):
        check_warmup_cosine(lambda e, **kw: None)
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        check_warmup_cosine(lambda e, **kw: 1 / 0)


# ----------------------------------------------------------------------------- the loop

def _loop(order="right", stepping="auto"):
    def loop(model, X, y, optimizer, scheduler, *, num_epochs, batch_size):
        lrs = []
        per_step = is_per_step(scheduler) if stepping == "auto" else stepping == "batch"
        for _ in range(num_epochs):
            for i in range(0, len(X), batch_size):
                lrs.append(optimizer.param_groups[0]["lr"])
                optimizer.zero_grad()
                loss = F.cross_entropy(model(X[i:i + batch_size]), y[i:i + batch_size])
                loss.backward()
                if order == "wrong" and per_step:
                    scheduler.step()
                optimizer.step()
                if order == "right" and per_step:
                    scheduler.step()
            if not per_step:
                scheduler.step()
        return lrs
    return loop


@pytest.mark.filterwarnings("error")
def test_check_training_loop():
    assert check_training_loop(_loop())
    with pytest.raises(CheckFailed, match="Call optimizer.step\\(\\) first"):
        check_training_loop(_loop(order="wrong"))
    with pytest.raises(CheckFailed, match="StepLR counts epochs"):
        check_training_loop(_loop(stepping="batch"))
    with pytest.raises(CheckFailed, match="OneCycleLR is a per-batch schedule"):
        check_training_loop(_loop(stepping="epoch"))
    with pytest.raises(CheckFailed, match="return the list of LRs"):
        check_training_loop(lambda *a, **k: None)
