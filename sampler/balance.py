"""Per-term balance: each loss term's gradient is normalised on its own, then weighted.

Loss terms live in wildly different units (a PatchNCE loss is ~log N whatever the network, a
Gram distance ~1e-6), so normalising the gradient of their *sum* lets the largest term steer
alone. Here every term's gradient is scaled to unit RMS per sample in the space the term
reads (decoded pixels for image terms, the x0 latent for the model's own features) before
the weights combine them. A weight is then exactly a share of the guidance direction:
term i contributes ``|w_i| / sum_j |w_j|`` of the combined direction's magnitude (over the
terms whose gradient is not zero), whatever its units, the networks or the image size. A
negative weight points its share the other way: away from that term's reference.

Weights beyond the widget's range (a linked number can carry any float) are combined by shares:
the group divides its weights by its largest |w| (on the host, in float64) and groups are put on
a common scale the same way, so multiplying every weight by one number changes nothing and no
tensor ever holds a weight-sized value (a weight of 1e20 would otherwise overflow float32 when
the direction's RMS squares it, and the step would silently vanish while the term still counted
as "live"). Weights inside the widget's range combine as they are: the same maths, and results
that do not depend on the rounding of that division.

Two ways to combine (``combine``): ``weighted`` sums the weighted pulls as they are; ``projected``
first removes from each pull its component along every other pull it conflicts with (negative
inner product; PCGrad, Yu et al. 2020, with the chain's order instead of a random one so a run
repeats), so no term's pull undoes another's to first order. The step's size does not change
(the guidance step is normalised), only its direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .guidance import unit_rms
from .settings import COMBINES

# The weight widgets' maximum: up to it a weight times a unit gradient stays far from float32's range.
PLAIN_WEIGHT_LIMIT = 1e6


@dataclass
class Balance:
    """The combined direction of a group of terms and what each contributed."""

    direction: torch.Tensor  # sum_i w_i * unit(g_i), in the leaf's space (B, ...)
    values: dict[str, torch.Tensor]  # detached per-sample values (B,)
    weights: dict[str, float]
    live: dict[str, torch.Tensor] = field(default_factory=dict)  # bool (B,): the term had a gradient
    scale: float = 1.0  # 1, or the group's largest |w| past PLAIN_WEIGHT_LIMIT: ``direction`` = sum_i (w_i / scale) unit(g_i)
    # With ``report``: per sample (B,), each term's effect (see :func:`conflict_report`) and the cosine of each
    # pair of terms' pulls; NaN where a sample had no gradient for it.
    effect_samples: dict[str, torch.Tensor] = field(default_factory=dict)
    cosine_samples: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)

    @property
    def effects(self) -> dict[str, float | None]:
        """Each term's effect, the mean over the samples where it had a gradient (None where none had; host sync)."""
        return {k: _mean_or_none(v) for k, v in self.effect_samples.items()}

    @property
    def cosines(self) -> dict[tuple[str, str], float | None]:
        """Each pair's cosine, the mean over the samples where both had a gradient (None where none had)."""
        return {k: _mean_or_none(v) for k, v in self.cosine_samples.items()}

    @property
    def zero(self) -> list[str]:
        """Terms whose gradient vanished (or was not finite) for every sample."""
        return [k for k, v in self.live.items() if not bool(v.any())]

    def magnitude(self, unit: float | None = None) -> torch.Tensor:
        """Per-sample sum of |w_i| / ``unit`` over the terms with a gradient (B,): the direction's budget.

        ``unit`` (default: the group's own scale) is a common scale for several groups (see
        :func:`common_scale`); the ratios are taken on the host so huge weights never overflow.
        """
        unit = self.scale if unit is None else unit
        out = None
        for k, live in self.live.items():
            part = live.float() * (abs(self.weights[k]) / unit)
            out = part if out is None else out + part
        return out if out is not None else torch.zeros(self.direction.shape[0], device=self.direction.device)


def balanced_direction(values: dict[str, torch.Tensor], weights: dict[str, float],
                       leaf: torch.Tensor, report: bool = False, combine: str = "weighted") -> Balance:
    """Normalise each term's gradient w.r.t. ``leaf`` to unit RMS per sample and sum them by weight.

    ``values`` are per-sample losses (B,) that still carry their graph to ``leaf``. One
    backward per term runs through that term's own networks only (a shared extractor's
    forward is reused through ``retain_graph``). The graph is freed afterwards. ``report``
    also fills the balance's effects and pairwise cosines (:func:`conflict_report`, as tensors:
    no host sync). ``combine``: one of :data:`COMBINES` (see the module's docstring).
    """
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    names = list(values)
    scale = max((abs(float(weights[n])) for n in names), default=1.0)
    if not math.isfinite(scale):
        bad = [n for n in names if not math.isfinite(float(weights[n]))]
        raise ValueError(f"loss term(s) {', '.join(bad)}: the weight is not a finite number")
    scale = scale if scale > PLAIN_WEIGHT_LIMIT else 1.0
    live: dict[str, torch.Tensor] = {}
    pulls: dict[str, torch.Tensor] = {}  # unit gradient signed by the weight: the way the term pulls
    for k, name in enumerate(names):
        v = values[name]
        if v.requires_grad:
            (g,) = torch.autograd.grad(v.sum(), leaf, retain_graph=k < len(names) - 1, allow_unused=True)
        else:
            g = None
        if g is None:  # the term does not depend on the leaf at all
            g = torch.zeros(leaf.shape, dtype=torch.float32, device=leaf.device)
        unit, ok = unit_rms(g)
        live[name] = ok
        pulls[name] = unit if float(weights[name]) >= 0 else -unit
    steps = project_conflicts(pulls) if combine == "projected" else pulls
    direction = torch.zeros(leaf.shape, dtype=torch.float32, device=leaf.device)
    for name in names:  # huge weights: |w_i| / max|w| <= 1
        direction = direction + (abs(float(weights[name])) / scale) * steps[name]
    detached = {k: v.detach().float() for k, v in values.items()}
    out = Balance(direction, detached, {k: weights[k] for k in names}, live, scale)
    if report:
        out.effect_samples, out.cosine_samples = conflict_report(pulls, out)
    return out


def project_conflicts(pulls: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each pull less its component along every other pull it conflicts with, per sample (PCGrad).

    For i in order, and each other j in order: where <p_i', p_j> < 0, p_i' -= <p_i', p_j> / |p_j|^2 p_j
    (p_i' the pull being projected, p_j the original). Two conflicting pulls then each keep only
    the part that does not undo the other. Pulls that do not conflict come back unchanged.
    """
    flat = {k: p.reshape(p.shape[0], -1).double() for k, p in pulls.items()}
    norms = {k: (f * f).sum(1) for k, f in flat.items()}
    out: dict[str, torch.Tensor] = {}
    for i, p in flat.items():
        q = p
        for j, r in flat.items():
            if j == i:
                continue
            dot = (q * r).sum(1)
            coef = torch.where(dot < 0, dot / norms[j].clamp_min(1e-300), torch.zeros_like(dot))
            q = q - coef[:, None] * r
        out[i] = q.to(pulls[i].dtype).view_as(pulls[i])
    return out


def _mean_or_none(t: torch.Tensor) -> float | None:
    """nanmean of a per-sample tensor as a host float, None where every sample is NaN."""
    m = float(torch.nanmean(t.double())) if t.numel() else float("nan")
    return m if math.isfinite(m) else None


def conflict_report(pulls: dict[str, torch.Tensor],
                    b: Balance) -> tuple[dict[str, torch.Tensor], dict[tuple[str, str], torch.Tensor]]:
    """How much of its own progress each term keeps in the combined step, and how the terms' pulls align.

    ``pulls``: each term's unit gradient signed by its weight (the way it pulls, to first order).
    A term's *effect* is the first-order change of its own loss under the combined direction, as
    a fraction of the change it would get if the whole budget (sum of |w| of the live terms)
    went to it alone: <p_i, d> / (budget |p_i|^2). With pulls that do not interfere it equals the
    term's share of the direction; below the share, other terms pull against it; below 0, the
    step makes its own loss worse. *Cosines*: <p_i, p_j> / (|p_i| |p_j|) per pair, negative where
    two terms conflict. Per sample (B,), NaN where the term (or either of the pair) had no gradient.
    """
    d = b.direction.reshape(b.direction.shape[0], -1).double()
    budget = b.magnitude().double().to(d.device)
    flat = {k: p.reshape(p.shape[0], -1).double() for k, p in pulls.items()}
    norms = {k: (f * f).sum(1) for k, f in flat.items()}
    nan = torch.full_like(budget, float("nan"))
    effects: dict[str, torch.Tensor] = {}
    for k, f in flat.items():
        ok = b.live[k].to(d.device) & (budget > 0)
        effects[k] = torch.where(ok, (f * d).sum(1) / (budget * norms[k]).clamp_min(1e-300), nan)
    cosines: dict[tuple[str, str], torch.Tensor] = {}
    names = list(flat)
    for i, a in enumerate(names):
        for c in names[i + 1:]:
            ok = (b.live[a] & b.live[c]).to(d.device)
            cos = (flat[a] * flat[c]).sum(1) / (norms[a] * norms[c]).sqrt().clamp_min(1e-300)
            cosines[(a, c)] = torch.where(ok, cos, nan)
    return effects, cosines


def whole_effects(groups: list[Balance]) -> dict[str, torch.Tensor]:
    """Each term's effect on the scale of the whole budget (0-d tensors, NaN where none; no host sync).

    A group's effects are fractions of its own budget; per sample they are rescaled by the group's
    share of all the groups' budgets, so that with no conflict a term's effect is its share. (Image
    and model-feature groups act in different spaces: effects do not cross groups.)
    """
    unit = common_scale(groups)
    budgets = [b.magnitude(unit) for b in groups]
    if not budgets:
        return {}
    whole = torch.stack(budgets).sum(0).double()
    out: dict[str, torch.Tensor] = {}
    for b, budget in zip(groups, budgets, strict=True):
        ratio = budget.double() / whole.clamp_min(1e-300)
        for k, e in b.effect_samples.items():
            out[k] = torch.nanmean(e * ratio.to(e.device))
    return out


def common_scale(groups: list[Balance]) -> float:
    """The largest weight of all the groups: the unit their budgets are compared in (host float)."""
    return max((b.scale for b in groups), default=1.0)


def shares(groups: list[Balance]) -> dict[str, torch.Tensor]:
    """Each term's share of the final direction (batch mean, a 0-d tensor), over balanced groups.

    Within a group a term holds |w_i| of the group's budget; groups are combined with budgets
    in proportion to their own weight sums (see :func:`combine_groups`), so overall a term's
    share is |w_i| / sum over all live terms of |w_j|, per sample, then averaged over the batch.
    Tensors, not floats: the caller reads them all back in one device-to-host copy.
    """
    total = None
    unit = common_scale(groups)
    for b in groups:
        m = b.magnitude(unit)
        total = m if total is None else total + m
    out: dict[str, torch.Tensor] = {}
    if total is None:
        return out
    safe = total.clamp_min(1e-30)
    for b in groups:
        for k, live in b.live.items():
            out[k] = (live.float() * (abs(b.weights[k]) / unit) / safe).mean()
    return out


def combine_groups(parts: list[tuple[torch.Tensor, torch.Tensor]], combine: str = "weighted") -> torch.Tensor:
    """Sum group directions that now live in one space, each rescaled to its budget.

    ``parts``: (direction in the common space, budget (B,) = sum of |w| of the group's live
    terms). A group that went through a decoder/model backward has lost its scale on the way,
    so each is renormalised to unit RMS and multiplied by its budget: group shares then
    follow the weights exactly as the terms' shares do inside a group. ``projected``: the
    groups' conflicts are projected away as the terms' are inside a group.
    """
    scaled: dict[str, torch.Tensor] = {}
    for i, (direction, budget) in enumerate(parts):
        unit, _ = unit_rms(direction)
        scaled[str(i)] = unit * budget.view(-1, *([1] * (unit.ndim - 1))).to(unit.device)
    assert scaled, "combine_groups needs at least one part"
    if combine == "projected" and len(scaled) > 1:
        scaled = project_conflicts(scaled)
    out = None
    for part in scaled.values():
        out = part if out is None else out + part
    return out
