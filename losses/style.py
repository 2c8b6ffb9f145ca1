"""Style terms: Gram matrices of VGG features, CLIP embedding distance, and the range penalty.

Batch pairing: generated sample i pairs with style image i % R and mask entry i % M. With
``style_batch="blend"`` the R style images make ONE target instead, the weighted mean of their
targets (:mod:`.blend`). With a mask, the statistics of the *generated* image come from the
masked region only; the style target always comes from the whole style image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .blend import blend_targets, check_style_batch, resolve_blend_weights
from .clip import CLIPImageEncoder
from .content import masked_mean
from .inputs import as_image_batch, check_generated, derive_seed, pair, resize_constant
from .terms import FeatureExtractor, GuidanceLoss, register_reference
from .vgg import GRAM_STYLE_LAYERS

__all__ = ["GramStyleLoss", "CLIPStyleLoss", "RangeLoss", "gram_matrix", "gatys_layer_loss", "CLIP_DISTANCES", "CLIP_TARGETS"]

CLIP_DISTANCES = ("spherical", "cosine")
_EPS = 1e-8


def gram_matrix(feats: Tensor, mask: Tensor | None = None) -> Tensor:
    """Gram matrices (B,C,C) = F F^T / (H*W) in float32 (Gatys' G / M); masked: over the region.

    Masked (B,1,h,w): features are weighted by sqrt(m) and the sum is divided by sum(m), i.e.
    the m-weighted mean of the channel outer products (for a 0/1 mask: the Gram of the region).
    """
    b, c, h, w = feats.shape
    x = feats.float().flatten(2)
    if mask is None:
        return torch.bmm(x, x.transpose(1, 2)) / (h * w)
    m = mask.float().flatten(2)  # (B,1,hw)
    x = x * m.sqrt()
    den = m.sum(dim=2, keepdim=True).clamp_min(_EPS)  # (B,1,1)
    return torch.bmm(x, x.transpose(1, 2)) / den


def gatys_layer_loss(gram: Tensor, target: Tensor) -> Tensor:
    """Gatys et al.'s E_l = 1/(4 N^2 M^2) sum (G - A)^2 per sample, for Grams already divided by M.

    With G/M given, E_l is a quarter of the mean over the N x N entries: channels no longer
    scale it, so deep layers (512 channels) count as much as relu1_1 (64 channels).
    """
    return (gram - target).square().flatten(1).mean(dim=1) / 4.0


def fit_side(image: Tensor, side: int | None, minimum: int = 32) -> Tensor:
    """Resize a constant image so its longer side is ``side`` (None/0: unchanged); shorter side >= minimum."""
    h, w = image.shape[-2:]
    f = 1.0 if not side else int(side) / max(h, w)
    if min(h, w) * f < minimum:
        f = minimum / min(h, w)
    if f == 1.0:
        return image
    return resize_constant(image, (max(1, round(h * f)), max(1, round(w * f))))


def _blend_setup(term: GuidanceLoss, style: Tensor, style_batch: str, blend_weights) -> None:
    """Check the style-batch option and keep the normalised blend weights (None when pairing)."""
    term.style_batch = check_style_batch(style_batch)
    if style_batch == "pair":
        if blend_weights is not None and (not isinstance(blend_weights, str) or blend_weights.strip()):
            raise ValueError(f"{term.kind}: blend_weights are used only with style_batch='blend'; switch style_batch "
                             "to blend or clear blend_weights")
        term.blend_weights = None
    else:
        term.blend_weights = resolve_blend_weights(blend_weights, style.shape[0])


def _blend_text(term: GuidanceLoss) -> str:
    if term.blend_weights is None:
        return ""
    return ", blend " + ":".join(f"{w:.3g}" for w in term.blend_weights.tolist())


class GramStyleLoss(GuidanceLoss):
    """Gatys' style loss: mean over layers of E_l between Gram matrices of generated and style features.

    Per layer E_l = 1/(4 N_l^2 M_l^2) sum_ij (G_ij - A_ij)^2 (N_l channels, M_l positions), layers
    weighted equally (w_l = 1/L), as in Gatys et al. 2016. The style image may have any size or
    aspect ratio (Gram statistics are spatial averages); ``style_size`` rescales it so its longer
    side has that many pixels first (the texture scale relative to the network's receptive fields;
    also bounds the cost of building the target from a large photo). ``style_batch="blend"`` makes
    the style batch one target, the ``blend_weights``-weighted mean of its Gram matrices per layer
    (:mod:`.blend`); "pair" pairs sample i with style i % R. With a mask, gradients reach
    the masked region plus a fringe as wide as the receptive field of the deepest style layer.
    A term with weight 0 builds no target at all (it is never evaluated).
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
        style_batch: str = "pair",
        blend_weights: str | Sequence[float] | None = None,
        **window: float,
    ) -> None:
        if extractor is None:
            raise ValueError("gram_style: a feature extractor (VGG19) is required")
        if isinstance(layers, str):
            layers = (layers,)
        super().__init__(weight=weight, extractor=extractor, mask=mask, **window)
        self.layers: tuple[str, ...] = extractor.check_layers(layers)
        if not self.layers:
            raise ValueError("gram_style: at least one layer is required")
        if style_size is not None and int(style_size) < 0:
            raise ValueError(f"gram_style: style_size must be >= 0 (0 = as given), got {style_size}")
        style = fit_side(as_image_batch(style, "style image"), style_size)
        self.style_shape: tuple[int, ...] = tuple(style.shape)
        _blend_setup(self, style, style_batch, blend_weights)
        if self.weight == 0.0:
            return  # never evaluated: skip the VGG pass over the style image
        with torch.inference_mode(False), torch.no_grad():
            dev = next((p.device for p in extractor.parameters()), style.device)
            feats = extractor.reference_features(style.clone().to(dev), self.layers)
            # Kept per layer in float32 (R,C,C); moved with the term, never cast to bf16.
            self._targets = {k: gram_matrix(v).detach() for k, v in feats.items()}
            if self.blend_weights is not None:
                self._targets = {k: blend_targets(v, self.blend_weights) for k, v in self._targets.items()}

    def required_layers(self) -> set[str]:
        return set(self.layers)

    def layer_losses(self, images: Tensor, feats: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-layer E_l (B,) for each style layer (the summands of :meth:`forward_features`)."""
        b = images.shape[0]
        out = {}
        for layer in self.layers:
            f = feats[layer]
            g = gram_matrix(f, self.mask_at(tuple(f.shape[-2:]), b, f.device))
            out[layer] = gatys_layer_loss(g, pair(self._targets[layer].to(g.device), b))
        return out

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample mean over layers of Gatys' E_l (B,)."""
        per_layer = self.layer_losses(images, feats)
        return torch.stack(list(per_layer.values())).mean(dim=0)

    def describe(self) -> str:
        r, _, h, w = self.style_shape
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        return (f"GramStyleLoss(style {r}x{h}x{w}{_blend_text(self)}, layers={'+'.join(self.layers)}, "
                f"mask={mask}{self.window_text()})")


def clip_distance(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """Distance between L2-normalised embeddings along the last dim: cosine or spherical."""
    if kind == "cosine":
        return 1.0 - (a * b).sum(dim=-1)
    # Spherical: 2*asin(|a-b|/2)^2, i.e. half the squared angle. The clamps keep the gradient
    # finite at a == b (sqrt) and at antipodes (asin).
    chord = (a - b).square().sum(dim=-1).clamp_min(1e-12).sqrt()
    return 2.0 * torch.asin((chord / 2).clamp(max=1.0 - 1e-7)).square()


CLIP_TARGETS = ("embedding", "crop_embedding", "token_gram")


class CLIPStyleLoss(GuidanceLoss):
    """CLIP style term on random cutouts of the generated image; three kinds of target.

    Cutouts: ``num_cutouts`` squares of side U(cut_min, 1) x the shorter side at random
    positions (randomly mirrored if ``flip``), each resized differentiably to the encoder's
    input; the term is averaged over cutouts. ``num_cutouts=0`` scores the whole image once.

    ``target`` says what of the style image is matched:
    - "embedding": distance to the global embedding of the whole style image (the classic CLIP
      style loss; it also drags in the style image's *content*, its known weakness);
    - "crop_embedding": distance to the mean embedding of ``style_crops`` random crops of the
      style image: objects are spread over crops and average out, texture and palette remain;
    - "token_gram": FreeDoM/MPGD-style: the Gram matrix of the patch tokens after the first
      ``gram_layers`` transformer layers (early layers carry colour and texture, not objects),
      matched to the same Gram averaged over style crops; no global embedding involved.
    The style image is first scaled so its longer side is ``style_size`` (crops are taken there).
    ``style_batch="blend"``: the style batch makes one target, the ``blend_weights``-weighted mean
    of the per-image targets (embeddings normalised again after the mean).
    With a mask, the generated image is shown with neutral grey (0.5) outside the mask and cutouts
    are taken inside the mask's bounding box, so no gradient reaches pixels outside the mask.
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
        target: str = "embedding",
        style_size: int | None = None,
        style_crops: int = 16,
        gram_layers: int = 3,
        style_batch: str = "pair",
        blend_weights: str | Sequence[float] | None = None,
        **window: float,
    ) -> None:
        if distance not in CLIP_DISTANCES:
            raise ValueError(f"clip_style: distance must be one of {CLIP_DISTANCES}, got {distance!r}")
        if target not in CLIP_TARGETS:
            raise ValueError(f"clip_style: target must be one of {CLIP_TARGETS}, got {target!r}")
        if int(num_cutouts) < 0:
            raise ValueError(f"clip_style: num_cutouts must be >= 0, got {num_cutouts}")
        if not 0.0 < float(cut_min) <= 1.0:
            raise ValueError(f"clip_style: cut_min must be in (0, 1], got {cut_min}")
        if int(style_crops) < 1:
            raise ValueError(f"clip_style: style_crops must be >= 1, got {style_crops}")
        if int(gram_layers) < 1:
            raise ValueError(f"clip_style: gram_layers must be >= 1, got {gram_layers}")
        if encoder is None:
            raise ValueError("clip_style: a CLIP image encoder is required")
        super().__init__(weight=weight, extractor=None, mask=mask, seed=seed, **window)
        self.encoder = encoder
        self.num_cutouts = int(num_cutouts)
        self.cut_min = float(cut_min)
        self.distance = distance
        self.flip = bool(flip)
        self.target = target
        self.style_crops = int(style_crops)
        self.gram_layers = min(int(gram_layers), encoder.depth()) if target == "token_gram" else int(gram_layers)
        style = fit_side(as_image_batch(style, "style image"), style_size)
        self.style_shape: tuple[int, ...] = tuple(style.shape)
        _blend_setup(self, style, style_batch, blend_weights)
        if self.weight == 0.0:
            return  # never evaluated: skip the encoder passes over the style image
        with torch.inference_mode(False), torch.no_grad():
            dev = next((p.device for p in encoder.parameters()), style.device)
            ref = self._style_target(style.clone().to(dev))
            if self.blend_weights is not None:
                ref = blend_targets(ref, self.blend_weights)
                if self.target != "token_gram":
                    ref = F.normalize(ref, dim=-1)
        register_reference(self, "style_target", ref)

    # -- the style side, once ----------------------------------------------------------------
    def _style_crops(self, style: Tensor) -> Tensor:
        """``style_crops`` random square crops of each style image, resized: (K*R,3,S,S), crop-major."""
        gen = torch.Generator().manual_seed(derive_seed(self.seed, 0x57C1))
        h, w = style.shape[-2:]
        crops = []
        for frac, u, v, fl in torch.rand(self.style_crops, 4, generator=gen).tolist():
            side = max(1, round((self.cut_min + (1.0 - self.cut_min) * frac) * min(h, w)))
            oy = min(h - side, int(u * (h - side + 1)))
            ox = min(w - side, int(v * (w - side + 1)))
            view = self.encoder.resize(style[:, :, oy : oy + side, ox : ox + side])
            crops.append(torch.flip(view, dims=[3]) if self.flip and fl < 0.5 else view)
        return torch.cat(crops)

    def _style_target(self, style: Tensor) -> Tensor:
        """(R,D) normalised embedding, or (R,D,D) token Gram, of the style batch."""
        r = style.shape[0]
        if self.target == "embedding":
            return F.normalize(self.encoder(style).float(), dim=-1)
        views = self._style_crops(style)
        if self.target == "crop_embedding":
            emb = F.normalize(self.encoder.encode_resized(views).float(), dim=-1)
            return F.normalize(emb.view(self.style_crops, r, -1).mean(dim=0), dim=-1)
        grams = token_gram(self.encoder.tokens_resized(views, self.gram_layers))
        return grams.view(self.style_crops, r, *grams.shape[1:]).mean(dim=0)

    # -- the generated side, per step ----------------------------------------------------------
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
        """Per-sample CLIP style loss averaged over cutouts (B,)."""
        check_generated(images)
        b, _, h, w = images.shape
        m = self.mask_at((h, w), b, images.device)
        x = images if m is None else images * m + 0.5 * (1.0 - m)
        views = self._views(x, self._boxes(h, w, b))
        k = max(1, self.num_cutouts)
        target = pair(self.style_target.to(images.device), b).unsqueeze(0)
        if self.target == "token_gram":
            grams = token_gram(self.encoder.tokens_resized(views, self.gram_layers))
            grams = grams.view(k, b, *grams.shape[1:])
            return (grams - target).square().flatten(2).mean(dim=2).mean(dim=0)
        emb = F.normalize(self.encoder.encode_resized(views).float(), dim=-1)
        return clip_distance(emb.view(k, b, -1), target, self.distance).mean(dim=0)

    def describe(self) -> str:
        r, _, h, w = self.style_shape
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        cut = "whole image" if self.num_cutouts == 0 else f"{self.num_cutouts} cutouts >= {self.cut_min:g}"
        what = {"embedding": "embedding", "crop_embedding": f"embedding over {self.style_crops} style crops",
                "token_gram": f"token Gram after {self.gram_layers} layers"}[self.target]
        return (
            f"CLIPStyleLoss(style {r}x{h}x{w}{_blend_text(self)}, encoder={self.encoder.name}, {what}, {cut}, "
            f"distance={self.distance}, flip={self.flip}, seed={self.seed}, mask={mask}{self.window_text()})"
        )


def token_gram(tokens: Tensor) -> Tensor:
    """Gram matrices (B,D,D) = T^T T / N of token sequences (B,N,D), in float32."""
    t = tokens.float()
    return torch.bmm(t.transpose(1, 2), t) / t.shape[1]


class RangeLoss(GuidanceLoss):
    """Mean squared amount by which pixel values fall outside [0,1] (B,): ZeCon's range loss.

    Zero while the decoded image stays in range, so it only acts (and only gets a share of the
    guidance) when other terms push pixels out of what the decoder can show.
    """

    kind = "range"

    def __init__(self, weight: float = 1.0, mask: Tensor | None = None, **window: float) -> None:
        super().__init__(weight=weight, extractor=None, mask=mask, **window)

    def forward_features(self, images: Tensor, feats: dict[str, Tensor]) -> Tensor:
        """Per-sample mean of (x - clamp(x, 0, 1))^2."""
        x = images.float()
        err = (x - x.clamp(0.0, 1.0)).square()
        b, _, h, w = images.shape
        return masked_mean(err, self.mask_at((h, w), b, images.device))

    def describe(self) -> str:
        mask = "none" if self.mask is None else "x".join(str(s) for s in self.mask.shape)
        return f"RangeLoss(mask={mask}{self.window_text()})"
