import os
import pickle

import pytest
import torch
from torch import nn

from lesson_utils.checkpoints import (
    CheckpointError,
    atomic_write_bytes,
    load_checkpoint,
    save_checkpoint,
)
from lesson_utils.models import TinyResNet


def test_round_trip_restores_model_optimizer_scheduler(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    path = save_checkpoint(tmp_path / "run" / "last.pt", model=model, optimizer=optimizer,
                           scheduler=scheduler, epoch=4, best_acc=0.75, history=[1.0, 0.5])

    model2 = nn.Linear(4, 2)
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=1, gamma=0.5)
    checkpoint = load_checkpoint(path, model=model2, optimizer=optimizer2, scheduler=scheduler2)
    assert checkpoint["epoch"] == 4 and checkpoint["extra"] == {"best_acc": 0.75,
                                                                "history": [1.0, 0.5]}
    assert torch.equal(model.weight, model2.weight)
    assert optimizer2.state_dict()["state"][0]["step"] == 1
    assert scheduler2.get_last_lr() == scheduler.get_last_lr() == [0.05]


def test_ddp_like_wrapper_is_unwrapped(tmp_path):
    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    inner = nn.Linear(2, 2)
    path = save_checkpoint(tmp_path / "w.pt", model=Wrapper(inner))
    assert set(load_checkpoint(path)["model"]) == {"weight", "bias"}
    load_checkpoint(path, model=Wrapper(nn.Linear(2, 2)))


def test_crash_mid_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "best.pt", model=nn.Linear(2, 2), epoch=1)
    original = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=nn.Linear(2, 2), epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temp file left behind


def test_atomic_write_creates_folders_with_normal_permissions(tmp_path):
    target = atomic_write_bytes(tmp_path / "a" / "b" / "c.csv", b"x,y\n")
    assert target.read_bytes() == b"x,y\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    target.chmod(0o640)
    atomic_write_bytes(target, b"z")
    assert target.stat().st_mode & 0o777 == 0o640


class Payload:
    def __reduce__(self):
        return (print, ("this should never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Payload()}, f)
    with pytest.raises(CheckpointError, match="would run code"):
        load_checkpoint(path)
    assert "should never run" not in capsys.readouterr().out


def test_wrong_architecture_lists_missing_and_unexpected_keys(tmp_path):
    path = save_checkpoint(tmp_path / "small.pt", model=TinyResNet(3, widths=(8, 16, 32)))
    with pytest.raises(CheckpointError, match="shape mismatch: backbone.0.weight"):
        load_checkpoint(path, model=TinyResNet(3))
    path2 = save_checkpoint(tmp_path / "lin.pt", model=nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(CheckpointError, match=r"missing keys \(2\): weight, bias.*unexpected keys"):
        load_checkpoint(path2, model=nn.Linear(2, 2))


def test_missing_corrupt_and_incomplete_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    path = save_checkpoint(tmp_path / "m.pt", model=nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path, optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1))


def test_bare_state_dict_is_accepted(tmp_path):
    model = nn.Linear(3, 1)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    clone = nn.Linear(3, 1)
    load_checkpoint(tmp_path / "sd.pt", model=clone)
    assert torch.equal(clone.weight, model.weight)


def test_save_rejects_non_module(tmp_path):
    with pytest.raises(TypeError, match="nn.Module"):
        save_checkpoint(tmp_path / "x.pt", model={"weight": torch.zeros(1)})
