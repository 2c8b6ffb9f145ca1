"""Chroma (Flux.1 schnell derived, no guidance embedding, modulations from an approximator network).

ComfyUI detects Chroma as a Flux layout (``double_blocks.0.img_attn.norm.key_norm.scale``,
``img_in.weight``) with ``distilled_guidance_layer.norms.0.scale``, then forces 24 heads of 128 and
a 5-layer, 5120-wide approximator. The stand-in: width 64 (2 heads of 32, RoPE axes 8+12+12), one
double and one single block, a 2-layer 64-wide approximator, 64-d text features; built through
``comfy.supported_models.Chroma`` (:mod:`.dit`), loaded by ``SGTestDiTLoader``. Chroma is not
guidance-distilled: real cfg with a negative prompt.
"""

from __future__ import annotations

import torch

from . import dit
from .family import Family

KEY = "chroma"
SEED = 170
WIDTH, TEXT = 64, 64

TINY = {"image_model": "chroma", "hidden_size": WIDTH, "num_heads": 2, "axes_dim": [8, 12, 12], "depth": 1,
        "depth_single_blocks": 1, "context_in_dim": TEXT, "in_dim": 64, "out_dim": WIDTH, "hidden_dim": 64,
        "n_layers": 2}
SKELETON = {"double_blocks.0.img_attn.norm.key_norm.scale": (WIDTH // 2,), "img_in.weight": (WIDTH, 64),
            "txt_in.weight": (WIDTH, TEXT), "distilled_guidance_layer.norms.0.scale": (64,),
            "single_blocks.0.norm.key_norm.scale": (WIDTH // 2,)}


def _run(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
    x, ctx = torch.randn((1, 16, 8, 8), generator=gen), torch.randn((1, 16, TEXT), generator=gen)
    return net(x, torch.tensor([0.5]), context=ctx, guidance=torch.tensor([0.0]))


SPEC = dit.DiTSpec("Chroma", "comfy.ldm.chroma.model.Chroma", TINY, SKELETON, _run, lambda net: net.final_layer.linear)

FAMILY = Family(KEY, "Chroma", "Chroma", "Flux", 16, "taef1", 0.3611, 0.1159, "diffusion_models",
                "sg_tiny_chroma.safetensors", TEXT, 0, flow=True, build=lambda s: dit.build(SPEC, s), seed=SEED,
                dit=SPEC, cond_extra=(("pooled_output", ""),))  # T5 alone: no pooled vector
