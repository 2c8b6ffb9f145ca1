"""Backward through models that update activations in place or run custom ops without backward.

ComfyUI's Flux blocks add their residuals in place (``img += ...``, ``txt += ...``, ``x += ...`` in
``comfy/ldm/flux/layers.py``) after a LayerNorm has saved ``img`` for backward, so a backward pass
through them fails with "modified by an inplace operation". Letting autograd keep its own copy of
each saved activation makes the same forward differentiable, with exactly the gradient of the
out-of-place maths. It costs one copy of every saved activation (weights are not copied), so the
adapter turns it on only for a model that needs it.

A model that ComfyUI runs through a custom op without an autograd formula (0.8.0: comfy_kitchen's
RoPE) gets, for its grad-enabled runs only, the op's differentiable equivalent from
:mod:`sampler.op_fallbacks`.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

from . import op_fallbacks

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
# Models whose forward goes through custom ops without backward (found the same way): their
# grad-enabled runs use the ops' differentiable equivalents (sampler/op_fallbacks.py).
_FALLBACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def no_backward_error(op: str) -> RuntimeError:
    """The refusal for a custom op without backward that has no known equivalent."""
    return RuntimeError(
        f"Style Guidance: this ComfyUI runs the model through the custom op '{op}', which has no backward (no "
        "autograd formula), and the pack knows no differentiable equivalent of it. xt mode and the model-feature "
        "terms need a gradient through the diffusion model: set mode to x0 and use image-space terms only, or run "
        "a ComfyUI/backend that does not route the model through that op")


def _context(model: object) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    if model in _NEEDS_COPIES:
        stack.enter_context(clone_saved_activations())
    fallbacks = _FALLBACKS.get(model)
    if fallbacks:
        stack.enter_context(op_fallbacks.substituted(fallbacks))
    return stack


def backward_through(model: object, run: Callable[[], T]) -> T:
    """``run()`` (a forward and backward through ``model``), made differentiable where ``model`` needs it.

    The first in-place failure marks the model and runs it again with saved copies; the first
    "no autograd formula" failure on a known custom op marks it and runs it again with the op's
    equivalent swapped in for the run (an unknown op is refused by name); other errors pass.
    """
    while True:
        try:
            with _context(model):
                return run()
        except RuntimeError as e:
            if is_inplace_error(e) and model not in _NEEDS_COPIES:  # e.g. Flux adds residuals in place
                _NEEDS_COPIES.add(model)
                log.info("[Style Guidance] xt mode: %s updates activations in place; autograd keeps copies of them "
                         "for this model from now on", type(model).__name__)
                continue
            op = op_fallbacks.missing_backward_op(e)
            if op is None:
                raise
            fallback = op_fallbacks.fallback_for(op)
            known = _FALLBACKS.setdefault(model, [])
            if fallback is None:
                raise no_backward_error(op) from e
            if fallback in known:  # swapped in and still failing: a binding this module cannot reach
                raise
            known.append(fallback)
            log.info("[Style Guidance] %s runs through %s, which has no backward: its grad-enabled passes use a "
                     "differentiable equivalent (%s) from now on", type(model).__name__, op, fallback.name)
