"""Style terms: Gram matrices of VGG features, CLIP embedding distance, and the range penalty.

Batch pairing: generated sample i pairs with style image i % R and mask entry i % M. With a mask,
the statistics of the *generated* image come from the masked region only; the style target
always comes from the whole style image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import (
    FeatureExtractor,
    GuidanceLoss,
    _check_generated,
    _register_reference,
    as_image_batch,
    pair,
    resize_constant,
)
from .clip import CLIPImageEncoder
from .vgg import GRAM_STYLE_LAYERS

__all__ = ["GramStyleLoss", "CLIPStyleLoss", "RangeLoss", "gram_matrix", "CLIP_DISTANCES"]

CLIP_DISTANCES = ("spherical", "cosine")
_EPS = 1e-8


def gram_matrix(feats: Tensor, mask: Tensor | None = None) -> Tensor:
    """Gram matrices (B,C,C) = F F^T / (C*H*W) in float32; with a mask (B,1,h,w) over the masked region.

    Masked: features are weighted by sqrt(m) and the sum is divided by C*sum(m), i.e. the
    m-weighted mean of the channel outer products (for a 0/1 mask: the Gram of the region).
    """
    b, c, h, w = feats.shape
    x = feats.float().flatten(2)
    if mask is None:
        return torch.bmm(x, x.transpose(1, 2)) / (c * h * w)
    m = mask.float().flatten(2)  # (B,1,hw)
    x = x * m.sqrt()
    den = (m.sum(dim=2, keepdim=True) * c).clamp_min(_EPS)  # (B,1,1)
    return torch.bmm(x, x.transpose(1, 2)) / den


class GramStyleLoss(GuidanceLoss):
    """Sum over layers of MSE(Gram(generated), Gram(style)); style Grams precomputed once.

    The style image may have any size or aspect ratio (Gram statistics are spatial averages);
    ``style_size`` optionally rescales it so its longer side has that many pixels first (texture
    scale relative to the network's receptive fields, and CPU time at construction). With a
    mask, gradients reach the masked region plus a fringe as wide as the receptive field of the
    deepest style layer (the features there see across the mask border).
    """

    kind = "gram_style"

    def __init__(
        self,
        style: Tensor,
        extractor: FeatureExtractor,
        layers: Sequence[str] = GRAM_STYLE_LAYERS,
        weight: float = 1.0,
        mask: Tensor | None = None,
        style_size: int | None = None,
    ) -> None:
        if extractor is None:
            raise ValueError("gram_style: a feature extractor (VGG19) is required")
        if isinstance(layers, str):
            layers = (layers,)
        super().__init__(weight=weight, extractor=extractor, mask=mask)
        self.layers: tuple[str, ...] = extractor.check_layers(layers)
        if not self.layers:
            raise ValueError("gram_style: at least one layer is required")
        style = as_image_batch(style, "style image")
        if style_size is not None:
            h, w = style.shape[-2:]
            scale = int(style_size) / max(h, w)
            style = resize_constant(style, (max(1, round(h * scale)), max(1, round(w * scale))))
        self.style_shape: tuple[int, ...] = tuple(style.shape)
        with torch.inference_mode(False), torch.no_grad():
            dev = next((p.device for p in extractor.parameters()), style.device)
            feats = extractor(style.clone().to(dev), self.layers)
            # Kept per layer in float32 (R,C,C); moved with the term, never cast to bf16.
            self._targets = {k: gram_matrix(v).detach() for k, v in feats.items()}

    def required_layers(self) -> set[str]:
        return set(self.layers)

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample sum over layers of the mean squared Gram difference (B,)."""
        b = images.shape[0]
        total = images.new_zeros(b, dtype=torch.float32)
        for layer in self.layers:
            f = feats[layer]
            g = gram_matrix(f, self.mask_at(tuple(f.shape[-2:]), b, f.device))
            t = pair(self._targets[layer].to(g.device), b)
            total = total + (g - t).square().flatten(1).mean(dim=1)
        return total

    def describe(self) -> str:
        r, _, h, w = self.style_shape
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        return f"GramStyleLoss(style {r}x{h}x{w}, layers={'+'.join(self.layers)}, mask={mask})"


def clip_distance(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """Distance between L2-normalised embeddings along the last dim: cosine or spherical."""
    if kind == "cosine":
        return 1.0 - (a * b).sum(dim=-1)
    # Spherical: 2*asin(|a-b|/2)^2, i.e. half the squared angle. The clamps keep the gradient
    # finite at a == b (sqrt) and at antipodes (asin).
    chord = (a - b).square().sum(dim=-1).clamp_min(1e-12).sqrt()
    return 2.0 * torch.asin((chord / 2).clamp(max=1.0 - 1e-7)).square()


class CLIPStyleLoss(GuidanceLoss):
    """CLIP distance between the style image(s) and random cutouts of the generated image.

    Cutouts: ``num_cutouts`` squares of side U(cut_min, 1) x the shorter side at random
    positions (randomly mirrored if ``flip``), each resized differentiably to the encoder's
    input; the distance is averaged over cutouts. ``num_cutouts=0`` scores the whole image once.
    The style embedding is that of the whole style image (stretched to the encoder's square
    input), L2-normalised, computed once. With a mask, the generated image is shown with neutral
    grey (0.5) outside the mask and cutouts are taken inside the mask's bounding box, so no
    gradient reaches pixels outside the mask.
    """

    kind = "clip_style"

    def __init__(
        self,
        style: Tensor,
        encoder: CLIPImageEncoder,
        weight: float = 1.0,
        mask: Tensor | None = None,
        num_cutouts: int = 8,
        cut_min: float = 0.5,
        distance: str = "spherical",
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        if distance not in CLIP_DISTANCES:
            raise ValueError(f"clip_style: distance must be one of {CLIP_DISTANCES}, got {distance!r}")
        if int(num_cutouts) < 0:
            raise ValueError(f"clip_style: num_cutouts must be >= 0, got {num_cutouts}")
        if not 0.0 < float(cut_min) <= 1.0:
            raise ValueError(f"clip_style: cut_min must be in (0, 1], got {cut_min}")
        if encoder is None:
            raise ValueError("clip_style: a CLIP image encoder is required")
        super().__init__(weight=weight, extractor=None, mask=mask, seed=seed)
        self.encoder = encoder
        self.num_cutouts = int(num_cutouts)
        self.cut_min = float(cut_min)
        self.distance = distance
        self.flip = bool(flip)
        style = as_image_batch(style, "style image")
        self.style_shape: tuple[int, ...] = tuple(style.shape)
        with torch.inference_mode(False), torch.no_grad():
            dev = next((p.device for p in encoder.parameters()), style.device)
            emb = F.normalize(encoder(style.clone().to(dev)).float(), dim=-1)
        _register_reference(self, "style_embeds", emb)

    def _boxes(self, h: int, w: int, b: int) -> list[tuple[int, int, int, int]]:
        """Per-sample region (y0, y1, x0, x1) to cut from: the mask's bounding box or the image."""
        if self.mask is None:
            return [(0, h, 0, w)] * b

        def make() -> list[tuple[int, int, int, int]]:
            m = resize_constant(self.mask.unsqueeze(1).cpu(), (h, w))[:, 0]
            out = []
            for entry in m:
                sel = entry > 0.5 if bool((entry > 0.5).any()) else entry > 0
                ys = sel.any(dim=1).nonzero().flatten()
                xs = sel.any(dim=0).nonzero().flatten()
                out.append((int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1))
            return out

        boxes = self.cached(("bbox", h, w), make, host=True)
        return [boxes[i % len(boxes)] for i in range(b)]

    def _views(self, x: Tensor, boxes: list[tuple[int, int, int, int]]) -> Tensor:
        """All cutouts, resized to the encoder input: (K*B,3,S,S), cutout-major."""
        enc = self.encoder
        same = all(bx == boxes[0] for bx in boxes)
        if self.num_cutouts == 0:
            if same:
                y0, y1, x0, x1 = boxes[0]
                return enc.resize(x[:, :, y0:y1, x0:x1])
            return torch.cat([enc.resize(x[i : i + 1, :, y0:y1, x0:x1]) for i, (y0, y1, x0, x1) in enumerate(boxes)])
        # One set of random numbers per cutout, shared by the batch and scaled to each box.
        draws = torch.rand(self.num_cutouts, 4, generator=self.generator).tolist()
        views = []
        for frac, u, v, fl in draws:
            crops = []
            for y0, y1, x0, x1 in boxes[:1] if same else boxes:
                rh, rw = y1 - y0, x1 - x0
                side = max(1, round((self.cut_min + (1.0 - self.cut_min) * frac) * min(rh, rw)))
                oy = y0 + min(rh - side, int(u * (rh - side + 1)))
                ox = x0 + min(rw - side, int(v * (rw - side + 1)))
                crops.append((oy, ox, side))
            if same:
                oy, ox, side = crops[0]
                view = enc.resize(x[:, :, oy : oy + side, ox : ox + side])
            else:
                view = torch.cat(
                    [enc.resize(x[i : i + 1, :, oy : oy + s, ox : ox + s]) for i, (oy, ox, s) in enumerate(crops)]
                )
            if self.flip and fl < 0.5:
                view = torch.flip(view, dims=[3])
            views.append(view)
        return torch.cat(views)

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample CLIP distance averaged over cutouts (B,)."""
        _check_generated(images)
        b, _, h, w = images.shape
        m = self.mask_at((h, w), b, images.device)
        x = images if m is None else images * m + 0.5 * (1.0 - m)
        views = self._views(x, self._boxes(h, w, b))
        emb = F.normalize(self.encoder.encode_resized(views).float(), dim=-1)
        k = max(1, self.num_cutouts)
        emb = emb.view(k, b, -1)
        target = pair(self.style_embeds.to(emb.device), b).unsqueeze(0)
        return clip_distance(emb, target, self.distance).mean(dim=0)

    def describe(self) -> str:
        r, _, h, w = self.style_shape
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        cut = "whole image" if self.num_cutouts == 0 else f"{self.num_cutouts} cutouts >= {self.cut_min:g}"
        return (
            f"CLIPStyleLoss(style {r}x{h}x{w}, encoder={self.encoder.name}, {cut}, "
            f"distance={self.distance}, flip={self.flip}, seed={self.seed}, mask={mask})"
        )


class RangeLoss(GuidanceLoss):
    """Mean squared amount by which pixel values fall outside [0,1] (B,)."""

    kind = "range"

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__(weight=weight, extractor=None, mask=None)

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample mean of (x - clamp(x, 0, 1))^2."""
        x = images.float()
        return (x - x.clamp(0.0, 1.0)).square().flatten(1).mean(dim=1)

    def describe(self) -> str:
        return "RangeLoss()"
