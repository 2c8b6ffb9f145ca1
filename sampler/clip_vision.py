"""Differentiable image embeddings from ComfyUI's own ``CLIP_VISION`` object (CLIP ViT-L/H/G, SigLIP).

ComfyUI's ``ClipVisionModel.encode_image`` cannot carry gradients: its preprocessing rounds
pixels to 8 bits (zero gradient), its transformer layers add residuals in place, and its
weights are inference tensors that autograd refuses to save. This module re-implements the
same forward pass out of place over a private, ordinary-tensor copy of the weights, so a loss
on the embedding can be back-propagated to the input pixels.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .autograd_compat import ordinary_copy

if TYPE_CHECKING:  # the loss package is imported lazily so this module stays cheap to import
    from ..losses.clip import CLIPImageEncoder

__all__ = ["ComfyClipVisionEncoder", "clip_vision_encoder"]

# model_type values ComfyUI's clip_vision.IMAGE_ENCODERS knows, keyed by the inner class name,
# so an unsupported encoder is reported under the name users see in configs.
_KNOWN_TYPES = {"Dinov2Model": "dinov2"}


def _describe(model: Any) -> str:
    """A user-facing name for an image encoder's type."""
    name = type(model).__name__
    return f"{_KNOWN_TYPES[name]} ({name})" if name in _KNOWN_TYPES else name


def _unsupported(model: Any, why: str) -> ValueError:
    """The error raised for image encoders this adapter cannot differentiate."""
    return ValueError(
        f"CLIP_VISION model type {_describe(model)} is not supported for gradient guidance ({why}); "
        "supported: CLIP ViT (clip_vision_model, e.g. ViT-L/H/bigG) and SigLIP (siglip_vision_model) "
        "as loaded by ComfyUI's 'Load CLIP Vision' node"
    )


class ComfyClipVisionEncoder(nn.Module):
    """Frozen, out-of-place re-implementation of ComfyUI's CLIP/SigLIP vision forward pass."""

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.float32, image_size: int | None = None) -> None:
        """Copy the weights of ComfyUI's ``CLIPVisionModelProjection`` (``clip_vision.model``)."""
        super().__init__()
        vision = self._validated_tower(model)
        if not dtype.is_floating_point:
            raise ValueError(f"compute dtype must be a floating point dtype, got {dtype}")
        # ComfyUI computes in float32 from fp16 weights (manual_cast); copying to float32 gives
        # bit-identical weights, and a uniform dtype tells the CLIPImageEncoder wrapper which
        # dtype to feed. Only the parts encode_image's embedding needs are copied (no LLaVA projector).
        with torch.inference_mode(False):
            self.vision = ordinary_copy(vision, dtype)
            proj = getattr(model, "visual_projection", None)
            # A projection-less config leaves ComfyUI's identity lambda here: nothing to copy.
            self.projection: nn.Module | None = ordinary_copy(proj, dtype) if isinstance(proj, nn.Module) else None
        self.siglip: bool = bool(getattr(vision, "output_layernorm", False))
        embeddings = self.vision.embeddings
        patch = embeddings.patch_embedding
        positions = int(embeddings.position_embedding.weight.shape[0]) - (0 if self.siglip else 1)
        stride = int(patch.stride[0])
        # The config's size is authoritative: SigLIP-384 uses 14 px patches on 384 px input
        # (27x27 patches, the strided conv drops the last 6 px), so grid * patch would be wrong.
        size = int(image_size) if image_size is not None else int(round(positions**0.5)) * stride
        if ((size - int(patch.kernel_size[0])) // stride + 1) ** 2 != positions:
            raise ValueError(
                f"image_size {size} does not fit this CLIP_VISION model's {positions} position embeddings "
                f"(patch {stride})"
            )
        self.image_size: int = size
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _validated_tower(model: nn.Module) -> nn.Module:
        """The ``vision_model`` submodule, after checking it has the CLIP/SigLIP ViT layout."""
        vision = getattr(model, "vision_model", None)
        if not isinstance(vision, nn.Module):
            raise _unsupported(model, "no CLIP-style vision_model tower")
        needed = (
            "embeddings.patch_embedding.weight", "embeddings.position_embedding.weight",
            "encoder.layers", "post_layernorm.weight",
        )  # fmt: skip
        per_layer = (
            "layer_norm1.weight", "layer_norm2.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
            "self_attn.v_proj.weight", "self_attn.out_proj.weight", "self_attn.heads", "mlp.fc1.weight",
            "mlp.fc2.weight", "mlp.activation",
        )  # fmt: skip

        def has(obj: Any, dotted: str) -> bool:
            for part in dotted.split("."):
                if not hasattr(obj, part):
                    return False
                obj = getattr(obj, part)
            return True

        missing = [n for n in needed if not has(vision, n)]
        layers = getattr(getattr(vision, "encoder", None), "layers", None)
        if not missing and (not isinstance(layers, nn.ModuleList) or len(layers) == 0):
            missing.append("encoder.layers (non-empty)")
        if not missing:
            missing = [
                f"encoder.layers.{i}.{n}" for i, layer in enumerate(layers) for n in per_layer if not has(layer, n)
            ]
        if missing:
            raise _unsupported(model, f"missing {', '.join(missing[:3])}")
        return vision

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> ComfyClipVisionEncoder:
        """Move/cast outside inference mode so the weights stay usable by autograd."""
        # Nodes run under torch.inference_mode; a .to() there would make inference tensors again.
        with torch.inference_mode(False):
            return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> ComfyClipVisionEncoder:
        """Always eval: the encoder is a frozen feature extractor."""
        return super().train(False)

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the forward pass runs in (that of the copied weights)."""
        return self.vision.embeddings.patch_embedding.weight.dtype

    @staticmethod
    def _w(t: Tensor | None, x: Tensor) -> Tensor | None:
        """``t`` on ``x``'s device and dtype (a no-op normally; covers partially offloaded copies)."""
        if t is None or (t.device == x.device and t.dtype == x.dtype):
            return t
        return t.to(device=x.device, dtype=x.dtype)

    def _linear(self, m: nn.Module, x: Tensor) -> Tensor:
        """Out-of-place ``m``'s affine map."""
        return F.linear(x, self._w(m.weight, x), self._w(getattr(m, "bias", None), x))

    def _layer_norm(self, m: Any, x: Tensor) -> Tensor:
        """LayerNorm ``m`` applied functionally; non-modules are ComfyUI's identity placeholders."""
        if not isinstance(m, nn.LayerNorm):
            return m(x)  # SigLIP's pre_layrnorm is ComfyUI's `lambda a: a`
        return F.layer_norm(x, m.normalized_shape, self._w(m.weight, x), self._w(m.bias, x), m.eps)

    def _attention(self, attn: nn.Module, x: Tensor) -> Tensor:
        """Unmasked multi-head self-attention with separate q/k/v projections."""
        b, n, d = x.shape
        heads = int(attn.heads)

        def split(t: Tensor) -> Tensor:
            return t.reshape(b, n, heads, d // heads).transpose(1, 2)

        q, k, v = (split(self._linear(p, x)) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        out = F.scaled_dot_product_attention(q, k, v)
        return self._linear(attn.out_proj, out.transpose(1, 2).reshape(b, n, d))

    def _embed(self, pixels: Tensor) -> Tensor:
        """Patch embedding, class token (CLIP only) and position embeddings -> (B,N,D)."""
        emb = self.vision.embeddings
        conv = emb.patch_embedding
        x = F.conv2d(
            pixels, self._w(conv.weight, pixels), self._w(conv.bias, pixels),
            stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
        )  # fmt: skip
        x = x.flatten(2).transpose(1, 2)
        cls = getattr(emb, "class_embedding", None)
        if cls is not None:
            x = torch.cat([self._w(cls, x).view(1, 1, -1).expand(x.shape[0], 1, -1), x], dim=1)
        return x + self._w(emb.position_embedding.weight, x).unsqueeze(0)

    def hidden_states(self, pixels: Tensor) -> Tensor:
        """Final encoder hidden states (B,N,D), before the post layer norm."""
        return self._run(pixels, len(self.vision.encoder.layers))

    def _run(self, pixels: Tensor, layers: int) -> Tensor:
        """Embedding, pre-norm and the first ``layers`` encoder layers -> (B,N,D)."""
        if pixels.dim() != 4 or pixels.shape[1] != 3 or tuple(pixels.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"expected normalised images of shape (B,3,{self.image_size},{self.image_size}), "
                f"got {tuple(pixels.shape)}"
            )
        x = self._embed(pixels.to(self.compute_dtype))
        x = self._layer_norm(self.vision.pre_layrnorm, x)
        for layer in list(self.vision.encoder.layers)[:layers]:
            # Residuals are summed into new tensors: ComfyUI's `x += ...` would clobber
            # activations autograd saved for backward.
            x = x + self._attention(layer.self_attn, self._layer_norm(layer.layer_norm1, x))
            h = self._linear(layer.mlp.fc1, self._layer_norm(layer.layer_norm2, x))
            x = x + self._linear(layer.mlp.fc2, layer.mlp.activation(h))  # ComfyUI's activations are pure functions
        return x

    def depth(self) -> int:
        """Number of transformer layers."""
        return len(self.vision.encoder.layers)

    def tokens(self, pixels: Tensor, layers: int) -> Tensor:
        """Patch tokens (B,N,D) after the first ``layers`` layers (no class token)."""
        x = self._run(pixels, layers)
        return x if self.siglip else x[:, 1:]

    def image_embeds(self, pixels: Tensor) -> Tensor:
        """Exactly ComfyUI's ``encode_image(...)["image_embeds"]``: (B,P) for CLIP, (B,N,D) tokens for SigLIP."""
        x = self.hidden_states(pixels)
        # ComfyUI's CLIP pools the class token before its post layer norm; its SigLIP keeps every
        # token (it does not load SigLIP's attention-pooling head) and normalises them all.
        pooled = self._layer_norm(self.vision.post_layernorm, x if self.siglip else x[:, 0])
        return self._linear(self.projection, pooled) if self.projection is not None else pooled

    def forward(self, pixels: Tensor) -> Tensor:
        """Embedding (B,D) of normalised (B,3,S,S) images; SigLIP tokens are mean-pooled."""
        out = self.image_embeds(pixels)
        # One vector per image is what embedding losses compare; without the discarded MAP head,
        # the token mean is SigLIP's natural global descriptor.
        return out.mean(dim=1) if out.dim() == 3 else out

    def extra_repr(self) -> str:
        """Summary for printing."""
        kind = "siglip" if self.siglip else "clip"
        layers = len(self.vision.encoder.layers)
        return f"kind={kind}, image_size={self.image_size}, layers={layers}, dtype={self.compute_dtype}"


# One private copy per ComfyUI CLIP_VISION object: re-running a workflow must not copy a
# multi-GB tower again, and the copy dies with the object it was made from.
_CACHE: weakref.WeakKeyDictionary[Any, ComfyClipVisionEncoder] = weakref.WeakKeyDictionary()


def _float_list(values: Sequence[float] | Tensor, what: str) -> list[float]:
    """Three floats from a config's mean/std entry."""
    out = [float(v) for v in (values.tolist() if isinstance(values, Tensor) else values)]
    if len(out) != 3:
        raise ValueError(f"CLIP_VISION {what} must have 3 values, got {out}")
    return out


def _cached_encoder(clip_vision: Any) -> ComfyClipVisionEncoder:
    """The cached copy for ``clip_vision``, built on first use."""
    size = int(clip_vision.image_size)
    try:
        enc = _CACHE.get(clip_vision)
    except TypeError:  # not weak-referenceable: build without caching
        return ComfyClipVisionEncoder(clip_vision.model, image_size=size)
    if enc is None:
        enc = ComfyClipVisionEncoder(clip_vision.model, image_size=size)
        _CACHE[clip_vision] = enc
    return enc


def clip_vision_encoder(clip_vision: Any) -> CLIPImageEncoder:
    """A differentiable [0,1]-image encoder for a ComfyUI ``CLIP_VISION`` object."""
    from ..losses.clip import CLIPImageEncoder

    model = getattr(clip_vision, "model", None)
    if model is None or not hasattr(clip_vision, "image_size"):
        raise ValueError(
            "expected a ComfyUI CLIP_VISION object (comfy.clip_vision.ClipVisionModel), "
            f"got {type(clip_vision).__name__}"
        )
    enc = _cached_encoder(clip_vision)
    size = enc.image_size
    mean = _float_list(clip_vision.image_mean, "image_mean")
    std = _float_list(clip_vision.image_std, "image_std")
    name = "comfy_siglip" if enc.siglip else "comfy_clip_vision"
    return CLIPImageEncoder(encode=enc, image_size=size, mean=mean, std=std, name=name)
