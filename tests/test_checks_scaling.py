"""Tests for lesson 09's self-checks (``lesson_utils.checks.scaling``): each passes on the
reference solution, fails on the student stub, and names the typical mistake."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from lesson_utils.checks import CheckFailed
from lesson_utils.checks.scaling import (
    check_shard_indices,
    check_train_rank,
    reference_shard_indices,
)


def _stub(*args, **kwargs):
    # What the student version holds (lesson_utils.assignments.student.CODE_STUB).
    # YOUR CODE HERE
    raise NotImplementedError()


# ----------------------------------------------------------------------------- shard_indices


def _shard(num_samples, rank, world_size, epoch, seed=0, *, mistake=None):
    """The reference algorithm, or one of the usual mistakes."""
    g = torch.Generator()
    g.manual_seed({"no_epoch": seed, "epoch_only": epoch}.get(mistake, seed + epoch))
    order = (list(range(num_samples)) if mistake == "no_shuffle"
             else torch.randperm(num_samples, generator=g).tolist())
    total = math.ceil(num_samples / world_size) * world_size
    if mistake == "no_padding":
        return order[rank::world_size]
    if mistake == "drop_last":
        return order[:num_samples - num_samples % world_size][rank::world_size]
    order += order[:total - num_samples]
    if mistake == "contiguous":
        per_rank = total // world_size
        return order[rank * per_rank:(rank + 1) * per_rank]
    return order[rank::world_size]


def test_reference_equals_distributed_sampler():
    for n, ws in [(12, 2), (10, 3), (7, 4), (1, 1), (5, 5)]:
        for rank in range(ws):
            sampler = DistributedSampler(range(n), num_replicas=ws, rank=rank, seed=3)
            sampler.set_epoch(2)
            assert reference_shard_indices(n, rank, ws, 2, seed=3) == list(sampler)
            assert _shard(n, rank, ws, 2, 3) == list(sampler)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_samples": 0}, ValueError, "num_samples must be >= 1"),
    ({"world_size": 2.0}, TypeError, "world_size must be an int"),
    ({"rank": 2}, ValueError, r"rank must be an int in \[0, world_size=2\)"),
    ({"epoch": -1}, ValueError, "epoch must be >= 0"),
])
def test_reference_names_the_bad_argument(kwargs, error, match):
    args = {"num_samples": 6, "rank": 0, "world_size": 2, "epoch": 0, **kwargs}
    with pytest.raises(error, match=match):
        reference_shard_indices(**args)


def test_check_shard_indices_passes_the_solution(capsys):
    assert check_shard_indices(_shard)
    assert "✅ shard_indices" in capsys.readouterr().out
    # a tensor is fine too
    assert check_shard_indices(lambda *a, **k: torch.tensor(_shard(*a, **k)))


def test_check_shard_indices_fails_the_stub():
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_shard_indices(_stub)


@pytest.mark.parametrize("mistake, hint", [
    ("no_shuffle", "not shuffled"),
    ("no_epoch", r"same order every epoch.*seed \+ epoch"),
    ("epoch_only", r"the seed is ignored"),
    ("contiguous", r"contiguous block.*r, r \+ N"),
    ("no_padding", r"unequal lengths.*pad the shuffled list"),
    ("drop_last", r"samples were dropped.*drop_last=False"),
])
def test_check_shard_indices_names_the_mistake(mistake, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_shard_indices(lambda *a, **k: _shard(*a, **k, mistake=mistake))


@pytest.mark.parametrize("answer, hint", [
    (lambda *a, **k: None, "forget to `return`"),
    (lambda *a, **k: [float(i) for i in _shard(*a, **k)], "list of ints"),
    (lambda *a, **k: 3, "return a list of ints, got int"),
    (lambda *a, **k: list(reversed(_shard(*a, **k))), r"should be \[.*DistributedSampler's"),
])
def test_check_shard_indices_other_wrong_answers(answer, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_shard_indices(answer)


# ----------------------------------------------------------------------------- train_rank


def _train_rank(*, set_epoch=True, save_on="rank0", sampler="distributed", shuffle=True,
                epoch_of=lambda epoch, rank: epoch):
    """A rank function as a student writes it, correct by default, with one mistake at will."""

    def train_rank(rank, world_size, dataset, num_epochs, out_dir):
        torch.manual_seed(0)
        model = nn.Linear(dataset[0][0].numel(), 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        if sampler == "distributed":
            s = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                   shuffle=shuffle, seed=0)
            loader = DataLoader(dataset, batch_size=2, sampler=s)
        elif sampler == "same_rank":  # every rank passes rank=0
            s = DistributedSampler(dataset, num_replicas=world_size, rank=0, seed=0)
            loader = DataLoader(dataset, batch_size=2, sampler=s)
        else:
            s = None
            loader = DataLoader(dataset, batch_size=2, shuffle=True)
        for epoch in range(num_epochs):
            if set_epoch and s is not None:
                s.set_epoch(epoch_of(epoch, rank))
            for X, y in loader:
                optimizer.zero_grad()
                F.cross_entropy(model(X.flatten(1)), y).backward()
                optimizer.step()
        if save_on == "every" or (save_on == "rank0" and rank == 0):
            torch.save(model.state_dict(), Path(out_dir) / "model.pt")
        elif save_on == "module" and rank == 0:
            torch.save(model, Path(out_dir) / "model.pt")

    return train_rank


def test_check_train_rank_passes_the_solution(capsys):
    assert check_train_rank(_train_rank())
    assert "✅ train_rank" in capsys.readouterr().out


def test_check_train_rank_fails_the_stub():
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_train_rank(_stub)


def test_the_lessons_buggy_script_gets_the_set_epoch_hint_first():
    # Lesson 09's buggy function forgets set_epoch and saves on every rank.
    with pytest.raises(CheckFailed, match=r"same order every epoch.*set_epoch\(epoch\)"):
        check_train_rank(_train_rank(set_epoch=False, save_on="every"))


@pytest.mark.parametrize("mistake, hint", [
    ({"save_on": "every"}, r"rank 1 also wrote \['model.pt'\].*only on rank 0"),
    ({"save_on": "nobody"}, "rank 0 did not write model.pt"),
    ({"save_on": "module"}, "save model.state_dict\\(\\), not the model object"),
    ({"sampler": "loader_shuffle"}, r"loaded all 12 samples.*DistributedSampler"),
    ({"sampler": "same_rank"}, r"shards overlap.*its own rank"),
    ({"epoch_of": lambda epoch, rank: epoch + rank}, r"shards overlap.*same epoch number"),
    ({"shuffle": False}, "in index order: .*shuffle=True"),
    ({"set_epoch": False}, r"same order every epoch on rank 1"),
    ({"epoch_of": lambda epoch, rank: epoch // 2}, r"same order in epochs 0 and 1 on rank 1"),
])
def test_check_train_rank_names_the_mistake(mistake, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_train_rank(_train_rank(**mistake))


def test_check_train_rank_reports_the_students_error_and_bad_arguments():
    def crashes(rank, world_size, dataset, num_epochs, out_dir):
        raise KeyError("oops")

    with pytest.raises(CheckFailed, match="raised KeyError"):
        check_train_rank(crashes)
    with pytest.raises(ValueError, match="num_samples must be even"):
        check_train_rank(_train_rank(), num_samples=7)
    with pytest.raises(ValueError, match="num_epochs must be an int >= 2"):
        check_train_rank(_train_rank(), num_epochs=1)
