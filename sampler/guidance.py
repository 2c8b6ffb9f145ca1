"""The guidance maths, in plain torch: step normalisation, windows, resizing, re-noising."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-12


def _rms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample root mean square, shaped to broadcast against ``t``."""
    dims = tuple(range(1, t.ndim))
    return t.float().pow(2).mean(dim=dims, keepdim=True).sqrt()


def finite_samples(grad: torch.Tensor) -> torch.Tensor:
    """Bool (B,) mask of samples whose gradient is entirely finite."""
    return torch.isfinite(grad.flatten(1)).all(dim=1)


def guided_prediction(x_t: torch.Tensor, denoised: torch.Tensor, grad: torch.Tensor,
                      scale: float, grad_clip: float = 0.0) -> torch.Tensor:
    """Move the denoised prediction against the loss gradient, with a normalised step.

    Normalisation: the gradient is scaled to unit RMS per sample and the step is
    ``scale`` times the RMS of ``x_t - denoised`` (= sigma * predicted noise). So
    ``scale`` reads as "fraction of the denoiser's own update" in noise space, as in
    FreeDoM/MPGD's relative step sizes. This makes one value work across models
    (SD1.5/SDXL latents differ in scale), resolutions (RMS, not norm) and noise levels
    (the step shrinks with sigma, where the picture is already decided).
    Samples with a non-finite gradient are left unguided.
    """
    g = grad.float()
    ok = finite_samples(g)
    g = torch.where(ok.view(-1, *([1] * (g.ndim - 1))), g, torch.zeros_like(g))
    g_hat = g / (_rms(g) + EPS)
    if grad_clip > 0:
        g_hat = g_hat.clamp(-grad_clip, grad_clip)
    step = _rms(x_t.float() - denoised.float())
    return (denoised.float() - scale * step * g_hat).to(denoised.dtype)


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


def in_window(fraction: float, start: float, end: float) -> bool:
    """Half-open window [start, end) over the fraction of steps done."""
    return start <= fraction < end


def resize_for_loss(images: torch.Tensor, max_side: int) -> torch.Tensor:
    """Differentiably downscale so the longer side is at most ``max_side`` (0 = unchanged)."""
    if max_side <= 0:
        return images
    h, w = images.shape[-2:]
    if max(h, w) <= max_side:
        return images
    f = max_side / max(h, w)
    size = (max(8, round(h * f)), max(8, round(w * f)))
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


def renoise_ve(x_next: torch.Tensor, sigma: float, sigma_next: float, noise: torch.Tensor) -> torch.Tensor:
    """Time-travel for variance-exploding (eps/v) parameterisations: x at sigma_next -> sigma."""
    return x_next + math.sqrt(max(sigma**2 - sigma_next**2, 0.0)) * noise


def renoise_flow(x_next: torch.Tensor, sigma: float, sigma_next: float, noise: torch.Tensor) -> torch.Tensor:
    """Time-travel for rectified-flow parameterisations, x = (1-s) x0 + s eps."""
    a = (1 - sigma) / max(1 - sigma_next, 1e-6)
    var = max(sigma**2 - (a * sigma_next) ** 2, 0.0)
    return a * x_next + math.sqrt(var) * noise
