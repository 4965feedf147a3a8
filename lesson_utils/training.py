"""The training loop: one epoch, evaluation, and ``fit`` with what a real run needs.

``train_one_epoch`` is the loop of lesson 06 written once, carefully::

    model.train()
    for X, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(X), y)   # forward + loss
        loss.backward()                 # the loss's job: gradients
        optimizer.step()                # the optimizer's job: apply them

plus gradient accumulation, clipping, mixed precision and per-step schedulers. It stays as lean
as that hand-written loop: running sums are kept as tensors and read once per epoch, so there is
no extra host-device synchronisation per step (``benchmarks/bench_training.py`` measures it).

``fit`` runs epochs of ``train_one_epoch`` and ``evaluate`` and adds per-epoch or per-step
scheduling, early stopping, atomic ``best.pt``/``last.pt`` checkpoints, exact resume (model,
optimizer, scheduler, grad scaler, epoch, history and every RNG, the DataLoader's generator
included), a NaN/inf guard, a progress bar and callbacks. It runs unchanged on a model wrapped in
``DistributedDataParallel`` with a ``DistributedSampler``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lesson_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from lesson_utils.repro import pick_device
from lesson_utils.schedules import is_per_step

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "LiveLossPlot",
    "amp_dtype",
    "evaluate",
    "fit",
    "train_one_epoch",
]

Mode = Literal["min", "max"]
MetricFn = Callable[[torch.Tensor, torch.Tensor], Any]

# How often (in steps) the lazy NaN guard reads its flag on an asynchronous device (CUDA, MPS).
# On the CPU there is no queue to drain, so the check is made at every step for free.
_NONFINITE_CHECK_EVERY = 50
# Seconds between progress-bar postfix updates (each one reads the running loss: one sync).
_POSTFIX_SECONDS = 0.5
_FIT_STATE_VERSION = 1


# --------------------------------------------------------------------------- small helpers


def _unwrap(model: nn.Module) -> nn.Module:
    """The real model inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def _is_ddp(model: nn.Module) -> bool:
    return isinstance(model, nn.parallel.DistributedDataParallel)


def _dist_world_size() -> int:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _is_main_process() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@contextlib.contextmanager
def _modes_restored(model: nn.Module) -> Iterator[None]:
    """Remember every submodule's ``training`` flag and put each one back on exit.

    ``model.train(was_training)`` is not enough: a model can mix modes (a frozen BatchNorm stays
    in eval while the rest trains), and that mix must survive an evaluation.
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _check_module(name: str, value: Any) -> None:
    if not isinstance(value, nn.Module):
        raise TypeError(f"{name} must be an nn.Module, got {type(value).__name__}")


def _check_loader(name: str, loader: Any) -> None:
    if loader is None or isinstance(loader, (torch.Tensor, str, bytes)) or not isinstance(
            loader, Iterable):
        raise TypeError(f"{name} must be an iterable of (inputs, targets) batches such as a "
                        f"DataLoader, got {type(loader).__name__}")


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1, got {type(value).__name__} ({value!r})")
    if value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value}")
    return int(value)


def _check_max_grad_norm(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"max_grad_norm must be a positive number or None, got "
                        f"{type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"max_grad_norm must be a positive finite number or None, got {value}")
    return float(value)


def _check_criterion(criterion: Any) -> None:
    if not callable(criterion):
        raise TypeError(f"criterion must be callable (e.g. nn.CrossEntropyLoss()), got "
                        f"{type(criterion).__name__}")
    reduction = getattr(criterion, "reduction", "mean")
    if reduction != "mean":
        raise ValueError(
            f"criterion.reduction must be 'mean' (the loop weights each batch's mean loss by its "
            f"number of samples, for the epoch mean and for gradient accumulation), got "
            f"{reduction!r}")


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"each batch must be a pair (inputs, targets), got "
                    f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                 if isinstance(batch, (tuple, list)) else ""))


def _to(x: Any, device: torch.device) -> Any:
    return x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x


def _batch_size_of(targets: Any, inputs: Any) -> int:
    ref = targets if isinstance(targets, torch.Tensor) and targets.ndim > 0 else inputs
    return int(ref.shape[0]) if isinstance(ref, torch.Tensor) else len(ref)


def _is_classification(logits: torch.Tensor, targets: Any) -> bool:
    return (isinstance(targets, torch.Tensor) and logits.ndim == 2 and targets.ndim == 1
            and not targets.is_floating_point() and not targets.is_complex()
            and logits.shape[0] == targets.shape[0])


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def amp_dtype(device: str | torch.device) -> torch.dtype:
    """The low-precision dtype ``amp=True`` uses on ``device``.

    bfloat16 on the CPU (same exponent range as float32, so no loss scaling is needed), float16
    on CUDA and MPS (wider hardware support; ``fit`` pairs it with a ``GradScaler`` on CUDA).

    Example:
        >>> amp_dtype("cpu")
        torch.bfloat16
        >>> amp_dtype("cuda")
        torch.float16
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16
    if device.type in ("cuda", "mps"):
        return torch.float16
    raise ValueError(f"amp is supported on devices 'cpu', 'cuda' and 'mps', got {device.type!r}")


def _autocast(amp: bool, device: torch.device) -> contextlib.AbstractContextManager:
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))


def _needs_scaler(amp: bool, device: torch.device) -> bool:
    return amp and device.type == "cuda"


class _FiniteGuard:
    """Stops training at the first NaN/inf loss, naming the epoch and step.

    On the CPU the check costs nothing (no asynchronous queue), so it runs before every
    ``backward``: the bad batch never touches the weights. On CUDA/MPS, reading the loss at every
    step would stall the device, so the first bad step is recorded on the device and read every
    ``_NONFINITE_CHECK_EVERY`` steps and at the end of the epoch.
    """

    def __init__(self, device: torch.device, epoch: int) -> None:
        self.epoch = epoch
        self.eager = device.type == "cpu"
        self.first_bad = None if self.eager else torch.full((), -1, dtype=torch.int64,
                                                            device=device)
        self.pending = 0

    def _raise(self, step: int, what: str) -> None:
        raise FloatingPointError(
            f"the loss became {what} at epoch {self.epoch}, step {step}: training stopped. "
            f"Checkpoints already written are intact. Usual causes: a learning rate too high "
            f"(try 10x lower or max_grad_norm), log(0) or division by zero in a custom loss, "
            f"bad inputs (NaN in the data).")

    def update(self, loss: torch.Tensor, step: int) -> None:
        if self.eager:
            if not torch.isfinite(loss):
                self._raise(step, "NaN" if torch.isnan(loss) else "infinite")
            return
        bad = ~torch.isfinite(loss.detach())
        self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)
        self.pending += 1
        if self.pending >= _NONFINITE_CHECK_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.eager or self.pending == 0:
            return
        self.pending = 0
        step = int(self.first_bad)
        if step >= 0:
            self._raise(step, "NaN or infinite")


def _progress_bar(iterable: Any, *, enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def _all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if _dist_world_size() > 1:
        torch.distributed.all_reduce(values)
    return values


# --------------------------------------------------------------------------- one epoch


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    criterion: Callable[[torch.Tensor, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    device: str | torch.device = "cpu",
    accumulation_steps: int = 1,
    max_grad_norm: float | None = None,
    scheduler: Any | None = None,
    amp: bool = False,
    progress: bool | Any = False,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int = 1,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader`` and return its mean loss (and accuracy).

    Each step is ``zero_grad`` -> forward -> loss -> ``backward`` -> (clip) -> ``step``, with
    ``model`` in train mode. The model must already be on ``device``; batches are moved there.

    Gradient accumulation sums the gradients of ``accumulation_steps`` micro-batches before one
    optimizer step. Each micro-batch's mean loss is weighted by its share of the group's samples
    (``n_i / sum(n)``), so the update equals one step on the concatenated batch whenever that is
    mathematically possible (mean-reduced loss with the same normaliser in every micro-batch, no
    BatchNorm in train mode), and an incomplete last group (fewer or smaller micro-batches) is
    averaged over the samples it really has. Under ``DistributedDataParallel`` the gradient
    all-reduce runs only on a group's last micro-batch (``no_sync``).

    Args:
        model: the model (possibly wrapped in ``DistributedDataParallel``), already on ``device``.
        loader: yields ``(inputs, targets)`` batches.
        criterion: ``criterion(outputs, targets)`` returning a mean-reduced scalar loss.
        optimizer: the optimizer over ``model``'s parameters.
        device: where batches go.
        accumulation_steps: micro-batches per optimizer step.
        max_grad_norm: clip the global gradient norm to this value before each step.
        scheduler: stepped after every optimizer step if it is a per-step scheduler
            (``lesson_utils.schedules.is_per_step``: ``OneCycleLR``, ``CyclicLR``); any other
            scheduler is left alone (step it once per epoch yourself, or use ``fit``).
        amp: autocast to ``amp_dtype(device)`` (bfloat16 on CPU, float16 plus a ``GradScaler`` on
            CUDA).
        progress: ``True`` shows a ``tqdm`` bar over the batches; a ``tqdm`` bar (anything with
            ``update``) is advanced by one per batch instead (``fit`` shares one bar across
            epochs).
        scaler: the ``torch.amp.GradScaler`` to use with float16 (``fit`` keeps one across
            epochs); one is created when needed and not given.
        epoch: the epoch number, used in the NaN/inf error message and the bar's label.

    Returns:
        ``{"loss": mean loss per sample, "accuracy": fraction correct (when outputs are
        (N, K) logits and targets class indices), "num_samples": int, "num_steps": optimizer
        steps, "grad_norm": mean pre-clipping gradient norm (only with max_grad_norm)}``.
        Under ``torch.distributed`` the sums are taken over all processes.

    Raises:
        FloatingPointError: the loss became NaN or infinite (message names epoch and step).

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> _ = torch.manual_seed(0)
        >>> data = TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
        >>> model = nn.Linear(4, 3)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> stats = train_one_epoch(model, DataLoader(data, batch_size=16), nn.CrossEntropyLoss(),
        ...                         opt)
        >>> sorted(stats), stats["num_samples"], stats["num_steps"]
        (['accuracy', 'loss', 'num_samples', 'num_steps'], 64, 4)
    """
    _check_module("model", model)
    _check_loader("loader", loader)
    _check_criterion(criterion)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    accumulation_steps = _check_positive_int("accumulation_steps", accumulation_steps)
    max_grad_norm = _check_max_grad_norm(max_grad_norm)
    device = torch.device(device)
    step_scheduler = scheduler is not None and is_per_step(scheduler)
    if not isinstance(amp, bool):
        raise TypeError(f"amp must be a bool, got {type(amp).__name__}")
    if amp:
        amp_dtype(device)  # rejects devices without autocast support
    if _needs_scaler(amp, device) and scaler is None:
        scaler = torch.amp.GradScaler(device.type)
    if scaler is not None and not scaler.is_enabled():
        scaler = None

    params = [p for group in optimizer.param_groups for p in group["params"]]
    ddp = _is_ddp(model)
    try:  # known length: a DDP group ending on the last batch must all-reduce (no no_sync)
        num_batches: int | None = len(loader)  # type: ignore[arg-type]
    except TypeError:
        num_batches = None
    if ddp and accumulation_steps > 1 and num_batches is None:
        ddp = False  # cannot tell the last batch in advance: all-reduce every micro-batch
    # Samples a full group is expected to hold; a group that turns out smaller is rescaled.
    loader_batch_size = getattr(loader, "batch_size", None)

    acc_dtype = _accumulator_dtype(device)
    loss_sum = torch.zeros((), dtype=acc_dtype, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    grad_norm_sum = torch.zeros((), dtype=acc_dtype, device=device)
    classification: bool | None = None
    guard = _FiniteGuard(device, epoch)
    num_samples = 0
    num_steps = 0
    group_count = 0  # micro-batches in the current group
    group_samples = 0  # samples in the current group
    expected_samples = 0  # samples a full group would hold (the loss scale's denominator)

    def optimizer_step() -> None:
        nonlocal num_steps, grad_norm_sum
        correction = expected_samples / group_samples if accumulation_steps > 1 else 1.0
        if scaler is not None and (correction != 1.0 or max_grad_norm is not None):
            scaler.unscale_(optimizer)
        if correction != 1.0:  # an incomplete group: re-weight n_i/expected into n_i/actual
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                torch._foreach_mul_(grads, correction)
        if max_grad_norm is not None:
            norm = nn.utils.clip_grad_norm_(params, max_grad_norm)
            grad_norm_sum += norm
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if step_scheduler:
            scheduler.step()
        num_steps += 1

    shared_bar = None
    if isinstance(progress, bool):
        bar = _progress_bar(loader, enabled=progress and _is_main_process(),
                            desc=f"epoch {epoch}", unit="batch", leave=False)
    elif callable(getattr(progress, "update", None)):
        bar, shared_bar = loader, progress
    else:
        raise TypeError(f"progress must be a bool or a tqdm bar, got {type(progress).__name__}")

    model.train()
    last_postfix = time.monotonic()
    autocast = _autocast(amp, device)
    for step, batch in enumerate(bar, start=1):
        inputs, targets = _split_batch(batch)
        inputs, targets = _to(inputs, device), _to(targets, device)
        n = _batch_size_of(targets, inputs)
        if group_count == 0:
            optimizer.zero_grad(set_to_none=True)
            expected_samples = (loader_batch_size or n) * accumulation_steps
            group_samples = 0
        group_count += 1
        group_samples += n
        ends_group = group_count == accumulation_steps or step == num_batches
        sync = (model.no_sync() if ddp and accumulation_steps > 1 and not ends_group
                else contextlib.nullcontext())
        with sync:
            with autocast:
                outputs = model(inputs)
                loss = criterion(outputs, targets)
            if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                raise ValueError(f"criterion must return a scalar tensor (a mean-reduced loss), "
                                 f"got {type(loss).__name__}"
                                 + (f" of shape {tuple(loss.shape)}"
                                    if isinstance(loss, torch.Tensor) else ""))
            guard.update(loss, step)
            scaled = loss if accumulation_steps == 1 else loss * (n / expected_samples)
            if scaler is not None:
                scaled = scaler.scale(scaled)
            scaled.backward()
        loss_sum.add_(loss.detach(), alpha=n)
        if classification is None:
            classification = _is_classification(outputs, targets)
        if classification:
            correct += (outputs.detach().argmax(dim=1) == targets).sum()
        num_samples += n
        if ends_group:
            optimizer_step()
            group_count = 0
        if shared_bar is not None:
            shared_bar.update(1)
        elif bar is not loader and time.monotonic() - last_postfix > _POSTFIX_SECONDS:
            bar.set_postfix(loss=f"{float(loss_sum) / num_samples:.4f}", refresh=False)
            last_postfix = time.monotonic()
    if group_count > 0:  # loader without len(): the last, incomplete group
        optimizer_step()
    guard.flush()
    if num_samples == 0:
        raise ValueError("loader produced no batches")

    totals = _all_reduce_sum(torch.stack([
        loss_sum.to(acc_dtype), correct.to(acc_dtype), grad_norm_sum,
        torch.tensor(float(num_samples), dtype=acc_dtype, device=device),
        torch.tensor(float(num_steps), dtype=acc_dtype, device=device),
    ])).tolist()  # the epoch's single read of the running sums
    total_samples = int(totals[3])
    result: dict[str, float] = {"loss": totals[0] / total_samples}
    if classification:
        result["accuracy"] = totals[1] / total_samples
    result["num_samples"] = total_samples
    result["num_steps"] = num_steps
    if max_grad_norm is not None:
        result["grad_norm"] = totals[2] / max(totals[4], 1.0)
    return result


def evaluate(
    model: nn.Module,
    loader: Iterable,
    criterion: Callable[[torch.Tensor, Any], torch.Tensor] | None,
    *,
    device: str | torch.device = "cpu",
    metrics: Mapping[str, MetricFn] | None = None,
    amp: bool = False,
) -> dict[str, float]:
    """Mean loss (and accuracy, and ``metrics``) of ``model`` over ``loader``, without training.

    Runs under ``model.eval()`` (Dropout off, BatchNorm on its running statistics) and
    ``torch.inference_mode()``, and leaves every submodule in the mode it found it in.

    Args:
        model: the model (a ``DistributedDataParallel`` wrapper is unwrapped), on ``device``.
        loader: yields ``(inputs, targets)`` batches.
        criterion: mean-reduced loss, or ``None`` to skip the loss.
        device: where batches go.
        metrics: ``{name: fn}``; each ``fn(outputs, targets)`` gets all the outputs ``(N, K)``
            and targets ``(N,)`` of the pass on the CPU and returns a number. With
            ``torch.distributed`` each process computes them on its own shard.
        amp: autocast as in training.

    Returns:
        ``{"loss", "accuracy" (classification), "num_samples", **metrics}``.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> X, y = torch.eye(3), torch.arange(3)
        >>> model = nn.Linear(3, 3)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.eye(3) * 5); _ = model.bias.zero_()
        >>> out = evaluate(model, DataLoader(TensorDataset(X, y), batch_size=2), None,
        ...                metrics={"errors": lambda o, t: int((o.argmax(1) != t).sum())})
        >>> out["accuracy"], out["errors"], model.training
        (1.0, 0.0, True)
    """
    _check_module("model", model)
    _check_loader("loader", loader)
    if criterion is not None:
        _check_criterion(criterion)
    if metrics is not None and (not isinstance(metrics, Mapping)
                                or not all(callable(f) for f in metrics.values())):
        raise TypeError("metrics must be a mapping {name: fn(outputs, targets)} of callables")
    device = torch.device(device)
    target_model = _unwrap(model)  # no DDP collectives for a forward-only pass
    acc_dtype = _accumulator_dtype(device)
    loss_sum = torch.zeros((), dtype=acc_dtype, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    classification: bool | None = None
    outputs_seen: list[torch.Tensor] = []
    targets_seen: list[Any] = []
    num_samples = 0
    autocast = _autocast(amp, device)
    with _modes_restored(target_model), torch.inference_mode():
        target_model.eval()
        for batch in loader:
            inputs, targets = _split_batch(batch)
            inputs, targets = _to(inputs, device), _to(targets, device)
            n = _batch_size_of(targets, inputs)
            with autocast:
                outputs = target_model(inputs)
                if criterion is not None:
                    loss_sum.add_(criterion(outputs, targets), alpha=n)
            if classification is None:
                classification = _is_classification(outputs, targets)
            if classification:
                correct += (outputs.argmax(dim=1) == targets).sum()
            if metrics:
                outputs_seen.append(outputs.float())
                targets_seen.append(targets)
            num_samples += n
    if num_samples == 0:
        raise ValueError("loader produced no batches")
    totals = _all_reduce_sum(torch.stack([
        loss_sum, correct.to(acc_dtype),
        torch.tensor(float(num_samples), dtype=acc_dtype, device=device)])).tolist()
    total_samples = int(totals[2])
    result: dict[str, float] = {}
    if criterion is not None:
        result["loss"] = totals[0] / total_samples
    if classification:
        result["accuracy"] = totals[1] / total_samples
    result["num_samples"] = total_samples
    if metrics:
        all_outputs = torch.cat(outputs_seen).cpu()
        all_targets = (torch.cat(targets_seen).cpu() if isinstance(targets_seen[0], torch.Tensor)
                       else [t for ts in targets_seen for t in ts])
        for name, fn in metrics.items():
            value = fn(all_outputs, all_targets)
            result[name] = float(value.item() if isinstance(value, torch.Tensor) else value)
    return result


# --------------------------------------------------------------------------- fit's pieces


@dataclass(frozen=True)
class EarlyStopping:
    """Stop ``fit`` when ``monitor`` has not improved for ``patience`` epochs.

    Attributes:
        monitor: a key of the epoch record, e.g. ``"val_loss"``, ``"val_accuracy"``,
            ``"val_<metric name>"``, ``"train_loss"``.
        mode: ``"min"`` (lower is better) or ``"max"``; ``None`` picks ``"min"`` when the name
            contains ``"loss"`` and ``"max"`` otherwise.
        patience: epochs without improvement before stopping.
        min_delta: an improvement must beat the best value by more than this.
        restore_best_weights: load the best epoch's weights into the model when training ends.

    Example:
        >>> EarlyStopping("val_accuracy", patience=3).resolved_mode
        'max'
        >>> EarlyStopping(min_delta=0.01).is_improvement(0.995, best=1.0)
        False
    """

    monitor: str = "val_loss"
    mode: Mode | None = None
    patience: int = 5
    min_delta: float = 0.0
    restore_best_weights: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.monitor, str) or not self.monitor:
            raise TypeError(f"monitor must be a non-empty str such as 'val_loss', got "
                            f"{self.monitor!r}")
        if self.mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or None, got {self.mode!r}")
        _check_positive_int("patience", self.patience)
        if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, (int, float)) \
                or not math.isfinite(self.min_delta) or self.min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0, got {self.min_delta!r}")

    @property
    def resolved_mode(self) -> Mode:
        """``mode``, or the one implied by the monitored name."""
        return self.mode or _default_mode(self.monitor)

    def is_improvement(self, value: float, best: float | None) -> bool:
        """True when ``value`` beats ``best`` by more than ``min_delta`` (NaN never does)."""
        return _improves(value, best, self.resolved_mode, self.min_delta)


def _default_mode(monitor: str) -> Mode:
    return "min" if "loss" in monitor else "max"


def _improves(value: float, best: float | None, mode: Mode, min_delta: float) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class History:
    """What ``fit`` measured: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ...).

    ``history["val_loss"]`` is the list of that value over epochs; ``history[-1]`` is the last
    epoch's record. ``best_epoch``/``best_value`` name the best epoch of ``monitor``, and
    ``stopped_early`` says whether early stopping ended the run.

    Example:
        >>> h = History([{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}])
        >>> h["train_loss"], len(h), h[-1]["epoch"]
        ([0.9, 0.5], 2, 2)
    """

    def __init__(self, records: Iterable[Mapping[str, Any]] = (), *, monitor: str | None = None,
                 mode: Mode | None = None) -> None:
        self.records: list[dict[str, Any]] = [dict(r) for r in records]
        self.monitor = monitor
        self.mode = mode
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.stopped_early = False

    def append(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, str):
            if not any(key in r for r in self.records):
                raise KeyError(f"no {key!r} in this history; keys are {self.keys()}")
            return [r.get(key, float("nan")) for r in self.records]
        return self.records[key]

    def keys(self) -> list[str]:
        """Every key that appears in some epoch's record, in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def plot(self, key: str = "loss", *, ax: Any = None, mark_best: bool = True) -> Any:
        """Plot ``train_<key>`` and ``val_<key>`` against the epoch (``plotting.plot_history``).

        Returns:
            The matplotlib axes.
        """
        from lesson_utils.plotting import plot_history

        return plot_history(self, key, ax=ax, mark_best=mark_best)

    def state_dict(self) -> dict[str, Any]:
        """Plain containers only, so it can travel in a ``weights_only`` checkpoint."""
        return {"records": [dict(r) for r in self.records], "monitor": self.monitor,
                "mode": self.mode, "best_epoch": self.best_epoch, "best_value": self.best_value,
                "stopped_early": self.stopped_early}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.records = [dict(r) for r in state["records"]]
        self.monitor, self.mode = state["monitor"], state["mode"]
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
        self.stopped_early = bool(state["stopped_early"])

    def __repr__(self) -> str:
        best = ""
        if self.best_epoch is not None and self.best_value is not None:
            best = f", best epoch {self.best_epoch}: {self.monitor}={self.best_value:.4g}"
        stopped = ", stopped early" if self.stopped_early else ""
        return f"History({len(self)} epochs{best}{stopped})"


class Callback:
    """Hooks ``fit`` calls; override the ones you need. A plain function given in
    ``callbacks`` is called as ``on_epoch_end(record, history)``.

    Example:
        >>> class PrintLoss(Callback):
        ...     def on_epoch_end(self, record, history):
        ...         print(record["epoch"], round(record["train_loss"], 2))
    """

    def on_train_begin(self, history: History) -> None:
        """Before the first epoch (after a resume: before the first new epoch)."""

    def on_epoch_end(self, record: dict[str, Any], history: History) -> None:
        """After each epoch, once its record is in ``history`` and ``last.pt`` is written."""

    def on_train_end(self, history: History) -> None:
        """After the last epoch (and after the best weights are restored)."""


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[dict[str, Any], History], Any]) -> None:
        self.fn = fn

    def on_epoch_end(self, record: dict[str, Any], history: History) -> None:
        self.fn(record, history)


class LiveLossPlot(Callback):
    """Redraw the loss (or any ``key``) curves after every epoch, in place, in Jupyter.

    In a notebook the figure is shown once and updated through a display handle, so the
    stored notebook keeps the final curves. Elsewhere nothing is displayed, but
    ``.figure`` still holds the up-to-date plot.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> live = LiveLossPlot()
        >>> h = History([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
        >>> live.on_train_begin(h); live.on_epoch_end(h[-1], h)
        >>> live.figure.axes[0].lines[0].get_ydata().tolist()
        [1.0, 0.5]
    """

    def __init__(self, key: str = "loss", *, figsize: tuple[float, float] = (6.0, 3.5)) -> None:
        self.key = key
        self.figsize = figsize
        self.figure: Any = None
        self._handle: Any = None

    def on_train_begin(self, history: History) -> None:
        import matplotlib.pyplot as plt

        self.figure, _ = plt.subplots(figsize=self.figsize)
        plt.close(self.figure)  # shown through the display handle only, not again at cell end
        self._handle = None
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self._handle = display(self.figure, display_id=True)
        except ImportError:
            pass
        if len(history):
            self._redraw(history)

    def _redraw(self, history: History) -> None:
        ax = self.figure.axes[0]
        ax.clear()
        history.plot(self.key, ax=ax)
        if self._handle is not None:
            self._handle.update(self.figure)

    def on_epoch_end(self, record: dict[str, Any], history: History) -> None:
        if self.figure is None:
            self.on_train_begin(history)
        else:
            self._redraw(history)


def _as_callbacks(callbacks: Any) -> list[Callback]:
    if isinstance(callbacks, (Callback,)) or callable(callbacks) and not isinstance(
            callbacks, (list, tuple)):
        callbacks = [callbacks]
    out = []
    for cb in callbacks:
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(_FunctionCallback(cb))
        else:
            raise TypeError(f"callbacks must be Callback objects or functions "
                            f"fn(record, history), got {type(cb).__name__}")
    return out


def _loader_generators(loaders: Sequence[Any]) -> list[torch.Generator]:
    """Every distinct ``torch.Generator`` that decides a loader's order, in a fixed order."""
    found: list[torch.Generator] = []
    for loader in loaders:
        if loader is None:
            continue
        candidates = [getattr(loader, "generator", None)]
        for sampler in (getattr(loader, "sampler", None),
                        getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
            candidates.append(getattr(sampler, "generator", None))
        for g in candidates:
            if isinstance(g, torch.Generator) and all(g is not f for f in found):
                found.append(g)
    return found


def _rng_state(loaders: Sequence[Any]) -> dict[str, Any]:
    """Every random state the next epoch depends on, as ``weights_only``-safe containers."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "loaders": [g.get_state() for g in _loader_generators(loaders)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], loaders: Sequence[Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, key.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    generators = _loader_generators(loaders)
    if len(generators) != len(state["loaders"]):
        warnings.warn(f"the checkpoint has {len(state['loaders'])} DataLoader generator state(s) "
                      f"but the loaders given have {len(generators)}: the data order after "
                      f"resuming may differ from an uninterrupted run", stacklevel=3)
    for g, s in zip(generators, state["loaders"], strict=False):
        g.set_state(s.cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


def _set_epoch(loader: Any, epoch: int) -> None:
    """``DistributedSampler.set_epoch`` (and any sampler with it), so shuffles differ per epoch."""
    for sampler in (getattr(loader, "sampler", None),
                    getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
            return


def _resolve_monitor(monitor: str | None, mode: Mode | None,
                     early_stopping: EarlyStopping | None, has_val: bool) -> tuple[str, Mode]:
    if early_stopping is not None:
        if monitor is not None and monitor != early_stopping.monitor:
            raise ValueError(f"monitor={monitor!r} differs from early_stopping.monitor="
                             f"{early_stopping.monitor!r}; give it in one place")
        monitor = early_stopping.monitor
        mode = mode or early_stopping.resolved_mode
        if mode != early_stopping.resolved_mode:
            raise ValueError(f"mode={mode!r} differs from early_stopping's mode "
                             f"{early_stopping.resolved_mode!r}")
    if monitor is None:
        monitor = "val_loss" if has_val else "train_loss"
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a str such as 'val_loss', got {type(monitor).__name__}")
    if mode is None:
        mode = _default_mode(monitor)
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if monitor.startswith("val_") and not has_val:
        raise ValueError(f"monitor={monitor!r} needs a val_loader; without one, monitor a "
                         f"'train_...' key")
    return monitor, mode


def _best_state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in _unwrap(model).state_dict().items()}


# --------------------------------------------------------------------------- fit


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None,
    criterion: Callable[[torch.Tensor, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    num_epochs: int,
    scheduler: Any | None = None,
    device: str | torch.device | None = None,
    accumulation_steps: int = 1,
    max_grad_norm: float | None = None,
    amp: bool = False,
    early_stopping: EarlyStopping | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    callbacks: Sequence[Callback | Callable[[dict[str, Any], History], Any]] = (),
    metrics: Mapping[str, MetricFn] | None = None,
    monitor: str | None = None,
    mode: Mode | None = None,
) -> History:
    """Train for ``num_epochs`` epochs with validation, scheduling, early stopping and
    checkpoints; return the ``History``.

    Per epoch: ``train_one_epoch`` -> ``evaluate`` on ``val_loader`` -> scheduler step (per
    epoch; per-step schedulers step inside the epoch; ``ReduceLROnPlateau`` gets the monitored
    value) -> early-stopping bookkeeping -> ``best.pt`` when the monitored value improved ->
    ``last.pt`` -> callbacks.

    Args:
        model: the model; moved to ``device`` unless it is wrapped in DDP (then it must already
            be on its device).
        train_loader, val_loader: ``(inputs, targets)`` batches; ``val_loader`` may be ``None``.
            A ``DistributedSampler`` gets ``set_epoch(epoch)`` before every epoch.
        criterion: mean-reduced loss ``criterion(outputs, targets)``.
        optimizer: the optimizer.
        num_epochs: total epochs, counting those already done when resuming.
        scheduler: any torch LR scheduler; stepped per step or per epoch as
            ``lesson_utils.schedules.is_per_step`` says.
        device: ``None`` picks the model's device if it is not the CPU, else ``pick_device()``.
        accumulation_steps, max_grad_norm, amp: as in ``train_one_epoch``.
        early_stopping: an ``EarlyStopping`` or ``None``.
        checkpoint_dir: folder for ``last.pt`` (every epoch) and ``best.pt`` (each new best),
            written atomically; ``None`` writes nothing.
        resume: a ``last.pt`` written by ``fit``: model, optimizer, scheduler, grad scaler,
            history, early-stopping state and all RNG states (Python, NumPy, torch, CUDA, the
            loaders' generators) are restored and training continues with the next epoch, so
            the result equals an uninterrupted run. Build the model, optimizer, scheduler and
            loaders as before, then pass ``resume``.
        progress: one ``tqdm.auto`` bar over all batches (a widget in Jupyter, text in a
            terminal) showing the epoch and the last epoch's metrics; on rank 0 only.
        callbacks: ``Callback`` objects or functions ``fn(record, history)`` (e.g.
            ``LiveLossPlot()``).
        metrics: extra validation metrics ``{name: fn(outputs, targets)}``, recorded as
            ``val_<name>``.
        monitor: the record key that defines the best epoch (``best.pt``, ``ReduceLROnPlateau``,
            early stopping); default ``early_stopping.monitor``, else ``"val_loss"`` (or
            ``"train_loss"`` without a ``val_loader``).
        mode: ``"min"``/``"max"`` for ``monitor``; default from the name (``loss`` -> min).

    Returns:
        The ``History``: per-epoch records ``epoch``, ``lr``, ``train_loss``,
        ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``val_<metric>``, ``time_s``.

    Raises:
        FloatingPointError: a NaN/inf loss (names epoch and step; saved files are kept).
        CheckpointError: ``resume`` is not a ``fit`` checkpoint or does not fit the model.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> _ = torch.manual_seed(0)
        >>> data = TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
        >>> model = nn.Linear(4, 3)
        >>> history = fit(model, DataLoader(data, batch_size=16), DataLoader(data, batch_size=64),
        ...               nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
        ...               num_epochs=3, device="cpu", progress=False)
        >>> len(history), history.monitor, history[-1]["epoch"]
        (3, 'val_loss', 3)
    """
    _check_module("model", model)
    _check_loader("train_loader", train_loader)
    if val_loader is not None:
        _check_loader("val_loader", val_loader)
    _check_criterion(criterion)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    num_epochs = _check_positive_int("num_epochs", num_epochs)
    accumulation_steps = _check_positive_int("accumulation_steps", accumulation_steps)
    max_grad_norm = _check_max_grad_norm(max_grad_norm)
    if not isinstance(amp, bool):
        raise TypeError(f"amp must be a bool, got {type(amp).__name__}")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(f"early_stopping must be an EarlyStopping or None, got "
                        f"{type(early_stopping).__name__}")
    per_step = False
    if scheduler is not None:
        per_step = is_per_step(scheduler)  # also rejects non-schedulers
    monitor, mode = _resolve_monitor(monitor, mode, early_stopping, val_loader is not None)
    if isinstance(scheduler, ReduceLROnPlateau) and scheduler.mode != mode:
        raise ValueError(f"ReduceLROnPlateau(mode={scheduler.mode!r}) is fed {monitor!r}, whose "
                         f"mode is {mode!r}: make them agree")
    callback_list = _as_callbacks(callbacks)

    if device is None:
        param = next(_unwrap(model).parameters(), None)
        device = param.device if param is not None and param.device.type != "cpu" \
            else pick_device()
    device = torch.device(device)
    if not _is_ddp(model):
        model.to(device)
    if amp:
        amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type) if _needs_scaler(amp, device) else None
    min_delta = early_stopping.min_delta if early_stopping is not None else 0.0
    restore_best = early_stopping is not None and early_stopping.restore_best_weights

    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    main = _is_main_process()
    history = History(monitor=monitor, mode=mode)
    best_state: dict[str, torch.Tensor] | None = None
    wait = 0  # epochs since the last improvement
    start_epoch = 0
    loaders = [train_loader, val_loader]

    if resume is not None:
        resume = Path(resume)
        checkpoint = load_checkpoint(resume, model=model, optimizer=optimizer,
                                     scheduler=scheduler, map_location=device)
        state = checkpoint.get("extra", {}).get("fit_state")
        if not isinstance(state, dict) or state.get("version") != _FIT_STATE_VERSION:
            raise CheckpointError(f"{resume.name} was not written by fit() (no fit_state); to "
                                  f"start from its weights only, use load_checkpoint(path, "
                                  f"model=model) and fit without resume")
        if state["history"]["monitor"] != monitor:
            raise ValueError(f"the checkpoint monitored {state['history']['monitor']!r} but this "
                             f"call monitors {monitor!r}")
        start_epoch = int(checkpoint["epoch"])
        if start_epoch > num_epochs:
            raise ValueError(f"the checkpoint is at epoch {start_epoch}, past num_epochs="
                             f"{num_epochs}; num_epochs counts all epochs, resumed ones included")
        history.load_state_dict(state["history"])
        wait = int(state["wait"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if restore_best and history.best_epoch is not None:
            best_path = resume.parent / "best.pt"
            try:
                best_ckpt = load_checkpoint(best_path, map_location="cpu")
            except (FileNotFoundError, CheckpointError):
                best_ckpt = None
            if best_ckpt is not None and best_ckpt.get("epoch") == history.best_epoch:
                best_state = best_ckpt["model"]
            else:
                warnings.warn(f"could not find best.pt of epoch {history.best_epoch} next to "
                              f"{resume.name}: the best weights of the epochs before the resume "
                              f"cannot be restored at the end", stacklevel=2)
        _set_rng_state(state["rng"], loaders)  # last: nothing else may draw after this

    def fit_state() -> dict[str, Any]:
        return {"version": _FIT_STATE_VERSION, "history": history.state_dict(), "wait": wait,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": _rng_state(loaders)}

    for cb in callback_list:
        cb.on_train_begin(history)
    bar = None  # one bar over every batch of the run; its postfix shows the last epoch's metrics
    if progress and main:
        from tqdm.auto import tqdm

        try:
            steps: int | None = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            steps = None
        bar = tqdm(total=None if steps is None else steps * num_epochs,
                   initial=start_epoch * (steps or 0), desc="fit", unit="batch")
    stop = early_stopping is not None and wait >= early_stopping.patience
    try:
        for epoch in range(start_epoch + 1, num_epochs + 1):
            if stop:
                break
            started = time.perf_counter()
            _set_epoch(train_loader, epoch)
            if val_loader is not None:
                _set_epoch(val_loader, epoch)
            lr = optimizer.param_groups[0]["lr"]
            if bar is not None:
                bar.set_description(f"epoch {epoch}/{num_epochs}", refresh=False)
            train_stats = train_one_epoch(
                model, train_loader, criterion, optimizer, device=device,
                accumulation_steps=accumulation_steps, max_grad_norm=max_grad_norm,
                scheduler=scheduler if per_step else None, amp=amp,
                progress=bar if bar is not None else False,
                scaler=scaler, epoch=epoch)
            record: dict[str, Any] = {"epoch": epoch, "lr": lr}
            record.update({f"train_{k}": v for k, v in train_stats.items()
                           if k not in ("num_samples", "num_steps")})
            if val_loader is not None:
                val_stats = evaluate(model, val_loader, criterion, device=device,
                                     metrics=metrics, amp=amp)
                record.update({f"val_{k}": v for k, v in val_stats.items()
                               if k != "num_samples"})
            record["time_s"] = time.perf_counter() - started
            if monitor not in record:
                raise ValueError(f"monitor={monitor!r} is not in the epoch record; available: "
                                 f"{sorted(record)}")
            value = float(record[monitor])
            if scheduler is not None and not per_step:
                if isinstance(scheduler, ReduceLROnPlateau):
                    scheduler.step(value)
                else:
                    scheduler.step()
            history.append(record)
            if _improves(value, history.best_value, mode, min_delta):
                history.best_epoch, history.best_value = epoch, value
                wait = 0
                if restore_best:
                    best_state = _best_state_copy(model)
                if ckpt_dir is not None and main:
                    save_checkpoint(ckpt_dir / "best.pt", model=model, epoch=epoch,
                                    monitor=monitor, value=value)
            else:
                wait += 1
            if early_stopping is not None and wait >= early_stopping.patience:
                history.stopped_early = stop = True
            if ckpt_dir is not None and main:
                save_checkpoint(ckpt_dir / "last.pt", model=model, optimizer=optimizer,
                                scheduler=scheduler, epoch=epoch, fit_state=fit_state())
            if bar is not None:
                shown = {k: f"{v:.4f}" for k, v in record.items()
                         if k.startswith(("train_loss", "val_loss", "val_acc"))}
                bar.set_postfix(shown)
            for cb in callback_list:
                cb.on_epoch_end(record, history)
    finally:
        if bar is not None:
            bar.close()
    if restore_best and best_state is not None:
        _unwrap(model).load_state_dict(best_state)
    for cb in callback_list:
        cb.on_train_end(history)
    return history
