"""Helpers for a hands-on PyTorch course: models, transfer learning, losses, optimizers and LR
schedulers, metrics, training and inference.

Each lesson imports what it needs from one module per concept (``lesson_utils.data``,
``lesson_utils.models``, ``lesson_utils.losses``, ...). The names used in every lesson are
re-exported here.

Example:
    >>> from lesson_utils import seed_everything, pick_device
    >>> _ = seed_everything(0)
"""

from lesson_utils import offline as _offline  # noqa: F401  (turns the offline guard on if asked)
from lesson_utils.repro import pick_device, seed_everything

__version__ = "0.1.0"
__all__ = ["seed_everything", "pick_device", "__version__"]
