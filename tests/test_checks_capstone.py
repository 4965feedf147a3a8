"""The capstone's checkers for its core: the loss for imbalance, the optimizer and schedule, the
best-epoch loop. Each passes the reference solution, fails on the stub, and names every classic
mistake with its explanation."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch import nn

from lesson_utils.checks import CheckFailed
from lesson_utils.checks import capstone as checks
from lesson_utils.inference import predict
from lesson_utils.metrics import f1_score
from lesson_utils.training import evaluate, train_one_epoch


def _stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError()


# ----------------------------------------------------------------------------- the loss

def _criterion(mistake: str | None = None):
    """make_criterion, right or with one classic mistake."""

    def make_criterion(train_labels, num_classes):
        labels = torch.tensor(train_labels)
        counts = torch.bincount(labels, minlength=num_classes).float()
        if mistake == "no-minlength":
            counts = torch.bincount(labels).float()
        if mistake == "proportional":
            return nn.CrossEntropyLoss(weight=counts.clamp(min=1) / counts.sum())
        if mistake == "unweighted":
            return nn.CrossEntropyLoss()
        if mistake == "sqrt":
            return nn.CrossEntropyLoss(weight=counts.clamp(min=1).rsqrt())
        if mistake == "sum":
            return nn.CrossEntropyLoss(weight=1.0 / counts.clamp(min=1), reduction="sum")
        if mistake == "library":
            from lesson_utils.losses import class_weights

            return nn.CrossEntropyLoss(weight=class_weights(train_labels, num_classes))
        if mistake in ("no-clamp", "no-minlength"):
            return nn.CrossEntropyLoss(weight=1.0 / counts)
        if mistake == "no-clamp-normalised":
            weight = 1.0 / counts
            return nn.CrossEntropyLoss(weight=weight / weight.mean())
        if mistake == "global":
            return nn.CrossEntropyLoss(weight=1.0 / torch.tensor([40.0, 20, 10, 5, 3, 2]))
        return nn.CrossEntropyLoss(weight=1.0 / counts.clamp(min=1))

    return make_criterion


def test_make_criterion_passes_the_reference(capsys):
    assert checks.check_make_criterion(_criterion()) is True
    assert "✅ make_criterion: weight proportional to 1/count" in capsys.readouterr().out


def test_make_criterion_accepts_any_scale_of_the_weights():
    def normalised(train_labels, num_classes):
        counts = torch.bincount(torch.tensor(train_labels), minlength=num_classes).clamp(min=1)
        weight = 1.0 / counts.float()
        return nn.CrossEntropyLoss(weight=weight / weight.mean())

    assert checks.check_make_criterion(normalised)


@pytest.mark.parametrize("mistake, hint", [
    ("proportional", "the weights grow with the counts"),
    ("unweighted", "every class weighs the same (no class weights)"),
    ("sqrt", "1/sqrt(count) are a milder correction"),
    ("sum", "one number per batch (reduction='mean')"),
    ("library", "class_weights refuses empty classes"),
    ("no-clamp", "got the weight 1/0 = inf"),
    ("no-clamp-normalised", "(and inf / inf is nan)"),
    ("no-minlength", "one entry per class (6), even for a class without training labels"),
    ("global", "count the labels passed in (train_labels), not a global"),
])
def test_make_criterion_names_each_mistake(mistake, hint):
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        checks.check_make_criterion(_criterion(mistake))


def test_make_criterion_fails_on_the_stub():
    with pytest.raises(CheckFailed, match="not implemented yet"):
        checks.check_make_criterion(_stub)


def _split(counts=(40, 24, 16, 10, 6, 4)):
    labels = [k for k, n in enumerate(counts) for _ in range(n)]
    val_idx = [i for i in range(len(labels)) if i % 4 == 0 or labels[i] == 5 and i % 3 == 0]
    train_idx = [i for i in range(len(labels)) if i not in set(val_idx)]
    return labels, train_idx, val_idx


def test_the_notebooks_criterion_must_count_the_training_split(capsys):
    labels, train_idx, val_idx = _split()
    make = _criterion()
    right = make([labels[i] for i in train_idx], 6)
    assert checks.check_criterion_split(right, labels=labels, train_idx=train_idx)
    assert "✅ criterion: class weights from the 74 images" in capsys.readouterr().out
    assert checks.check_criterion_split(right, labels=torch.tensor(labels),
                                        train_idx=torch.tensor(train_idx))
    for criterion, hint in [
        (make([labels[i] for i in val_idx], 6), "come from the validation labels"),
        (make(labels, 6), "counts every labelled image, validation included"),
        (nn.CrossEntropyLoss(), "it has no class weights"),
        (nn.CrossEntropyLoss(weight=torch.arange(1.0, 7.0)), "does not weight the classes"),
        ("not a loss", "expected a loss"),
    ]:
        with pytest.raises(CheckFailed, match=re.escape(hint)):
            checks.check_criterion_split(criterion, labels=labels, train_idx=train_idx)


@pytest.mark.parametrize("labels, train_idx, error, match", [
    ([], [0], ValueError, "labels must not be empty"),
    ([0, 1, 2], [0, 5], ValueError, r"train_idx must hold indices in \[0, 2\]"),
    ([0, 1, 2], [], ValueError, "got 0 indices"),
    ([0, 1, 2], None, TypeError, "sequences of ints, got list and NoneType"),
])
def test_check_criterion_split_rejects_bad_arguments(labels, train_idx, error, match):
    with pytest.raises(error, match=match):
        checks.check_criterion_split(nn.CrossEntropyLoss(), labels=labels, train_idx=train_idx)


# ----------------------------------------------------------------------------- optimizer, schedule

def _optimizer(mistake: str | None = None):
    """make_optimizer_and_scheduler, right or with one classic mistake."""

    def make(model, num_epochs, steps_per_epoch):
        params = model.head.parameters() if mistake == "head-only" else model.parameters()
        optimizer = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.05)
        total = num_epochs * steps_per_epoch
        schedule = torch.optim.lr_scheduler
        if mistake == "per-epoch":
            scheduler = schedule.OneCycleLR(optimizer, max_lr=3e-3, total_steps=num_epochs)
        elif mistake == "too-long":  # sized in images, not batches
            scheduler = schedule.OneCycleLR(optimizer, max_lr=3e-3, total_steps=total * 64)
        elif mistake == "global":
            scheduler = schedule.OneCycleLR(optimizer, max_lr=3e-3, total_steps=8 * 48)
        elif mistake == "cosine-epochs":
            scheduler = schedule.CosineAnnealingLR(optimizer, T_max=num_epochs)
        elif mistake == "no-warmup":
            scheduler = schedule.CosineAnnealingLR(optimizer, T_max=total)
        elif mistake == "plateau":
            scheduler = schedule.ReduceLROnPlateau(optimizer)
        elif mistake == "other-optimizer":
            other = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            scheduler = schedule.OneCycleLR(other, max_lr=0.1, total_steps=total)
        else:
            scheduler = schedule.OneCycleLR(optimizer, max_lr=3e-3, total_steps=total)
        return optimizer if mistake == "optimizer-only" else (optimizer, scheduler)

    return make


def test_optimizer_and_scheduler_passes_the_reference(capsys):
    assert checks.check_optimizer_and_scheduler(_optimizer()) is True
    out = capsys.readouterr().out
    assert "✅ optimizer and scheduler: AdamW over every parameter; OneCycleLR" in out


def test_optimizer_and_scheduler_accepts_param_groups_and_other_one_cycle_shapes():
    def groups(model, num_epochs, steps_per_epoch):  # lesson 02: a lower LR for the backbone
        optimizer = torch.optim.SGD([{"params": model.backbone.parameters(), "lr": 0.01},
                                     {"params": model.head.parameters()}], lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[0.01, 0.1], epochs=num_epochs, steps_per_epoch=steps_per_epoch)
        return optimizer, scheduler

    def warmup_cosine(model, num_epochs, steps_per_epoch):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        total, warm = num_epochs * steps_per_epoch, steps_per_epoch
        scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [
            torch.optim.lr_scheduler.LinearLR(optimizer, 0.1, 1.0, total_iters=warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warm)],
            milestones=[warm])
        return optimizer, scheduler

    assert checks.check_optimizer_and_scheduler(groups)
    assert checks.check_optimizer_and_scheduler(warmup_cosine)


@pytest.mark.parametrize("mistake, hint", [
    ("per-epoch", "it is sized in epochs (total_steps=3), but a per-batch schedule is stepped "
                  "after every batch"),
    ("too-long", "the LR is still 100% of its peak"),
    ("global", "the schedule is sized for more than the 33 batches"),
    ("cosine-epochs", "cycles when it is stepped after every batch"),
    ("no-warmup", "warm up from a lower LR"),
    ("plateau", "ReduceLROnPlateau needs a metric once per epoch"),
    ("head-only", "it trains only the head"),
    ("other-optimizer", "drives another optimizer"),
    ("optimizer-only", "return the pair (optimizer, scheduler)"),
])
def test_optimizer_and_scheduler_names_each_mistake(mistake, hint):
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        checks.check_optimizer_and_scheduler(_optimizer(mistake))


def test_optimizer_and_scheduler_fails_on_the_stub():
    with pytest.raises(CheckFailed, match="not implemented yet"):
        checks.check_optimizer_and_scheduler(_stub)


def test_an_optimizer_over_a_global_model_is_caught():
    other = nn.Linear(2, 2)

    def make(model, num_epochs, steps_per_epoch):
        optimizer = torch.optim.AdamW([*model.parameters(), *other.parameters()], lr=1e-3)
        return optimizer, torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=1e-3, total_steps=num_epochs * steps_per_epoch)

    with pytest.raises(CheckFailed, match="not the model's"):
        checks.check_optimizer_and_scheduler(make)


# ----------------------------------------------------------------------------- best-epoch loop

def _one_epoch(model, loader, criterion, optimizer, scheduler, stepping):
    """One epoch written by hand, with the scheduler stepped as ``stepping`` says."""
    model.train()
    losses = []
    for X, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(X), y)
        loss.backward()
        if stepping == "before":
            scheduler.step()
        optimizer.step()
        if stepping == "after":
            scheduler.step()
        losses.append(loss.item())
    if stepping == "per-epoch":
        scheduler.step()
    return sum(losses) / len(losses)


def _loop(mistake: str | None = None):
    """train_and_keep_best, right or with one classic mistake."""

    def train_and_keep_best(model, train_loader, val_loader, criterion, optimizer, scheduler, *,
                            num_epochs, num_classes):
        history, best_score, best_state = [], None, None
        for epoch in range(1, num_epochs + 1):
            lr = optimizer.param_groups[0]["lr"]
            if mistake in ("before", "per-epoch", "hand-written"):
                stepping = "after" if mistake == "hand-written" else mistake
                loss = _one_epoch(model, train_loader, criterion, optimizer, scheduler, stepping)
            else:
                loss = train_one_epoch(model, train_loader, criterion, optimizer,
                                       scheduler=scheduler)["loss"]
                if mistake == "double-step":
                    scheduler.step()
            scored = train_loader if mistake == "train-f1" else val_loader
            val = predict(model, scored)
            average = "micro" if mistake == "accuracy-history" else "macro"
            f1 = f1_score(val.targets, val.preds, num_classes=num_classes, average=average)
            history.append({"epoch": epoch, "lr": lr, "train_loss": loss, "val_macro_f1": f1})
            if mistake == "by-loss":
                score = -evaluate(model, val_loader, criterion)["loss"]
            elif mistake == "by-accuracy":
                score = val.accuracy()
            else:
                score = f1
            if best_score is None or score > best_score:
                best_score = score
                if mistake == "no-copy":
                    best_state = model.state_dict()
                elif mistake == "shallow-copy":
                    best_state = dict(model.state_dict())
                else:
                    best_state = copy.deepcopy(model.state_dict())
        if mistake != "no-load":
            model.load_state_dict(best_state)
        if mistake == "history-only":
            return history
        return best_state, history

    return train_and_keep_best


@pytest.mark.parametrize("variant", [None, "hand-written"])
def test_train_and_keep_best_passes_the_reference(variant, capsys):
    assert checks.check_train_and_keep_best(_loop(variant)) is True
    assert "✅ train_and_keep_best: LR stepped per batch; kept epoch 2" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, hint", [
    ("no-copy", "best_state shares memory with the model: model.state_dict() returns "
                "references to the live weights"),
    ("shallow-copy", "keep copy.deepcopy(model.state_dict())"),
    ("no-load", "the model holds the weights of the last epoch"),
    ("by-loss", "best_state holds the weights of the lowest validation loss (epoch 4)"),
    ("by-accuracy", "the best validation accuracy (epoch 3)"),
    ("before", "scheduler.step() ran before optimizer.step()"),
    ("per-epoch", "the LR changed only between epochs"),
    ("double-step", "do not step it again yourself"),
    ("accuracy-history", "that is the validation accuracy"),
    ("train-f1", "that is the macro-F1 of the training data"),
    ("history-only", "return the pair (best_state, history)"),
])
def test_train_and_keep_best_names_each_mistake(mistake, hint):
    with pytest.raises(CheckFailed, match=re.escape(hint)):
        checks.check_train_and_keep_best(_loop(mistake))


def test_train_and_keep_best_fails_on_the_stub():
    with pytest.raises(CheckFailed, match="not implemented yet"):
        checks.check_train_and_keep_best(_stub)


def test_the_scripted_run_separates_every_way_of_choosing_an_epoch():
    scores = [checks._epoch_scores(w) for w in checks._scripted_weights()]
    f1 = [s["f1"] for s in scores]
    accuracy = [s["accuracy"] for s in scores]
    loss = [s["loss"] for s in scores]
    best, by_accuracy, by_loss = f1.index(max(f1)), accuracy.index(max(accuracy)), \
        loss.index(min(loss))
    assert len({best, by_accuracy, by_loss, len(scores) - 1}) == 4  # all differ
    assert sorted(f1)[-1] - sorted(f1)[-2] > 0.05  # no near-tie at the top
    assert sorted(accuracy)[-1] > sorted(accuracy)[-2] and sorted(loss)[0] < sorted(loss)[1]


def test_the_checks_leave_the_notebooks_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    checks.check_optimizer_and_scheduler(_optimizer())
    checks.check_train_and_keep_best(_loop())
    assert torch.equal(torch.rand(3), expected)
