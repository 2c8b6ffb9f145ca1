"""Content terms: pixel MSE, VGG feature MSE and ZeCon's patch-wise contrastive loss.

Batch pairing: generated sample i pairs with content image i % R and mask entry i % M.
``fit`` says how a content image of another shape meets the generated size:
"stretch" resizes it (aspect ratio may change); "center_crop" first crops the content around its
centre to the generated aspect ratio, then resizes (nothing is distorted, the borders are lost).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .inputs import as_image_batch, check_fit, check_generated, fit_reference, pair, resize_constant
from .terms import FeatureExtractor, GuidanceLoss, register_reference
from .vgg import ZECON_LAYER_PRESETS

__all__ = ["ContentMSELoss", "VGGContentLoss", "ZeConLoss", "ZECON_DEFAULT_LAYERS", "masked_mean", "patch_nce"]

ZECON_DEFAULT_LAYERS: tuple[str, ...] = next(iter(ZECON_LAYER_PRESETS.values()))

_EPS = 1e-8


def masked_mean(err: Tensor, mask: Tensor | None) -> Tensor:
    """Per-sample mean of ``err`` (B,C,h,w); with a mask (B,1,h,w): sum(m*err)/(sum(m)*C+eps)."""
    if mask is None:
        return err.flatten(1).mean(dim=1)
    c = err.shape[1]
    num = (err * mask).flatten(1).sum(dim=1)
    den = mask.flatten(1).sum(dim=1) * c + _EPS
    return num / den


def patch_nce(gen: Tensor, ref: Tensor, idx: Tensor, tau: float = 0.07) -> Tensor:
    """PatchNCE (CUT/ZeCon, no MLP head) per sample (B,) between feature maps (B,C,h,w).

    ``idx`` (B,N) holds flat locations; the query at location n of ``gen`` must pick the key at
    the same location of ``ref`` among the N sampled keys (cross-entropy, mean over the N
    queries). Vectors are L2-normalised over channels; ``ref`` is used as given (detach it).
    Usable with any feature source, e.g. a UNet encoder for ZeCon's latent variant.
    """
    b, c = gen.shape[:2]
    n = idx.shape[1]
    gather = idx.unsqueeze(1).expand(b, c, n)
    q = F.normalize(gen.flatten(2).gather(2, gather).float(), dim=1)
    k = F.normalize(ref.flatten(2).gather(2, gather).float(), dim=1)
    logits = torch.bmm(q.transpose(1, 2), k) / tau  # (B, N queries, N keys); positives on the diagonal
    labels = torch.arange(n, device=gen.device).repeat(b)
    return F.cross_entropy(logits.reshape(b * n, n), labels, reduction="none").view(b, n).mean(dim=1)


# Content references are kept at most this large (longer side): they are only ever compared at
# the loss resolution, and a phone photo at full size would cost memory and time for nothing.
MAX_REFERENCE_SIDE = 2048


def cap_reference(image: Tensor, side: int = MAX_REFERENCE_SIDE) -> Tensor:
    """Downscale a constant (R,3,H,W) image so its longer side is at most ``side``."""
    h, w = image.shape[-2:]
    if max(h, w) <= side:
        return image
    f = side / max(h, w)
    return resize_constant(image, (max(1, round(h * f)), max(1, round(w * f))))


class _ContentTerm(GuidanceLoss):
    """Shared plumbing: the content reference and its per-size resized copy."""

    def __init__(
        self,
        content: Tensor,
        weight: float,
        extractor: FeatureExtractor | None,
        mask: Tensor | None,
        fit: str,
        seed: int = 0,
        **window: float,
    ) -> None:
        super().__init__(weight=weight, extractor=extractor, mask=mask, seed=seed, **window)
        self.fit = check_fit(fit)
        register_reference(self, "content", cap_reference(as_image_batch(content, "content image")))

    def content_at(self, size: tuple[int, int]) -> Tensor:
        """The content batch (R,3,h,w) fitted to ``size`` (cached per size)."""
        return self.cached(("content", tuple(size)), lambda: fit_reference(self.content, tuple(size), self.fit))

    def describe(self) -> str:
        r, _, h, w = self.content.shape
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        return (f"{type(self).__name__}(content {r}x{h}x{w}, fit={self.fit}, mask={mask}{self._describe_extra()}"
                f"{self.window_text()})")

    def _describe_extra(self) -> str:
        return ""


class ContentMSELoss(_ContentTerm):
    """Pixel MSE in [0,1] RGB between the generated image and the content resized to its size."""

    kind = "pixel_mse_content"

    def __init__(self, content: Tensor, weight: float = 1.0, mask: Tensor | None = None, fit: str = "stretch",
                 **window: float) -> None:
        super().__init__(content, weight, None, mask, fit, **window)

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample (masked) mean squared pixel error (B,)."""
        check_generated(images)
        b, _, h, w = images.shape
        target = pair(self.content_at((h, w)).to(images.device), b)
        err = (images.float() - target).square()
        return masked_mean(err, self.mask_at((h, w), b, images.device))


class _FeatureContentTerm(_ContentTerm):
    """Content terms comparing extractor features; targets cached per generated size."""

    def __init__(
        self,
        content: Tensor,
        extractor: FeatureExtractor,
        layers: Sequence[str],
        weight: float,
        mask: Tensor | None,
        fit: str,
        seed: int = 0,
        precompute: bool = True,
        **window: float,
    ) -> None:
        if extractor is None:
            raise ValueError(f"{self.kind}: a feature extractor (VGG19) is required")
        if isinstance(layers, str):
            layers = (layers,)
        super().__init__(content, weight, extractor, mask, fit, seed, **window)
        self.layers: tuple[str, ...] = extractor.check_layers(layers)
        if not self.layers:
            raise ValueError(f"{self.kind}: at least one layer is required")
        if precompute and self.weight != 0.0:
            # Validates early that the extractor accepts the content, at a small size: the real
            # targets are made at the loss resolution when sampling first needs them.
            self.targets_at(_probe_size(tuple(self.content.shape[-2:])))

    def required_layers(self) -> set[str]:
        return set(self.layers)

    def targets_at(self, size: tuple[int, int]) -> dict[str, Tensor]:
        """Detached float32 content features at generated size ``size`` (R,C,h,w) per layer."""

        def make() -> dict[str, Tensor]:
            ext = self.extractor
            dev = next((p.device for p in ext.parameters()), self.content.device)
            feats = ext.reference_features(self.content_at(size).to(dev), self.layers)
            return {k: v.detach().float() for k, v in feats.items()}

        return self.cached(("targets", tuple(size)), make)

    def _describe_extra(self) -> str:
        return f", layers={'+'.join(self.layers)}"


def _probe_size(size: tuple[int, int], side: int = 64) -> tuple[int, int]:
    """A small size with the aspect of ``size`` (longer side ``side``, shorter at least 32)."""
    h, w = size
    f = side / max(h, w)
    return max(32, round(h * f)), max(32, round(w * f))


class VGGContentLoss(_FeatureContentTerm):
    """MSE between feature maps of the generated and the content image, mean over layers."""

    kind = "vgg_content"

    def __init__(
        self,
        content: Tensor,
        extractor: FeatureExtractor,
        layers: Sequence[str] = ("relu4_2",),
        weight: float = 1.0,
        mask: Tensor | None = None,
        fit: str = "stretch",
        precompute: bool = True,
        **window: float,
    ) -> None:
        super().__init__(content, extractor, layers, weight, mask, fit, precompute=precompute, **window)

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample (masked) feature MSE averaged over the layers (B,)."""
        b, _, h, w = images.shape
        targets = self.targets_at((h, w))
        total = images.new_zeros(b, dtype=torch.float32)
        for layer in self.layers:
            f = feats[layer].float()
            t = pair(targets[layer].to(f.device), b)
            total = total + masked_mean((f - t).square(), self.mask_at(tuple(f.shape[-2:]), b, f.device))
        return total / len(self.layers)


class ZeConLoss(_FeatureContentTerm):
    """PatchNCE (CUT; ZeCon's patch-wise contrastive loss) on extractor features (no MLP head), summed over layers.

    ZeCon itself takes these features from the diffusion model's encoder; on VGG19 this is
    CUT's PatchNCE and needs the VGG file (the node is "Content: PatchNCE (VGG)").

    Per layer: N random locations (the same in content and generated features; inside the mask
    when one is given), channel-L2-normalised vectors, logits = gen_q . content_k / tau over the
    N content locations, cross-entropy with the same location as the positive, mean over
    patches. Locations come from the term's private generator, fresh each call, so runs repeat
    after :meth:`reset_rng`. N is capped at the layer's h*w. Content features are detached.
    """

    kind = "vgg_patchnce_content"

    def __init__(
        self,
        content: Tensor,
        extractor: FeatureExtractor,
        layers: Sequence[str] = ZECON_DEFAULT_LAYERS,
        num_patches: int = 256,
        tau: float = 0.07,
        weight: float = 1.0,
        mask: Tensor | None = None,
        seed: int = 0,
        fit: str = "stretch",
        precompute: bool = True,
        **window: float,
    ) -> None:
        if int(num_patches) < 2:
            raise ValueError(f"zecon: num_patches must be at least 2 (one positive, one negative), got {num_patches}")
        if not float(tau) > 0:
            raise ValueError(f"zecon: tau must be positive, got {tau}")
        super().__init__(content, extractor, layers, weight, mask, fit, seed, precompute, **window)
        self.num_patches = int(num_patches)
        self.tau = float(tau)

    def _sample(self, b: int, h: int, w: int) -> Tensor:
        """Location indices (B,N') into the flattened h*w grid, drawn from the private generator."""
        hw = h * w
        g = self.generator
        if self.mask is None:
            n = min(self.num_patches, hw)
            return torch.randperm(hw, generator=g)[:n].unsqueeze(0).expand(b, n)
        # Sampling weights per mask entry at this layer's size, kept on the CPU next to the
        # generator (computed once per size: no device sync per step).
        probs = self.cached(
            ("zecon_probs", h, w), lambda: resize_constant(self.mask.unsqueeze(1).cpu(), (h, w)).flatten(1), host=True
        )
        m = probs.shape[0]
        rows = [probs[i % m] for i in range(b)]
        rows = [r if bool((r > 0).any()) else torch.ones_like(r) for r in rows]  # mask vanished here
        n = min([self.num_patches, *(int((r > 0).sum()) for r in rows)])
        return torch.stack([torch.multinomial(r, n, replacement=False, generator=g) for r in rows])

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample PatchNCE loss (B,), summed over layers."""
        b = images.shape[0]
        targets = self.targets_at(tuple(images.shape[-2:]))
        total = images.new_zeros(b, dtype=torch.float32)
        for layer in self.layers:
            f = feats[layer]
            idx = self._sample(b, f.shape[-2], f.shape[-1]).to(f.device)
            total = total + patch_nce(f, pair(targets[layer].to(f.device), b), idx, self.tau)
        return total

    def _describe_extra(self) -> str:
        return f", layers={'+'.join(self.layers)}, patches={self.num_patches}, tau={self.tau:g}, seed={self.seed}"
