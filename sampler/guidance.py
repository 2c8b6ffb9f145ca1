"""The guidance maths, in plain torch: step normalisation, the window rule, resizing, re-noising."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

EPS = 1e-12
# Loss networks need a few pixels to work with (VGG19's relu5_1 is 1x1 at 16 px; pooling fails
# below): decoded images smaller than this are upsampled before the losses.
MIN_LOSS_SIDE = 32
# Upsampling a tiny picture to MIN_LOSS_SIDE keeps its aspect only while its longer side stays below this.
MAX_UPSAMPLED_SIDE = 256


def rms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample root mean square, shaped to broadcast against ``t``."""
    dims = tuple(range(1, t.ndim))
    return t.float().pow(2).mean(dim=dims, keepdim=True).sqrt()


def finite_samples(grad: torch.Tensor) -> torch.Tensor:
    """Bool (B,) mask of samples whose gradient is entirely finite."""
    return torch.isfinite(grad.flatten(1)).all(dim=1)


def unit_rms(grad: torch.Tensor, tiny: float = 1e-20) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad scaled to unit RMS per sample, bool (B,) 'had a usable gradient').

    Samples whose gradient is zero or non-finite come back as zeros and False: they take no
    part in the direction instead of blowing it up.
    """
    g = grad.float()
    ok = finite_samples(g)
    shape = (-1, *([1] * (g.ndim - 1)))
    g = torch.where(ok.view(shape), g, torch.zeros_like(g))
    # An extreme gradient is divided by its largest |value| first: squaring 1e20 would overflow
    # float32 to an infinite RMS (the sample would come back as zeros while still counted as
    # guided), squaring 1e-25 would underflow to zero. Others keep the plain arithmetic.
    peak = g.flatten(1).abs().amax(dim=1).view(shape)
    extreme = (peak > 1e15) | (peak < 1e-15)
    g = torch.where(extreme, g / peak.clamp_min(tiny), g)
    r = rms(g)
    live = ok & (peak.flatten() > tiny) & (r.flatten() > 0)
    unit = torch.where(live.view(shape), g / r.clamp_min(tiny), torch.zeros_like(g))
    return unit, live


def guided_prediction(x_t: torch.Tensor, denoised: torch.Tensor, grad: torch.Tensor,
                      scale: float, grad_clip: float = 0.0) -> torch.Tensor:
    """Move the denoised prediction against the loss gradient, with a normalised step.

    Normalisation: the gradient is scaled to unit RMS per sample and the step is
    ``scale`` times the RMS of ``x_t - denoised`` (= sigma * predicted noise). So
    ``scale`` reads as "fraction of the denoiser's own update" in noise space, as in
    FreeDoM/MPGD's relative step sizes. This makes one value work across models
    (SD1.5/SDXL latents differ in scale), resolutions (RMS, not norm) and noise levels
    (the step shrinks with sigma, where the picture is already decided).
    Samples with a non-finite or zero gradient are left unguided.
    """
    g_hat, _ = unit_rms(grad)
    if grad_clip > 0:
        g_hat = g_hat.clamp(-grad_clip, grad_clip)
    step = rms(x_t.float() - denoised.float())
    return (denoised.float() - scale * step * g_hat).to(denoised.dtype)


# ------------------------------------------------------------------ the window rule
def in_window(fraction: float, start: float, end: float) -> bool:
    """THE window rule, used everywhere (engine, per-term windows, recurrence, benchmarks).

    Half-open over the fraction of steps done: step i of n (fraction i/n) is inside when
    ``start <= i/n < end``. So [0, 1) covers every step and two adjacent windows never share one.
    """
    return start <= fraction < end


def steps_in_window(n: int, start: float, end: float) -> list[int]:
    """The step indices of an n-step schedule that :func:`in_window` admits."""
    return [i for i in range(n) if in_window(i / n, start, end)]


def step_fraction(sigma: float, sample_sigmas: torch.Tensor | None) -> float | None:
    """Fraction of the sampling steps done when the model is evaluated at ``sigma``.

    Step i of N (counted from the first sigma of this run) gives i/N; evaluations
    between two sigmas (Heun, DPM-2, SDE stages) count as the step they belong to.
    None when the schedule is unknown.
    """
    if sample_sigmas is None or sample_sigmas.numel() < 2:
        return None
    s = sample_sigmas.detach().float().cpu()
    n = s.numel() - 1
    # Step i starts at s[i]; every sigma in (s[i+1], s[i]] belongs to it.
    i = int((s[1:n] >= sigma * (1 - 1e-5)).sum())
    return i / n


def percent_of_sigma(sigma: float, percent_to_sigma: Callable[[float], float], iters: int = 40) -> float:
    """Invert a model's own ``percent_to_sigma`` (monotone decreasing) by bisection.

    Used when a sampler does not publish its schedule: the fraction then follows the same
    convention as ComfyUI's start/end percent inputs (e.g. ConditioningSetTimestepRange).
    """
    lo, hi = 0.0, 1.0
    if sigma >= percent_to_sigma(0.0):
        return 0.0
    if sigma <= percent_to_sigma(1.0):
        return 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if percent_to_sigma(mid) > sigma:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ------------------------------------------------------------------ resizing
def loss_size(h: int, w: int, max_side: int) -> tuple[int, int]:
    """The (h, w) the losses see: longer side at most ``max_side`` (0 = any), shorter side >= MIN_LOSS_SIDE."""
    f = 1.0
    if max_side > 0 and max(h, w) > max_side:
        f = max_side / max(h, w)
    if min(h, w) * f < MIN_LOSS_SIDE:
        # Upsample so the shorter side reaches the minimum, keeping the aspect, but never push the
        # longer side past the loss resolution (or the picture's own size) and MAX_UPSAMPLED_SIDE:
        # a very thin picture is stretched across instead (1x4097 would otherwise become 32x131104).
        limit = max(max_side if max_side > 0 else max(h, w), MAX_UPSAMPLED_SIDE)
        f = min(MIN_LOSS_SIDE / min(h, w), max(f, limit / max(h, w)))
    if f == 1.0 and min(h, w) >= MIN_LOSS_SIDE:
        return h, w
    return max(MIN_LOSS_SIDE, round(h * f)), max(MIN_LOSS_SIDE, round(w * f))


def resize_for_loss(images: torch.Tensor, max_side: int) -> torch.Tensor:
    """Differentiably bring images to :func:`loss_size` (downscaled antialiased, tiny ones upsampled)."""
    h, w = images.shape[-2:]
    size = loss_size(h, w, max_side)
    if size == (h, w):
        return images
    shrink = size[0] < h
    return F.interpolate(images, size=size, mode="bilinear", antialias=shrink, align_corners=False)


# ------------------------------------------------------------------ re-noising (time travel)
def renoise_ve(x_next: torch.Tensor, sigma: float, sigma_next: float, noise: torch.Tensor) -> torch.Tensor:
    """Time-travel for variance-exploding (eps/v) parameterisations: x at sigma_next -> sigma."""
    return x_next + math.sqrt(max(sigma**2 - sigma_next**2, 0.0)) * noise


def renoise_flow(x_next: torch.Tensor, sigma: float, sigma_next: float, noise: torch.Tensor) -> torch.Tensor:
    """Time-travel for rectified-flow parameterisations, x = (1-s) x0 + s eps."""
    a = (1 - sigma) / max(1 - sigma_next, 1e-6)
    var = max(sigma**2 - (a * sigma_next) ** 2, 0.0)
    return a * x_next + math.sqrt(var) * noise
