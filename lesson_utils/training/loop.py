"""The training loop of lesson 06, written once, carefully: one epoch, and an evaluation pass.

``train_one_epoch`` is this loop::

    model.train()
    for X, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(X), y)   # forward + loss
        loss.backward()                 # the loss's job: gradients
        optimizer.step()                # the optimizer's job: apply them

plus gradient accumulation, clipping, mixed precision and per-step schedulers. It stays as lean
as that hand-written loop: running sums are kept as tensors and read once per epoch, so there is
no extra host-device synchronisation per step (``benchmarks/bench_training.py`` measures it).

Example:
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> data = DataLoader(TensorDataset(torch.randn(8, 2), torch.arange(8) % 2), batch_size=4)
    >>> model = nn.Linear(2, 2)
    >>> stats = train_one_epoch(model, data, nn.CrossEntropyLoss(),
    ...                         torch.optim.SGD(model.parameters(), lr=0.1))
    >>> stats["num_samples"], stats["num_steps"], evaluate(model, data, None)["num_samples"]
    (8, 2, 8)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from lesson_utils.models import modes_restored
from lesson_utils.repro import resolve_device
from lesson_utils.schedules import is_per_step
from lesson_utils.training.amp import amp_dtype, autocast, needs_scaler
from lesson_utils.training.distributed import (
    all_reduce_sum,
    is_ddp,
    is_main_process,
    unwrap_model,
)
from lesson_utils.validation import (
    check_callable,
    check_instance,
    check_int,
    check_loader,
    check_number,
)

__all__ = ["train_one_epoch", "evaluate", "MetricFn"]

MetricFn = Callable[[torch.Tensor, torch.Tensor], Any]

# How often (in steps) the lazy NaN guard reads its flag on an asynchronous device (CUDA, MPS).
# On the CPU there is no queue to drain, so the check is made at every step for free.
_NONFINITE_CHECK_EVERY = 50
# Seconds between progress-bar postfix updates (each one reads the running loss: one sync).
_POSTFIX_SECONDS = 0.5


# --------------------------------------------------------------------------- batches


def check_criterion(criterion: Any) -> None:
    """A callable with mean reduction: the loop weights each batch's mean loss by its size."""
    check_callable("criterion", criterion, "callable (e.g. nn.CrossEntropyLoss())")
    reduction = getattr(criterion, "reduction", "mean")
    if reduction != "mean":
        raise ValueError(
            f"criterion.reduction must be 'mean' (the loop weights each batch's mean loss by its "
            f"number of samples, for the epoch mean and for gradient accumulation), got "
            f"{reduction!r}")


def _batches(loader: Iterable, device: torch.device) -> Iterator[tuple[Any, Any, int]]:
    """``(inputs, targets, batch size)`` of every batch, moved to ``device``."""
    for batch in loader:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"each batch must be a pair (inputs, targets), got "
                            f"{type(batch).__name__}" + (f" of length {len(batch)}"
                                                         if isinstance(batch, (tuple, list))
                                                         else ""))
        inputs, targets = (x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x
                           for x in batch)
        ref = targets if isinstance(targets, torch.Tensor) and targets.ndim > 0 else inputs
        yield inputs, targets, int(ref.shape[0]) if isinstance(ref, torch.Tensor) else len(ref)


def _is_classification(logits: torch.Tensor, targets: Any) -> bool:
    return (isinstance(targets, torch.Tensor) and logits.ndim == 2 and targets.ndim == 1
            and not targets.is_floating_point() and not targets.is_complex()
            and logits.shape[0] == targets.shape[0])


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


class _Totals:
    """Running sums of an epoch, kept on the device and read once at the end."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.dtype = device, _sum_dtype(device)
        self.loss = torch.zeros((), dtype=self.dtype, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.samples = 0
        self.classification: bool | None = None

    def add(self, loss: torch.Tensor | None, outputs: torch.Tensor, targets: Any, n: int) -> None:
        if loss is not None:
            self.loss.add_(loss.detach(), alpha=n)
        if self.classification is None:
            self.classification = _is_classification(outputs, targets)
        if self.classification:
            self.correct += (outputs.detach().argmax(dim=1) == targets).sum()
        self.samples += n

    def reduce(self, *extra: float | torch.Tensor) -> list[float]:
        """``[loss sum, correct, samples, *extra]`` summed over every process (one read)."""
        if self.samples == 0:
            raise ValueError("loader produced no batches")
        values = [self.loss, self.correct.to(self.dtype), float(self.samples), *extra]
        return all_reduce_sum(torch.stack([torch.as_tensor(v, dtype=self.dtype,
                                                           device=self.device)
                                           for v in values])).tolist()

    def result(self, totals: list[float], with_loss: bool) -> dict[str, float]:
        samples = int(totals[2])
        result: dict[str, float] = {"loss": totals[0] / samples} if with_loss else {}
        if self.classification:
            result["accuracy"] = totals[1] / samples
        result["num_samples"] = samples
        return result


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
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError(f"criterion must return a scalar tensor (a mean-reduced loss), "
                             f"got {type(loss).__name__}"
                             + (f" of shape {tuple(loss.shape)}"
                                if isinstance(loss, torch.Tensor) else ""))
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


# --------------------------------------------------------------------------- optimizer steps


class _Stepper:
    """Backward passes and optimizer steps of one epoch, with gradient accumulation.

    A group of ``accumulation_steps`` micro-batches makes one step. Each micro-batch's mean loss
    is weighted by ``n_i / expected`` (``expected``: the samples a full group holds), and a group
    that turns out smaller is re-weighted to ``n_i / actual`` before the step, so the update
    equals one step on the concatenated batch whenever that is mathematically possible.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, accumulation_steps: int,
                 max_grad_norm: float | None, scaler: Any, scheduler: Any,
                 full_batch: int | None, device: torch.device) -> None:
        self.optimizer, self.accumulation_steps = optimizer, accumulation_steps
        self.max_grad_norm, self.scaler, self.full_batch = max_grad_norm, scaler, full_batch
        self.scheduler = scheduler if scheduler is not None and is_per_step(scheduler) else None
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.steps, self.in_group, self.group_samples, self.expected = 0, 0, 0, 0
        self.grad_norm_sum = torch.zeros((), dtype=_sum_dtype(device), device=device)

    def begin(self, n: int) -> None:
        """Before a micro-batch of ``n`` samples: clear the gradients at a group's start."""
        if self.in_group == 0:
            self.optimizer.zero_grad(set_to_none=True)
            self.expected = (self.full_batch or n) * self.accumulation_steps
            self.group_samples = 0
        self.in_group += 1
        self.group_samples += n

    def backward(self, loss: torch.Tensor, n: int) -> None:
        scaled = loss if self.accumulation_steps == 1 else loss * (n / self.expected)
        if self.scaler is not None:
            scaled = self.scaler.scale(scaled)
        scaled.backward()

    def step(self) -> None:
        """Re-weight an incomplete group, clip, step the optimizer (and a per-step scheduler)."""
        correction = self.expected / self.group_samples if self.accumulation_steps > 1 else 1.0
        if self.scaler is not None and (correction != 1.0 or self.max_grad_norm is not None):
            self.scaler.unscale_(self.optimizer)
        if correction != 1.0:
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads:
                torch._foreach_mul_(grads, correction)
        if self.max_grad_norm is not None:
            self.grad_norm_sum += nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps += 1
        self.in_group = 0


def _progress(progress: Any, loader: Iterable, epoch: int) -> tuple[Iterable, Any, Any]:
    """``(batches to iterate, the epoch's own bar or None, a shared bar or None)``."""
    if isinstance(progress, bool):
        if not (progress and is_main_process()):
            return loader, None, None
        from tqdm.auto import tqdm

        bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", leave=False)
        return bar, bar, None
    if callable(getattr(progress, "update", None)):
        return loader, None, progress
    raise TypeError(f"progress must be a bool or a tqdm bar, got {type(progress).__name__}")


def check_step_options(accumulation_steps: Any, max_grad_norm: Any,
                       amp: Any) -> tuple[int, float | None]:
    """The checked ``accumulation_steps`` and ``max_grad_norm`` (``amp`` must be a bool)."""
    accumulation_steps = check_int("accumulation_steps", accumulation_steps, minimum=1)
    if max_grad_norm is not None:
        max_grad_norm = check_number("max_grad_norm", max_grad_norm, minimum=0,
                                     exclusive_minimum=True)
    check_instance("amp", amp, bool, "a bool")
    return accumulation_steps, max_grad_norm


def _scaler_for(amp: bool, device: torch.device, scaler: Any) -> Any:
    if needs_scaler(amp, device) and scaler is None:
        scaler = torch.amp.GradScaler(device.type)
    return scaler if scaler is not None and scaler.is_enabled() else None


# --------------------------------------------------------------------------- one epoch


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    criterion: Callable[[torch.Tensor, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    device: str | torch.device | None = None,
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
    ``model`` in train mode. Batches are moved to ``device``.

    Gradient accumulation sums the gradients of ``accumulation_steps`` micro-batches before one
    optimizer step. Each micro-batch's mean loss is weighted by its share of the group's samples
    (``n_i / sum(n)``), so the update equals one step on the concatenated batch whenever that is
    mathematically possible (mean-reduced loss with the same normaliser in every micro-batch, no
    BatchNorm in train mode), and an incomplete last group (fewer or smaller micro-batches) is
    averaged over the samples it really has. Under ``DistributedDataParallel`` the gradient
    all-reduce runs only on a group's last micro-batch (``no_sync``).

    Args:
        model: the model (possibly wrapped in ``DistributedDataParallel``), on ``device``.
        loader: yields ``(inputs, targets)`` batches.
        criterion: ``criterion(outputs, targets)`` returning a mean-reduced scalar loss.
        optimizer: the optimizer over ``model``'s parameters.
        device: where batches go; ``None``: where the model is
            (``lesson_utils.repro.resolve_device``).
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
    check_instance("model", model, nn.Module, "an nn.Module")
    check_loader("loader", loader)
    check_criterion(criterion)
    check_instance("optimizer", optimizer, torch.optim.Optimizer, "a torch.optim.Optimizer")
    device = resolve_device(device, model)
    accumulation_steps, max_grad_norm = check_step_options(accumulation_steps, max_grad_norm, amp)
    if amp:
        amp_dtype(device)  # rejects devices without autocast support
    try:  # known length: a DDP group ending on the last batch must all-reduce (no no_sync)
        num_batches: int | None = len(loader)  # type: ignore[arg-type]
    except TypeError:
        num_batches = None
    stepper = _Stepper(optimizer, accumulation_steps=accumulation_steps,
                       max_grad_norm=max_grad_norm, scaler=_scaler_for(amp, device, scaler),
                       scheduler=scheduler, full_batch=getattr(loader, "batch_size", None),
                       device=device)
    # Without a known length the last batch cannot be told in advance: all-reduce every one.
    skip_sync = is_ddp(model) and accumulation_steps > 1 and num_batches is not None
    batches, own_bar, shared_bar = _progress(progress, loader, epoch)
    totals, guard = _Totals(device), _FiniteGuard(device, epoch)
    model.train()
    last_postfix = time.monotonic()
    for step, (inputs, targets, n) in enumerate(_batches(batches, device), start=1):
        stepper.begin(n)
        ends_group = stepper.in_group == accumulation_steps or step == num_batches
        with model.no_sync() if skip_sync and not ends_group else contextlib.nullcontext():
            with autocast(amp, device):
                outputs = model(inputs)
                loss = criterion(outputs, targets)
            guard.update(loss, step)
            stepper.backward(loss, n)
        totals.add(loss, outputs, targets, n)
        if ends_group:
            stepper.step()
        if shared_bar is not None:
            shared_bar.update(1)
        elif own_bar is not None and time.monotonic() - last_postfix > _POSTFIX_SECONDS:
            own_bar.set_postfix(loss=f"{float(totals.loss) / totals.samples:.4f}", refresh=False)
            last_postfix = time.monotonic()
    if stepper.in_group > 0:  # loader without len(): the last, incomplete group
        stepper.step()
    guard.flush()
    reduced = totals.reduce(stepper.grad_norm_sum, float(stepper.steps))  # the epoch's one read
    result = totals.result(reduced, with_loss=True) | {"num_steps": stepper.steps}
    if max_grad_norm is not None:
        result["grad_norm"] = reduced[3] / max(reduced[4], 1.0)
    return result


def evaluate(
    model: nn.Module,
    loader: Iterable,
    criterion: Callable[[torch.Tensor, Any], torch.Tensor] | None,
    *,
    device: str | torch.device | None = None,
    metrics: Mapping[str, MetricFn] | None = None,
    amp: bool = False,
) -> dict[str, float]:
    """Mean loss (and accuracy, and ``metrics``) of ``model`` over ``loader``, without training.

    Runs under ``model.eval()`` (Dropout off, BatchNorm on its running statistics) and
    ``torch.inference_mode()``, and leaves every submodule in the mode it found it in.

    Args:
        model: the model (a ``DistributedDataParallel`` wrapper is unwrapped).
        loader: yields ``(inputs, targets)`` batches.
        criterion: mean-reduced loss, or ``None`` to skip the loss.
        device: where batches go; ``None``: where the model is.
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
    check_instance("model", model, nn.Module, "an nn.Module")
    check_loader("loader", loader)
    if criterion is not None:
        check_criterion(criterion)
    if metrics is not None and (not isinstance(metrics, Mapping)
                                or not all(callable(f) for f in metrics.values())):
        raise TypeError(f"metrics must be a mapping {{name: fn(outputs, targets)}} of "
                        f"callables, got {type(metrics).__name__}")
    device = resolve_device(device, model)
    target_model = unwrap_model(model)  # no DDP collectives for a forward-only pass
    totals = _Totals(device)
    seen: tuple[list, list] = ([], [])
    with modes_restored(target_model), torch.inference_mode():
        target_model.eval()
        for inputs, targets, n in _batches(loader, device):
            with autocast(amp, device):
                outputs = target_model(inputs)
                loss = criterion(outputs, targets) if criterion is not None else None
            totals.add(loss, outputs, targets, n)
            if metrics:
                seen[0].append(outputs.float())
                seen[1].append(targets)
    result = totals.result(totals.reduce(), with_loss=criterion is not None)
    for name, value in _metric_values(metrics, *seen).items():
        result[name] = value
    return result


def _metric_values(metrics: Mapping[str, MetricFn] | None, outputs: list[torch.Tensor],
                   targets: list[Any]) -> dict[str, float]:
    if not metrics:
        return {}
    all_outputs = torch.cat(outputs).cpu()
    all_targets = (torch.cat(targets).cpu() if isinstance(targets[0], torch.Tensor)
                   else [t for ts in targets for t in ts])
    values = {}
    for name, fn in metrics.items():
        value = fn(all_outputs, all_targets)
        values[name] = float(value.item() if isinstance(value, torch.Tensor) else value)
    return values
