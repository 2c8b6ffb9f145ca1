"""SD3.5: an MMDiT of depth 2 (hidden size is 64 x depth: 128) with RMS q/k norms as in SD3.5: ~3M parameters.

Its complete checkpoint carries CLIP-L only (``text_encoders.clip_l.*``; ComfyUI then builds an SD3
text encoder with CLIP-L alone) and a calibrated 16-channel TAESD as its VAE.
"""

from __future__ import annotations

import torch

from .common import calibrate_output, sample, seeded_fill_
from .decoders import taesd_vae_state_dict
from .family import Family
from .text_encoders import clip_l_state_dict


def sd3_mmdit(seed: int = 50) -> torch.nn.Module:
    """An SD3.5-style MMDiT (RMS q/k norms) of depth 2: hidden 128, 2 heads, 16 latent channels."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper, get_2d_sincos_pos_embed

    net = OpenAISignatureMMDITWrapper(
        input_size=None, patch_size=2, in_channels=16, out_channels=16, depth=2, adm_in_channels=2048,
        context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 128}},
        num_patches=64 * 64, pos_embed_max_size=64, pos_embed_scaling_factor=None, qk_norm="rms",
        x_block_self_attn_layers=[], operations=comfy.ops.manual_cast, dtype=torch.float32)
    seeded_fill_(net, seed)
    # pos_embed is a buffer made with torch.empty (real files carry it): left as is it holds whatever
    # memory it got, NaN at times. SD3's own table: 2D sin-cos over the 64x64 patch grid.
    table = get_2d_sincos_pos_embed(net.hidden_size, 64)
    with torch.no_grad():
        net.pos_embed.copy_(torch.from_numpy(table).float().reshape(net.pos_embed.shape))
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx, y = sample(g, 1, 16, 8, 8), sample(g, 1, 77, 4096), sample(g, 1, 2048)
    calibrate_output(net.final_layer.linear, lambda: net(x, torch.tensor([500.0]), context=ctx, y=y))
    return net


def complete_extras(seed: int) -> dict[str, torch.Tensor]:
    """CLIP-L and a calibrated TAESD (as ``first_stage_model``) for the complete SD3.5 checkpoint."""
    vae = taesd_vae_state_dict(16, seed + 20, FAMILY.vae_scale, FAMILY.vae_shift)
    return {**clip_l_state_dict(seed + 10, prefix="text_encoders.clip_l."),
            **{"first_stage_model." + k: v for k, v in vae.items()}}


FAMILY = Family("sd3", "SD3.5", "SD3", "SD3", 16, "taesd3", 1.5305, 0.0609, "checkpoints",
                "sg_tiny_sd35.safetensors", 4096, 2048, flow=True, build=sd3_mmdit, seed=50,
                complete=lambda seed: complete_extras(seed))
