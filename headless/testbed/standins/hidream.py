"""HiDream I1 (flow, T5 + Llama 3.1 text features, mixture-of-experts blocks, Flux's 16-channel latents).

ComfyUI detects HiDream from ``caption_projection.0.linear.weight`` alone and then fixes the whole
layout: 16 double and 32 single blocks, 20 heads of 128, 4 routed experts (~17B parameters), so a
file of any other size cannot load through UNETLoader. The stand-in: 2 heads of 32 (RoPE axes
16+8+8), one double and one single block with the real expert count (4 routed, 2 active), 64-d T5
and Llama features (the Llama ones for 2 layers: ``conditioning_llama3`` of shape (1, 2, tokens, 64)),
a 64-d pooled vector; built through ``comfy.supported_models.HiDream`` (:mod:`.dit`), loaded by
``SGTestDiTLoader``.
"""

from __future__ import annotations

import torch

from . import dit
from .family import Family

KEY = "hidream"
SEED = 180
TEXT, POOLED, LLAMA_LAYERS = 64, 64, 2

TINY = {"image_model": "hidream", "attention_head_dim": 32, "num_attention_heads": 2, "axes_dims_rope": [16, 8, 8],
        "caption_channels": [TEXT, TEXT], "text_emb_dim": POOLED, "num_layers": 1, "num_single_layers": 1,
        "llama_layers": [0, 1]}
SKELETON = {"caption_projection.0.linear.weight": (64, TEXT)}


def _run(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn((1, 16, 8, 8), generator=gen)
    t5, pooled = torch.randn((1, 16, TEXT), generator=gen), torch.randn((1, POOLED), generator=gen)
    llama = torch.randn((1, LLAMA_LAYERS, 16, TEXT), generator=gen)
    return net(x, torch.tensor([500.0]), y=pooled, context=t5, encoder_hidden_states_llama3=llama)


SPEC = dit.DiTSpec("HiDream", "comfy.ldm.hidream.model.HiDreamImageTransformer2DModel", TINY, SKELETON, _run,
                   lambda net: net.final_layer.linear)

FAMILY = Family(KEY, "HiDream I1", "HiDream", "Flux", 16, "taef1", 0.3611, 0.1159, "diffusion_models",
                "sg_tiny_hidream.safetensors", TEXT, POOLED, flow=True, build=lambda s: dit.build(SPEC, s), seed=SEED,
                dit=SPEC, cond_extra=(("conditioning_llama3", f"{LLAMA_LAYERS},16,{TEXT}"),))
