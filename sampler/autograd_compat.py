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
from collections.abc import Iterator

import torch

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
