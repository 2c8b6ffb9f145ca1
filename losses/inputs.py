"""Input handling shared by every loss term: validation, batch pairing, reference fitting, seeds.

Conventions shared by every term (quoted by the node tooltips):
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

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "FIT_MODES",
    "as_image_batch",
    "as_mask_batch",
    "center_crop_to_aspect",
    "check_fit",
    "check_generated",
    "comfy_image_to_nchw",
    "comfy_mask_to_bhw",
    "derive_seed",
    "fit_reference",
    "pair",
    "pair_index",
    "resize_constant",
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


def check_generated(images: Tensor) -> None:
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
