"""SD2.x v-prediction: SD2's own layout (4 levels x 2 res blocks) at width 320 with two transformers (~70M).

ComfyUI's ``SD20`` matches context 1024, model_channels 320, linear transformer projections; it
reads v-prediction from the spread of ``output_blocks.11.1.transformer_blocks.0.norm1.bias``
(std > 0.09), so the UNet needs twelve output blocks and a transformer in the last one.
"""

from __future__ import annotations

import torch

from .common import calibrate_output, sample, seeded_fill_
from .family import Family, unet

SD2_VPRED_NORM_STD = 0.15  # ComfyUI calls an SD2 UNet v-prediction above 0.09


def sd2v_unet(seed: int = 30) -> torch.nn.Module:
    """SD2's layout (12 output blocks), detected as ``SD20`` with v-prediction (norm bias std 0.15, scales 1)."""
    net = unet(num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 1, 1, 1], context_dim=1024,
               transformer_depth=[1, 0, 0, 0, 0, 0, 0, 0], transformer_depth_output=[1] + [0] * 11,
               transformer_depth_middle=-2)
    seeded_fill_(net, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        bias = net.output_blocks[11][1].transformer_blocks[0].norm1.bias
        bias.copy_(torch.randn(bias.shape, generator=gen) * SD2_VPRED_NORM_STD)
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx = sample(g, 1, 4, 8, 8), sample(g, 1, 77, 1024)
    calibrate_output(net.out[2], lambda: net(x, torch.tensor([500.0]), context=ctx))
    return net


FAMILY = Family("sd2v", "SD2.x v-prediction", "SD20", "SD15", 4, "taesd", 0.18215, 0.0, "checkpoints",
                "sg_tiny_sd2v.safetensors", 1024, 0, v_prediction=True, build=sd2v_unet, seed=30)
