"""Backward through models that update activations in place.

ComfyUI's Flux blocks add their residuals in place (``img += ...``, ``txt += ...``, ``x += ...`` in
``comfy/ldm/flux/layers.py``) after a LayerNorm has saved ``img`` for backward, so a backward pass
through them fails with "modified by an inplace operation". Letting autograd keep its own copy of
each saved activation makes the same forward differentiable, with exactly the gradient of the
out-of-place maths. It costs one copy of every saved activation (weights are not copied), so the
adapter turns it on only for a model that needs it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

T = TypeVar("T")
log = logging.getLogger("style_guidance")

INPLACE_ERROR = "modified by an inplace operation"


def _pack(t: torch.Tensor) -> torch.Tensor:
    # Activations on the gradient path are copied; weights and constants are kept by reference.
    return t.clone() if t.requires_grad else t


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


@contextlib.contextmanager
def clone_saved_activations() -> Iterator[None]:
    """Within this context autograd saves copies of activations: later in-place updates cannot spoil them."""
    with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
        yield


def is_inplace_error(error: BaseException) -> bool:
    """True for autograd's complaint about a saved tensor changed in place."""
    return isinstance(error, RuntimeError) and INPLACE_ERROR in str(error)


# Models whose forward updates activations in place (found by a first failed backward): they run
# with saved copies from then on, in every later run too.
_NEEDS_COPIES: weakref.WeakSet = weakref.WeakSet()


def backward_through(model: object, run: Callable[[], T]) -> T:
    """``run()`` (a forward and backward through ``model``), with saved copies when ``model`` needs them.

    The first in-place failure marks the model and runs it again with copies; other errors pass.
    """
    if model in _NEEDS_COPIES:
        with clone_saved_activations():
            return run()
    try:
        return run()
    except RuntimeError as e:  # e.g. Flux adds residuals in place
        if not is_inplace_error(e):
            raise
        _NEEDS_COPIES.add(model)
        log.info("[Style Guidance] xt mode: %s updates activations in place; autograd keeps copies of them for "
                 "this model from now on", type(model).__name__)
        with clone_saved_activations():
            return run()


def with_ordinary_tensors(obj: T) -> T:
    """A shallow copy of ``obj`` whose tensor attributes are ordinary copies autograd can save.

    ComfyUI makes a latent format's per-channel mean and std (Wan 2.1's, Qwen-Image's) while a prompt
    runs in inference mode, and such tensors cannot be saved for backward. Call outside inference mode.
    """
    out = copy.copy(obj)
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor) and value.is_inference():
            setattr(out, name, value.clone())
    return out
