"""Guidance settings shared by the sampler, guider and model-patch nodes."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

MODES = ("x0", "xt")
COMBINES = ("weighted", "projected")  # how the terms' pulls are summed (sampler/balance.py)
RECURRENCE_MAX = 10


@dataclass(frozen=True)
class GuidanceSettings:
    """How strongly, when and where the loss gradient steers sampling.

    The node inputs of the same names are derived from these fields (see ``nodes/_common.py``):
    adding a field here adds it to every guidance node.
    """

    mode: str = "x0"
    scale: float = 0.3
    start_percent: float = 0.0
    end_percent: float = 1.0
    recurrence: int = 1
    recurrence_start_percent: float = 0.0
    recurrence_end_percent: float = 1.0
    grad_clip: float = 0.0
    loss_resolution: int = 0
    # The scale's curve over the window and its typed values (losses/schedule.py; checked by scale_schedule()).
    scale_curve: str = "constant"
    scale_values: str = ""
    # weighted: the terms' pulls summed as they are; projected: conflicts between them projected away first.
    combine: str = "weighted"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> GuidanceSettings:
        """Settings from a dict of node inputs; missing keys take the defaults, others are ignored."""
        d = cls()
        kwargs = {}
        for f in fields(cls):
            if f.name in values and values[f.name] is not None:
                kind = type(getattr(d, f.name))
                kwargs[f.name] = kind(values[f.name])
        return cls(**kwargs)

    def validate(self) -> str | None:
        """Return a user-facing message for the first bad value, or None."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                return f"{f.name} must be a finite number, got {v}"
        if self.mode not in MODES:
            return f"mode must be one of {MODES}, got {self.mode!r}"
        if self.combine not in COMBINES:
            return f"combine must be one of {COMBINES}, got {self.combine!r}"
        for name in ("start_percent", "end_percent", "recurrence_start_percent", "recurrence_end_percent"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                return f"{name} must lie in [0, 1], got {getattr(self, name)}"
        if self.start_percent >= self.end_percent:
            return (f"start_percent ({self.start_percent}) must be below end_percent ({self.end_percent}): "
                    "guidance runs only between them")
        if not 1 <= self.recurrence <= RECURRENCE_MAX:
            return f"recurrence must lie in 1..{RECURRENCE_MAX} (1 = no repeats), got {self.recurrence}"
        if self.recurrence > 1 and self.recurrence_start_percent >= self.recurrence_end_percent:
            return (f"recurrence_start_percent ({self.recurrence_start_percent}) must be below "
                    f"recurrence_end_percent ({self.recurrence_end_percent})")
        if not 0.0 <= self.scale <= 10.0:
            return f"scale must lie in [0, 10], got {self.scale}"
        if not 0.0 <= self.grad_clip <= 100.0:
            return f"grad_clip must lie in [0, 100] (0 = off), got {self.grad_clip}"
        if self.loss_resolution != 0 and not 32 <= self.loss_resolution <= 4096:
            return (f"loss_resolution must be 0 (the decoded size) or in [32, 4096], got {self.loss_resolution}: "
                    "the loss networks need at least 32 px")
        return None

    @property
    def enabled(self) -> bool:
        return self.scale > 0.0
