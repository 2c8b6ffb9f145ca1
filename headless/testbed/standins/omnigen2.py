"""OmniGen2 (flow, Qwen2.5-VL text features, Flux's 16-channel latents, reference images as extra tokens).

ComfyUI detects OmniGen2 from ``time_caption_embed.timestep_embedder.linear_1.bias`` alone and then
fixes the whole layout (width 2520, 21 heads, 32 layers: ~4B parameters), so a smaller file cannot
load through UNETLoader. The stand-in: width 64 (2 heads of 32, RoPE axes 8+12+12), one layer and
the class's two refiner layers, 64-d text features; built through ``comfy.supported_models.Omnigen2``
(:mod:`.dit`), loaded by ``SGTestDiTLoader``.
"""

from __future__ import annotations

import torch

from . import dit
from .family import Family

KEY = "omnigen2"
SEED = 200
WIDTH, TEXT = 64, 64

TINY = {"image_model": "omnigen2", "hidden_size": WIDTH, "num_attention_heads": 2, "num_kv_heads": 2,
        "axes_dim_rope": [8, 12, 12], "num_layers": 1, "text_feat_dim": TEXT}
SKELETON = {"time_caption_embed.timestep_embedder.linear_1.bias": (WIDTH,)}


def _run(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
    x, ctx = torch.randn((1, 16, 8, 8), generator=gen), torch.randn((1, 16, TEXT), generator=gen)
    return net(x, torch.tensor([0.5]), context=ctx, num_tokens=16)


SPEC = dit.DiTSpec("Omnigen2", "comfy.ldm.omnigen.omnigen2.OmniGen2Transformer2DModel", TINY, SKELETON, _run,
                   lambda net: net.norm_out.linear_2)

FAMILY = Family(KEY, "OmniGen2", "Omnigen2", "Flux", 16, "taef1", 0.3611, 0.1159, "diffusion_models",
                "sg_tiny_omnigen2.safetensors", TEXT, 0, flow=True, build=lambda s: dit.build(SPEC, s), seed=SEED,
                dit=SPEC, cond_extra=(("attention_mask", "ones:16"),))  # model_base.Omnigen2 counts tokens from it
