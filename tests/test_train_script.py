"""Tests for ``python -m lesson_utils.train_cli``: config validation, the sharding that makes
2 processes x batch b equal 1 process x batch 2b, and real ``torchrun`` runs on the CPU (gloo):
equal weights, files written by rank 0 only, a failing rank that stops the run instead of
hanging it, and bad configs refused before any process group starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lesson_utils import train_cli as train
from lesson_utils.checkpoints import load_checkpoint
from lesson_utils.train_cli import (
    ConfigError,
    DistributedContext,
    TrainConfig,
    _ShardSampler,  # private, tested directly
    config_from_dict,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
TIMEOUT_S = 180  # far above a healthy run (~10 s): reaching it means a hang

# A tiny, exact setup: 120 Shapes images -> 96 train / 24 validation (stratified), an MLP (no
# BatchNorm) in float64. 96 is a multiple of the global batch 32, so every step is full on every
# rank, the condition for DDP to equal the big batch.
TINY = ["model=mlp", "hidden=16", "num_samples=120", "image_size=16", "dtype=float64",
        "num_epochs=2", "lr=0.1", "progress=false"]


# --------------------------------------------------------------------------- helpers


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                        train.FAULT_ENV)}
    env["OMP_NUM_THREADS"] = "1"  # two ranks on a small CPU: no thread oversubscription
    env["LESSON_OFFLINE_GUARD"] = "1"  # children import lesson_utils: loopback only
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _launch(args: list[str], cwd: Path, env: dict[str, str],
            timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run a command in its own process group; on timeout kill the whole group and fail."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(args[:4])}... hung for more than {timeout} s\n{err[-3000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _torchrun(nproc: int) -> list[str]:
    launcher = [str(TORCHRUN)] if TORCHRUN.exists() else [sys.executable, "-m",
                                                          "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc_per_node={nproc}", "-m", "lesson_utils.train_cli"]


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path, map_location="cpu")["model"]


# An audit hook loaded into every child through sitecustomize: each process logs the files it
# opens for writing, renames, creates or deletes under the watched folder. It sees writes made
# from Python (all of this project's, torch.save included, which goes through a BytesIO and
# atomic_write_bytes), not writes by C++ code.
AUDIT_SITECUSTOMIZE = textwrap.dedent("""
    import os, sys
    _watch, _logs = os.environ.get("AUDIT_WATCH_DIR"), os.environ.get("AUDIT_LOG_DIR")
    if _watch and _logs:
        _tag = "rank" + os.environ["RANK"] if "RANK" in os.environ else "pid%d" % os.getpid()
        _log = open(os.path.join(_logs, _tag + ".log"), "a", buffering=1)
        _watch = os.path.realpath(_watch)
        _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

        def _under(path):
            try:
                path = os.fsdecode(path)
            except TypeError:
                return False  # a file descriptor
            path = os.path.realpath(path)
            return path == _watch or path.startswith(_watch + os.sep)

        def _hook(event, args):
            if event == "open":
                path, mode, flags = args[0], args[1], args[2]
                writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & _WRITE)
                paths = [path] if writes else []
            elif event in ("os.rename", "os.link", "os.symlink"):
                paths = [args[0], args[1]]
            elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.chmod", "os.truncate"):
                paths = [args[0]]
            else:
                return
            for p in paths:
                if _under(p):
                    _log.write(event + " " + os.path.basename(os.fsdecode(p)) + "\\n")

        sys.addaudithook(_hook)
""")


# --------------------------------------------------------------------------- config


def test_defaults_are_valid_and_json_ready():
    cfg = TrainConfig()
    assert json.loads(json.dumps(cfg.to_dict()))["widths"] == [16, 32, 64]
    assert cfg.global_batch_size(world_size=2) == 2 * cfg.batch_size


def test_toml_and_json_files_and_overrides(tmp_path):
    (tmp_path / "a.toml").write_text('model = "mlp"\nlr = 0.2\nwidths = [8, 16, 32]\n'
                                     '[scheduler_kwargs]\nstep_size = 2\n')
    toml_cfg = load_config(tmp_path / "a.toml", ["scheduler=step", "lr=0.3"])
    assert (toml_cfg.model, toml_cfg.lr, toml_cfg.widths) == ("mlp", 0.3, (8, 16, 32))
    assert toml_cfg.scheduler_kwargs == {"step_size": 2}
    (tmp_path / "b.json").write_text(json.dumps({"model": "mlp", "max_grad_norm": 1.0}))
    json_cfg = load_config(tmp_path / "b.json", ["max_grad_norm=null", "output_dir=runs/x"])
    assert json_cfg.max_grad_norm is None and json_cfg.output_dir == "runs/x"


@pytest.mark.parametrize("values, key", [
    ({"lr": -1}, "lr"),
    ({"lr": "fast"}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"num_epochs": 2.5}, "num_epochs"),
    ({"amp": "yes"}, "amp"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"loss": "hinge"}, "loss"),
    ({"dataset": "no/such/folder"}, "dataset"),
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"widths": [8, 16]}, "widths"),
    ({"dtype": "float16"}, "dtype"),
    ({"scheduler": "cosinus"}, "scheduler"),
    ({"scheduler": "step", "scheduler_kwargs": {"step": 2}}, "scheduler_kwargs"),
    ({"scheduler": "cosine", "warmup_epochs": 5, "num_epochs": 5}, "warmup_epochs"),
    ({"warmup_epochs": 1}, "warmup_epochs"),
    ({"amp": True, "dtype": "float64"}, "amp"),
    ({"max_grad_norm": 0}, "max_grad_norm"),
    ({"patience": 0}, "patience"),
])
def test_bad_values_name_the_key(values, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        config_from_dict(values)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_sync_batchnorm_and_cuda_are_refused_without_cuda():
    with pytest.raises(ConfigError, match="'sync_batchnorm'.*CUDA"):
        config_from_dict({"sync_batchnorm": True})
    with pytest.raises(ConfigError, match="'device'"):
        config_from_dict({"device": "cuda"})


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="unknown config key 'epochs'.*'num_epochs'"):
        config_from_dict({"epochs": 3})


def test_unknown_model_lists_the_builtin_ones():
    with pytest.raises(ConfigError, match="'model'.*'tinyresnet'.*resnet18"):
        config_from_dict({"model": "resnet1800"})


@pytest.mark.parametrize("item", ["lr", "=3"])
def test_malformed_override(item):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, [item])


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "c.yaml").write_text("model: mlp\n")
    with pytest.raises(ConfigError, match=r"\.toml or \.json"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.toml").write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "d.toml")


def test_config_is_frozen():
    cfg = TrainConfig()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]


def test_main_reports_a_bad_config_with_status_2(capsys):
    assert train.main(["--set", "optimizer=rmsprop"]) == 2
    assert "'optimizer'" in capsys.readouterr().err


def test_print_config(capsys):
    assert train.main(["--set", "model=mlp", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "mlp"


@pytest.mark.parametrize("env, match", [
    ({"RANK": "0"}, "WORLD_SIZE"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK < WORLD_SIZE"),
])
def test_bad_launcher_variables(env, match):
    with pytest.raises(ConfigError, match=match):
        DistributedContext.from_environ(env)


# --------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("length, world", [(10, 2), (7, 3), (2, 2), (5, 1)])
def test_shard_sampler_covers_each_index_once(length, world):
    shards = [list(_ShardSampler(length, num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(length))


def test_ranks_batches_are_the_single_process_batch_cut_in_two():
    """Why the script uses DistributedSampler even without torchrun: with one replica it yields
    the same permutation, so step k of 1 process x batch 2b holds exactly the samples of
    step k of ranks 0 and 1 x batch b."""
    data = TensorDataset(torch.arange(96), torch.zeros(96))
    b = 16
    for epoch in (1, 2):
        single = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
        single.set_epoch(epoch)
        big = [x.tolist() for x, _ in DataLoader(data, batch_size=2 * b, sampler=single)]
        per_rank = []
        for rank in (0, 1):
            sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3)
            sampler.set_epoch(epoch)
            per_rank.append([x.tolist() for x, _ in DataLoader(data, batch_size=b,
                                                                 sampler=sampler)])
        assert len(big) == len(per_rank[0]) == len(per_rank[1]) == 3
        for k, batch in enumerate(big):
            assert sorted(batch) == sorted(per_rank[0][k] + per_rank[1][k])
    assert big != sorted(big)  # shuffled


# --------------------------------------------------------------------------- in-process runs


def test_single_process_run_writes_checkpoints_metrics_and_a_summary(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", train.FAULT_ENV):
        monkeypatch.delenv(var, raising=False)
    assert train.main(_sets([*TINY, "batch_size=32", "output_dir=out", "device=cpu"])) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("train: mlp on shapes | 1 process (no process group, cpu)")
    assert line.endswith("out/metrics.json")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["world_size"] == 1 and metrics["epochs_run"] == 2
    assert (metrics["num_train_samples"], metrics["num_val_samples"]) == (96, 24)
    assert [r["epoch"] for r in metrics["history"]] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "best.pt", "last.pt", "metrics.json"]
    assert all(v.dtype == torch.float64 for v in _weights(tmp_path / "out" / "last.pt").values())


def test_resume_continues_to_the_same_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", train.FAULT_ENV):
        monkeypatch.delenv(var, raising=False)
    # T_max fixed: the interrupted run must follow the 2-epoch schedule for its first epoch.
    base = [*TINY, "batch_size=32", "device=cpu", "scheduler=cosine",
            'scheduler_kwargs={"T_max": 2}']
    train.run(load_config(None, [*base, "output_dir=straight"]))
    train.run(load_config(None, [*base, "output_dir=split", "num_epochs=1"]))
    summary = train.run(load_config(None, [*base, "output_dir=split", "resume=true"]))
    assert summary["resumed_from_epoch"] == 1 and summary["epochs_run"] == 1
    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0


def test_amp_and_channels_last_run_on_the_cpu(tmp_path, monkeypatch):
    """The GPU options take the same code path on the CPU (bfloat16 autocast, NHWC batches)."""
    monkeypatch.chdir(tmp_path)
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", train.FAULT_ENV):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config(None, ["model=tinyresnet", "widths=[4,8,8]", "num_samples=60",
                             "num_epochs=1", "batch_size=16", "amp=true", "channels_last=true",
                             "device=cpu", "progress=false", "output_dir=amp"])
    train_loader, _, _ = train.build_loaders(cfg, DistributedContext(), torch.device("cpu"))
    X, _ = next(iter(train_loader))
    assert X.is_contiguous(memory_format=torch.channels_last) and X.dtype == torch.float32
    summary = train.run(cfg)
    assert summary["epochs_run"] == 1 and torch.isfinite(torch.tensor(summary["train_loss"]))


def test_build_loaders_shards_train_and_validation_across_ranks():
    cfg = load_config(None, [*TINY, "batch_size=16"])
    cpu = torch.device("cpu")
    parts = [train.build_loaders(cfg, DistributedContext(rank=r, local_rank=r, world_size=2,
                                                         launched=True), cpu) for r in (0, 1)]
    train_idx = [list(p[0].sampler) for p in parts]
    val_idx = [list(p[1].sampler) for p in parts]
    assert sorted(train_idx[0] + train_idx[1]) == list(range(96))
    assert sorted(val_idx[0] + val_idx[1]) == list(range(24))
    assert all(p[2] == 6 for p in parts)
    X, y = next(iter(parts[0][0]))
    assert X.shape == (16, 3, 16, 16) and X.dtype == torch.float64 and y.dtype == torch.long


def test_too_small_validation_split_for_the_world_size():
    cfg = load_config(None, [*TINY, "num_samples=30", "val_fraction=0.2"])  # 6 to validate
    ctx = DistributedContext(rank=0, local_rank=0, world_size=8, launched=True)
    with pytest.raises(ValueError, match="fewer than the 8 processes"):
        train.build_loaders(cfg, ctx, torch.device("cpu"))


# --------------------------------------------------------------------------- torchrun


def test_two_processes_equal_one_process_with_the_doubled_batch(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(AUDIT_SITECUSTOMIZE)
    logs = tmp_path / "audit"
    logs.mkdir()
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(REPO)]),
               AUDIT_WATCH_DIR=str(tmp_path / "two"), AUDIT_LOG_DIR=str(logs))

    two = _launch([*_torchrun(2), *_sets([*TINY, "batch_size=16", "output_dir=two"])],
                  tmp_path, env)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _launch([sys.executable, "-m", "lesson_utils.train_cli",
                   *_sets([*TINY, "batch_size=32", "output_dir=one"])], tmp_path, _env())
    assert one.returncode == 0, one.stderr[-3000:]

    # The same weights, to float64 rounding.
    w1, w2 = _weights(tmp_path / "one" / "last.pt"), _weights(tmp_path / "two" / "last.pt")
    assert w1.keys() == w2.keys()
    diff = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    assert diff < 1e-12, diff
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert (m1["world_size"], m2["world_size"]) == (1, 2)
    assert m1["global_batch_size"] == m2["global_batch_size"] == 32
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert m2[key] == pytest.approx(m1[key], rel=1e-12, abs=1e-12), key
    assert m2["backend"] == "gloo"
    losses = [r["train_loss"] for r in m1["history"]]
    assert losses[1] < losses[0]  # it trained: equal weights are not just the initial ones

    # Rank 0 alone wrote files and printed the summary.
    audit = {p.stem: p.read_text().split("\n") for p in logs.glob("rank*.log")}
    assert set(audit) == {"rank0", "rank1"}, "the audit hook did not load in both ranks"
    written = {line.split()[-1] for line in audit["rank0"] if line}
    assert {"metrics.json", "last.pt", "best.pt"} <= written, written
    assert [line for line in audit["rank1"] if line] == []
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "best.pt", "last.pt", "metrics.json"]
    assert two.stdout.count("train: mlp on shapes | 2 processes (gloo, cpu)") == 1


@pytest.mark.parametrize("fault, message", [
    ("data_path", "missing-data-folder"),  # rank 1 cannot open its data: before DDP forms
    ("mid_epoch", "injected fault"),  # rank 1 dies while rank 0 waits in an all-reduce
])
def test_a_failing_rank_stops_the_whole_run(tmp_path, fault, message):
    result = _launch([*_torchrun(2), *_sets([*TINY, "batch_size=16", "output_dir=out"])],
                     tmp_path, _env(**{train.FAULT_ENV: f"{fault}:1"}))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_bad_config_fails_before_the_process_group(tmp_path):
    """RANK/WORLD_SIZE say 2 processes but only this one exists: if the script joined the
    process group before validating, it would wait for rank 1 until the timeout."""
    env = _env(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
               MASTER_PORT="29581")
    result = _launch([sys.executable, "-m", "lesson_utils.train_cli", "--set", "epochs=2"],
                     tmp_path, env, timeout=60)
    assert result.returncode == 2
    assert "unknown config key 'epochs' (did you mean 'num_epochs'?)" in result.stderr
