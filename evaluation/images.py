"""Reading images the way the protocol does: PIL, RGB, shorter side resized to 512, [0, 1] tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import functional as TF

EXTENSIONS = (".jpg", ".jpeg", ".png")  # the protocol's list (case-insensitive here)
SHORT_SIDE = 512


def load_rgb(path: Path) -> Image.Image:
    """An 8-bit RGB PIL image.

    Like the protocol, alpha is dropped (``convert('RGB')``, no compositing). Unlike a plain
    ``convert``, 16-bit and float images are scaled to 8 bits instead of being clipped at 255.
    """
    with Image.open(path) as im:
        im.load()
        if im.mode.startswith("I") or im.mode == "F":
            a = np.asarray(im).astype(np.float64)
            if im.mode == "F":
                top = 1.0 if a.size and float(np.nanmax(a)) <= 1.0 else 255.0
            else:
                top = 65535.0 if a.size and float(a.max()) > 255 else 255.0
            a = np.clip(np.nan_to_num(a) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
            return Image.fromarray(a).convert("RGB")
        return im.convert("RGB")


def resized(im: Image.Image, short_side: int = SHORT_SIDE) -> Image.Image:
    """Shorter side to ``short_side`` (torchvision's Resize(int) on a PIL image: bilinear, antialiased)."""
    return TF.resize(im, short_side)


def to_tensor(im: Image.Image) -> Tensor:
    """(1, C, H, W) float tensor in [0, 1] (ToTensor, no normalisation)."""
    return TF.to_tensor(im).unsqueeze(0)


def grey(im: Image.Image) -> Image.Image:
    """ITU-R 601 luma, one channel (torchvision's Grayscale on a PIL image)."""
    return im.convert("L")


def match_size(im: Image.Image, like: Image.Image) -> tuple[Image.Image, bool]:
    """``im`` resized to ``like``'s size when they differ (the protocol assumes equal sizes)."""
    if im.size == like.size:
        return im, False
    return im.resize(like.size, Image.BILINEAR), True


def as_batch(images: list[Tensor]) -> Tensor:
    """Stack equally sized (1, C, H, W) tensors."""
    return torch.cat(images, dim=0)
