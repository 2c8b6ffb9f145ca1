"""What a diffusion-model family's stand-in is: :class:`Family` (one per family module, collected in :mod:`.families`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Family:
    """One model family: what ComfyUI detects, its latents, its decoders, its conditioning and its builder."""

    key: str
    label: str
    comfy_config: str  # the comfy.supported_models class ComfyUI's detection picks
    latent_format: str  # the comfy.latent_formats class
    latent_channels: int
    taesd: str  # VAELoader's name for the family's TAESD pair
    vae_scale: float
    vae_shift: float
    folder: str  # where the stand-in diffusion model goes
    file: str
    context_dim: int
    pooled_dim: int
    flow: bool = False
    v_prediction: bool = False
    guidance_embed: bool = False
    build: Callable[[int], torch.nn.Module] | None = None  # seed -> the stand-in diffusion model (fp32)
    seed: int = 0
    # seed -> the extra tensors of a checkpoint with text encoder and VAE inside (None: no such stand-in)
    complete: Callable[[int], dict[str, torch.Tensor]] | None = None
    # A tiny DiT built through ComfyUI's class (standins.dit.DiTSpec), loaded by SGTestDiTLoader; None: UNETLoader/checkpoint
    dit: Any = None
    cfg: float | None = None  # the tests' cfg when not the default rule (family_graphs.cfg_for)
    # Conditioning a text encoder gives beyond the context: (key, "d1,d2,...") for SGTestConditioningExtra
    cond_extra: tuple[tuple[str, str], ...] = ()

    @property
    def kl_vae_file(self) -> str:
        return f"sg_tiny_kl_vae_{self.latent_channels}ch.safetensors"

    @property
    def vae_file(self) -> str:
        """A TAESD packed as a full VAE file of this family (VAELoader reads it from models/vae)."""
        return f"sg_tiny_{self.key}_vae.safetensors"


def unet(**config) -> torch.nn.Module:
    """ComfyUI's UNetModel with the SD defaults the UNet families share, ``config`` on top."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    base = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, use_spatial_transformer=True,
                legacy=False, use_linear_in_transformer=True, num_heads=-1, num_head_channels=64,
                operations=comfy.ops.manual_cast, dtype=torch.float32)
    return UNetModel(**{**base, **config})
