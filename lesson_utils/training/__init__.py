"""The training loop and what a real run needs around it.

- ``loop``: ``train_one_epoch`` (the loop of lesson 06, with accumulation, clipping, AMP and
  per-step schedulers) and ``evaluate``;
- ``fitting``: ``fit``, epochs with validation, scheduling, early stopping, checkpoints and
  exact resume;
- ``callbacks``: ``History``, ``EarlyStopping``, ``Callback``, ``LiveLossPlot``;
- ``amp``, ``resume``, ``distributed``: mixed precision, RNG state for resuming, and the helpers
  that let the same loop run under ``torchrun``.
"""

from lesson_utils.training.amp import amp_dtype
from lesson_utils.training.callbacks import Callback, EarlyStopping, History, LiveLossPlot
from lesson_utils.training.fitting import fit
from lesson_utils.training.loop import evaluate, train_one_epoch

__all__ = ["Callback", "EarlyStopping", "History", "LiveLossPlot", "amp_dtype", "evaluate",
           "fit", "train_one_epoch"]
