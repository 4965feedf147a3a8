import random

import numpy as np
import pytest
import torch

from lesson_utils.repro import pick_device, seed_everything


def test_seed_everything_repeats_every_generator():
    seed_everything(123)
    first = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(123)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])


def test_returned_generator_is_independent_of_global_draws():
    g1 = seed_everything(5)
    torch.rand(100)  # other code drawing from the global generator
    a = torch.randperm(10, generator=g1)
    g2 = seed_everything(5)
    b = torch.randperm(10, generator=g2)
    assert torch.equal(a, b)


def test_deterministic_flag_is_applied():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    seed_everything(0)


@pytest.mark.parametrize("bad,exc,match", [(-1, ValueError, ">= 0"), (1.5, TypeError, "int"),
                                           ("3", TypeError, "int"), (True, TypeError, "int")])
def test_bad_seed(bad, exc, match):
    with pytest.raises(exc, match=match):
        seed_everything(bad)


def test_pick_device_defaults_to_cpu_here(monkeypatch):
    monkeypatch.delenv("LESSON_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device().type in ("cpu", "mps")


def test_pick_device_prefers_cuda(monkeypatch):
    monkeypatch.delenv("LESSON_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")


def test_pick_device_env_override(monkeypatch):
    monkeypatch.setenv("LESSON_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cpu")


def test_pick_device_env_rejects_unavailable_or_unknown(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LESSON_DEVICE", "cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device()
    monkeypatch.setenv("LESSON_DEVICE", "banana")
    with pytest.raises(ValueError, match="LESSON_DEVICE=.*must name a torch device"):
        pick_device()


def test_resolve_device_is_where_the_model_is():
    from lesson_utils.repro import resolve_device

    model = torch.nn.Linear(2, 2)
    assert resolve_device(None, model) == torch.device("cpu")
    assert resolve_device(None, torch.nn.ReLU()) == torch.device("cpu")      # no tensors
    assert resolve_device(torch.device("cpu"), model) == torch.device("cpu")
    with pytest.raises(TypeError, match="device must be a str, a torch.device or None, got int"):
        resolve_device(0)
    with pytest.raises(ValueError, match="must name a torch device"):
        resolve_device("gpu")
