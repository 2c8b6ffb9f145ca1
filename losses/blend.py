"""Blends of several styles: a style batch taken as ONE target, the weighted mean of the per-image targets.

Two ways a style batch of R images meets a generated batch of B samples:

* ``pair`` (the default, the pairing rule of :mod:`.inputs`): sample i is guided toward style i % R;
* ``blend``: every sample is guided toward one target, sum_r w_r * T_r / sum_r w_r, where T_r is
  the term's own target for style image r (its Gram matrices, its normalised CLIP embedding, its
  token Gram). Weights are non-negative with a positive sum; empty means equal weights. A style
  to move *away* from is a separate term with a negative weight, not a negative blend weight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["STYLE_BATCH_MODES", "blend_targets", "check_style_batch", "parse_blend_weights", "resolve_blend_weights"]

STYLE_BATCH_MODES = ("pair", "blend")


def check_style_batch(mode: str) -> str:
    """Validate the ``style_batch`` option."""
    if mode not in STYLE_BATCH_MODES:
        raise ValueError(f"style_batch must be one of {STYLE_BATCH_MODES}, got {mode!r}")
    return mode


def parse_blend_weights(weights: str | Sequence[float] | None) -> tuple[float, ...]:
    """Blend weights from text ("1, 0.5" or "1 0.5"; empty: equal) or a sequence of numbers.

    Raises ValueError naming ``blend_weights`` for a value that is not a number, a negative or
    non-finite weight, or weights that are all zero.
    """
    if weights is None:
        return ()
    if isinstance(weights, str):
        parts = [p for p in weights.replace(",", " ").replace(";", " ").split() if p]
        values = []
        for p in parts:
            try:
                values.append(float(p))
            except ValueError:
                raise ValueError(f"blend_weights: {p!r} is not a number; type numbers separated by commas, "
                                 "e.g. '1, 0.5' (empty = equal weights)") from None
    else:
        values = [float(v) for v in weights]
    for v in values:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"blend_weights: {v} is not allowed; each weight must be a finite number >= 0 "
                             "(to move away from a style, give it its own term with a negative weight)")
    if values and not any(values):
        raise ValueError("blend_weights: all weights are 0, so there is no target; give at least one a positive weight")
    return tuple(values)


def resolve_blend_weights(weights: str | Sequence[float] | None, count: int) -> Tensor:
    """Normalised blend weights (count,) float64 summing to 1 for a style batch of ``count`` images.

    One weight per image; an empty list gives equal weights. A different count is refused with a
    message that names both numbers.
    """
    values = parse_blend_weights(weights)
    if not values:
        values = (1.0,) * count
    if len(values) != count:
        raise ValueError(f"blend_weights: {len(values)} weight(s) given for a style batch of {count} image(s); "
                         "give one weight per style image, in batch order (or leave it empty for equal weights)")
    w = torch.tensor(values, dtype=torch.float64)
    return w / w.sum()


def blend_targets(targets: Tensor, weights: Tensor) -> Tensor:
    """The weighted mean over the first dimension: (R,...) targets, (R,) weights -> (1,...)."""
    if targets.shape[0] != weights.shape[0]:
        raise ValueError(f"blend: {targets.shape[0]} targets but {weights.shape[0]} weights")
    w = weights.to(device=targets.device, dtype=torch.float64).view(-1, *([1] * (targets.dim() - 1)))
    return (targets.double() * w).sum(dim=0, keepdim=True).to(targets.dtype)
