"""``fit``: epochs of ``train_one_epoch`` and ``evaluate``, with what a real run needs.

Per epoch: train -> evaluate on the validation loader -> step the scheduler (per epoch;
per-step schedulers step inside the epoch; ``ReduceLROnPlateau`` gets the monitored value) ->
early-stopping bookkeeping -> ``best.pt`` when the monitored value improved -> ``last.pt`` ->
callbacks. Checkpoints are atomic; resuming restores model, optimizer, scheduler, grad scaler,
history and every RNG, so a resumed run equals an uninterrupted one. It runs unchanged on a model
wrapped in ``DistributedDataParallel`` with a ``DistributedSampler`` (files are written by rank 0).

Example:
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> data = DataLoader(TensorDataset(torch.randn(8, 2), torch.arange(8) % 2), batch_size=4)
    >>> model = nn.Linear(2, 2)
    >>> history = fit(model, data, None, nn.CrossEntropyLoss(),
    ...               torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=2, progress=False)
    >>> len(history), history.monitor
    (2, 'train_loss')
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from lesson_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from lesson_utils.repro import resolve_device
from lesson_utils.schedules import is_per_step
from lesson_utils.training.amp import amp_dtype, needs_scaler
from lesson_utils.training.callbacks import (
    Callback,
    EarlyStopping,
    History,
    Mode,
    as_callbacks,
    default_mode,
    improves,
)
from lesson_utils.training.distributed import is_ddp, is_main_process, set_epoch, unwrap_model
from lesson_utils.training.loop import (
    MetricFn,
    check_criterion,
    check_step_options,
    evaluate,
    train_one_epoch,
)
from lesson_utils.training.resume import FIT_STATE_VERSION, rng_state, set_rng_state
from lesson_utils.validation import check_choice, check_instance, check_int, check_loader

__all__ = ["fit"]


@dataclass(frozen=True)
class _Settings:
    """``fit``'s options after checking, in one place."""

    num_epochs: int
    accumulation_steps: int
    max_grad_norm: float | None
    amp: bool
    metrics: Mapping[str, MetricFn] | None
    monitor: str
    mode: Mode
    early_stopping: EarlyStopping | None
    checkpoint_dir: Path | None
    progress: bool


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
    monitor = "val_loss" if monitor is None and has_val else monitor or "train_loss"
    check_instance("monitor", monitor, str, "a str such as 'val_loss'")
    mode = check_choice("mode", mode or default_mode(monitor), ("min", "max"))
    if monitor.startswith("val_") and not has_val:
        raise ValueError(f"monitor={monitor!r} needs a val_loader; without one, monitor a "
                         f"'train_...' key")
    return monitor, mode


def _check_fit_args(model: Any, train_loader: Any, val_loader: Any, criterion: Any,
                    optimizer: Any, scheduler: Any, early_stopping: Any,
                    options: dict[str, Any]) -> _Settings:
    check_instance("model", model, nn.Module, "an nn.Module")
    check_loader("train_loader", train_loader)
    if val_loader is not None:
        check_loader("val_loader", val_loader)
    check_criterion(criterion)
    check_instance("optimizer", optimizer, torch.optim.Optimizer, "a torch.optim.Optimizer")
    if early_stopping is not None:
        check_instance("early_stopping", early_stopping, EarlyStopping, "an EarlyStopping or None")
    monitor, mode = _resolve_monitor(options.pop("monitor"), options.pop("mode"), early_stopping,
                                     val_loader is not None)
    if scheduler is not None:
        is_per_step(scheduler)  # rejects what is not a scheduler
    if isinstance(scheduler, ReduceLROnPlateau) and scheduler.mode != mode:
        raise ValueError(f"ReduceLROnPlateau(mode={scheduler.mode!r}) is fed {monitor!r}, whose "
                         f"mode is {mode!r}: make them agree")
    options["accumulation_steps"], options["max_grad_norm"] = check_step_options(
        options["accumulation_steps"], options["max_grad_norm"], options["amp"])
    check_instance("progress", options["progress"], bool, "a bool")
    directory = options.pop("checkpoint_dir")
    return _Settings(num_epochs=check_int("num_epochs", options.pop("num_epochs"), minimum=1),
                     monitor=monitor, mode=mode, early_stopping=early_stopping,
                     checkpoint_dir=Path(directory) if directory is not None else None,
                     **options)


class _FitRun:
    """The state of one ``fit`` call, and the named steps of an epoch."""

    def __init__(self, model: nn.Module, loaders: tuple[Iterable, Iterable | None],
                 criterion: Callable, optimizer: torch.optim.Optimizer, scheduler: Any,
                 device: torch.device, settings: _Settings, callbacks: list[Callback]) -> None:
        self.model, self.loaders, self.criterion = model, loaders, criterion
        self.optimizer, self.scheduler, self.device = optimizer, scheduler, device
        self.settings, self.callbacks = settings, callbacks
        self.per_step = scheduler is not None and is_per_step(scheduler)
        self.scaler = (torch.amp.GradScaler(device.type)
                       if needs_scaler(settings.amp, device) else None)
        self.history = History(monitor=settings.monitor, mode=settings.mode)
        self.wait, self.start_epoch, self.bar = 0, 0, None  # wait: epochs since the best
        self.best_state: dict[str, torch.Tensor] | None = None
        stopping = settings.early_stopping
        self.restore_best = stopping is not None and stopping.restore_best_weights
        self.main = is_main_process()

    # ---- resume
    def resume_from(self, path: Path) -> None:
        """Load ``last.pt`` written by ``fit`` and continue after its epoch."""
        checkpoint = load_checkpoint(path, model=self.model, optimizer=self.optimizer,
                                     scheduler=self.scheduler, map_location=self.device)
        state = checkpoint.get("extra", {}).get("fit_state")
        if not isinstance(state, dict) or state.get("version") != FIT_STATE_VERSION:
            raise CheckpointError(f"{path.name} was not written by fit() (no fit_state); to "
                                  f"start from its weights only, use load_checkpoint(path, "
                                  f"model=model) and fit without resume")
        if state["history"]["monitor"] != self.settings.monitor:
            raise ValueError(f"the checkpoint monitored {state['history']['monitor']!r} but this "
                             f"call monitors {self.settings.monitor!r}")
        self.start_epoch = int(checkpoint["epoch"])
        if self.start_epoch > self.settings.num_epochs:
            raise ValueError(f"the checkpoint is at epoch {self.start_epoch}, past num_epochs="
                             f"{self.settings.num_epochs}; num_epochs counts all epochs, resumed "
                             f"ones included")
        self.history.load_state_dict(state["history"])
        self.wait = int(state["wait"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.restore_best and self.history.best_epoch is not None:
            self.best_state = self._best_weights_beside(path)
        set_rng_state(state["rng"], self.loaders)  # last: nothing else may draw after this

    def _best_weights_beside(self, path: Path) -> dict[str, torch.Tensor] | None:
        try:
            best = load_checkpoint(path.parent / "best.pt", map_location="cpu")
        except (FileNotFoundError, CheckpointError):
            best = None
        if best is not None and best.get("epoch") == self.history.best_epoch:
            return best["model"]
        warnings.warn(f"could not find best.pt of epoch {self.history.best_epoch} next to "
                      f"{path.name}: the best weights of the epochs before the resume cannot be "
                      f"restored at the end", stacklevel=4)
        return None

    def fit_state(self) -> dict[str, Any]:
        return {"version": FIT_STATE_VERSION, "history": self.history.state_dict(),
                "wait": self.wait, "rng": rng_state(self.loaders),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    # ---- an epoch
    @property
    def stopped(self) -> bool:
        stopping = self.settings.early_stopping
        return (stopping is not None and self.wait >= stopping.patience
                and len(self.history) >= stopping.start_from_epoch)

    def open_bar(self) -> None:
        """One bar over every batch of the run; its postfix shows the last epoch's metrics."""
        if not (self.settings.progress and self.main):
            return
        from tqdm.auto import tqdm

        try:
            steps: int | None = len(self.loaders[0])  # type: ignore[arg-type]
        except TypeError:
            steps = None
        total = None if steps is None else steps * self.settings.num_epochs
        self.bar = tqdm(total=total, initial=self.start_epoch * (steps or 0), desc="fit",
                        unit="batch")

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """Train one epoch, evaluate, and return the epoch's record."""
        started, s = time.perf_counter(), self.settings
        train_loader, val_loader = self.loaders
        for loader in self.loaders:
            set_epoch(loader, epoch)
        record: dict[str, Any] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch}/{s.num_epochs}", refresh=False)
        stats = train_one_epoch(
            self.model, train_loader, self.criterion, self.optimizer, device=self.device,
            accumulation_steps=s.accumulation_steps, max_grad_norm=s.max_grad_norm,
            scheduler=self.scheduler if self.per_step else None, amp=s.amp,
            progress=self.bar if self.bar is not None else False, scaler=self.scaler,
            epoch=epoch)
        record |= {f"train_{k}": v for k, v in stats.items()
                   if k not in ("num_samples", "num_steps")}
        if val_loader is not None:
            stats = evaluate(self.model, val_loader, self.criterion, device=self.device,
                             metrics=s.metrics, amp=s.amp)
            record |= {f"val_{k}": v for k, v in stats.items() if k != "num_samples"}
        record["time_s"] = time.perf_counter() - started
        if s.monitor not in record:
            raise ValueError(f"monitor={s.monitor!r} is not in the epoch record; available: "
                             f"{sorted(record)}")
        return record

    def end_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Scheduler, history, best epoch, early stopping, checkpoints, bar and callbacks."""
        value = float(record[self.settings.monitor])
        if self.scheduler is not None and not self.per_step:
            if isinstance(self.scheduler, ReduceLROnPlateau):
                self.scheduler.step(value)
            else:
                self.scheduler.step()
        self.history.append(record)
        self._track_best(epoch, value)
        if self.stopped:
            self.history.stopped_early = True
        self._save("last.pt", epoch, optimizer=self.optimizer, scheduler=self.scheduler,
                   fit_state=self.fit_state())
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in record.items()
                                  if k.startswith(("train_loss", "val_loss", "val_acc"))})
        for cb in self.callbacks:
            cb.on_epoch_end(record, self.history)

    def _track_best(self, epoch: int, value: float) -> None:
        stopping = self.settings.early_stopping
        min_delta = stopping.min_delta if stopping is not None else 0.0
        if not improves(value, self.history.best_value, self.settings.mode, min_delta):
            self.wait += 1
            return
        self.history.best_epoch, self.history.best_value = epoch, value
        self.wait = 0
        if self.restore_best:
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in unwrap_model(self.model).state_dict().items()}
        self._save("best.pt", epoch, monitor=self.settings.monitor, value=value)

    def _save(self, name: str, epoch: int, **contents: Any) -> None:
        if self.settings.checkpoint_dir is not None and self.main:
            save_checkpoint(self.settings.checkpoint_dir / name, model=self.model, epoch=epoch,
                            **contents)

    def finish(self) -> History:
        if self.bar is not None:
            self.bar.close()
        if self.restore_best and self.best_state is not None:
            unwrap_model(self.model).load_state_dict(self.best_state)
        for cb in self.callbacks:
            cb.on_train_end(self.history)
        return self.history


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
        device: where to train; ``None``: where the model is (``repro.resolve_device``; pass
            ``repro.pick_device()`` for the best device here).
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
    settings = _check_fit_args(
        model, train_loader, val_loader, criterion, optimizer, scheduler, early_stopping,
        {"num_epochs": num_epochs, "accumulation_steps": accumulation_steps,
         "max_grad_norm": max_grad_norm, "amp": amp, "metrics": metrics, "monitor": monitor,
         "mode": mode, "checkpoint_dir": checkpoint_dir, "progress": progress})
    device = resolve_device(device, model)
    if not is_ddp(model):
        model.to(device)
    if amp:
        amp_dtype(device)  # rejects devices without autocast support
    run = _FitRun(model, (train_loader, val_loader), criterion, optimizer, scheduler, device,
                  settings, as_callbacks(callbacks))
    if resume is not None:
        run.resume_from(Path(resume))
    for cb in run.callbacks:
        cb.on_train_begin(run.history)
    run.open_bar()
    try:
        for epoch in range(run.start_epoch + 1, settings.num_epochs + 1):
            if run.stopped:
                break
            run.end_epoch(epoch, run.train_epoch(epoch))
    except BaseException:
        if run.bar is not None:
            run.bar.close()
        raise
    return run.finish()
