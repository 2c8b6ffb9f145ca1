"""The guidance step: decode x0, evaluate the wired losses, return a guided prediction.

ComfyUI-free: the adapter hands in a differentiable ``decode`` and calls the engine
from its sampling hooks, inside a grad-enabled context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .guidance import finite_samples, guided_prediction, in_window, resize_for_loss
from .settings import GuidanceSettings

log = logging.getLogger("style_guidance")

OOM_ADVICE = (
    "Style Guidance ran out of memory in the loss networks. Lower `loss_resolution` "
    "(e.g. 384 or 256), pick the taesd decoder in the VAE loader, use mode x0 instead of xt, "
    "or narrow the guidance window; the memory it held has been released."
)


@dataclass
class StepRecord:
    """One guided evaluation: where in the schedule, and the loss values seen."""

    fraction: float
    sigma: float
    total: float
    terms: dict[str, float]
    skipped: int = 0


@dataclass
class GuidanceStats:
    """What the engine did during one sampling run (tests and progress read it)."""

    evaluations: int = 0
    skipped_nonfinite: int = 0
    outside_window: int = 0
    history: list[StepRecord] = field(default_factory=list)


class GuidanceEngine:
    """Turns a loss chain into guided denoised predictions for one model and decoder."""

    def __init__(self, losses, decode: Callable[[torch.Tensor], torch.Tensor], settings: GuidanceSettings,
                 report: Callable[[str], None] | None = None) -> None:
        self.losses = losses
        self.decode = decode
        self.settings = settings
        self.report = report
        self.stats = GuidanceStats()
        self.autocast_dtype: torch.dtype | None = None

    # -- run lifecycle -------------------------------------------------------------
    def begin(self, seed: int | None) -> None:
        """Start a sampling run: fresh stats, loss randomness reseeded for repeatability."""
        self.stats = GuidanceStats()
        self.losses.reset_rng(int(seed or 0))

    def wants(self, fraction: float) -> bool:
        """Whether the evaluation at this fraction of the schedule is guided; counts skips."""
        s = self.settings
        if not in_window(fraction, s.start_percent, s.end_percent):
            self.stats.outside_window += 1
            return False
        return True

    # -- the maths ---------------------------------------------------------------
    def _loss(self, x0: torch.Tensor):
        images = self.decode(x0)
        images = resize_for_loss(images, self.settings.loss_resolution)
        if self.autocast_dtype is not None and images.device.type == "cuda":
            with torch.autocast("cuda", dtype=self.autocast_dtype):
                return self.losses(images)
        return self.losses(images)

    def guide_x0(self, x_t: torch.Tensor, denoised: torch.Tensor, sigma: float, fraction: float) -> torch.Tensor:
        """MPGD-like: gradient w.r.t. the denoised prediction only (no UNet backward)."""
        x0 = denoised.detach().float().clone().requires_grad_(True)
        result = self._loss(x0)
        (grad,) = torch.autograd.grad(result.total.sum(), x0)
        return self._finish(x_t, denoised, grad, result, sigma, fraction)

    def guide_xt(self, x_t: torch.Tensor, denoise_fn: Callable[[torch.Tensor], torch.Tensor],
                 sigma: float, fraction: float) -> torch.Tensor:
        """FreeDoM-like: gradient w.r.t. the noisy latent, back through the denoiser."""
        x = x_t.detach().clone().requires_grad_(True)
        denoised = denoise_fn(x)
        result = self._loss(denoised.float())
        (grad,) = torch.autograd.grad(result.total.sum(), x)
        return self._finish(x_t, denoised.detach(), grad, result, sigma, fraction)

    def _finish(self, x_t, denoised, grad, result, sigma: float, fraction: float) -> torch.Tensor:
        ok = finite_samples(grad)
        # One device-to-host copy for everything logged (each float() would be a GPU sync).
        names = list(result.terms)
        packed = torch.stack([(~ok).sum().float(), result.total.detach().float().mean(),
                              *(result.terms[k].detach().float().mean() for k in names)]).tolist()
        skipped, total = int(packed[0]), packed[1]
        terms = dict(zip(names, packed[2:], strict=True))
        self.stats.evaluations += 1
        self.stats.skipped_nonfinite += skipped
        self.stats.history.append(StepRecord(fraction, sigma, total, terms, skipped))
        if skipped:
            log.warning("[Style Guidance] non-finite gradient for %d sample(s) at sigma %.4g: "
                        "guidance skipped for them at this step", skipped, sigma)
        if self.report is not None:
            text = " ".join(f"{k}={v:.4g}" for k, v in terms.items())
            self.report(f"step {fraction:.0%} sigma {sigma:.3g}: loss {total:.4g} ({text})")
        with torch.no_grad():
            return guided_prediction(x_t.detach(), denoised.detach(), grad.detach(),
                                     self.settings.scale, self.settings.grad_clip)
