"""The guidance step: decode x0, evaluate the wired losses, return a guided prediction.

ComfyUI-free: the adapter hands in a differentiable ``decode`` (latent in model space ->
[0,1] pixels) and, for terms on the model's own features, a probe factory; it calls the
engine from its sampling hooks inside a grad-enabled context.

One guided evaluation (see docs/architecture.md):
1. image terms: decode x0, resize for the losses, one forward per shared extractor, one
   backward per term to the pixels, each gradient scaled to unit RMS, summed by weight,
   then one backward of that sum through the decoder;
2. latent terms: their own model passes on x0, one backward per term to x0, unit RMS each;
3. both groups, now gradients w.r.t. x0, are summed with budgets in proportion to their
   weights (so every weight is a share of the final direction); with ``combine`` projected,
   conflicts between terms (and between the two groups) are projected away first;
4. x0 mode steps the denoised prediction against it; xt mode first takes it back through
   the model to x_t (FreeDoM), in one more backward.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..losses.schedule import Schedule
from ..losses.terms import ModelProbe
from ..protocol import term_label
from .balance import Balance, balanced_direction, combine_groups, common_scale, shares, whole_effects
from .guidance import guided_prediction, in_window, resize_for_loss
from .settings import GuidanceSettings

log = logging.getLogger("style_guidance")

OOM_ADVICE = (
    "Style Guidance ran out of memory in the loss networks. Lower `loss_resolution` "
    "(e.g. 384 or 256), pick the taesd decoder in the VAE loader, use mode x0 instead of xt, "
    "or narrow the guidance window; the memory it held has been released."
)


@dataclass
class StepReport:
    """What one guided evaluation saw: where in the schedule, each term's value, share and effect."""

    fraction: float
    sigma: float
    total: float
    values: dict[str, float]
    weights: dict[str, float]
    shares: dict[str, float]
    zero: list[str] = field(default_factory=list)
    unguided_samples: int = 0
    scale: float = 0.0
    # Each term's effect (sampler/balance.conflict_report; None: no gradient) and the cosines of pairs of pulls.
    effects: dict[str, float | None] = field(default_factory=dict)
    cosines: dict[tuple[str, str], float | None] = field(default_factory=dict)

    def as_event(self, step: int) -> dict:
        """The JSON payload of a step event (``protocol.STEP_EVENT``; the sampler adds node, prompt, evaluation).

        Weights and the scale are the values this evaluation used: their schedules applied.
        """
        return {
            "step": step, "fraction": self.fraction, "sigma": self.sigma, "total": self.total,
            "terms": {k: {"value": self.values[k], "weight": self.weights[k], "share": self.shares.get(k, 0.0),
                          "effect": self.effects.get(k)} for k in self.values},
            "zero_gradient": list(self.zero), "scale": self.scale,
            "cosines": [{"a": a, "b": b, "cosine": c} for (a, b), c in self.cosines.items()],
        }

    def text(self, step: int | None = None, steps: int | None = None) -> str:
        """One short line for the node's progress text: the step and the term that steers most.

        The full record (every term's value, weight and share, sigma) is the step event
        (:meth:`as_event`), which the runner keeps as ``<name>.steps.json`` and plots.
        """
        where = f"step {step}/{steps}" if step is not None and steps else f"step {self.fraction:.0%}"
        if not self.shares:
            return f"{where}, no term guides"
        name, share = max(self.shares.items(), key=lambda kv: abs(kv[1]))
        return f"{where}, led by {term_label(name)} ({share:.0%})"


def scale_schedule(settings: GuidanceSettings) -> Schedule:
    """The scale's curve over the sampler's window (constant: the window alone); ValueError names the input."""
    return Schedule.make(settings.scale_curve, settings.scale_values, settings.start_percent, settings.end_percent,
                         name="scale_curve", values_name="scale_values")


class GuidanceEngine:
    """Turns a loss chain into guided denoised predictions for one model and decoder."""

    def __init__(self, losses, decode: Callable[[torch.Tensor], torch.Tensor], settings: GuidanceSettings,
                 report: Callable[[StepReport], None] | None = None) -> None:
        self.losses = losses
        self.decode = decode
        self.settings = settings
        self.report = report
        self.autocast_dtype: torch.dtype | None = None
        self.evaluations = 0
        self._warned: set[str] = set()
        self._scale_schedule = scale_schedule(settings)
        self._check_windows()

    def _check_windows(self) -> None:
        """Refuse a chain none of whose terms' windows meets the sampler's; name the terms that never act."""
        s = self.settings
        terms = [*self.losses.image_terms, *self.losses.latent_terms]
        idle = [n for n, t in terms if max(t.start_percent, s.start_percent) >= min(t.end_percent, s.end_percent)]
        if not idle:
            return
        where = ", ".join(f"{n} ({self.losses.terms[self.losses.names.index(n)].start_percent:.0%}-"
                          f"{self.losses.terms[self.losses.names.index(n)].end_percent:.0%})" for n in idle)
        window = f"the sampler's window {s.start_percent:.0%}-{s.end_percent:.0%}"
        if len(idle) == len(terms):
            raise ValueError(f"start_percent/end_percent: no loss term's own window meets {window}, so nothing would "
                             f"be guided: {where}; widen the sampler's window or the terms' own start/end_percent")
        log.warning("[Style Guidance] loss term(s) %s never act: their own windows lie outside %s", where, window)

    # -- run lifecycle -------------------------------------------------------------
    def begin(self, seed: int | None) -> None:
        """Start a sampling run: loss randomness reseeded for repeatability, notices reset."""
        self.losses.reset_rng(int(seed or 0))
        self._warned = set()

    def terms_at(self, fraction: float) -> tuple[list[str], list[tuple[str, object]]]:
        """Names of the image terms, and (name, term) of the latent terms, guiding at this fraction.

        A term guides where its scheduled weight is not 0: inside its window, where its curve is not 0.
        """
        image = [n for n, t in self.losses.image_terms if t.weight_at(fraction) != 0.0]
        latent = [(n, t) for n, t in self.losses.latent_terms if t.weight_at(fraction) != 0.0]
        return image, latent

    def weights_at(self, fraction: float, names: list[str]) -> dict[str, float]:
        """The scheduled weight of each named term at this fraction."""
        return {n: self.losses.terms[self.losses.names.index(n)].weight_at(fraction) for n in names}

    def scale_at(self, fraction: float) -> float:
        """The guidance scale at this fraction: scale x the scale curve over the sampler's window (0 outside)."""
        return self.settings.scale * self._scale_schedule.factor(fraction)

    def wants(self, fraction: float) -> bool:
        """Whether the evaluation at this fraction of the schedule is guided at all."""
        s = self.settings
        if not in_window(fraction, s.start_percent, s.end_percent) or self.scale_at(fraction) == 0.0:
            return False
        image, latent = self.terms_at(fraction)
        return bool(image or latent)

    # -- the maths ---------------------------------------------------------------
    def _image_group(self, x0: torch.Tensor, names: list[str], fraction: float) -> tuple[torch.Tensor, Balance]:
        """Balanced pixel-space direction of the image terms, taken back to x0 through the decoder."""
        images = resize_for_loss(self.decode(x0), self.settings.loss_resolution)
        leaf = images.detach().requires_grad_(True)
        if self.autocast_dtype is not None and leaf.device.type == "cuda":
            with torch.autocast("cuda", dtype=self.autocast_dtype):
                result = self.losses.evaluate(leaf, names)
        else:
            result = self.losses.evaluate(leaf, names)
        bal = balanced_direction(result.terms, self.weights_at(fraction, list(result.terms)), leaf, report=True,
                                 combine=self.settings.combine)
        (g,) = torch.autograd.grad(images, x0, grad_outputs=bal.direction.to(images.dtype))
        return g, bal

    def _latent_group(self, x0: torch.Tensor, terms: list[tuple[str, object]],
                      probe: ModelProbe, fraction: float) -> Balance:
        """Balanced x0-space direction of the terms on the model's own features."""
        values = {name: term.forward_latent(x0, probe).float() for name, term in terms}  # type: ignore[attr-defined]
        return balanced_direction(values, {name: term.weight_at(fraction) for name, term in terms}, x0,  # type: ignore[attr-defined]
                                  report=True, combine=self.settings.combine)

    def direction(self, x0: torch.Tensor, fraction: float, sigma: float,
                  make_probe: Callable[[], ModelProbe] | None = None) -> tuple[torch.Tensor, StepReport]:
        """The balanced guidance direction w.r.t. the x0 latent ``x0`` (a leaf requiring grad)."""
        image, latent = self.terms_at(fraction)
        groups: list[Balance] = []
        directions: list[torch.Tensor] = []
        if image:
            g, bal = self._image_group(x0, image, fraction)
            groups.append(bal)
            directions.append(g)
        if latent:
            if make_probe is None:
                raise RuntimeError("latent loss terms need the diffusion model, but no model probe was given")
            bal = self._latent_group(x0, latent, make_probe(), fraction)
            groups.append(bal)
            directions.append(bal.direction)
        unit = common_scale(groups)  # budgets as shares of the largest weight: no overflow, scale-free
        grad = combine_groups([(d, b.magnitude(unit)) for d, b in zip(directions, groups, strict=True)],
                              self.settings.combine)
        for name in [*image, *(n for n, _ in latent)]:
            self.losses.terms[self.losses.names.index(name)].evaluations += 1
        return grad, self._record(groups, fraction, sigma)

    def _record(self, groups: list[Balance], fraction: float, sigma: float) -> StepReport:
        """Summarise the evaluation with a single device-to-host copy (each float() would sync)."""
        names = [k for b in groups for k in b.values]
        weights = {k: w for b in groups for k, w in b.weights.items()}
        unit = common_scale(groups)
        budget = sum((b.magnitude(unit) for b in groups), start=torch.zeros((), device=groups[0].direction.device))
        share_t = shares(groups)
        live_t = {k: live.any().float() for b in groups for k, live in b.live.items()}
        effect_t = whole_effects(groups)
        pairs = [(pair, c) for b in groups for pair, c in b.cosine_samples.items()]
        n = len(names)
        packed = torch.stack([
            (budget == 0).sum().float(),
            *(v.mean() for b in groups for v in b.values.values()),
            *(share_t[k] for k in names),
            *(live_t[k] for k in names),
            *(effect_t[k].float() for k in names),
            *(torch.nanmean(c.double()).float() for _, c in pairs),
        ]).cpu().tolist()
        unguided = int(packed[0])
        values = dict(zip(names, packed[1:1 + n], strict=True))
        share = dict(zip(names, packed[1 + n:1 + 2 * n], strict=True))
        zero = [k for k, alive in zip(names, packed[1 + 2 * n:1 + 3 * n], strict=True) if not alive]
        effects = {k: (e if math.isfinite(e) else None) for k, e in zip(names, packed[1 + 3 * n:1 + 4 * n], strict=True)}
        cosines = {pair: (c if math.isfinite(c) else None)
                   for (pair, _), c in zip(pairs, packed[1 + 4 * n:], strict=True)}
        total = sum(weights[k] * values[k] for k in names)
        report = StepReport(fraction, sigma, total, values, weights, share, zero, unguided, self.scale_at(fraction),
                            effects, cosines)
        for k in zero:
            if k not in self._warned:
                self._warned.add(k)
                log.warning("[Style Guidance] loss term '%s' has no gradient at step %.0f%% (e.g. a mask that covers "
                            "nothing at this size, or a constant loss): its share of the guidance goes to the other "
                            "terms", k, 100 * fraction)
        if unguided:
            log.warning("[Style Guidance] no usable gradient for %d sample(s) at sigma %.4g: guidance skipped for "
                        "them at this step", unguided, sigma)
        self.evaluations += 1
        if self.report is not None:
            self.report(report)
        return report

    def guide_x0(self, x_t: torch.Tensor, denoised: torch.Tensor, sigma: float, fraction: float,
                 make_probe: Callable[[], ModelProbe] | None = None) -> torch.Tensor:
        """MPGD-like: gradient w.r.t. the denoised prediction only (no backward through the model)."""
        x0 = denoised.detach().float().clone().requires_grad_(True)
        grad, _ = self.direction(x0, fraction, sigma, make_probe)
        with torch.no_grad():
            return guided_prediction(x_t.detach(), denoised.detach(), grad, self.scale_at(fraction),
                                     self.settings.grad_clip)

    def guide_xt(self, x_t: torch.Tensor, denoise_fn: Callable[[torch.Tensor], torch.Tensor],
                 sigma: float, fraction: float,
                 make_probe: Callable[[], ModelProbe] | None = None) -> torch.Tensor:
        """FreeDoM-like: the x0 direction taken back through the denoiser to the noisy latent."""
        x = x_t.detach().clone().requires_grad_(True)
        denoised = denoise_fn(x)
        x0 = denoised.detach().float().clone().requires_grad_(True)
        g_x0, _ = self.direction(x0, fraction, sigma, make_probe)
        (grad,) = torch.autograd.grad(denoised, x, grad_outputs=g_x0.to(denoised.dtype))
        with torch.no_grad():
            return guided_prediction(x_t.detach(), denoised.detach(), grad, self.scale_at(fraction),
                                     self.settings.grad_clip)
