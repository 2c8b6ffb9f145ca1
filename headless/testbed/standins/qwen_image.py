"""Tiny, seeded Qwen-Image stand-ins that ComfyUI's own detection and loaders recognise.

Three files, all random weights, nothing downloaded:

- the diffusion model (``diffusion_models``, for UNETLoader). ComfyUI's detection
  (``comfy.model_detection``: a ``txt_norm.weight`` key means Qwen-Image) reads only the input
  channels and the number of transformer blocks; width (24 heads of 128 = 3072), the 3584-d text
  projection and the rest come from the class defaults. One block is the smallest that still
  lets the text and the reference latents reach the picture: ~370M parameters (0.7 GB in fp16),
  built once and cached. Constructed through ``comfy.supported_models.QwenImage`` with the config
  detection produces, so any ComfyUI whose constructor changes keeps working.
- Wan 2.1's causal 3-D VAE (``vae``, for VAELoader). ``comfy.sd.VAE`` reads its base width from
  ``decoder.head.0.gamma``, so a narrow one (width 16) loads as is.
- ``lighttaew2_1`` (``vae_approx``; VAELoader lists it by file name). Its layout is fixed
  (``comfy.taesd.taehv.TAEHV``, ~10M parameters); it must be saved in fp32: ComfyUI reads an fp16
  file of the same layout as ``taehv`` (HunyuanVideo latents).

They behave: the velocity has unit RMS on unit-variance inputs, the VAE encodes pictures to
unit-RMS model latents (Wan 2.1's per-channel mean and std) and both decoders give mid-grey
pictures with a spread that VAEDecode's clamp leaves intact. Requires ComfyUI to be importable.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from .common import cached, place, save_streaming, seeded_video_dit
from .common import calibrate_image as _calibrate_image
from .common import seeded_fill_ as _fill
from .family import Family

KEY = "qwen_image"
SEED = 140
WAN_VAE_FILE = "sg_tiny_wan21_vae.safetensors"
LIGHTTAE_FILE = "lighttaew2_1.safetensors"
WAN_VAE_DIM = 16  # the real one is 96
CACHE_PREFIX = "qwen_image_v1_"  # bump when a builder changes: the cache is shared
# What comfy.model_detection returns for a Qwen-Image file with one transformer block.
UNET_CONFIG = {"image_model": "qwen_image", "in_channels": 64, "num_layers": 1}


def _wan21():
    from comfy.latent_formats import Wan21

    return Wan21()


def _unit_latents(gen: torch.Generator, batch: int = 2, size: int = 8) -> torch.Tensor:
    """Unit-RMS model-space latents (B, 16, 1, h, w) in the VAE's space (Wan 2.1's mean and std)."""
    return _wan21().process_out(torch.randn((batch, 16, 1, size, size), generator=gen))


# ---------------------------------------------------------------------------------------------
# The diffusion model


def qwen_image_dit(seed: int = SEED) -> torch.nn.Module:
    """The smallest Qwen-Image ComfyUI detects that still mixes text and picture: one block, width 3072."""
    import comfy.supported_models

    return seeded_video_dit(comfy.supported_models.QwenImage(dict(UNET_CONFIG)), seed, 1, 3584, lambda n: n.proj_out)


FAMILY = Family(KEY, "Qwen-Image", "QwenImage", "Wan21", 16, LIGHTTAE_FILE, 1.0, 0.0, "diffusion_models",
                "sg_tiny_qwen_image.safetensors", 3584, 0, flow=True, build=qwen_image_dit, seed=SEED)


def build_diffusion_model(path: Path, seed: int = SEED) -> None:
    """A bare diffusion model file for UNETLoader, as Qwen ship it (fp16 here)."""
    save_streaming(qwen_image_dit(seed), path, "")


# ---------------------------------------------------------------------------------------------
# Decoders


@torch.no_grad()
def _match_latent_stats(weight: torch.Tensor, bias: torch.Tensor, out: torch.Tensor) -> None:
    """Rescale an output layer (per channel) so ``out`` takes Wan 2.1's per-channel mean and std."""
    fmt = _wan21()
    mean, std = fmt.latents_mean.flatten(), fmt.latents_std.flatten()
    dims = [d for d in range(out.ndim) if d != 1]
    got_std = out.float().std(dim=dims).clamp_min(1e-8)
    factor = std / got_std
    weight.mul_(factor.view(-1, *([1] * (weight.ndim - 1))))
    new_mean = out.float().mean(dim=dims) * factor + bias * (1 - factor)
    bias.add_(mean - new_mean)


def wan21_vae(seed: int = SEED + 10, dim: int = WAN_VAE_DIM) -> torch.nn.Module:
    """Wan 2.1's VAE at base width ``dim``: encodes to unit-RMS model latents, decodes to mid-grey."""
    from comfy.ldm.wan.vae import WanVAE

    vae = WanVAE(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
    _fill(vae, seed)
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.rand((2, 3, 1, 64, 64), generator=g) * 2 - 1
    with torch.no_grad():
        # conv1 holds mean and log-variance rows; encode() keeps the mean rows only.
        conv = vae.conv1
        mu = vae.encode(images)
        _match_latent_stats(conv.weight[:16], conv.bias[:16], mu)
        conv.bias[16:] = -20.0
        latents = _unit_latents(g)
        _calibrate_image(vae.decoder.head[2], lambda: vae.decode(latents)[:, :, 0], mean=0.0, std=0.36)
    return vae


def lighttae_w21(seed: int = SEED + 20) -> torch.nn.Module:
    """``lighttaew2_1`` (TAEHV, 16 channels, no scaling of its own): calibrated as the Wan 2.1 VAE."""
    from comfy.taesd.taehv import TAEHV

    tae = TAEHV(latent_channels=16, latent_format=None, show_progress_bar=False)
    _fill(tae, seed)
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.rand((2, 3, 1, 64, 64), generator=g)
    with torch.no_grad():
        last = tae.encoder[-1]
        _match_latent_stats(last.weight, last.bias, tae.encode(images))
        latents = _unit_latents(g)
        # The decoder's raw output is the picture in [0, 1] (ComfyUI applies no mapping to it).
        _calibrate_image(tae.decoder[-1], lambda: tae.decode(latents)[:, :, 0], mean=0.5, std=0.18)
    return tae


def build_wan21_vae(path: Path) -> None:
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in wan21_vae().state_dict().items()}, str(path))


def build_lighttae(path: Path) -> None:
    # fp32 on purpose: ComfyUI takes an fp16 file of this layout for taehv (HunyuanVideo latents).
    save_file({k: v.detach().float().contiguous() for k, v in lighttae_w21().state_dict().items()}, str(path))


# ---------------------------------------------------------------------------------------------
# Installing the set


def build_qwen_image(models_dir: Path) -> dict[str, str]:
    """Write the stand-ins under ``models_dir`` (ComfyUI layout); return their file names."""
    fam = FAMILY
    for folder, name, build in ((fam.folder, fam.file, build_diffusion_model), ("vae", WAN_VAE_FILE, build_wan21_vae),
                                ("vae_approx", LIGHTTAE_FILE, build_lighttae)):
        target = models_dir / folder / name
        if not target.exists():
            place(cached(f"{CACHE_PREFIX}{name}", build), target)
    return {KEY: fam.file, "wan21_vae": WAN_VAE_FILE, "lighttaew2_1": LIGHTTAE_FILE}


def vae_node(kind: str) -> dict:
    """VAELoader for ``lighttaew2_1`` (the fast decoder) or ``wan21`` (the VAE)."""
    return {"class_type": "VAELoader", "inputs": {"vae_name": LIGHTTAE_FILE if kind == "lighttae" else WAN_VAE_FILE}}
