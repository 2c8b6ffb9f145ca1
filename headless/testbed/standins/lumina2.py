"""Lumina 2 (flow, Gemma-2 text features, Flux's 16-channel latents): a tiny NextDiT.

ComfyUI detects Lumina 2 from ``cap_embedder.1.weight`` (its shape gives the width and the text
feature size) and counts ``layers.N``; at widths other than 2304 (Lumina 2) and 3840 (Z-Image) it
sets no head layout, so the stand-in gives it: width 64, 2 heads of 32 (RoPE axes 8+12+12), one
main layer and the class's two noise and two context refiner blocks, 64-d text features. Built
through ``comfy.supported_models.Lumina2`` (:mod:`.dit`), loaded by ``SGTestDiTLoader``.
"""

from __future__ import annotations

import torch

from . import dit
from .family import Family

KEY = "lumina2"
SEED = 150
WIDTH, TEXT = 64, 64

TINY = {"image_model": "lumina2", "dim": WIDTH, "cap_feat_dim": TEXT, "n_layers": 1, "n_heads": 2, "n_kv_heads": 2,
        "axes_dims": [8, 12, 12], "axes_lens": [300, 512, 512], "rope_theta": 10000.0, "ffn_dim_multiplier": 4.0}


def skeleton(width: int = WIDTH, text: int = TEXT, z_image: bool = False) -> dict:
    """The keys ComfyUI's detection reads for Lumina 2 / Z-Image, at the tiny shapes."""
    keys = {"cap_embedder.1.weight": (width, text), "layers.0.attention_norm1.weight": (width,)}
    if z_image:
        keys["cap_pad_token"] = (1, width)
    return keys


def run_nextdit(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
    """One forward as ComfyUI calls NextDiT: (B, 16, h, w) latents, timestep, text features, token count."""
    x, ctx = torch.randn((1, 16, 8, 8), generator=gen), torch.randn((1, 16, TEXT), generator=gen)
    return net(x, torch.tensor([0.5]), context=ctx, num_tokens=16)


SPEC = dit.DiTSpec("Lumina2", "comfy.ldm.lumina.model.NextDiT", TINY, skeleton(), run_nextdit,
                   lambda net: net.final_layer.linear)

FAMILY = Family(KEY, "Lumina 2", "Lumina2", "Flux", 16, "taef1", 0.3611, 0.1159, "diffusion_models",
                "sg_tiny_lumina2.safetensors", TEXT, 0, flow=True, build=lambda s: dit.build(SPEC, s), seed=SEED,
                dit=SPEC)
