"""The loss-term classes every term builds on: a shared feature extractor, image and latent terms.

A term is built once from its reference image (targets precomputed, stored as buffers with
:func:`register_reference`) and maps a generated batch to an unweighted per-sample loss (B,);
:class:`LatentGuidanceLoss` terms read the diffusion model's own features through a
:class:`ModelProbe` instead. Input conventions: :mod:`losses.inputs`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .inputs import as_mask_batch, check_generated, derive_seed, pair, resize_constant
from .schedule import Schedule

__all__ = [
    "FeatureExtractor",
    "GuidanceLoss",
    "LatentGuidanceLoss",
    "ModelProbe",
    "register_reference",
]


def _probe_device(fn: Callable[[Tensor], Tensor], like: Tensor) -> torch.device:
    """Find where ``Module._apply``'s fn sends ``like``, without converting ``like`` itself."""
    return fn(torch.zeros((), dtype=torch.float32, device=like.device)).device


def _move_tree(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Send every tensor of a nested dict/list/tuple where ``fn`` would, keeping its dtype."""
    if isinstance(obj, Tensor):
        return obj.to(_probe_device(fn, obj))
    if isinstance(obj, dict):
        return {k: _move_tree(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move_tree(v, fn) for v in obj)
    return obj


# --------------------------------------------------------------------------------------------
# Feature extractor
# --------------------------------------------------------------------------------------------


class FeatureExtractor(nn.Module):
    """A frozen network mapping [0,1] images to named feature maps; shared by several terms."""

    available_layers: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        # Public counter: tests and benchmarks use it to prove that terms share one forward.
        self.calls: int = 0

    def check_layers(self, layers: Iterable[str]) -> tuple[str, ...]:
        """Validate layer names, returning them de-duplicated in network order."""
        wanted = set(layers)
        unknown = sorted(wanted.difference(self.available_layers))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown layer(s) {unknown}; available: {', '.join(self.available_layers)}"
            )
        return tuple(n for n in self.available_layers if n in wanted)

    def forward(self, images: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """Return {layer: features} for the requested layers of ``images`` (B,3,H,W in [0,1])."""
        wanted = self.check_layers(layers)
        if not wanted:
            return {}
        self.calls += 1
        return self.extract(images, wanted)

    def reference_features(self, images: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """Like ``forward`` for reference images (targets): not counted in ``calls``, which counts guidance work."""
        wanted = self.check_layers(layers)
        return self.extract(images, wanted) if wanted else {}

    def extract(self, images: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
        """Subclass hook: compute the (already validated, non-empty) layers."""
        raise NotImplementedError

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> FeatureExtractor:
        # Moving under ComfyUI's inference_mode would turn the weights into inference tensors,
        # which autograd cannot save for backward later.
        with torch.inference_mode(False):
            return super()._apply(fn, recurse)


# --------------------------------------------------------------------------------------------
# Loss terms
# --------------------------------------------------------------------------------------------


class GuidanceLoss(nn.Module):
    """One guidance term: maps generated images (B,3,H,W in [0,1]) to an unweighted loss (B,).

    Reference tensors (images, targets, masks) stay float32 on ``.to(dtype=...)`` and only follow
    device moves, so a bf16/fp16 extractor keeps full-precision targets. Construction always runs
    outside ``torch.inference_mode`` so the targets can be used by autograd later.
    """

    kind: str = "loss"
    space: str = "image"  # "image": maps decoded pixels to a loss; "latent": see LatentGuidanceLoss

    def __init__(
        self,
        weight: float = 1.0,
        extractor: nn.Module | None = None,
        mask: Tensor | None = None,
        name: str | None = None,
        seed: int = 0,
        start_percent: float = 0.0,
        end_percent: float = 1.0,
        weight_curve: str = "constant",
        weight_values: str | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        weight = float(weight)
        if not math.isfinite(weight):
            raise ValueError(f"{self.kind}: weight must be a finite number, got {weight}")
        start, end = float(start_percent), float(end_percent)
        if not (0.0 <= start < end <= 1.0):
            raise ValueError(
                f"{self.kind}: start_percent ({start}) must be below end_percent ({end}), both in [0, 1]"
            )
        self.weight: float = weight
        self.name: str = name or self.kind
        self.extractor = extractor
        self.seed: int = int(seed)
        # The part of the schedule (fractions of the steps, half-open) this term guides in; the
        # sampler applies the window rule, the term only carries the numbers.
        self.start_percent: float = start
        self.end_percent: float = end
        # How the weight follows the steps inside that window (losses/schedule.py; constant = the window alone).
        self.schedule: Schedule = Schedule.make(weight_curve, weight_values, start, end, name="weight_curve",
                                           values_name="weight_values")
        # Public counter: how many guided evaluations used this term (tests count windows with it).
        self.evaluations: int = 0
        # Per-size caches of constant tensors (resized references, target features, masks) and
        # size-independent targets (style Grams); both follow device moves in _apply.
        self._cache: dict[Hashable, Any] = {}
        self._targets: dict[str, Tensor] = {}
        # Caches that must stay on the CPU next to the CPU generator (sampling weights).
        self._host_cache: dict[Hashable, Any] = {}
        with torch.inference_mode(False):
            mask = None if mask is None else as_mask_batch(mask, "mask").clone()
            self.register_buffer("mask", mask, persistent=False)
        self._generator = torch.Generator(device="cpu")
        self.reset_rng(0)

    # -- extension points ---------------------------------------------------------------------

    def required_layers(self) -> set[str]:
        """Layer names this term needs from ``self.extractor`` (empty without an extractor)."""
        return set()

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Unweighted per-sample loss (B,) from precomputed features of ``images``."""
        raise NotImplementedError

    def describe(self) -> str:
        """One-line human summary of the term's settings (used by CombinedLoss.describe)."""
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        return f"{type(self).__name__}(mask={mask}{self.window_text()})"

    def window_text(self) -> str:
        """', steps 20%-70%' when the term has its own window (', weight linear_up' with a curve), else ''."""
        curve = "" if self.schedule.curve == "constant" else f", weight {self.schedule.text()}"
        if self.start_percent == 0.0 and self.end_percent == 1.0:
            return curve
        return f", steps {self.start_percent:.0%}-{self.end_percent:.0%}{curve}"

    def weight_at(self, fraction: float) -> float:
        """The weight at this fraction of the steps: weight x the schedule's factor (0 outside the window)."""
        return self.weight * self.schedule.factor(fraction)

    # -- common behaviour -----------------------------------------------------------------------

    def forward(self, images: Tensor) -> Tensor:
        """Evaluate this term alone: run its own extractor (if any), then ``forward_features``."""
        check_generated(images)
        feats: dict[str, Tensor] = {}
        layers = self.required_layers()
        if self.extractor is not None and layers:
            feats = self.extractor(images, layers)
        return self.forward_features(images, feats)

    def reset_rng(self, seed: int) -> None:
        """Reseed the term's private CPU generator from (construction seed, ``seed``)."""
        # The construction seed takes part so that a node's own seed input still matters when
        # the sampler reseeds every term per run.
        self._generator.manual_seed(derive_seed(self.seed, seed))

    @property
    def generator(self) -> torch.Generator:
        """The private CPU generator for random choices (never the global RNG)."""
        return self._generator

    def cached(self, key: Hashable, make: Callable[[], Any], host: bool = False) -> Any:
        """Cached ``make()`` (run once, outside inference/grad mode); ``host`` caches stay on the CPU."""
        cache = self._host_cache if host else self._cache
        if key in cache:
            value = cache.pop(key)  # re-insert: the dict order doubles as an LRU list
        else:
            if len(cache) >= 16:  # sizes rarely change; bound memory if they do
                cache.pop(next(iter(cache)))
            with torch.inference_mode(False), torch.no_grad():
                value = make()
        cache[key] = value
        return value

    def mask_at(self, size: tuple[int, int], batch: int, device: torch.device) -> Tensor | None:
        """The mask resized to ``size`` and paired to the batch: (B,1,h,w) float32, or None."""
        if self.mask is None:
            return None
        m = self.cached(("mask", tuple(size)), lambda: resize_constant(self.mask.unsqueeze(1), size))
        return pair(m.to(device), batch)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> GuidanceLoss:
        # Own buffers and caches follow the device but keep float32; children (the extractor,
        # the CLIP encoder) get the full conversion, dtype included.
        with torch.inference_mode(False):
            own = {k: v for k, v in self._buffers.items() if v is not None}
            for k in own:
                del self._buffers[k]
            try:
                super()._apply(fn, recurse)
            finally:
                for k, v in own.items():
                    self._buffers[k] = v.to(_probe_device(fn, v))
            self._cache = _move_tree(self._cache, fn)
            self._targets = _move_tree(self._targets, fn)
        return self


@runtime_checkable
class ModelProbe(Protocol):
    """What a latent term may ask of the loaded diffusion model during one guided evaluation.

    The sampler builds one per guided evaluation (it knows the model, its patches and the
    conditioning); terms in this package only see this interface, so ``losses/`` stays free of
    ComfyUI. Concrete probes may offer more methods; terms document which they need.
    """

    sigma: float  # the noise level of the evaluation being guided
    seed: int  # the sampling run's seed (for seeded noise that repeats run to run)

    def to_model_space(self, latent: Tensor) -> Tensor:
        """A LATENT's samples (VAE space) -> the model's latent space (``process_latent_in``)."""
        ...


class LatentGuidanceLoss(GuidanceLoss):
    """A term on the diffusion model's own features: maps the x0 latent (model space) to (B,).

    Needs no decoder and no extra network: the engine hands it the denoised prediction and a
    :class:`ModelProbe`; its gradient is taken and normalised in latent space.
    """

    kind = "latent"
    space = "latent"

    def forward_latent(self, x0: Tensor, probe: ModelProbe) -> Tensor:
        """Unweighted per-sample loss (B,) of the x0 latent ``x0`` (B,C,h,w), model space."""
        raise NotImplementedError

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        raise TypeError(f"{self.kind}: a latent term is evaluated on latents (forward_latent), not on images")

    def forward(self, images: Tensor) -> Tensor:  # type: ignore[override]
        raise TypeError(f"{self.kind}: a latent term is evaluated on latents (forward_latent), not on images")


def register_reference(module: nn.Module, name: str, tensor: Tensor) -> None:
    """Store a reference tensor as a float32 non-persistent buffer, detached from inference mode."""
    with torch.inference_mode(False):
        module.register_buffer(name, tensor.detach().float().clone().contiguous(), persistent=False)
