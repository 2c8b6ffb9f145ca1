"""The registry of diffusion-model families: :data:`FAMILIES`, and building a family's stand-in file.

Adding a family: a module like ``sd3.py`` that defines ``FAMILY`` (a :class:`Family` with its
builder), and one entry in :data:`_MODULES` below.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import (
    chroma,
    dit,
    flux,
    flux2,
    hidream,
    hunyuan_image,
    lumina2,
    omnigen2,
    qwen_image,
    sd2,
    sd3,
    sd15,
    sdxl,
    wan21,
    z_image,
)
from .common import cached, save_streaming
from .family import Family

_MODULES = (sd15, sd2, sdxl, sd3, flux, qwen_image, z_image, flux2, chroma, lumina2, hidream, omnigen2, hunyuan_image,
            wan21)
FAMILIES: dict[str, Family] = {m.FAMILY.key: m.FAMILY for m in _MODULES}


def build_diffusion_model(key: str, path: Path, complete: bool = False) -> None:
    """Write the family's stand-in diffusion model (``complete``: with text encoder and VAE inside).

    Checkpoints carry ComfyUI's ``model.diffusion_model.`` prefix; a family in ``diffusion_models``
    (Flux) is a bare diffusion model file for UNETLoader; a tiny DiT (``fam.dit``) an fp32 file with
    the metadata SGTestDiTLoader reads.
    """
    fam = FAMILIES[key]
    if fam.build is None:
        raise ValueError(f"no stand-in builder for the {fam.label} family")
    net = fam.build(fam.seed)
    if fam.dit is not None:
        dit.save(net, path, fam.dit)
        return
    prefix = "model.diffusion_model." if fam.folder == "checkpoints" else ""
    extra: dict[str, torch.Tensor] = {}
    if complete:
        if fam.complete is None:
            raise ValueError(f"no complete stand-in checkpoint for {key}")
        extra.update(fam.complete(fam.seed))
    save_streaming(net, path, prefix, extra)


def diffusion_cached(key: str, complete: bool = False) -> Path:
    """The family's stand-in diffusion model file in the cache (built once)."""
    suffix = "_complete" if complete else ""
    return cached(f"{key}{suffix}.safetensors", lambda p: build_diffusion_model(key, p, complete=complete))
