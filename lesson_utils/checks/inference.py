"""Self-checks for lesson 07 (inference).

The checkers run the student's function on a small model with Dropout and BatchNorm, the two
layers that behave differently in train and eval mode, so a forgotten ``model.eval()`` shows up
in the numbers, and then say which mistake it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lesson_utils.checks._core import call_student, fail, passed

__all__ = ["check_predict_probs", "check_tta_probs"]


def _probe_model() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 5 * 6, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        model[1].running_mean.copy_(torch.rand(4, generator=g) - 0.5)
        model[1].running_var.copy_(torch.rand(4, generator=g) + 0.5)
    return model


def _images(n: int = 37) -> torch.Tensor:
    # (N, 3, 5, 6): not square, so a flip of the wrong axis is visible
    return torch.rand(n, 3, 5, 6, generator=torch.Generator().manual_seed(1))




def _check_tensor(what: str, value: Any, shape: tuple[int, int]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        fail(what, f"return a tensor of probabilities {shape}, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        hint = ""
        if value.ndim == 2 and value.shape[1] == shape[1] and value.shape[0] < shape[0]:
            hint = ": some rows are missing; did the last, smaller batch get dropped?"
        fail(what, f"expected shape {shape}, got {tuple(value.shape)}{hint}")
    if value.requires_grad:
        fail(what, "the result requires grad: predict under `torch.inference_mode()` (or "
                   "`torch.no_grad()`) so no autograd graph is recorded")
    return value.detach().float()


def _bn_stats(model: nn.Module) -> tuple[torch.Tensor, ...]:
    bn = model[1]
    return bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()


def check_predict_probs(predict_probs: Callable[..., Any]) -> bool:
    """Check ``predict_probs(model, X, batch_size) -> probs (N, K)``.

    It must predict in eval mode, without recording gradients, batch by batch (the last
    batch may be smaller), return softmax probabilities, and leave the model in the mode it
    was in.

    Example:
        >>> def predict_probs(model, X, batch_size=16):
        ...     was_training = model.training
        ...     model.eval()
        ...     with torch.inference_mode():
        ...         logits = torch.cat([model(xb) for xb in X.split(batch_size)])
        ...     model.train(was_training)
        ...     return logits.softmax(dim=1)
        >>> check_predict_probs(predict_probs)
        ✅ predict_probs: correct: eval mode, no gradients, probabilities, mode restored
        True
    """
    what = "predict_probs"
    if not callable(predict_probs):
        fail(what, f"expected a function, got {type(predict_probs).__name__}")
    model = _probe_model()
    X = _images()
    model.eval()
    with torch.no_grad():
        expected = model(X).softmax(dim=1)
    for start_in_train in (True, False):
        model.train(start_in_train)
        stats = _bn_stats(model)
        got = _check_tensor(what, call_student(what, predict_probs, model, X, batch_size=16),
                            tuple(expected.shape))
        changed = any(not torch.equal(a, b) for a, b in zip(stats, _bn_stats(model),
                                                             strict=True))
        if not torch.allclose(got.sum(dim=1), torch.ones(len(got)), atol=1e-4):
            if torch.allclose(got, expected.log(), atol=1e-4) or torch.allclose(
                    got.softmax(dim=1), expected, atol=1e-5):
                fail(what, "these are logits, not probabilities: apply `.softmax(dim=1)`")
            fail(what, "the rows do not sum to 1: apply `.softmax(dim=1)` over the classes")
        if changed:
            fail(what, "BatchNorm's running statistics changed: the model was in train mode "
                       "during prediction; call `model.eval()` first")
        if not torch.allclose(got, expected, atol=1e-5):
            if start_in_train:
                fail(what, "the probabilities differ from eval mode's: call `model.eval()` so "
                           "Dropout is off and BatchNorm uses its running statistics")
            fail(what, f"the probabilities differ from the expected ones (max abs difference "
                       f"{float((got - expected).abs().max()):.3g})")
        if model.training != start_in_train:
            mode = "train" if start_in_train else "eval"
            fail(what, f"the model was in {mode} mode before and is not after: remember "
                       f"`was_training = model.training` and restore it with "
                       f"`model.train(was_training)`")
    return passed(what, "correct: eval mode, no gradients, probabilities, mode restored")


def check_tta_probs(tta_probs: Callable[..., Any]) -> bool:
    """Check ``tta_probs(model, X) -> probs (N, K)``: the average of the softmax
    probabilities of ``X`` and of ``X`` mirrored left-right (the last dimension), in eval mode
    without gradients.

    Example:
        >>> def tta_probs(model, X):
        ...     model.eval()
        ...     with torch.inference_mode():
        ...         p = model(X).softmax(dim=1) + model(X.flip(-1)).softmax(dim=1)
        ...     return p / 2
        >>> check_tta_probs(tta_probs)
        ✅ tta_probs: correct: mean of the probabilities of the image and its mirror
        True
    """
    what = "tta_probs"
    if not callable(tta_probs):
        fail(what, f"expected a function, got {type(tta_probs).__name__}")
    model = _probe_model()
    X = _images(12)
    model.eval()
    with torch.no_grad():
        logits, flipped = model(X), model(X.flip(-1))
        expected = (logits.softmax(1) + flipped.softmax(1)) / 2
        mistakes = {
            "average the probabilities, not the logits: softmax each view, then take the mean":
                ((logits + flipped) / 2).softmax(1),
            "flip the last dimension (width, `X.flip(-1)`) for a left-right mirror; "
            "`flip(-2)` turns the image upside down":
                (logits.softmax(1) + model(X.flip(-2)).softmax(1)) / 2,
            "include the original image as well as the mirrored one":
                flipped.softmax(1),
            "divide by the number of views (2) so the probabilities sum to 1":
                logits.softmax(1) + flipped.softmax(1),
        }
    model.train()
    got = _check_tensor(what, call_student(what, tta_probs, model, X), tuple(expected.shape))
    if torch.allclose(got, expected, atol=1e-5):
        return passed(what, "correct: mean of the probabilities of the image and its mirror")
    for hint, wrong in mistakes.items():
        if torch.allclose(got, wrong, atol=1e-5):
            fail(what, hint)
    if torch.allclose(got.sum(1), torch.ones(len(got)), atol=1e-4):
        fail(what, "the probabilities differ from eval mode's: call `model.eval()` (Dropout "
                   "and BatchNorm change the outputs in train mode)")
    fail(what, f"the result differs from the expected probabilities (max abs difference "
               f"{float((got - expected).abs().max()):.3g})")
