"""Schedules: a factor that changes over the steps, for the guidance scale and for each term's weight.

A schedule runs over its window [start, end) of the sampling steps (fractions of the steps done,
the half-open window rule). With u = (fraction - start) / (end - start) in [0, 1):

    constant     1
    linear_up    u                (0 at the window's first step, rising toward 1)
    linear_down  1 - u
    cosine       (1 + cos(pi u)) / 2   (cosine decay from 1 toward 0)
    values       the typed values v_0 .. v_{K-1} placed evenly over the window (v_0 at u = 0,
                 v_{K-1} at u = 1) and joined by straight lines; one value is a constant

and 0 outside the window. A window alone is the constant curve: today's start/end. The factor
multiplies the setting it schedules (the sampler's scale, a term's weight). Plain Python, no
torch: the sampler asks for one number per guided evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CURVES", "Schedule", "parse_schedule_values"]

CURVES = ("constant", "linear_up", "linear_down", "cosine", "values")
MAX_VALUES = 1000


def parse_schedule_values(values: str | Sequence[float] | None, name: str = "schedule_values") -> tuple[float, ...]:
    """Numbers from text ("1, 0.5, 0" or "1 0.5 0") or a sequence; each finite and >= 0."""
    if values is None:
        return ()
    if isinstance(values, str):
        out = []
        for p in values.replace(",", " ").replace(";", " ").split():
            try:
                out.append(float(p))
            except ValueError:
                raise ValueError(f"{name}: {p!r} is not a number; type numbers separated by commas, "
                                 "e.g. '0, 1, 1, 0.5'") from None
    else:
        out = [float(v) for v in values]
    for v in out:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name}: {v} is not allowed; each value is a factor, a finite number >= 0")
    if len(out) > MAX_VALUES:
        raise ValueError(f"{name}: {len(out)} values given, at most {MAX_VALUES}")
    return tuple(out)


@dataclass(frozen=True)
class Schedule:
    """A curve over the window [start, end) of the steps; :meth:`factor` is its value at a fraction."""

    curve: str = "constant"
    values: tuple[float, ...] = ()
    start: float = 0.0
    end: float = 1.0

    @classmethod
    def make(cls, curve: str | None, values: str | Sequence[float] | None = None, start: float = 0.0,
             end: float = 1.0, name: str = "curve", values_name: str = "values") -> Schedule:
        """A checked schedule; ``values`` is needed (and only allowed) with the "values" curve.

        ``name`` and ``values_name`` are the inputs the messages name (e.g. scale_curve, scale_values).
        """
        curve = curve or "constant"
        if curve not in CURVES:
            raise ValueError(f"{name}: {curve!r} is not one of the curves {CURVES}")
        vals = parse_schedule_values(values, values_name)
        if curve == "values" and not vals:
            raise ValueError(f"{name}: the 'values' curve needs at least one number in {values_name} "
                             "(e.g. '0, 1, 0.5')")
        if curve != "values" and vals:
            raise ValueError(f"{values_name} are used only with {name} = values; pick that curve or clear them")
        start, end = float(start), float(end)
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(f"{name}: the window {start}-{end} must satisfy 0 <= start < end <= 1")
        return cls(curve, vals, start, end)

    @property
    def is_constant(self) -> bool:
        return self.curve == "constant" or (self.curve == "values" and len(set(self.values)) == 1)

    def position(self, fraction: float) -> float | None:
        """u in [0, 1) inside the window (the half-open rule), None outside."""
        if not self.start <= fraction < self.end:
            return None
        return (fraction - self.start) / (self.end - self.start)

    def factor(self, fraction: float) -> float:
        """The curve's value at this fraction of the steps (0 outside the window)."""
        u = self.position(fraction)
        if u is None:
            return 0.0
        if self.curve == "constant":
            return 1.0
        if self.curve == "linear_up":
            return u
        if self.curve == "linear_down":
            return 1.0 - u
        if self.curve == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * u))
        v = self.values
        if len(v) == 1:
            return v[0]
        x = u * (len(v) - 1)
        i = min(int(x), len(v) - 2)
        t = x - i
        return v[i] * (1.0 - t) + v[i + 1] * t

    def text(self) -> str:
        """'linear_up' / 'values 0,1,0.5' for summaries."""
        if self.curve == "values":
            return "values " + ",".join(f"{x:g}" for x in self.values)
        return self.curve
