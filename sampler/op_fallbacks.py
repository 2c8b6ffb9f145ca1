"""Differentiable pure-torch equivalents of custom ops that ComfyUI calls and that have no backward.

ComfyUI 0.8.0 routes the rotary embedding of its DiTs (``comfy/ldm/flux/math.py``: Flux, Chroma,
HiDream, Lumina 2, Qwen-Image, Wan, ...) through ``comfy_kitchen``'s ``apply_rope`` /
``apply_rope1``, registered as torch custom ops without an autograd formula, so a backward
through the model fails with "Trying to backward through comfy_kitchen.apply_rope.default but no
autograd formula was registered". Each known op here has an equivalent with the same numbers as
the op's own torch implementation. :func:`substituted` swaps it in for one grad-enabled pass, in
every ComfyUI module that bound the op's function (``from comfy.ldm.flux.math import apply_rope``
makes a binding per module), and puts the originals back afterwards, so plain sampling keeps
ComfyUI's own ops untouched.

This module reads ComfyUI internals (module-level bindings of ``comfy.*``); it imports nothing
from ComfyUI, so on a ComfyUI without such ops it finds nothing to swap.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

_NO_FORMULA = re.compile(r"backward through ([A-Za-z_][\w]*\.[A-Za-z_]\w*)(?:\.\w+)? but no autograd formula")


def _rope1(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Interleaved RoPE on one tensor, as ComfyUI's torch path and comfy_kitchen's eager backend compute it."""
    if x.ndim > 2 and freqs_cis.ndim > 2 and x.shape[2] != 1 and freqs_cis.shape[2] > x.shape[2]:
        freqs_cis = freqs_cis[:, :, : x.shape[2]]  # the op trims surplus sequence frequencies itself
    x_ = x.to(dtype=freqs_cis.dtype).reshape(*x.shape[:-1], -1, 1, 2)
    # Out-of-place addcmul: the same arithmetic (and rounding) as the op's in-place one, differentiable.
    out = torch.addcmul(freqs_cis[..., 0] * x_[..., 0], freqs_cis[..., 1], x_[..., 1])
    return out.reshape(*x.shape).type_as(x)


def _rope(xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved RoPE on queries and keys (``apply_rope``)."""
    return _rope1(xq, freqs_cis), _rope1(xk, freqs_cis)


@dataclass(frozen=True)
class OpFallback:
    """A family of custom ops without backward and the pure-torch functions that stand in for their wrappers."""

    name: str
    ops: tuple[str, ...]  # "namespace.op" as autograd's error names them
    package: str  # the module whose functions ComfyUI binds
    functions: dict[str, Callable]  # that module's function name -> equivalent


KNOWN: tuple[OpFallback, ...] = (
    OpFallback("rotary embedding (comfy_kitchen)", ("comfy_kitchen.apply_rope", "comfy_kitchen.apply_rope1"),
               "comfy_kitchen", {"apply_rope": _rope, "apply_rope1": _rope1}),
)


def missing_backward_op(error: BaseException) -> str | None:
    """The op ("namespace.op") autograd names in a "no autograd formula was registered" error, else None."""
    if not isinstance(error, RuntimeError):
        return None
    m = _NO_FORMULA.search(str(error))
    return m.group(1) if m else None


def fallback_for(op: str) -> OpFallback | None:
    """The known fallback covering ``op``, or None."""
    return next((f for f in KNOWN if op in f.ops), None)


def _bindings(fallback: OpFallback) -> list[tuple[object, str, Callable, Callable]]:
    """(module, attribute, original, equivalent) for every ComfyUI module that bound one of the op's functions."""
    package = sys.modules.get(fallback.package)
    if package is None:
        return []
    originals = {id(getattr(package, n)): (getattr(package, n), eq)
                 for n, eq in fallback.functions.items() if hasattr(package, n)}
    found = []
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not (mod_name == "comfy" or mod_name.startswith(("comfy.", "comfy_extras."))):
            continue
        for attr, value in list(vars(mod).items()):
            hit = originals.get(id(value))
            if hit is not None and hit[0] is value:
                found.append((mod, attr, value, hit[1]))
    return found


@contextlib.contextmanager
def substituted(fallbacks: Iterable[OpFallback]) -> Iterator[None]:
    """Within this context ComfyUI calls the equivalents instead of the ops; the originals come back on exit."""
    swapped = [b for f in fallbacks for b in _bindings(f)]
    try:
        for mod, attr, _, equivalent in swapped:
            setattr(mod, attr, equivalent)
        yield
    finally:
        for mod, attr, original, _ in swapped:
            setattr(mod, attr, original)
