"""Flux.1 dev (flow, guidance-distilled): the smallest Flux ComfyUI detects.

Detection fixes 24 heads of width 128, so the hidden size must be 3072; one double block and no
single block: 404M parameters (0.8 GB in fp16). Built once and cached (``STYLE_GUIDANCE_CACHE``).
A bare diffusion model file for UNETLoader, as Black Forest Labs ship it; its text encoders are
CLIP-L twice (see ``install.family_overrides``).
"""

from __future__ import annotations

import torch

from .common import calibrate_output, sample, seeded_fill_
from .family import Family

FLUX_CONFIG = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096,
                   hidden_size=3072, mlp_ratio=4.0, num_heads=24, depth=1, depth_single_blocks=0,
                   axes_dim=[16, 56, 56], theta=10000, patch_size=2, qkv_bias=True, guidance_embed=True)


def flux_params(config: dict | None = None) -> dict:
    """``config`` (default FLUX_CONFIG) completed with what the installed ComfyUI's Flux requires beyond it.

    Newer ComfyUI adds constructor fields (0.8.0: ``txt_ids_dims``); its own detection, run on
    the key skeleton of such a model, says what they are for a Flux.1 file, so the stand-in is
    built as ComfyUI itself would build a model from it.
    """
    import comfy.model_detection

    c = dict(FLUX_CONFIG if config is None else config)
    hidden, p = c["hidden_size"], c["patch_size"]
    shapes = {"img_in.weight": (hidden, c["in_channels"] * p * p), "txt_in.weight": (hidden, c["context_in_dim"]),
              "vector_in.in_layer.weight": (hidden, c["vec_in_dim"])}
    if c["guidance_embed"]:
        shapes["guidance_in.in_layer.weight"] = (hidden, 256)
    shapes.update({f"double_blocks.{i}.img_attn.norm.key_norm.scale": (hidden // c["num_heads"],)
                   for i in range(c["depth"])})
    shapes.update({f"single_blocks.{i}.norm.key_norm.scale": (hidden // c["num_heads"],)
                   for i in range(c["depth_single_blocks"])})
    detected = comfy.model_detection.detect_unet_config({k: torch.empty(s, device="meta") for k, s in shapes.items()}, "")
    return {**detected, **c}


def flux_dit(seed: int = 60) -> torch.nn.Module:
    """The smallest Flux.1-dev ComfyUI detects: hidden 3072, one double block, guidance embedding."""
    import comfy.ops
    from comfy.ldm.flux.model import Flux

    net = Flux(**flux_params(), operations=comfy.ops.manual_cast, dtype=torch.float32)
    seeded_fill_(net, seed)
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx, y = sample(g, 1, 16, 8, 8), sample(g, 1, 77, 4096), sample(g, 1, 768)
    calibrate_output(net.final_layer.linear,
                     lambda: net(x, torch.tensor([0.5]), context=ctx, y=y, guidance=torch.tensor([3.5])))
    return net


FAMILY = Family("flux", "Flux.1 dev", "Flux", "Flux", 16, "taef1", 0.3611, 0.1159, "diffusion_models",
                "sg_tiny_flux1_dev.safetensors", 4096, 768, flow=True, guidance_embed=True, build=flux_dit, seed=60)
