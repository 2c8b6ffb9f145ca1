"""Tiny, seeded, random-weight model files that ComfyUI's own loaders accept.

Nothing is downloaded. Everything is written under a models folder laid out like
ComfyUI's (``checkpoints``, ``vae_approx``, ``vae``, ``vgg``, ``clip_vision``).
Requires ComfyUI to be importable (call after :func:`harness.comfy.import_comfy`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY_CKPT = "sg_tiny_sd15.safetensors"
TINY_KL_VAE = "sg_tiny_kl_vae.safetensors"
TINY_VGG = "vgg19-random.safetensors"
TINY_OPENCLIP = "sg_tiny_openclip.safetensors"
TINY_OPENCLIP_ARCH = "StyleGuidance-tiny"


def _fill_(module: torch.nn.Module, seed: int, gain: float = 1.0) -> None:
    """Seeded init: ComfyUI's ops skip weight init, so every tensor is filled here."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / fan_in**0.5))
            elif name.endswith("weight") or name.endswith("scale"):
                p.fill_(1.0)
            else:
                p.zero_()


def _half_sd(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}


def tiny_sd15_unet(seed: int = 0) -> torch.nn.Module:
    """An SD1.5-detectable UNet (model_channels 320, context 768) with one level: ~14M params."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    import comfy.ops

    unet = UNetModel(
        image_size=32, in_channels=4, model_channels=320, out_channels=4,
        num_res_blocks=[1], channel_mult=[1], transformer_depth=[1], transformer_depth_output=[1, 1],
        transformer_depth_middle=1, num_heads=8, use_spatial_transformer=True, context_dim=768,
        use_linear_in_transformer=False, legacy=False,
        operations=comfy.ops.manual_cast, dtype=torch.float32,
    )
    _fill_(unet, seed, gain=0.5)
    return unet


def build_checkpoint(path: Path, seed: int = 0) -> None:
    """SD1.5 checkpoint: tiny UNet, no VAE/text-encoder weights (tests bring their own)."""
    unet = tiny_sd15_unet(seed)
    save_file(_half_sd(unet, "model.diffusion_model."), str(path))


def build_taesd(folder: Path, seed: int = 1) -> None:
    """Random TAESD encoder/decoder pair that VAELoader offers as ``taesd``."""
    from comfy.taesd.taesd import Decoder, Encoder

    enc, dec = Encoder(4), Decoder(4)
    _fill_(enc, seed)
    _fill_(dec, seed + 1)
    save_file(_half_sd(enc), str(folder / "taesd_encoder.safetensors"))
    save_file(_half_sd(dec), str(folder / "taesd_decoder.safetensors"))
    # A 16-channel pair (SD3 family): lets tests wire a VAE that does not fit an SD1.5 model.
    enc3, dec3 = Encoder(16), Decoder(16)
    _fill_(enc3, seed + 2)
    _fill_(dec3, seed + 3)
    save_file(_half_sd(enc3), str(folder / "taesd3_encoder.safetensors"))
    save_file(_half_sd(dec3), str(folder / "taesd3_decoder.safetensors"))


def tiny_kl_vae_state_dict(seed: int = 2) -> dict[str, torch.Tensor]:
    """Weights of a small AutoencoderKL (the full VAE's architecture at width 32)."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig=tiny_kl_ddconfig(), embed_dim=4)
    _fill_(vae, seed)
    return {k: v.detach().float().contiguous() for k, v in vae.state_dict().items()}


def tiny_kl_ddconfig() -> dict:
    """Same layout as SD's VAE (4 levels, 8x downscale), only narrower and shallower."""
    return {
        "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
        "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
    }


def build_vgg(path: Path, seed: int = 3) -> None:
    """torchvision VGG19 ``features`` with seeded random weights (torchvision key names)."""
    import torchvision

    torch.manual_seed(seed)
    vgg = torchvision.models.vgg19(weights=None).features
    save_file({f"features.{k}": v.contiguous() for k, v in vgg.state_dict().items()}, str(path))


def tiny_open_clip_config() -> dict:
    """A scaled-down open_clip model config (same family as ViT-B-32)."""
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
    }


def build_open_clip(path: Path, seed: int = 4) -> None:
    """Random tiny open_clip model plus its sidecar config JSON (``<file>.json``)."""
    import open_clip

    cfg = tiny_open_clip_config()
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    Path(str(path) + ".json").write_text(json.dumps(cfg))


def build_all(models_dir: Path) -> dict[str, str]:
    """Write every tiny model; return the file names the tests use."""
    for sub in ("checkpoints", "vae_approx", "vae", "vgg", "open_clip", "clip_vision", "loras", "controlnet"):
        (models_dir / sub).mkdir(parents=True, exist_ok=True)
    build_checkpoint(models_dir / "checkpoints" / TINY_CKPT)
    build_taesd(models_dir / "vae_approx")
    save_file(tiny_kl_vae_state_dict(), str(models_dir / "vae" / TINY_KL_VAE))
    build_vgg(models_dir / "vgg" / TINY_VGG)
    build_open_clip(models_dir / "open_clip" / TINY_OPENCLIP)
    return {
        "ckpt": TINY_CKPT, "kl_vae": TINY_KL_VAE, "vgg": TINY_VGG,
        "open_clip": TINY_OPENCLIP, "open_clip_arch": TINY_OPENCLIP_ARCH,
    }
