"""Guidance settings shared by the sampler, guider and model-patch nodes."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("x0", "xt")


@dataclass(frozen=True)
class GuidanceSettings:
    """How strongly, when and where the loss gradient steers sampling."""

    mode: str = "x0"
    scale: float = 0.3
    start_percent: float = 0.0
    end_percent: float = 1.0
    recurrence: int = 1
    recurrence_start_percent: float = 0.0
    recurrence_end_percent: float = 1.0
    grad_clip: float = 0.0
    loss_resolution: int = 0

    def validate(self) -> str | None:
        """Return a user-facing message for the first bad value, or None."""
        if self.mode not in MODES:
            return f"mode must be one of {MODES}, got {self.mode!r}"
        if not (0.0 <= self.start_percent <= 1.0 and 0.0 <= self.end_percent <= 1.0):
            return "start_percent and end_percent must lie in [0, 1]"
        if self.start_percent >= self.end_percent:
            return (f"start_percent ({self.start_percent}) must be below end_percent ({self.end_percent}): "
                    "guidance runs only between them")
        if self.recurrence < 1:
            return "recurrence must be at least 1 (1 = no repeats)"
        if self.recurrence > 1 and self.recurrence_start_percent >= self.recurrence_end_percent:
            return (f"recurrence_start_percent ({self.recurrence_start_percent}) must be below "
                    f"recurrence_end_percent ({self.recurrence_end_percent})")
        if self.scale < 0:
            return "scale must be >= 0"
        if self.grad_clip < 0:
            return "grad_clip must be >= 0 (0 = off)"
        if self.loss_resolution < 0:
            return "loss_resolution must be >= 0 (0 = the decoded size)"
        return None

    @property
    def enabled(self) -> bool:
        return self.scale > 0.0
