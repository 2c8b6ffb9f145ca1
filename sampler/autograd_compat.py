"""The pack's autograd plumbing, in one place: everything that lets a gradient run where ComfyUI
runs without one.

- :func:`autograd_enabled`: leave ComfyUI's inference mode and no_grad for a guided computation;
- :func:`ordinary_copy` / :func:`make_ordinary_`: the pack's private copies of networks (decoder
  copy, CLIP vision tower, loss networks) hold ordinary tensors, never inference tensors;
- :func:`ordinary_weights`: for one guided forward, ComfyUI's shared model holds ordinary copies of
  its weights, and gets its own back right after (:func:`model_and_controls`: which networks those are);
- :func:`backward_through`: the in-place retry and the custom-op fallback described below.

Backward through models that update activations in place or run custom ops without backward.

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
import copy
import logging
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

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


@contextlib.contextmanager
def autograd_enabled() -> Iterator[None]:
    """Leave ComfyUI's inference mode and no_grad for the guidance computation only."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def ordinary_copy(module: torch.nn.Module, dtype: torch.dtype | None = None,
                  leave_out: Iterable[torch.nn.Module] = ()) -> torch.nn.Module:
    """A deep copy of ``module`` whose tensors are fresh ordinary tensors (floating ones in ``dtype``).

    For the pack's private copies of ComfyUI networks (the decoder copy, the CLIP vision tower):
    ComfyUI creates weights inside ``torch.inference_mode`` and autograd cannot save those for
    backward. ``leave_out``: submodules replaced by ``nn.Identity`` in the copy (never copied).
    Parameters come out with ``requires_grad=False``; tied weights stay tied.
    """
    # Pre-seeding deepcopy's memo converts each tensor exactly once (no intermediate copy at the
    # original dtype), which matters for multi-GB towers. Outside inference mode the new tensors
    # are ordinary ones, so autograd can save them for backward.
    memo: dict[int, Any] = {id(m): torch.nn.Identity() for m in leave_out}
    with torch.inference_mode(False), torch.no_grad():
        for tensor in _tensors_outside(module, memo):
            if id(tensor) in memo:
                continue  # tied weights stay tied
            target = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
            fresh = tensor.detach().to(dtype=target, copy=True)
            memo[id(tensor)] = (torch.nn.Parameter(fresh, requires_grad=False)
                                if isinstance(tensor, torch.nn.Parameter) else fresh)
        return copy.deepcopy(module, memo)


def _tensors_outside(module: torch.nn.Module, left_out: dict[int, Any]) -> Iterator[torch.Tensor]:
    """Every parameter and buffer of ``module`` held by a submodule outside the ``left_out`` ones."""
    stack, seen = [module], set()
    while stack:
        mod = stack.pop()
        if id(mod) in seen or id(mod) in left_out:
            continue
        seen.add(id(mod))
        yield from (t for t in (*mod._parameters.values(), *mod._buffers.values()) if t is not None)
        stack.extend(m for m in reversed(list(mod._modules.values())) if m is not None)


def make_ordinary_(module: torch.nn.Module) -> torch.nn.Module:
    """Replace, in place, inference-mode parameters/buffers of a module the PACK owns by ordinary copies.

    For networks the pack built and keeps (loss networks, the decoder copy) that ComfyUI later
    moved inside ``torch.inference_mode``; ComfyUI's own models are never touched this way (see
    :func:`ordinary_weights`). Must run outside inference mode. Cheap when there is nothing to replace.
    """
    for mod in module.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None and p.is_inference():
                mod._parameters[name] = torch.nn.Parameter(p.detach().clone(), requires_grad=False)
        for name, b in list(mod._buffers.items()):
            if b is not None and b.is_inference():
                mod._buffers[name] = b.clone()
    return module


def control_modules(conds) -> Iterator[torch.nn.Module]:
    """The networks of every ControlNet/T2I adapter chained in processed conds (they see the model input)."""
    seen: set[int] = set()
    for c in conds or []:
        control = c.get("control") if isinstance(c, dict) else None
        while control is not None and id(control) not in seen:
            seen.add(id(control))
            for value in vars(control).values():
                if isinstance(value, torch.nn.Module):
                    yield value
            control = getattr(control, "previous_controlnet", None)


def model_and_controls(diffusion_model: torch.nn.Module, *conds) -> list[torch.nn.Module]:
    """The networks a model call runs on its input: the diffusion model and the ControlNets chained in ``conds``."""
    return [diffusion_model, *(m for c in conds for m in control_modules(c))]


@contextlib.contextmanager
def ordinary_weights(modules: Iterable[torch.nn.Module], device: torch.device | None = None) -> Iterator[None]:
    """Ordinary copies in place of ComfyUI's inference-mode weights, for one guided forward.

    Prompts run under ``torch.inference_mode`` and weights ComfyUI created there cannot be
    saved for backward. For the duration of the block, every such parameter/buffer (on
    ``device``; offloaded ones are copied by ComfyUI's own casting at use) is swapped for a
    copy with ``requires_grad=False``; the originals go back right after, so the shared model
    ends every evaluation holding exactly the tensors it held before. Tensors that are already
    ordinary (an enclosing block swapped them) are left alone, so nesting is cheap.
    """
    saved: list[tuple[dict, str, torch.Tensor]] = []
    seen: set[int] = set()
    try:
        with torch.inference_mode(False), torch.no_grad():
            for root in modules:
                for mod in root.modules():
                    if id(mod) in seen:
                        continue
                    seen.add(id(mod))
                    for store in (mod._parameters, mod._buffers):
                        for name, t in list(store.items()):
                            if t is None or not t.is_inference() or (device is not None and t.device != device):
                                continue
                            saved.append((store, name, t))
                            fresh = t.detach().clone()
                            store[name] = (torch.nn.Parameter(fresh, requires_grad=False)
                                           if isinstance(t, torch.nn.Parameter) else fresh)
        yield
    finally:
        for store, name, t in reversed(saved):
            store[name] = t


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
