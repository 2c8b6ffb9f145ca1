"""Seeded random stand-ins for the protocol's weight files, under their real names (tests, --standins).

Scores computed with them exercise the whole pipeline but mean nothing about image quality.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .inception import random_art_inception_state
from .lpips_metric import CHANNELS, alexnet_features
from .weights import ALEXNET, EVAL_FOLDER, INCEPTION, LPIPS_HEADS, VGG19, VGG_FOLDER


def _seeded(module: torch.nn.Module, seed: int, prefix: str = "") -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in module.state_dict().items():
        fan_in = max(1, v[0].numel()) if v.ndim > 1 else 1
        std = (2.0 / fan_in) ** 0.5 if v.ndim > 1 else 0.01
        out[prefix + k] = torch.randn(v.shape, generator=gen) * std
    return out


def vgg19_layout() -> torch.nn.Sequential:
    """torchvision's VGG19 ``features`` layout (for stand-in weights only)."""
    from torchvision.models import vgg19

    return vgg19(weights=None).features


def write_standins(models: Path, seed: int = 0) -> Path:
    """Write stand-in art_inception, AlexNet, VGG19 and LPIPS-head files into ``models``; return it."""
    ev, vg = models / EVAL_FOLDER, models / VGG_FOLDER
    ev.mkdir(parents=True, exist_ok=True)
    vg.mkdir(parents=True, exist_ok=True)
    if not (ev / INCEPTION).is_file():
        torch.save(random_art_inception_state(seed), ev / INCEPTION)
    if not (ev / ALEXNET).is_file():
        torch.save(_seeded(alexnet_features(), seed + 1, "features."), ev / ALEXNET)
    if not (vg / VGG19).is_file():
        torch.save(_seeded(vgg19_layout(), seed + 2, "features."), vg / VGG19)
    if not (ev / LPIPS_HEADS).is_file():
        gen = torch.Generator().manual_seed(seed + 3)
        heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) / c for i, c in enumerate(CHANNELS)}
        torch.save(heads, ev / LPIPS_HEADS)
    return models


__all__ = ["write_standins"]
