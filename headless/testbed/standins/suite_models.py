"""The tests' own model set (:func:`build_all`) and the families' stand-ins (:func:`build_families`)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from .common import cached, place
from .decoders import build_taesd_pair, kl_vae_state_dict
from .extras import CONTROLNET_FILE, LORA_FILE, build_controlnet, build_lora
from .families import FAMILIES, build_diffusion_model, diffusion_cached
from .install import build_family_vae
from .loss_nets import (
    TINY_OPENCLIP,
    TINY_OPENCLIP_ARCH,
    TINY_OPENCLIP_TWIN,
    TINY_VGG,
    TINY_VGG_TWIN,
    build_open_clip,
    build_vgg,
)
from .names import TINY_CKPT, TINY_KL_VAE


def build_all(models_dir: Path) -> dict[str, str]:
    """Write every tiny model the tests use; return their file names.

    The SD1.5 UNet (no text encoder, no VAE: the tests bring their own), the ``taesd`` pair and a
    calibrated 16-channel ``taesd3`` pair (for wiring a VAE that does not fit SD1.5), the narrow
    KL VAE, VGG19 and open_clip with their scoring twins.
    """
    for sub in ("checkpoints", "vae_approx", "vae", "vgg", "open_clip", "clip_vision", "loras", "controlnet"):
        (models_dir / sub).mkdir(parents=True, exist_ok=True)
    build_diffusion_model("sd15", models_dir / "checkpoints" / TINY_CKPT)
    build_taesd_pair(models_dir / "vae_approx", "taesd")
    build_taesd_pair(models_dir / "vae_approx", "taesd3")  # calibrated: the SD3.5 family tests decode with it
    save_file(kl_vae_state_dict(4, seed=2), str(models_dir / "vae" / TINY_KL_VAE))
    build_vgg(models_dir / "vgg" / TINY_VGG)
    build_open_clip(models_dir / "open_clip" / TINY_OPENCLIP)
    build_vgg(models_dir / "vgg" / TINY_VGG_TWIN, seed=13)
    build_open_clip(models_dir / "open_clip" / TINY_OPENCLIP_TWIN, seed=14)
    return {
        "ckpt": TINY_CKPT, "kl_vae": TINY_KL_VAE, "vgg": TINY_VGG,
        "open_clip": TINY_OPENCLIP, "open_clip_arch": TINY_OPENCLIP_ARCH,
        "vgg_twin": TINY_VGG_TWIN, "open_clip_twin": TINY_OPENCLIP_TWIN,
    }


def build_families(models_dir: Path, keys: tuple[str, ...] = ("sd2v", "sdxl", "sd3", "flux")) -> dict[str, str]:
    """Write the families' stand-ins under ``models_dir`` (ComfyUI layout); return their file names.

    Diffusion models, TAESD pairs (taesdxl, taesd3, taef1; 'taesd' is :func:`build_all`'s), a VAE
    file per family (a calibrated TAESD; SD1.5's too), narrow KL VAEs (4 and 16 latent channels),
    the SD1.5 ControlNet and LoRA.
    """
    names: dict[str, str] = {}
    for key in ("sd15", *keys):
        fam = FAMILIES[key]
        if key != "sd15":  # SD1.5's UNet is build_all's; its calibrated VAE file is made here
            place(diffusion_cached(key), models_dir / fam.folder / fam.file)
            names[key] = fam.file
        vae = models_dir / "vae" / fam.vae_file
        if not vae.is_file():
            place(cached(fam.vae_file, lambda p, k=key: build_family_vae(k, p)), vae)
        names[f"{key}_vae"] = fam.vae_file
    for name in ("taesdxl", "taesd3", "taef1"):
        dec = models_dir / "vae_approx" / f"{name}_decoder.safetensors"
        if not dec.is_file() or not (models_dir / "vae_approx" / f"{name}_encoder.safetensors").is_file():
            build_taesd_pair(models_dir / "vae_approx", name)
    for z, fam in ((4, FAMILIES["sd2v"]), (16, FAMILIES["sd3"])):
        path = models_dir / "vae" / f"sg_tiny_kl_vae_{z}ch.safetensors"
        if not path.is_file():
            save_file(kl_vae_state_dict(z, fam.vae_scale, fam.vae_shift), str(path))
        names[f"kl_vae_{z}"] = path.name
    for folder, name, build in (("controlnet", CONTROLNET_FILE, build_controlnet), ("loras", LORA_FILE, build_lora)):
        target = models_dir / folder / name
        if not target.is_file():
            place(cached(name, build), target)
        names[folder] = name
    return names


def build_dit_families(models_dir: Path, keys: tuple[str, ...] = ("z_image", "flux2", "chroma", "lumina2", "hidream",
                                                                 "omnigen2", "hunyuan_image")) -> dict[str, str]:
    """The newer DiT families' tiny stand-ins (SGTestDiTLoader) and their decoders; return their file names.

    The Flux-latent families (Z-Image, Chroma, Lumina 2, HiDream, OmniGen2) decode with ``taef1`` or the narrow
    16-channel KL VAE (as Flux.1's tests); Flux.2 with its narrow VAE (SGTestKLVAE, batch_norm_latent);
    HunyuanImage 2.1 with its narrow VAE (SGTestHunyuanImageVAE).
    """
    from . import hunyuan_image
    from .flux2 import VAE_FILE, flux2_vae_state_dict

    names: dict[str, str] = {}
    for key in keys:
        fam = FAMILIES[key]
        place(diffusion_cached(key), models_dir / fam.folder / fam.file)
        names[key] = fam.file
    for name in ("taef1", "taesdxl"):
        if not (models_dir / "vae_approx" / f"{name}_decoder.safetensors").is_file():
            build_taesd_pair(models_dir / "vae_approx", name)
    kl16 = models_dir / "vae" / FAMILIES["z_image"].kl_vae_file
    if not kl16.is_file():
        sd3 = FAMILIES["sd3"]  # the same file build_families writes
        save_file(kl_vae_state_dict(16, sd3.vae_scale, sd3.vae_shift), str(kl16))
    names["kl_vae_16"] = kl16.name
    target = models_dir / "vae" / VAE_FILE
    if not target.is_file():
        place(cached(VAE_FILE, lambda p: save_file(flux2_vae_state_dict(), str(p))), target)
    names["flux2_vae"] = VAE_FILE
    target = models_dir / "vae" / hunyuan_image.VAE_FILE
    if not target.is_file():
        place(cached(hunyuan_image.VAE_FILE, lambda p: save_file(hunyuan_image.vae_state_dict(), str(p))), target)
    names["hunyuan_image_vae"] = hunyuan_image.VAE_FILE
    return names
