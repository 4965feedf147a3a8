"""``python -m lesson_utils.train``: one training script for one process, several processes
(``torchrun``, DistributedDataParallel) and a GPU.

Usage::

    python -m lesson_utils.train --config run.toml --set num_epochs=3 --set lr=0.1
    torchrun --standalone --nproc_per_node=2 -m lesson_utils.train --config run.toml

The config is a flat TOML or JSON table of ``TrainConfig`` keys; each ``--set key=value`` overrides
one key (the value is read as JSON when it parses, else as a string: ``--set model=mlp``,
``--set widths=[8,16,32]``, ``--set max_grad_norm=null``). The whole config is validated before
any process group starts, so a typo fails at once, naming the key, on every rank.

What the script does on each process (``torchrun`` starts one per GPU or CPU slot):

1. Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (set by ``torchrun``); if present, join the
   process group: ``gloo`` on the CPU, ``nccl`` on CUDA (one GPU per process, ``cuda:LOCAL_RANK``).
2. Build the same dataset and split on every rank (everything is seeded), then shard it:
   ``DistributedSampler`` for training (``fit`` calls its ``set_epoch`` so every epoch has a new
   shuffle, the same on all ranks), an unpadded shard of the validation set for evaluation.
   Without ``torchrun`` the same sampler runs with one replica, so the order of samples is the
   same: 2 processes with ``batch_size=b`` see, step for step, the samples 1 process sees with
   ``batch_size=2b``. ``batch_size`` is therefore *per process*; the global batch is
   ``batch_size * world_size``.
3. Build the model (same seed, same initial weights; DDP also broadcasts rank 0's), optionally
   convert BatchNorm to ``SyncBatchNorm`` (CUDA only), wrap it in ``DistributedDataParallel``,
   and call ``lesson_utils.training.fit``, which all-reduces the epoch's loss and accuracy sums.
4. Rank 0 alone writes ``last.pt``/``best.pt`` (through ``fit``) and ``metrics.json`` (atomic),
   shows the progress bar and prints a one-line summary. Every rank leaves the process group
   (``destroy_process_group``) at exit, also on error; an error on any rank makes ``torchrun``
   stop the others and exit non-zero, with the traceback shown.

Testing hook: ``LESSON_TRAIN_FAULT=<kind>:<rank>`` injects a failure on one rank, to check that a
failing rank stops the whole run instead of hanging it. ``data_path`` makes that rank open a data
folder that does not exist; ``mid_epoch`` makes its training data raise during the second batch,
while the other ranks wait in a gradient all-reduce.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

__all__ = [
    "ConfigError",
    "DistributedContext",
    "ShardSampler",
    "TrainConfig",
    "build_model",
    "load_config",
    "main",
    "run",
]

FAULT_ENV = "LESSON_TRAIN_FAULT"
BUILTIN_DATASETS = ("shapes", "digits")
BUILTIN_MODELS = ("tinyresnet", "mlp", "course_backbone")
LOSSES = ("cross_entropy", "label_smoothing", "focal")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "float64")
FAULT_KINDS = ("data_path", "mid_epoch")


class ConfigError(ValueError):
    """A config key is unknown, missing or has a bad value; the message names the key."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; validated on construction.

    Example:
        >>> TrainConfig(model="mlp", num_epochs=2).global_batch_size(world_size=4)
        256
        >>> TrainConfig(lr=-1)
        Traceback (most recent call last):
        ...
        lesson_utils.train.ConfigError: config key 'lr' must be a positive finite number, got -1
    """

    # --- data
    dataset: str = "shapes"  # "shapes", "digits", or the path of an ImageFolder tree
    num_samples: int = 1200  # Shapes images generated (ignored by digits and folders)
    image_size: int = 16  # side in pixels; folder images are resized to it
    val_fraction: float = 0.2  # stratified validation split (same on every rank)
    num_workers: int = 0  # DataLoader worker processes per rank
    # --- model
    model: str = "tinyresnet"  # "tinyresnet", "mlp", "course_backbone" or a torchvision name
    widths: tuple[int, ...] = (16, 32, 64)  # TinyResNet's stem/stage widths
    hidden: int = 64  # the MLP's hidden units (an MLP has no BatchNorm: exact DDP equality)
    sync_batchnorm: bool = False  # BatchNorm -> SyncBatchNorm (batch statistics over all ranks)
    # --- loss and optimizer
    loss: str = "cross_entropy"  # "cross_entropy", "label_smoothing" or "focal"
    label_smoothing: float = 0.1  # epsilon of loss="label_smoothing"
    focal_gamma: float = 2.0  # gamma of loss="focal"
    optimizer: str = "sgd"  # "sgd" (with momentum), "adam" or "adamw"
    lr: float = 0.05  # learning rate for the global batch (no automatic scaling by world size)
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    scheduler: str = "none"  # "none" or a lesson_utils.schedules name ("cosine", "onecycle", ...)
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)  # overrides of the defaults
    warmup_epochs: int = 0  # linear warmup before the schedule (not for plateau/onecycle)
    # --- loop
    num_epochs: int = 5
    batch_size: int = 64  # per process: the global batch is batch_size * world size
    accumulation_steps: int = 1
    max_grad_norm: float | None = None  # clip the gradient norm (None: no clipping)
    patience: int | None = None  # early stopping on val_loss after this many bad epochs
    seed: int = 0  # seeds data, split, shuffling and initial weights, the same on every rank
    deterministic: bool = True  # deterministic kernels; false lets cuDNN autotune (faster on GPU)
    # --- device and precision
    device: str = "auto"  # "auto" (CUDA, else MPS, else CPU), "cpu", "cuda" or "mps"
    dtype: str = "float32"  # "float64" for exact comparisons (CPU only in practice)
    amp: bool = False  # autocast: bfloat16 on CPU, float16 + GradScaler on CUDA
    channels_last: bool = False  # NHWC memory layout for convolutions (tensor cores like it)
    # --- output
    output_dir: str = "runs/train"  # last.pt, best.pt and metrics.json (rank 0 only)
    resume: bool = False  # continue from output_dir/last.pt when it exists
    progress: bool = True  # progress bar on rank 0

    def __post_init__(self) -> None:
        _validate(self)

    def global_batch_size(self, world_size: int) -> int:
        """Samples per optimizer step over all processes."""
        return self.batch_size * self.accumulation_steps * world_size

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["widths"] = list(self.widths)
        return out


KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainConfig))


# --------------------------------------------------------------------------- validation


def _fail(key: str, expected: str, value: Any) -> None:
    raise ConfigError(f"config key {key!r} must be {expected}, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_at_least(cfg: TrainConfig, key: str, minimum: int) -> None:
    value = getattr(cfg, key)
    if not _is_int(value) or value < minimum:
        _fail(key, f"an int >= {minimum}", value)


def _choice(cfg: TrainConfig, key: str, choices: Sequence[str]) -> None:
    value = getattr(cfg, key)
    if value not in choices:
        raise ConfigError(f"config key {key!r} must be one of {list(choices)}, got {value!r}")


def _bool(cfg: TrainConfig, key: str) -> None:
    if not isinstance(getattr(cfg, key), bool):
        _fail(key, "true or false", getattr(cfg, key))


def _validate(cfg: TrainConfig) -> None:
    # Types and ranges first, so later checks can rely on them.
    if not isinstance(cfg.dataset, str) or not cfg.dataset:
        _fail("dataset", f"one of {list(BUILTIN_DATASETS)} or a folder path", cfg.dataset)
    for key, minimum in (("num_samples", 1), ("image_size", 8), ("num_workers", 0),
                         ("hidden", 1), ("warmup_epochs", 0), ("num_epochs", 1),
                         ("batch_size", 1), ("accumulation_steps", 1), ("seed", 0)):
        _int_at_least(cfg, key, minimum)
    for key in ("deterministic", "sync_batchnorm", "amp", "channels_last", "resume", "progress"):
        _bool(cfg, key)
    if not _is_number(cfg.val_fraction) or not 0 < cfg.val_fraction < 1:
        _fail("val_fraction", "a number in (0, 1)", cfg.val_fraction)
    if (not isinstance(cfg.widths, (tuple, list)) or len(cfg.widths) != 3
            or not all(_is_int(w) and w >= 1 for w in cfg.widths)):
        _fail("widths", "three positive ints, e.g. [16, 32, 64]", cfg.widths)
    object.__setattr__(cfg, "widths", tuple(cfg.widths))  # frozen: lists from JSON -> tuple
    for key in ("lr",):
        value = getattr(cfg, key)
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            _fail(key, "a positive finite number", value)
    for key in ("momentum", "weight_decay", "focal_gamma"):
        value = getattr(cfg, key)
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            _fail(key, "a finite number >= 0", value)
    if not _is_number(cfg.label_smoothing) or not 0 <= cfg.label_smoothing < 1:
        _fail("label_smoothing", "a number in [0, 1)", cfg.label_smoothing)
    if cfg.max_grad_norm is not None and (not _is_number(cfg.max_grad_norm)
                                          or not math.isfinite(cfg.max_grad_norm)
                                          or cfg.max_grad_norm <= 0):
        _fail("max_grad_norm", "a positive number or null", cfg.max_grad_norm)
    if cfg.patience is not None and (not _is_int(cfg.patience) or cfg.patience < 1):
        _fail("patience", "an int >= 1 or null", cfg.patience)
    if not isinstance(cfg.output_dir, str) or not cfg.output_dir:
        _fail("output_dir", "a non-empty path", cfg.output_dir)
    if not isinstance(cfg.scheduler_kwargs, Mapping):
        _fail("scheduler_kwargs", "a table of arguments, e.g. {\"step_size\": 2}",
              cfg.scheduler_kwargs)
    object.__setattr__(cfg, "scheduler_kwargs", dict(cfg.scheduler_kwargs))

    for key, choices in (("loss", LOSSES), ("optimizer", OPTIMIZERS), ("device", DEVICES),
                         ("dtype", DTYPES)):
        _choice(cfg, key, choices)
    if cfg.dataset not in BUILTIN_DATASETS and not Path(cfg.dataset).is_dir():
        raise ConfigError(f"config key 'dataset' must be one of {list(BUILTIN_DATASETS)} or an "
                          f"existing ImageFolder directory (one sub-folder per class), got "
                          f"{cfg.dataset!r}, which is not a directory")
    if cfg.model not in BUILTIN_MODELS:
        known = _torchvision_models()
        if cfg.model not in known:
            close = difflib.get_close_matches(str(cfg.model), [*BUILTIN_MODELS, *known], n=3)
            raise ConfigError(
                f"config key 'model' must be one of {list(BUILTIN_MODELS)} or a torchvision "
                f"classification model (e.g. 'resnet18'), got {cfg.model!r}"
                + (f"; did you mean {close}?" if close else ""))
    _validate_scheduler(cfg)
    if cfg.amp and cfg.dtype == "float64":
        raise ConfigError("config key 'amp' must be false with dtype='float64' (autocast lowers "
                          "float32 to bfloat16/float16; it never touches float64)")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' is 'cuda' but CUDA is not available here; use "
                          "'auto' or 'cpu'")
    if cfg.device == "mps" and not _mps_available():
        raise ConfigError("config key 'device' is 'mps' but MPS is not available here")
    if cfg.sync_batchnorm and not (cfg.device in ("auto", "cuda") and torch.cuda.is_available()):
        raise ConfigError("config key 'sync_batchnorm' needs CUDA: torch's SyncBatchNorm "
                          "refuses CPU tensors under a process group. On the CPU, use a model "
                          "without BatchNorm (model='mlp') or set sync_batchnorm=false")


def _validate_scheduler(cfg: TrainConfig) -> None:
    from lesson_utils.schedules import SCHEDULE_NAMES, build_scheduler

    if cfg.scheduler == "none":
        if cfg.scheduler_kwargs or cfg.warmup_epochs:
            raise ConfigError("config keys 'scheduler_kwargs' and 'warmup_epochs' need a "
                              "'scheduler'; it is 'none'")
        return
    if cfg.scheduler not in SCHEDULE_NAMES:
        raise ConfigError(f"config key 'scheduler' must be 'none' or one of "
                          f"{list(SCHEDULE_NAMES)}, got {cfg.scheduler!r}")
    if cfg.warmup_epochs >= cfg.num_epochs:
        raise ConfigError(f"config key 'warmup_epochs' must be < num_epochs "
                          f"({cfg.num_epochs}), got {cfg.warmup_epochs}")
    # Build it once on a dummy optimizer: a missing or unknown argument fails now, not on rank 3
    # after the process group formed.
    dummy = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    try:
        build_scheduler(cfg.scheduler, dummy, warmup_epochs=cfg.warmup_epochs,
                        **scheduler_arguments(cfg, steps_per_epoch=1))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key 'scheduler_kwargs' does not fit scheduler "
                          f"{cfg.scheduler!r}: {exc}") from exc


def scheduler_arguments(cfg: TrainConfig, *, steps_per_epoch: int) -> dict[str, Any]:
    """Sensible defaults for ``cfg.scheduler``, updated with ``cfg.scheduler_kwargs``.

    Example:
        >>> scheduler_arguments(TrainConfig(scheduler="cosine", num_epochs=10), steps_per_epoch=5)
        {'T_max': 10}
    """
    epochs_after_warmup = max(1, cfg.num_epochs - cfg.warmup_epochs)
    defaults: dict[str, dict[str, Any]] = {
        "cosine": {"T_max": epochs_after_warmup},
        "step": {"step_size": max(1, epochs_after_warmup // 3)},
        "multistep": {"milestones": sorted({max(1, epochs_after_warmup // 2),
                                            max(1, 3 * epochs_after_warmup // 4)})},
        "exponential": {"gamma": 0.9},
        "cosine_warm_restarts": {"T_0": max(1, epochs_after_warmup // 3)},
        "onecycle": {"max_lr": cfg.lr, "epochs": cfg.num_epochs,
                     "steps_per_epoch": steps_per_epoch},
    }
    return {**defaults.get(cfg.scheduler, {}), **cfg.scheduler_kwargs}


def _torchvision_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# --------------------------------------------------------------------------- reading configs


def _read_file(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path.name} is not valid JSON: {exc}") from exc
    elif path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ModuleNotFoundError as exc:
                raise ConfigError("reading TOML needs Python >= 3.11 (tomllib) or the 'tomli' "
                                  "package; or write the config as JSON") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path.name} is not valid TOML: {exc}") from exc
    else:
        raise ConfigError(f"config file must end in .toml or .json, got {path.name!r}")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path.name} must hold a table of keys, got "
                          f"{type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string: --set model=mlp, --set output_dir=runs/a
    return key, value


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """A ``TrainConfig`` from plain values; unknown keys are refused with a suggestion.

    Example:
        >>> config_from_dict({"model": "mlp", "epochs": 3})
        Traceback (most recent call last):
        ...
        lesson_utils.train.ConfigError: unknown config key 'epochs' (did you mean 'num_epochs'?); valid keys: ...
    """
    for key in values:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(KEYS)}")
    return TrainConfig(**dict(values))


def load_config(path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a TOML/JSON config (optional), apply ``key=value`` overrides, validate.

    Args:
        path: a ``.toml`` or ``.json`` file of ``TrainConfig`` keys, or ``None`` for defaults.
        overrides: ``"key=value"`` strings; values are parsed as JSON when they can be.

    Returns:
        The validated, frozen ``TrainConfig``.

    Raises:
        ConfigError: the message names the offending key.

    Example:
        >>> cfg = load_config(None, ["model=mlp", "lr=0.1", "widths=[8, 16, 32]"])
        >>> cfg.model, cfg.lr, cfg.widths
        ('mlp', 0.1, (8, 16, 32))
    """
    values: dict[str, Any] = _read_file(path) if path is not None else {}
    for item in overrides:
        key, value = _parse_override(item)
        values[key] = value
    return config_from_dict(values)


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the run, read from the variables ``torchrun`` sets.

    Example:
        >>> DistributedContext.from_environ({}).world_size
        1
        >>> DistributedContext.from_environ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
        DistributedContext(rank=1, local_rank=1, world_size=2, launched=True)
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun (or with RANK/WORLD_SIZE set by hand)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistributedContext:
        env = os.environ if environ is None else environ
        if "RANK" not in env and "WORLD_SIZE" not in env:
            return cls()
        try:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
            local = int(env.get("LOCAL_RANK", rank))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"RANK and WORLD_SIZE must both be set to ints (torchrun sets "
                              f"them), got RANK={env.get('RANK')!r}, "
                              f"WORLD_SIZE={env.get('WORLD_SIZE')!r}") from exc
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
        return cls(rank=rank, local_rank=local, world_size=world, launched=True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(cfg: TrainConfig, ctx: DistributedContext) -> torch.device:
    """The device of this process: one GPU per process under ``torchrun``.

    Example:
        >>> resolve_device(TrainConfig(device="cpu"), DistributedContext())
        device(type='cpu')
    """
    if cfg.device == "auto":
        if ctx.launched:  # DDP runs on CUDA (nccl) or the CPU (gloo), not on MPS
            kind = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            from lesson_utils.repro import pick_device

            return pick_device()
    else:
        kind = cfg.device
    if kind == "mps" and ctx.launched:
        raise ConfigError("config key 'device' is 'mps', which has no DDP backend; use 'cpu' "
                          "under torchrun")
    if kind == "cuda":
        count = torch.cuda.device_count()
        if ctx.local_rank >= count:
            raise ConfigError(f"LOCAL_RANK={ctx.local_rank} but only {count} CUDA device(s): "
                              f"start at most {count} processes per node (--nproc_per_node)")
        return torch.device("cuda", ctx.local_rank)
    return torch.device(kind)


def _fault_for(ctx: DistributedContext) -> str | None:
    spec = os.environ.get(FAULT_ENV, "").strip()
    if not spec:
        return None
    kind, _, rank = spec.partition(":")
    if kind not in FAULT_KINDS or not rank.strip().isdigit():
        raise ConfigError(f"{FAULT_ENV} must be '<kind>:<rank>' with kind in {list(FAULT_KINDS)}, "
                          f"got {spec!r}")
    return kind if int(rank) == ctx.rank else None


# --------------------------------------------------------------------------- data


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of a dataset, without padding.

    ``DistributedSampler`` pads the last shard with repeated samples so every rank has as many;
    right for training (the ranks must take the same number of steps), wrong for evaluation,
    where a repeated sample would count twice in the all-reduced sums.

    Example:
        >>> list(ShardSampler(5, num_replicas=2, rank=1))
        [1, 3]
    """

    def __init__(self, length: int, *, num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        self.indices = list(range(rank, length, num_replicas))

    def __iter__(self):  # type: ignore[override]
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _Collate:
    """Stack a batch, cast the images to the run's dtype and layout (picklable for workers)."""

    def __init__(self, dtype: torch.dtype, channels_last: bool) -> None:
        self.dtype = dtype
        self.channels_last = channels_last

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        X = torch.stack([torch.as_tensor(x) for x, _ in batch]).to(self.dtype)  # (N, C, H, W)
        if self.channels_last and X.ndim == 4:
            X = X.contiguous(memory_format=torch.channels_last)
        y = torch.tensor([int(t) for _, t in batch], dtype=torch.long)  # (N,)
        return X, y


class _FailingDataset(Dataset):
    """Test hook: serves ``limit`` items, then raises like a corrupt file would."""

    def __init__(self, dataset: Dataset, limit: int) -> None:
        self.dataset, self.limit, self.served = dataset, limit, 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        self.served += 1
        if self.served > self.limit:
            raise OSError(f"injected fault ({FAULT_ENV}): sample {index} could not be read")
        return self.dataset[index]


def _base_dataset(cfg: TrainConfig, path_override: str | None = None) -> Dataset:
    from lesson_utils.data import DigitsDataset, ShapesDataset, load_image_folder

    if path_override is None and cfg.dataset == "shapes":
        return ShapesDataset(cfg.num_samples, image_size=cfg.image_size, seed=cfg.seed)
    if path_override is None and cfg.dataset == "digits":
        return DigitsDataset(image_size=cfg.image_size)
    from torchvision import transforms

    resize = transforms.Compose([transforms.Resize((cfg.image_size, cfg.image_size)),
                                 transforms.ToTensor()])
    return load_image_folder(path_override or cfg.dataset, transform=resize)


def build_loaders(cfg: TrainConfig, ctx: DistributedContext, device: torch.device,
                  fault: str | None = None) -> tuple[DataLoader, DataLoader, int]:
    """Train/validation loaders of this rank's shard, and the number of classes.

    Every rank builds the same dataset and the same stratified split (``make_loaders`` with the
    run's seed); the samplers then pick this rank's share.
    """
    from lesson_utils.data import make_loaders, tensors_from

    dataset = _base_dataset(cfg, "missing-data-folder" if fault == "data_path" else None)
    classes = list(dataset.classes)  # type: ignore[attr-defined]
    split_train, split_val = make_loaders(dataset, val_fraction=cfg.val_fraction,
                                          batch_size=cfg.batch_size, seed=cfg.seed)
    train_set, val_set = split_train.dataset, split_val.dataset
    if cfg.dataset in BUILTIN_DATASETS:
        # Generated or bundled data is small: draw it once instead of once per epoch.
        train_set = torch.utils.data.TensorDataset(*tensors_from(train_set))
        val_set = torch.utils.data.TensorDataset(*tensors_from(val_set))
    if len(val_set) < ctx.world_size:
        raise ValueError(f"the validation split has {len(val_set)} samples, fewer than the "
                         f"{ctx.world_size} processes: raise val_fraction or num_samples")
    if fault == "mid_epoch":
        train_set = _FailingDataset(train_set, limit=cfg.batch_size)
    # The same sampler with one replica when not distributed: the sample order then does not
    # depend on the number of processes, only on how the global batch is cut.
    train_sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank,
                                       shuffle=True, seed=cfg.seed, drop_last=False)
    val_sampler = ShardSampler(len(val_set), num_replicas=ctx.world_size, rank=ctx.rank)
    common: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "num_workers": cfg.num_workers,
        "pin_memory": device.type == "cuda",  # page-locked host memory: async copies to the GPU
        "collate_fn": _Collate(getattr(torch, cfg.dtype), cfg.channels_last),
        "persistent_workers": cfg.num_workers > 0,
    }
    train = DataLoader(train_set, sampler=train_sampler, **common)
    val = DataLoader(val_set, sampler=val_sampler, **common)
    return train, val, len(classes)


# --------------------------------------------------------------------------- model and loss


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The model named by ``cfg.model``, in ``cfg.dtype``, on the CPU.

    ``mlp`` is ``Flatten -> Linear -> ReLU -> Linear``: no BatchNorm, so its DDP training equals
    single-process training with the global batch exactly (up to float rounding).

    Example:
        >>> build_model(TrainConfig(model="mlp", hidden=8, image_size=16), 3)
        Sequential(
          (0): Flatten(start_dim=1, end_dim=-1)
          (1): Linear(in_features=768, out_features=8, bias=True)
          (2): ReLU()
          (3): Linear(in_features=8, out_features=3, bias=True)
        )
    """
    if cfg.model == "mlp":
        model: nn.Module = nn.Sequential(
            nn.Flatten(),  # (N, 3*H*W)
            nn.Linear(3 * cfg.image_size * cfg.image_size, cfg.hidden),
            nn.ReLU(),
            nn.Linear(cfg.hidden, num_classes),  # (N, num_classes)
        )
    elif cfg.model == "tinyresnet":
        from lesson_utils.models import TinyResNet

        model = TinyResNet(num_classes, widths=cfg.widths)
    elif cfg.model == "course_backbone":
        from lesson_utils.models import load_course_backbone

        model = load_course_backbone(num_classes)
    else:
        from lesson_utils.models import load_torchvision_model

        model = load_torchvision_model(cfg.model, weights=None, num_classes=num_classes)
    return model.to(getattr(torch, cfg.dtype))


def build_criterion(cfg: TrainConfig) -> nn.Module:
    """The loss named by ``cfg.loss``.

    Example:
        >>> build_criterion(TrainConfig(loss="focal", focal_gamma=1.0))
        FocalLoss(gamma=1.0, alpha=None, reduction='mean')
    """
    if cfg.loss == "cross_entropy":
        return nn.CrossEntropyLoss()
    if cfg.loss == "label_smoothing":
        from lesson_utils.losses import LabelSmoothingCrossEntropy

        return LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing)
    if cfg.loss == "focal":
        from lesson_utils.losses import FocalLoss

        return FocalLoss(gamma=cfg.focal_gamma)
    raise ConfigError(f"config key 'loss' must be one of {list(LOSSES)}, got {cfg.loss!r}")


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` over ``model``'s trainable parameters.

    Example:
        >>> type(build_optimizer(TrainConfig(optimizer="adamw"), nn.Linear(2, 2))).__name__
        'AdamW'
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"config key 'optimizer' must be one of {list(OPTIMIZERS)}, got "
                      f"{cfg.optimizer!r}")


# --------------------------------------------------------------------------- the run


def run(cfg: TrainConfig, ctx: DistributedContext | None = None) -> dict[str, Any]:
    """Train as ``cfg`` says on this process; join/leave the process group when launched.

    Returns:
        The summary that rank 0 writes to ``metrics.json`` (every rank returns it).
    """
    from lesson_utils.checkpoints import atomic_write_bytes
    from lesson_utils.models import count_parameters
    from lesson_utils.repro import seed_everything
    from lesson_utils.schedules import build_scheduler
    from lesson_utils.training import EarlyStopping, fit

    started = time.perf_counter()
    ctx = DistributedContext.from_environ() if ctx is None else ctx
    device = resolve_device(cfg, ctx)
    fault = _fault_for(ctx)
    backend = None
    if ctx.launched:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size,
                                device_id=device if device.type == "cuda" else None)
    try:
        # The same seed on every rank: the same split and the same initial weights.
        seed_everything(cfg.seed, deterministic=cfg.deterministic)
        train_loader, val_loader, num_classes = build_loaders(cfg, ctx, device, fault)
        model = build_model(cfg, num_classes).to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        num_params = count_parameters(model)
        net: nn.Module = model
        if ctx.launched:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = build_optimizer(cfg, net)
        scheduler = None
        if cfg.scheduler != "none":
            steps = math.ceil(len(train_loader) / cfg.accumulation_steps)
            scheduler = build_scheduler(cfg.scheduler, optimizer,
                                        warmup_epochs=cfg.warmup_epochs,
                                        **scheduler_arguments(cfg, steps_per_epoch=steps))
        out = Path(cfg.output_dir)
        resume = out / "last.pt" if cfg.resume and (out / "last.pt").is_file() else None
        resumed_from = None
        if resume is not None:
            from lesson_utils.checkpoints import load_checkpoint

            resumed_from = load_checkpoint(resume, map_location="cpu")["epoch"]
        fit_started = time.perf_counter()
        history = fit(
            net, train_loader, val_loader, build_criterion(cfg).to(device), optimizer,
            num_epochs=cfg.num_epochs, scheduler=scheduler, device=device,
            accumulation_steps=cfg.accumulation_steps, max_grad_norm=cfg.max_grad_norm,
            amp=cfg.amp,
            early_stopping=EarlyStopping(patience=cfg.patience) if cfg.patience else None,
            checkpoint_dir=out if ctx.is_main else None,  # rank 0 alone writes files
            resume=resume, progress=cfg.progress and ctx.is_main)
        train_s = time.perf_counter() - fit_started
        last = history[-1]
        summary: dict[str, Any] = {
            "world_size": ctx.world_size,
            "backend": backend,
            "device": device.type,
            "global_batch_size": cfg.global_batch_size(ctx.world_size),
            "num_params": num_params,
            "num_train_samples": len(train_loader.dataset),  # type: ignore[arg-type]
            "num_val_samples": len(val_loader.dataset),  # type: ignore[arg-type]
            "epochs_run": len(history) - (resumed_from or 0),
            "resumed_from_epoch": resumed_from,
            "train_loss": last["train_loss"],
            "train_accuracy": last.get("train_accuracy"),
            "val_loss": last["val_loss"],
            "val_accuracy": last.get("val_accuracy"),
            "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early,
            "train_s": train_s,
            "total_s": time.perf_counter() - started,
            "history": history.records,
            "config": cfg.to_dict(),
            "torch_version": str(torch.__version__),
        }
        if ctx.is_main:
            atomic_write_bytes(out / "metrics.json",
                               (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
            print(summary_line(cfg, summary), flush=True)
        # Free what holds the process group (the DDP model, its optimizer) before the group is
        # destroyed: freed afterwards, gloo's threads can abort the process at exit.
        del net, model, optimizer, scheduler
        if dist.is_available() and dist.is_initialized():
            # Leave together: a rank that tears its process group down while another is still
            # writing can abort at exit inside gloo ("terminate called without an active
            # exception"; seen once in CI). Only on success: after an error, waiting here would
            # hang, and torchrun stops the other ranks instead.
            dist.barrier()
        return summary
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def summary_line(cfg: TrainConfig, summary: Mapping[str, Any]) -> str:
    """The one line the script prints at the end (rank 0).

    Example:
        >>> s = {"world_size": 2, "backend": "gloo", "device": "cpu", "global_batch_size": 64,
        ...      "epochs_run": 3, "train_loss": 1.23456, "val_loss": 1.3, "val_accuracy": 0.5,
        ...      "train_s": 2.51}
        >>> summary_line(TrainConfig(model="mlp", output_dir="runs/a"), s)
        'train: mlp on shapes | 2 processes (gloo, cpu), global batch 64 | 3 epochs in 2.5 s | train_loss 1.2346 val_loss 1.3000 val_accuracy 0.5000 | runs/a/metrics.json'
    """
    procs = summary["world_size"]
    where = (f"{procs} process{'es' if procs > 1 else ''} "
             f"({summary['backend'] or 'no process group'}, {summary['device']})")
    acc = summary.get("val_accuracy")
    acc_text = f" val_accuracy {acc:.4f}" if acc is not None else ""
    dataset = cfg.dataset if cfg.dataset in BUILTIN_DATASETS else Path(cfg.dataset).name
    return (f"train: {cfg.model} on {dataset} | {where}, global batch "
            f"{summary['global_batch_size']} | {summary['epochs_run']} "
            f"epoch{'s' if summary['epochs_run'] != 1 else ''} in "
            f"{summary['train_s']:.1f} s | train_loss {summary['train_loss']:.4f} val_loss "
            f"{summary['val_loss']:.4f}{acc_text} | {Path(cfg.output_dir) / 'metrics.json'}")


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lesson_utils.train",
        description="Train a model from a config; runs unchanged under torchrun (DDP).",
        epilog="Keys and defaults: python -m lesson_utils.train --print-config")
    parser.add_argument("--config", help="a .toml or .json file of config keys")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key (JSON value or bare string); repeatable")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as JSON and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for a bad config).

    Under ``torchrun`` the run goes through torchelastic's ``record``, which puts a failing
    rank's traceback into torchrun's final report ("Root Cause").
    """
    if os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import record

        return record(_main)(argv)
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        ctx = DistributedContext.from_environ()
        resolve_device(cfg, ctx)  # device errors, too, before any process group
        _fault_for(ctx)
    except ConfigError as exc:
        print(f"lesson_utils.train: bad config: {exc}", file=sys.stderr, flush=True)
        return 2
    if args.print_config:
        if ctx.is_main:
            print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    run(cfg, ctx)
    return 0


def _exit_worker(status: int) -> None:
    """End a successful ``torchrun`` worker without interpreter finalization.

    Everything the run writes is written and closed by now, and the process group is
    destroyed; but gloo's C++ threads can still abort the process while Python finalizes
    ("terminate called without an active exception"), turning a finished run into a failed
    one. ``os._exit`` skips that teardown. A plain ``python`` run exits normally.
    """
    if status == 0 and os.environ.get("TORCHELASTIC_RUN_ID") is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    sys.exit(status)


if __name__ == "__main__":
    _exit_worker(main())
