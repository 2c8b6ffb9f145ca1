"""SD1.5: the tests' own tiny UNet (one level at width 320, context 768: ~14M parameters).

Its complete checkpoint (for shipped workflows) adds a random CLIP-L text encoder (ComfyUI builds
SD1's text encoder from a fixed config, so it cannot be smaller than CLIP-L) and the tests' TAESD
as the VAE (ComfyUI detects a TAESD inside a checkpoint). Not calibrated: the guidance tests were
tuned on these values.
"""

from __future__ import annotations

import torch

from .common import seeded_fill_
from .decoders import taesd_vae_state_dict
from .family import Family, unet
from .text_encoders import sd1_text_encoder_state_dict

SD15_TINY_UNET = dict(image_size=32, in_channels=4, model_channels=320, num_res_blocks=[1], channel_mult=[1],
                      transformer_depth=[1], transformer_depth_middle=1, num_heads=8, use_spatial_transformer=True,
                      context_dim=768, use_linear_in_transformer=False, legacy=False)


def tiny_sd15_unet(seed: int = 0) -> torch.nn.Module:
    """An SD1.5-detectable UNet (model_channels 320, context 768) with one level."""
    net = unet(**SD15_TINY_UNET, out_channels=4, transformer_depth_output=[1, 1], num_head_channels=-1)
    seeded_fill_(net, seed, gain=0.5)
    return net


def complete_extras(seed: int) -> dict[str, torch.Tensor]:
    """CLIP-L and the tests' TAESD (as ``first_stage_model``) for the complete SD1.5 checkpoint."""
    vae = taesd_vae_state_dict(4, seed + 20, FAMILY.vae_scale, FAMILY.vae_shift, calibrate=False)
    return {**sd1_text_encoder_state_dict(seed + 10), **{"first_stage_model." + k: v for k, v in vae.items()}}


FAMILY = Family("sd15", "SD1.5", "SD15", "SD15", 4, "taesd", 0.18215, 0.0, "checkpoints",
                "sg_tiny_sd15.safetensors", 768, 0, build=tiny_sd15_unet, seed=0,
                complete=lambda seed: complete_extras(seed))
