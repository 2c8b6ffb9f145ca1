"""SDXL: ``SDXL`` matches ``transformer_depth == [0, 0, 2, 2, 10, 10]`` exactly (24 transformer blocks at
context 2048) but not the channel widths, so every level is 320 wide: ~120M parameters."""

from __future__ import annotations

import torch

from .common import calibrate_output, sample, seeded_fill_
from .family import Family, unet


def sdxl_unet(seed: int = 40) -> torch.nn.Module:
    """SDXL's transformer depths (0, 0, 2, 2, 10, 10: what ``SDXL`` matches) at width 320 on all levels."""
    net = unet(num_res_blocks=[2, 2, 2], channel_mult=[1, 1, 1], context_dim=2048, adm_in_channels=2816,
               num_classes="sequential", transformer_depth=[0, 0, 2, 2, 10, 10],
               transformer_depth_output=[0] * 9, transformer_depth_middle=-2)
    seeded_fill_(net, seed)
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx, y = sample(g, 1, 4, 8, 8), sample(g, 1, 77, 2048), sample(g, 1, 2816)
    calibrate_output(net.out[2], lambda: net(x, torch.tensor([500.0]), context=ctx, y=y))
    return net


FAMILY = Family("sdxl", "SDXL", "SDXL", "SDXL", 4, "taesdxl", 0.13025, 0.0, "checkpoints",
                "sg_tiny_sdxl.safetensors", 2048, 1280, build=sdxl_unet, seed=40)
