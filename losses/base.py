"""Loss-term base classes, the combined loss chain and input validation helpers.

Conventions shared by every term (quoted by the node tooltips):

* Images are float tensors (B,3,H,W) with values in [0,1].
* Batch pairing: a reference batch of R images against a generated batch of B images pairs
  generated sample ``i`` with reference ``i % R``. R=1 broadcasts one reference to the whole
  batch; R=B gives one reference per sample. Masks with M entries pair the same way.
* Masks are (M,H,W) floats in [0,1] at any resolution and mark the region of the *generated*
  image a term acts on; they are resized (bilinear) to the pixel or feature size where used.
* Every term returns an unweighted per-sample loss (B,) in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FeatureExtractor",
    "GuidanceLoss",
    "LatentGuidanceLoss",
    "ModelProbe",
    "LossResult",
    "CombinedLoss",
    "as_image_batch",
    "as_mask_batch",
    "comfy_image_to_nchw",
    "comfy_mask_to_bhw",
    "pair_index",
    "resize_constant",
    "derive_seed",
]

_MASK64 = (1 << 64) - 1


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _check_tensor(t: Any, name: str) -> Tensor:
    """Reject non-tensors and empty tensors with a message naming the input."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name}: expected an image tensor, got {type(t).__name__}")
    if t.numel() == 0:
        raise ValueError(f"{name}: the tensor is empty (shape {tuple(t.shape)})")
    return t


def _to_float(t: Tensor, name: str) -> Tensor:
    """Convert to float32; uint8 is read as 0..255 (a common hand-made input), other ints refused."""
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if t.dtype == torch.bool or not (t.is_floating_point()):
        raise ValueError(f"{name}: expected a floating-point image, got dtype {t.dtype}")
    return t.float()


def _check_finite(t: Tensor, name: str) -> None:
    """Raise the documented NaN/Inf error (one device sync; used on references, not per step)."""
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf values; check the node that produced it")


def as_image_batch(t: Tensor, name: str = "image") -> Tensor:
    """Validate an NCHW image (B,C,H,W) or (C,H,W) and return float32 (B,3,H,W).

    1 channel (grayscale) is repeated to RGB; 4 channels (RGBA) drop the alpha channel: the
    colour is used as stored, not composited over a background. uint8 input is divided by 255.
    Values outside [0,1] are kept (the range term penalises them); NaN/Inf raise ValueError.
    """
    t = _check_tensor(t, name)
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4:
        raise ValueError(
            f"{name}: expected an image batch (B,C,H,W) or a single image (C,H,W), got shape {tuple(t.shape)}"
        )
    c = t.shape[1]
    if c == 1:
        t = t.expand(-1, 3, -1, -1)
    elif c == 4:
        t = t[:, :3]
    elif c != 3:
        raise ValueError(f"{name}: expected 1, 3 or 4 channels (gray, RGB, RGBA), got {c} (shape {tuple(t.shape)})")
    t = _to_float(t, name)
    _check_finite(t, name)
    return t.contiguous()


def comfy_image_to_nchw(img: Tensor, name: str = "image") -> Tensor:
    """Convert a ComfyUI IMAGE (B,H,W,C) or (H,W,C) to validated float32 (B,3,H,W).

    Same rules as :func:`as_image_batch` (gray repeated, alpha dropped, NaN/Inf rejected).
    """
    img = _check_tensor(img, name)
    if img.dim() == 3:
        img = img.unsqueeze(0)
    if img.dim() != 4:
        raise ValueError(f"{name}: expected a ComfyUI IMAGE (B,H,W,C), got shape {tuple(img.shape)}")
    if img.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected a ComfyUI IMAGE (B,H,W,C) with C = 1, 3 or 4 channels, got shape {tuple(img.shape)}"
        )
    return as_image_batch(img.permute(0, 3, 1, 2), name)


def as_mask_batch(mask: Tensor, name: str = "mask") -> Tensor:
    """Validate a mask (H,W), (M,H,W) or (M,1,H,W) and return float32 (M,H,W) clamped to [0,1].

    An entry that is all zeros is refused: it would switch the term off silently (ComfyUI's
    LoadImage returns an all-zero 64x64 mask for images without alpha).
    """
    mask = _check_tensor(mask, name)
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    elif mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.dim() != 3:
        raise ValueError(f"{name}: expected a mask (H,W) or (M,H,W), got shape {tuple(mask.shape)}")
    mask = _to_float(mask, name)
    _check_finite(mask, name)
    mask = mask.clamp(0.0, 1.0)
    empty = (mask.flatten(1).amax(dim=1) <= 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"{name}: mask entry {empty[0]} is empty (all zeros), so the term would do nothing; "
            "note that LoadImage gives an all-zero mask for images without alpha"
        )
    return mask.contiguous()


def comfy_mask_to_bhw(mask: Tensor, name: str = "mask") -> Tensor:
    """Convert a ComfyUI MASK (B,H,W) or (H,W) to validated float32 (M,H,W) in [0,1]."""
    return as_mask_batch(mask, name)


def _check_generated(images: Tensor) -> None:
    """Cheap shape check for the per-step input (no NaN scan: that would sync every step)."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"generated images: expected (B,3,H,W) in [0,1], got {shape}")


# --------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------


def pair_index(n_generated: int, n_reference: int, device: torch.device | str | None = None) -> Tensor:
    """Reference index for each generated sample: ``i % R`` (the batch pairing rule)."""
    return torch.arange(n_generated, device=device) % n_reference


def pair(reference: Tensor, n_generated: int) -> Tensor:
    """Select the reference row for each generated sample per the pairing rule (no copy if R=1)."""
    r = reference.shape[0]
    if r == n_generated:
        return reference
    if r == 1:
        return reference.expand(n_generated, *reference.shape[1:])
    return reference[pair_index(n_generated, r, reference.device)]


def resize_constant(t: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize a constant (no-grad) NCHW tensor, antialiased when shrinking.

    Antialiased kernels exist on CPU and CUDA only, so other devices resize on the CPU; this runs
    once per size for references and masks, never per step.
    """
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    shrink = size[0] < t.shape[-2] or size[1] < t.shape[-1]
    dev = t.device
    src = t if dev.type in ("cpu", "cuda") else t.cpu()
    out = F.interpolate(src, size=size, mode=mode, align_corners=False, antialias=shrink)
    return out.to(dev)


def center_crop_to_aspect(t: Tensor, height: int, width: int) -> Tensor:
    """Crop NCHW ``t`` around its centre to the aspect ratio height:width."""
    h, w = t.shape[-2:]
    target = width / height
    if w / h > target:  # too wide: trim the sides
        new_w = max(1, round(h * target))
        x0 = (w - new_w) // 2
        return t[..., :, x0 : x0 + new_w]
    new_h = max(1, round(w / target))
    y0 = (h - new_h) // 2
    return t[..., y0 : y0 + new_h, :]


def fit_reference(t: Tensor, size: tuple[int, int], fit: str) -> Tensor:
    """Bring a reference batch to ``size`` by 'stretch' (resize) or 'center_crop' (crop, then resize)."""
    if fit == "center_crop":
        t = center_crop_to_aspect(t, size[0], size[1])
    return resize_constant(t, size)


FIT_MODES = ("stretch", "center_crop")


def check_fit(fit: str) -> str:
    """Validate the ``fit`` option."""
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
    return fit


def _splitmix64(x: int) -> int:
    """One round of SplitMix64: a cheap, well-mixed integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(*parts: int) -> int:
    """Combine integers into one 63-bit seed (order matters; stable across runs and platforms)."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h & ((1 << 63) - 1)


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
        """', steps 20%-70%' when the term has its own window, else ''."""
        if self.start_percent == 0.0 and self.end_percent == 1.0:
            return ""
        return f", steps {self.start_percent:.0%}-{self.end_percent:.0%}"

    # -- common behaviour -----------------------------------------------------------------------

    def forward(self, images: Tensor) -> Tensor:
        """Evaluate this term alone: run its own extractor (if any), then ``forward_features``."""
        _check_generated(images)
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


def _register_reference(module: nn.Module, name: str, tensor: Tensor) -> None:
    """Store a reference tensor as a float32 non-persistent buffer, detached from inference mode."""
    with torch.inference_mode(False):
        module.register_buffer(name, tensor.detach().float().clone().contiguous(), persistent=False)


# --------------------------------------------------------------------------------------------
# Combined loss
# --------------------------------------------------------------------------------------------


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
        _check_generated(images)
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
