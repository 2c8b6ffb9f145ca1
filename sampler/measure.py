"""Scoring a picture with a loss chain: each term's value, weight and share of the guidance direction.

The shares are computed exactly as a guided step computes them (see :mod:`.balance`), on the
picture being measured, so a user can read off which term would steer and by how much.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..losses import CombinedLoss
from ..losses.terms import ModelProbe
from ..protocol import MEASURE_QUALITY_FIELDS, MEASURE_VERSION, term_label
from .balance import Balance, balanced_direction, shares, whole_effects
from .guidance import resize_for_loss


@dataclass
class TermScore:
    """One term of a measurement."""

    name: str
    kind: str
    value: float | None  # None when the term could not be evaluated (see note)
    weight: float
    weight_share: float
    share: float | None  # measured share of the direction; None when its gradient was zero
    note: str | None = None
    # First-order progress of its own loss under the combined step, as a fraction of what it would get with the
    # whole budget (sampler/balance.conflict_report): equals ``share`` when no term pulls against it.
    effect: float | None = None
    # Standard deviation of the value over the batch (one style over several contents or seeds); None for one sample.
    spread: float | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "value": _finite(self.value), "weight": self.weight,
                "weight_share": self.weight_share, "share": _finite(self.share), "effect": _finite(self.effect),
                "spread": _finite(self.spread), "note": self.note}


@dataclass
class Measurement:
    """All terms of a chain on one picture (batch means)."""

    terms: list[TermScore]
    total: float
    # The evaluation protocol's pairwise scores against the content picture (Measure's optional
    # quality scores): {"LPIPS", "CFSD", "note"}, absent or None where not computed.
    quality: dict = field(default_factory=dict)
    # Cosine between each pair of terms' pulls (terms read in the same space: image terms, or model-feature terms).
    cosines: dict[tuple[str, str], float | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        quality = {k: (self.quality.get(k) if k == "note" else _finite(self.quality.get(k)))
                   for k in MEASURE_QUALITY_FIELDS}
        pairs = [{"a": a, "b": b, "cosine": _finite(c)} for (a, b), c in self.cosines.items()]
        return {"version": MEASURE_VERSION, "total": _finite(self.total), "terms": [t.as_dict() for t in self.terms],
                "quality": quality, "cosines": pairs}

    def text(self) -> str:
        """One line per term, by its node's label (a note on its own line), then the total and the quality scores."""
        lines = []
        for t in self.terms:
            share = ("no gradient" if t.share is None or not math.isfinite(t.share)
                     else f"steers {t.share:.0%}")
            value = "n/a" if t.value is None else f"{t.value:.4g}"
            if t.value is not None and t.spread is not None:
                value += f" ± {t.spread:.2g}"
            effect = "" if t.effect is None or t.share is None else f" · effect {t.effect:.0%}"
            lines.append(f"{term_label(t.name)}: {value} · weight {t.weight:g} ({t.weight_share:.0%}) · {share}{effect}")
            if t.note:
                lines.append(f"  ({t.note})")
        against = sorted((c, a, b) for (a, b), c in self.cosines.items() if c is not None and c < -0.1)
        for c, a, b in against:
            lines.append(f"{term_label(a)} pulls against {term_label(b)} (cosine {c:.2f})")
        lines.append(f"total: {self.total:.6g}")
        for k in MEASURE_QUALITY_FIELDS:
            v = self.quality.get(k)
            if k != "note" and v is not None:
                lines.append(f"{k} to content: {v:.6g}")
        if self.quality.get("note"):
            lines.append(f"({self.quality['note']})")
        return "\n".join(lines)


def _finite(x: float | None) -> float | None:
    """JSON has no NaN/Inf: such values are reported as null."""
    return x if x is not None and math.isfinite(x) else None


def measure(losses: CombinedLoss, images: torch.Tensor, seed: int = 0,
            latent: torch.Tensor | None = None,
            make_probe: Callable[[], ModelProbe] | None = None, combine: str = "weighted") -> Measurement:
    """Evaluate every active term of ``losses`` on ``images`` (B,3,H,W in [0,1]) and balance them.

    Latent terms (the model's own features) need ``latent`` (the picture's latent, VAE space)
    and ``make_probe``; without them they are listed with a note instead of a value. ``combine``: how
    the sampler would sum the terms' pulls (sampler/balance.py), which the effects are computed for.
    """
    losses.reset_rng(seed)
    groups: list[Balance] = []
    notes: dict[str, str] = {}
    with torch.inference_mode(False), torch.enable_grad():
        if losses.image_terms:
            # Tiny pictures are upsampled exactly as a guided step does, so the networks can run.
            leaf = resize_for_loss(images.detach().float(), 0).clone().requires_grad_(True)
            result = losses.evaluate(leaf)
            groups.append(balanced_direction(result.terms, result.weights, leaf, report=True, combine=combine))
        latent_terms = losses.latent_terms
        if latent_terms:
            if latent is None or make_probe is None:
                for name, _ in latent_terms:
                    notes[name] = "needs the model and the picture's latent: connect model, positive and latent"
            else:
                probe = make_probe()

                def features() -> Balance:
                    x0 = probe.to_model_space(latent).detach().float().clone().requires_grad_(True)
                    values = {name: term.forward_latent(x0, probe).float() for name, term in latent_terms}
                    return balanced_direction(values, {n: t.weight for n, t in latent_terms}, x0, report=True,
                                              combine=combine)

                # The probe's own way to run a forward and backward through the model (ComfyUI's probe: weights
                # held ordinary to the end of the backward, the in-place and custom-op retries).
                run = getattr(probe, "differentiable", None)
                groups.append(run(features) if run is not None else features())
    share_t = shares(groups)
    values = {k: float(v.mean()) for b in groups for k, v in b.values.items()}
    spreads = {k: float(v.std()) for b in groups for k, v in b.values.items() if v.numel() > 1}
    live = {k: bool(v.any()) for b in groups for k, v in b.live.items()}
    whole = whole_effects(groups)  # on the whole budget's scale: with no conflict, a term's effect is its share
    effects = {k: _finite(float(v)) for k, v in whole.items()}
    cosines = {pair: c for b in groups for pair, c in b.cosines.items()}
    active = [(n, t) for n, t in zip(losses.names, losses.terms, strict=True) if t.weight != 0.0]
    weight_sum = sum(abs(t.weight) for _, t in active) or 1.0
    scores = []
    for name, term in active:
        note = notes.get(name)
        if name in values and not live[name]:
            note = "zero gradient: this term does not steer here (e.g. a mask that covers nothing at this size)"
        elif term.start_percent > 0.0 or term.end_percent < 1.0:
            note = (f"acts only in steps {term.start_percent:.0%}-{term.end_percent:.0%} (its own window): with a "
                    "sampler window outside that it never acts; the shares hold where the windows overlap")
        scores.append(TermScore(name, term.kind, values.get(name), term.weight,
                                abs(term.weight) / weight_sum,
                                float(share_t[name]) if name in share_t and live.get(name) else None, note,
                                effects.get(name) if live.get(name) else None, spreads.get(name)))
    total = sum(s.weight * s.value for s in scores if s.name in values)
    return Measurement(scores, total, cosines=cosines)
