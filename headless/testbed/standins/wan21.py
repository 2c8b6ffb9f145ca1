"""Tiny, seeded Wan 2.1 T2V stand-in (a video model) that ComfyUI's own detection and UNETLoader recognise.

ComfyUI's detection (``comfy.model_detection``: a ``head.modulation`` key means Wan 2.1) reads the
width, heads (width / 128), FFN width, depth, input channels and the variant (T2V: no image
embedding) from the file's shapes, so a narrow model loads as is: width 128 (one head of 128),
FFN 256, one block; the 4096-d text projection (umT5-XXL's width) is the class default. ~0.9M
parameters. The builder runs that detection on a skeleton of the keys it reads and builds the model
through ``comfy.supported_models`` (``model_config_from_unet_config``), so a newer ComfyUI's new
constructor fields come from the ComfyUI that builds it.

It behaves: the velocity (Wan 2.1 is a rectified-flow model, shift 8) has unit RMS on unit-variance
multi-frame inputs. Its decoders are Qwen-Image's: Wan 2.1's causal 3-D VAE and ``lighttaew2_1``
(:mod:`.qwen_image` builds and calibrates them; both decode T latent frames to 1 + 4 (T - 1)).
Requires ComfyUI to be importable.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .common import cached, place, save_streaming, seeded_video_dit
from .family import Family
from .qwen_image import CACHE_PREFIX as DECODER_CACHE_PREFIX
from .qwen_image import LIGHTTAE_FILE, WAN_VAE_FILE, build_lighttae, build_wan21_vae

KEY = "wan21"
SEED = 240
WIDTH = 128  # detection: heads = width // 128
FFN = 256
LAYERS = 1
TEXT = 4096  # umT5-XXL's width: WanModel's default text_dim (detection does not read it)
CACHE_PREFIX = "wan21_v1_"  # bump when the builder changes: the cache is shared


def skeleton(width: int = WIDTH, ffn: int = FFN, layers: int = LAYERS, in_dim: int = 16) -> dict[str, tuple]:
    """The keys (and shapes) comfy.model_detection reads to name a Wan 2.1 T2V model and its sizes."""
    keys: dict[str, tuple] = {
        "head.modulation": (1, 2, width),
        "head.head.weight": (16 * 4, width),  # out_dim * prod(patch_size (1, 2, 2))
        "patch_embedding.weight": (width, in_dim, 1, 2, 2),
        "text_embedding.0.weight": (width, TEXT),
    }
    for i in range(layers):
        keys[f"blocks.{i}.ffn.0.weight"] = (ffn, width)
        keys[f"blocks.{i}.modulation"] = (1, 6, width)
    return keys


def detected_config() -> dict:
    """What ComfyUI's detection makes of the stand-in's keys (the installed ComfyUI's own rules)."""
    import comfy.model_detection

    sd = {k: torch.empty(s, device="meta") for k, s in skeleton().items()}
    config = comfy.model_detection.detect_unet_config(sd, "")
    if not config or config.get("image_model") != "wan2.1":
        raise RuntimeError(f"ComfyUI's detection did not name the Wan 2.1 skeleton: {config}")
    return config


def wan21_dit(seed: int = SEED) -> torch.nn.Module:
    """The seeded Wan 2.1 T2V diffusion model (fp32) with a unit-RMS velocity on 3-frame latents."""
    import comfy.model_detection

    model_config = comfy.model_detection.model_config_from_unet_config(detected_config())
    if model_config is None or type(model_config).__name__ != "WAN21_T2V":
        raise RuntimeError(f"ComfyUI picked {type(model_config).__name__} for the Wan 2.1 T2V stand-in")
    return seeded_video_dit(model_config, seed, 3, TEXT, lambda n: n.head.head)


FAMILY = Family(KEY, "Wan 2.1", "WAN21_T2V", "Wan21", 16, LIGHTTAE_FILE, 1.0, 0.0, "diffusion_models",
                "sg_tiny_wan21_t2v.safetensors", TEXT, 0, flow=True, build=wan21_dit, seed=SEED)


def build_diffusion_model(path: Path, seed: int = SEED) -> None:
    """A bare diffusion model file for UNETLoader (fp16, as Wan's own files)."""
    save_streaming(wan21_dit(seed), path, "")


def build_wan21(models_dir: Path) -> dict[str, str]:
    """Write the stand-in and its two decoders (Qwen-Image's, same cache) under ``models_dir``; their names."""
    for folder, name, prefix, build in (
            (FAMILY.folder, FAMILY.file, CACHE_PREFIX, build_diffusion_model),
            ("vae", WAN_VAE_FILE, DECODER_CACHE_PREFIX, build_wan21_vae),
            ("vae_approx", LIGHTTAE_FILE, DECODER_CACHE_PREFIX, build_lighttae)):
        target = models_dir / folder / name
        if not target.exists():
            place(cached(f"{prefix}{name}", build), target)
    return {KEY: FAMILY.file, "wan21_vae": WAN_VAE_FILE, "lighttaew2_1": LIGHTTAE_FILE}


def vae_node(kind: str) -> dict:
    """VAELoader for ``lighttaew2_1`` (the fast decoder) or ``wan21`` (the VAE)."""
    return {"class_type": "VAELoader", "inputs": {"vae_name": LIGHTTAE_FILE if kind == "lighttae" else WAN_VAE_FILE}}
