"""Deterministic inversion of a latent to the noisy latent a sampler starts from, with the loaded model.

In ComfyUI's sampling space every model family follows the same probability-flow ODE,
``dx/dsigma = (x - D(x, sigma)) / sigma`` with D the (CFG-combined) denoised prediction: for
eps/v models x = x0 + sigma*eps and an Euler step of it is exactly a DDIM step; for flow models
(CONST sampling, x = (1-sigma)*x0 + sigma*noise) it is the rectified-flow Euler step. Inversion
walks that ODE UP the sampler's own schedule: from the latent at sigma 0 to the first sigma of the
(denoise-truncated) schedule,

    x_b = x_a + (b - a) * (x_a - D(x_a, s)) / s,   s = a (the current level; sigma_min at a = 0)

which for eps models is DDIM inversion (x0_hat + b * eps_hat). ``refine`` fixed-point iterations
make each step the exact inverse of the Euler step the sampler will take back down
(x_a = x_b - (a - b) * d(x_a, a), solved from the explicit guess), at one extra model call each.

The model runs through ComfyUI's own CFGGuider (so LoRA, patches, ControlNet and hooks apply) with
a KSAMPLER whose function is the inversion; conditioning and cfg are the user's (cfg 1 is the usual
choice: one model call per step and the most faithful reconstruction).

Two ways to start sampling from the result, both exact by construction:
* :class:`InvertedNoise` (a NOISE for SamplerCustomAdvanced): ``generate_noise`` returns the noise
  that ComfyUI's ``model_sampling.noise_scaling(sigma_0, noise, latent, max_denoise)`` turns into
  the inverted x_t for the latent the sampler is given (the affine map is inverted numerically, so
  it holds for every model-sampling class);
* :meth:`Inversion.zero_noise_latent`: a LATENT that the zero-noise scaling (KSamplerAdvanced with
  ``add_noise: disable``) maps to x_t (x_t itself for eps/v models, x_t/(1-sigma_0) for flow).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from .latent_checks import check_latent

log = logging.getLogger("style_guidance")

__all__ = ["Inversion", "InvertedNoise", "invert", "schedule", "sigmas_for_sampler", "stochastic"]


def schedule(model_patcher, scheduler: str, steps: int, denoise: float) -> torch.Tensor:
    """The sigmas a KSampler/BasicScheduler uses for ``steps`` at ``denoise`` (descending, ends at 0, CPU)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must lie in (0, 1], got {denoise}: at 0 there is nothing to invert")
    total = steps if denoise > 0.9999 else int(steps / denoise)
    sigmas = comfy.samplers.calculate_sigmas(model_patcher.get_model_object("model_sampling"), scheduler, total).cpu()
    # As KSampler.set_steps: at denoise 1 the whole schedule, which some schedulers (ddim_uniform) make
    # longer than steps + 1; below 1 its last steps + 1 sigmas.
    return (sigmas if denoise > 0.9999 else sigmas[-(steps + 1):]).float()


def _full_length(model_patcher, scheduler: str, total: int) -> int:
    """Length of the schedule KSamplerAdvanced computes for ``steps = total`` (its start_at_step counts in it)."""
    return len(comfy.samplers.calculate_sigmas(model_patcher.get_model_object("model_sampling"), scheduler, total))


# Samplers that add fresh noise at every step (ancestral, SDE, LCM, DDPM ...): starting them from the
# inversion's noise does not lead back to the content.
_STOCHASTIC = ("ancestral", "sde", "lcm", "ddpm", "seeds_", "sa_solver", "restart")


def stochastic(sampler_name: str) -> bool:
    """Whether a KSampler sampler name adds fresh noise while it samples."""
    return any(part in sampler_name for part in _STOCHASTIC)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.numel() == b.numel() and torch.allclose(a.float().cpu(), b.float().cpu(), rtol=1e-4, atol=1e-6)


def sigmas_for_sampler(inversion: Inversion, model_patcher, steps: int, sampler_name: str, scheduler: str,
                       denoise: float, node: str = "Guided KSampler") -> torch.Tensor | None:
    """The schedule a KSampler-like node must sample with to start at the inverted latent (None: its own).

    KSampler drops the second-to-last sigma for some samplers (dpm_2, uni_pc ...), so with the same
    steps, scheduler and denoise its schedule can start elsewhere than the inversion's: then the
    inversion's schedule is followed (the noise is only valid at its first sigma) and the log says so.
    Other settings than the inversion's are refused with both schedules named. A stochastic sampler
    is warned about: its fresh noise leads away from the content.
    """
    if stochastic(sampler_name):
        log.warning("[Style Guidance] %s: sampler '%s' adds fresh noise at every step, so starting it from "
                    "'Invert Latent' noise does not lead back to the content (reconstruction is lost); use a "
                    "deterministic sampler (euler, heun, dpmpp_2m, ddim ...)", node, sampler_name)
    own = comfy.samplers.KSampler(model_patcher, steps=steps, device="cpu", sampler=sampler_name, scheduler=scheduler,
                                  denoise=denoise, model_options=model_patcher.model_options).sigmas.float().cpu()
    inv = inversion.sigmas
    if _same(own, inv):
        return None
    if _same(schedule(model_patcher, scheduler, steps, denoise), inv):
        log.warning("[Style Guidance] %s: sampler '%s' would start at sigma %.4g (%d steps) but the inverted noise "
                    "belongs to sigma %.4g (%d steps): sampling follows the inversion's schedule", node, sampler_name,
                    float(own[0]), own.numel() - 1, float(inv[0]), inv.numel() - 1)
        return inv.clone()
    raise ValueError(f"noise: the inversion ends at sigma {float(inv[0]):.4g} ({inv.numel() - 1} steps) but this "
                     f"sampler's schedule starts at sigma {float(own[0]):.4g} ({own.numel() - 1} steps); give 'Invert "
                     "Latent' the same model, steps, scheduler and denoise as the sampler")


def _max_denoise(model_sampling, sigma0: float) -> bool:
    """ComfyUI's rule (Sampler.max_denoise): the first sigma is at (or above) the model's sigma_max."""
    sigma_max = float(model_sampling.sigma_max)
    return math.isclose(sigma_max, sigma0, rel_tol=1e-05) or sigma0 > sigma_max


def _noise_scaling(model_sampling, sigma0: float, noise: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    s = torch.tensor(sigma0, dtype=torch.float32)
    # noise_scaling may add in place onto its noise argument: always hand it a fresh tensor.
    return model_sampling.noise_scaling(s, noise.clone(), latent, _max_denoise(model_sampling, sigma0))


@dataclass
class Inversion:
    """An inverted latent: x_t in model space at ``sigmas[0]``, with what is needed to start from it."""

    x_t: torch.Tensor  # (R,C,h,w) float32, CPU, model space
    sigmas: torch.Tensor  # the descending schedule it belongs to (CPU)
    model_sampling: object
    latent_format: object
    total_steps: int  # KSamplerAdvanced: steps = total_steps
    start_at_step: int = 0  # KSamplerAdvanced: start_at_step (its schedule for total_steps starts here at sigmas[0])

    @property
    def sigma0(self) -> float:
        return float(self.sigmas[0])

    def _paired(self, shape: torch.Size, what: str) -> torch.Tensor:
        if tuple(shape[1:]) != tuple(self.x_t.shape[1:]):
            raise ValueError(f"{what}: the latent has shape {tuple(shape)} but the inversion was made for "
                             f"{tuple(self.x_t.shape)}; give the sampler a latent of the inverted image's size")
        r = self.x_t.shape[0]
        return self.x_t if shape[0] == r else self.x_t[torch.arange(shape[0]) % r]

    def noise_for(self, latent_samples: torch.Tensor) -> torch.Tensor:
        """Noise that ``noise_scaling(sigma_0, noise, latent)`` maps to x_t, for the latent (VAE space) a sampler gets."""
        lat = latent_samples.detach().float().cpu()
        x_t = self._paired(lat.shape, "inverted noise")
        if torch.count_nonzero(lat) > 0:  # as CFGGuider.inner_sample: an all-zero latent is not shifted
            lat = self.latent_format.process_in(lat)
        zero = torch.zeros_like(x_t)
        offset = _noise_scaling(self.model_sampling, self.sigma0, zero, lat)
        gain = _noise_scaling(self.model_sampling, self.sigma0, torch.ones_like(x_t), lat) - offset
        return (x_t - offset) / gain

    def zero_noise_latent(self) -> torch.Tensor | None:
        """A LATENT's samples (VAE space) that sampling with zero added noise starts at x_t from.

        None when no latent can: at a flow model's sigma 1 the starting latent is multiplied by 0.
        """
        zero = torch.zeros_like(self.x_t)
        gain = _noise_scaling(self.model_sampling, self.sigma0, zero, torch.ones_like(self.x_t))
        if bool((gain.abs() < 1e-6).any()):
            return None
        return self.latent_format.process_out(self.x_t / gain)


class InvertedNoise:
    """A NOISE (SamplerCustomAdvanced) that starts sampling exactly at an inverted latent."""

    def __init__(self, inversion: Inversion, seed: int = 0) -> None:
        self.inversion = inversion
        self.seed = int(seed)  # SamplerCustomAdvanced passes it on as the sampling seed (ancestral noise, losses)

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        return self.inversion.noise_for(samples).to(dtype=samples.dtype if samples.is_floating_point() else torch.float32)


def invert(model_patcher, positive, negative, latent: dict, steps: int, scheduler: str, denoise: float,
           cfg: float = 1.0, refine: int = 0, seed: int = 0) -> Inversion:
    """Invert ``latent`` (a LATENT dict) up the schedule (``steps``, ``scheduler``, ``denoise``) to its first sigma."""
    if refine < 0:
        raise ValueError(f"refine must be >= 0, got {refine}")
    samples = latent["samples"]
    if model_patcher.get_wrappers(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "style_guidance"):
        # Guided, the inversion would follow the losses instead of the model's own ODE (309 % off on the stand-in).
        raise ValueError("model: it already carries Style Guidance ('Apply Guidance to Model'); connect Invert "
                         "Latent to the model from BEFORE that node: the inversion must run the plain model")
    check_latent(model_patcher, samples, "latent", "Invert Latent")
    if samples.dim() not in (4, 5):  # 5-D: Qwen-Image's one-frame latents (and video, where check_latent admits it)
        raise ValueError(f"latent: expected an image latent (B,C,h,w) or (B,C,frames,h,w), got shape "
                         f"{tuple(samples.shape)}")
    sigmas = schedule(model_patcher, scheduler, steps, denoise)
    latent_image = comfy.sample.fix_empty_latent_channels(model_patcher, samples)
    if torch.count_nonzero(latent_image) == 0:
        raise ValueError("latent: it is all zeros (an empty latent); invert the VAE-encoded content image instead")
    guider = comfy.samplers.CFGGuider(model_patcher)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    up = sigmas.flip(0)  # 0, s_{n-1}, ..., s_0
    result: dict[str, torch.Tensor] = {}
    bar = comfy.utils.ProgressBar(steps)

    @torch.no_grad()
    def inversion(model, x, sig, extra_args=None, callback=None, disable=None, **_):
        extra_args = extra_args or {}
        s_in = x.new_ones([x.shape[0]])
        sigma_min = float(model.inner_model.inner_model.model_sampling.sigma_min)

        def slope(x_, s: float) -> torch.Tensor:
            comfy.model_management.throw_exception_if_processing_interrupted()
            return (x_ - model(x_, s * s_in, **extra_args)) / s

        for i in range(len(sig) - 1):
            a, b = float(sig[i]), float(sig[i + 1])
            x_next = x + (b - a) * slope(x, a if a > 0 else sigma_min)
            for _ in range(refine):  # the exact inverse of the Euler step b -> a the sampler will take
                x_next = x + (b - a) * slope(x_next, b)
            x = x_next
            bar.update(1)
        result["x_t"] = x
        return x

    guider.sample(torch.zeros_like(latent_image), latent_image, comfy.samplers.KSAMPLER(inversion), up,
                  disable_pbar=True, seed=seed)
    if not bool(torch.isfinite(result["x_t"]).all()):
        raise ValueError("latent: inverting it overflowed the model (its values are too large for it); connect the "
                         "latent from VAE Encode of the content image")
    base = model_patcher.model
    total = steps if denoise > 0.9999 else int(steps / denoise)
    return Inversion(x_t=result["x_t"].detach().float().cpu(), sigmas=sigmas,
                     model_sampling=model_patcher.get_model_object("model_sampling"),
                     latent_format=base.latent_format, total_steps=total,
                     start_at_step=_full_length(model_patcher, scheduler, total) - len(sigmas))
