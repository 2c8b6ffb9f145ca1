"""The chain of weighted loss terms (:class:`CombinedLoss`) and the result of one evaluation.

Batch pairing (for every term): generated sample i pairs with reference i % R, and with mask
entry i % M. Each shared feature extractor runs once per call, whatever the number of terms on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .inputs import check_generated, derive_seed
from .terms import GuidanceLoss, LatentGuidanceLoss

__all__ = ["CombinedLoss", "LossResult"]



class LossResult(NamedTuple):
    """Outcome of one evaluation: weighted total, unweighted per-term values and the weights."""

    total: Tensor
    terms: dict[str, Tensor]
    weights: dict[str, float]


def _unique_names(terms: Sequence[GuidanceLoss]) -> tuple[str, ...]:
    """Term names made unique in chain order: 'gram_style', 'gram_style#2', ..."""
    seen: dict[str, int] = {}
    used: set[str] = set()
    out = []
    for t in terms:
        base = t.name
        n = seen.get(base, 0) + 1
        name = base if n == 1 else f"{base}#{n}"
        while name in used:  # a user-given name might already look like 'x#2'
            n += 1
            name = f"{base}#{n}"
        seen[base] = n
        used.add(name)
        out.append(name)
    return tuple(out)


class CombinedLoss:
    """Immutable chain of weighted terms; evaluates each shared extractor once per call.

    Batch pairing (for every term): generated sample i pairs with reference i % R, and with
    mask entry i % M. Zero-weight terms stay in the chain (for display) but are skipped at
    evaluation and cost nothing. Unique display names ('#2', '#3' for repeats) live in
    ``names``; the term objects themselves are never renamed, as they may be shared by chains.
    """

    def __init__(self, terms: Sequence[GuidanceLoss] = ()) -> None:
        for t in terms:
            if not isinstance(t, GuidanceLoss):
                raise TypeError(f"CombinedLoss takes GuidanceLoss terms, got {type(t).__name__}")
        self._terms: tuple[GuidanceLoss, ...] = tuple(terms)
        self._names: tuple[str, ...] = _unique_names(self._terms)

    # -- chain building -----------------------------------------------------------------------

    @property
    def terms(self) -> tuple[GuidanceLoss, ...]:
        """All terms in chain order, zero-weight ones included."""
        return self._terms

    @property
    def names(self) -> tuple[str, ...]:
        """Unique name of each term, parallel to ``terms``."""
        return self._names

    @property
    def active_terms(self) -> tuple[GuidanceLoss, ...]:
        """Terms with a non-zero weight (the ones evaluated)."""
        return tuple(t for t in self._terms if t.weight != 0.0)

    def with_term(self, term: GuidanceLoss) -> CombinedLoss:
        """A new chain with ``term`` appended; this chain is left untouched."""
        return CombinedLoss((*self._terms, term))

    def merge(self, other: CombinedLoss | Sequence[GuidanceLoss]) -> CombinedLoss:
        """A new chain: this chain's terms followed by ``other``'s."""
        extra = other.terms if isinstance(other, CombinedLoss) else tuple(other)
        return CombinedLoss((*self._terms, *extra))

    def is_empty(self) -> bool:
        """True when no term has a non-zero weight (nothing to evaluate)."""
        return not self.active_terms

    def __len__(self) -> int:
        return len(self._terms)

    def __iter__(self) -> Iterator[GuidanceLoss]:
        return iter(self._terms)

    def __repr__(self) -> str:
        return f"CombinedLoss({', '.join(self._names)})"

    # -- evaluation ---------------------------------------------------------------------------

    def __call__(self, images: Tensor) -> LossResult:
        """Same as :meth:`evaluate`."""
        return self.evaluate(images)

    @property
    def image_terms(self) -> tuple[tuple[str, GuidanceLoss], ...]:
        """(name, term) of the active terms evaluated on decoded pixels."""
        return tuple((n, t) for n, t in zip(self._names, self._terms, strict=True)
                     if t.weight != 0.0 and t.space == "image")

    @property
    def latent_terms(self) -> tuple[tuple[str, LatentGuidanceLoss], ...]:
        """(name, term) of the active terms evaluated on the model's latent (its own features)."""
        return tuple((n, t) for n, t in zip(self._names, self._terms, strict=True)  # type: ignore[misc]
                     if t.weight != 0.0 and t.space == "latent")

    def evaluate(self, images: Tensor, names: Iterable[str] | None = None) -> LossResult:
        """Evaluate the active image terms (or those in ``names``) on ``images`` (B,3,H,W in [0,1]).

        Terms sharing the same extractor instance are grouped and the extractor runs once with
        the union of their layers. ``terms`` values keep their graph (detach them for display).
        Latent terms are not evaluated here (they need the diffusion model: see the sampler).
        With no term to evaluate the total is a zero (B,) still connected to ``images``.
        """
        check_generated(images)
        wanted = None if names is None else set(names)
        active = [(n, t) for n, t in self.image_terms if wanted is None or n in wanted]
        values: dict[str, Tensor] = {}
        groups: dict[int, list[tuple[str, GuidanceLoss]]] = {}
        for name, term in active:
            if term.extractor is None or not term.required_layers():
                values[name] = term.forward_features(images, {})
            else:
                groups.setdefault(id(term.extractor), []).append((name, term))
        for members in groups.values():
            extractor = members[0][1].extractor
            layers: set[str] = set()
            for _, term in members:
                layers |= term.required_layers()
            feats = extractor(images, layers)
            for name, term in members:
                values[name] = term.forward_features(images, feats)
            del feats  # the graph keeps what backward needs; drop our references early
        terms = {name: values[name].float() for name, _ in active}  # chain order
        weights = {name: term.weight for name, term in active}
        if terms:
            total = torch.stack([weights[n] * v for n, v in terms.items()]).sum(dim=0)
        else:
            total = images.float().flatten(1).sum(dim=1) * 0.0
        return LossResult(total, terms, weights)

    # -- housekeeping -------------------------------------------------------------------------

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> CombinedLoss:
        """Move every term (and so its extractor/encoder) in place; references stay float32."""
        with torch.inference_mode(False):
            for term in self._terms:
                if dtype is None:
                    term.to(device)
                else:
                    term.to(device, dtype)
        return self

    def reset_rng(self, seed: int) -> None:
        """Reseed each term with a seed derived from (``seed``, term index) for repeatable runs."""
        for i, term in enumerate(self._terms):
            term.reset_rng(derive_seed(seed, i))

    def describe(self) -> str:
        """One line per term: unique name, weight and settings."""
        lines = []
        for name, term in zip(self._names, self._terms, strict=True):
            off = "  (off: weight 0)" if term.weight == 0.0 else ""
            lines.append(f"{name}: weight={term.weight:g} {term.describe()}{off}")
        return "\n".join(lines) if lines else "(no loss terms)"
