"""Real-size, random-weight model files that ComfyUI's own loaders accept (benchmarks only).

Every architecture is ComfyUI's (or torchvision's / open_clip's) own class at its real size;
only the weights are random. Each is built once on the meta device (layout only, no memory),
its tensors are filled seeded (``randn * gain / sqrt(fan_in)`` for weights, ones for norm
scales, zeros for biases: ComfyUI's ops skip weight init), checked for finite outputs, and
saved as fp16 safetensors under a cache folder, so later runs only link the files:

    checkpoints/sgbench_sd15.safetensors   SD1.5 UNet (860M), detected as SD15 by CheckpointLoaderSimple
    checkpoints/sgbench_sdxl.safetensors   SDXL base UNet (2.6B), detected as SDXL (built only when asked)
    vae/sgbench_sd_vae.safetensors         SD VAE (AutoencoderKL, ch 128, 83M); SDXL's VAE has the same layout
    vae_approx/taesd{,xl}_{en,de}coder     real-size TAESD / TAESDXL pairs (VAELoader offers 'taesd', 'taesdxl')
    vgg/vgg19-random.safetensors           torchvision VGG19 features (20M)
    open_clip/sgbench_vit_b_32.safetensors open_clip ViT-B-32 vision tower (88M), arch name "ViT-B-32"

No text encoders: the benchmark feeds random conditioning of the right shape.
Requires ComfyUI to be importable (after ``headless.testbed.base.configure_comfy``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

CACHE_VERSION = "v1"
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench_models"

SD15 = "sgbench_sd15.safetensors"
SDXL = "sgbench_sdxl.safetensors"
SD_VAE = "sgbench_sd_vae.safetensors"
VGG = "vgg19-random.safetensors"
OPEN_CLIP = "sgbench_vit_b_32.safetensors"
OPEN_CLIP_ARCH = "ViT-B-32"

# comfy.model_detection's reference configs (unet_config_from_diffusers_unet), as UNetModel kwargs.
SD15_UNET = {
    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320, "use_spatial_transformer": True,
    "legacy": False, "adm_in_channels": None, "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "use_linear_in_transformer": False,
    "context_dim": 768, "num_heads": 8, "num_head_channels": -1,
}
SDXL_UNET = {
    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320, "use_spatial_transformer": True,
    "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "num_res_blocks": [2, 2, 2],
    "channel_mult": [1, 2, 4], "transformer_depth": [0, 0, 2, 2, 10, 10], "transformer_depth_middle": 10,
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "use_linear_in_transformer": True,
    "context_dim": 2048, "num_head_channels": 64, "num_heads": -1,
}
SD_VAE_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}
# What each family's conditioning looks like: (context tokens, context dim, pooled dim or 0).
CONDITIONING = {"sd15": (77, 768, 0), "sdxl": (77, 2048, 1280)}


def cache_root() -> Path:
    """``STYLE_GUIDANCE_BENCH_CACHE`` or ``<repo>/.cache/bench_models`` (kept out of git by its own .gitignore)."""
    root = Path(os.environ.get("STYLE_GUIDANCE_BENCH_CACHE") or DEFAULT_CACHE)
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.is_file():
        ignore.write_text("# built benchmark models (random weights, GBs): never committed\n*\n")
    return root / CACHE_VERSION


def random_state_dict(module: torch.nn.Module, seed: int, gain: float = 1.0, device: str = "cpu",
                      prefix: str = "") -> dict[str, torch.Tensor]:
    """Seeded random fp16 values for every tensor of ``module`` (which may live on the meta device)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, t in module.state_dict().items():
        if not t.is_floating_point():
            value = torch.zeros(t.shape, dtype=t.dtype, device=device)
        elif t.ndim >= 2:
            fan_in = max(1, t[0].numel())
            value = torch.randn(t.shape, generator=gen, device=device) * (gain / fan_in**0.5)
        elif name.endswith(("weight", "scale", "gamma")):
            value = torch.ones(t.shape, device=device)
        else:
            value = torch.zeros(t.shape, device=device)
        out[prefix + name] = value.to(torch.float16 if t.is_floating_point() else t.dtype).cpu().contiguous()
    return out


def _unet(config: dict) -> torch.nn.Module:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    with torch.device("meta"):
        return UNetModel(**config, operations=comfy.ops.disable_weight_init, dtype=torch.float32, device="meta")


def _check_unet(sd: dict, config: dict, family: str, device: str) -> dict:
    """ComfyUI must detect the family; one fp16 forward (the GPU's dtype) must give finite output."""
    import comfy.model_detection

    mc = comfy.model_detection.model_config_from_unet(sd, "model.diffusion_model.")
    detected = type(mc).__name__ if mc is not None else None
    expected = {"sd15": "SD15", "sdxl": "SDXL"}[family]
    if detected != expected:
        raise RuntimeError(f"ComfyUI detects the built {family} checkpoint as {detected}, expected {expected}")
    unet = _unet(config)  # meta; the saved fp16 tensors are assigned, not copied (SDXL is 5 GB)
    unet.load_state_dict({k[len("model.diffusion_model."):]: v for k, v in sd.items()}, strict=True, assign=True)
    unet.to(device)
    tokens, dim, pooled = CONDITIONING[family]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 16, 16, generator=gen).to(device, torch.float16)
    ctx = torch.randn(1, tokens, dim, generator=gen).to(device, torch.float16)
    kw = {"y": torch.randn(1, 2816, generator=gen).to(device, torch.float16)} if pooled else {}
    with torch.no_grad():
        out = unet(x, torch.tensor([500.0], device=device), context=ctx, **kw).float()
    del unet
    if not torch.isfinite(out).all():
        raise RuntimeError(f"random {family} UNet gives non-finite fp16 output; lower the init gain")
    return {"detected": detected, "check_dtype": "float16", "out_std": float(out.std())}


def build_unet(path: Path, family: str, seed: int, device: str) -> dict:
    config = SD15_UNET if family == "sd15" else SDXL_UNET
    meta = _unet(config)
    params = sum(p.numel() for p in meta.parameters())
    sd = random_state_dict(meta, seed, gain=0.5, device=device, prefix="model.diffusion_model.")
    info = {"params": params, **_check_unet(sd, config, family, device)}
    save_file(sd, str(path))
    return info


def build_sd_vae(path: Path, seed: int, device: str) -> dict:
    from comfy.ldm.models.autoencoder import AutoencoderKL

    with torch.device("meta"):
        meta = AutoencoderKL(ddconfig=SD_VAE_DDCONFIG, embed_dim=4)
    sd = random_state_dict(meta, seed, gain=1.0, device=device)
    save_file(sd, str(path))
    return {"params": sum(p.numel() for p in meta.parameters())}


def build_taesd_pair(folder: Path, seed: int, device: str) -> dict:
    from comfy.taesd.taesd import Decoder, Encoder

    with torch.device("meta"):
        enc, dec = Encoder(4), Decoder(4)
    for name in ("taesd", "taesdxl"):
        save_file(random_state_dict(enc, seed, device=device), str(folder / f"{name}_encoder.safetensors"))
        save_file(random_state_dict(dec, seed + 1, device=device), str(folder / f"{name}_decoder.safetensors"))
    return {"params_decoder": sum(p.numel() for p in dec.parameters())}


def build_vgg(path: Path, seed: int, device: str) -> dict:
    import torchvision

    with torch.device("meta"):
        feats = torchvision.models.vgg19(weights=None).features
    # He gain for the ReLU stack keeps activations O(1) through 16 convolutions.
    sd = random_state_dict(feats, seed, gain=2**0.5, device=device, prefix="features.")
    save_file(sd, str(path))
    return {"params": sum(p.numel() for p in feats.parameters())}


def build_open_clip(path: Path, seed: int) -> dict:
    from losses.clip import load_open_clip_encoder

    enc = load_open_clip_encoder(OPEN_CLIP_ARCH, None, seed=seed)  # open_clip's own random init
    visual = enc.model
    save_file({"visual." + k: v.detach().to(torch.float16).contiguous() for k, v in visual.state_dict().items()},
              str(path))
    return {"params": sum(p.numel() for p in visual.parameters())}


def ensure_models(families: tuple[str, ...] = ("sd15",), device: str | None = None, log=print) -> tuple[Path, dict]:
    """Build what is missing in the cache; return (cache folder, manifest)."""
    import sys

    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.append(repo)  # appended: the repo's nodes/ package must not shadow ComfyUI's nodes.py
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    root = cache_root()
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    jobs = {
        "sd15": ("checkpoints", SD15, lambda p: build_unet(p, "sd15", 10, device)),
        "sdxl": ("checkpoints", SDXL, lambda p: build_unet(p, "sdxl", 20, device)),
        "sd_vae": ("vae", SD_VAE, lambda p: build_sd_vae(p, 30, device)),
        "taesd": ("vae_approx", "taesdxl_decoder.safetensors", lambda p: build_taesd_pair(p.parent, 40, device)),
        "vgg": ("vgg", VGG, lambda p: build_vgg(p, 50, device)),
        "open_clip": ("open_clip", OPEN_CLIP, lambda p: build_open_clip(p, 60)),
    }
    wanted = [*families, "sd_vae", "taesd", "vgg", "open_clip"]
    for key in wanted:
        folder, name, build = jobs[key]
        path = root / folder / name
        if path.is_file() and key in manifest:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        log(f"building random {key} -> {path} (once; cached)")
        import time

        t0 = time.perf_counter()
        if key == "taesd":  # four small files, the one checked above written last
            info = build(path)
        else:
            tmp = path.with_name("partial-" + path.name)
            info = build(tmp)
            os.replace(tmp, path)
        info["build_s"] = round(time.perf_counter() - t0, 1)
        manifest[key] = info
        manifest_path.write_text(json.dumps(manifest, indent=1))
    return root, manifest


def link_into(models_dir: Path, root: Path) -> None:
    """Symlink every cached file into a ComfyUI models folder (same sub-folders)."""
    for sub in ("checkpoints", "vae", "vae_approx", "vgg", "open_clip"):
        (models_dir / sub).mkdir(parents=True, exist_ok=True)
        src = root / sub
        if not src.is_dir():
            continue
        for f in src.iterdir():
            if f.name.startswith("partial-"):
                continue
            dest = models_dir / sub / f.name
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            try:
                dest.symlink_to(f)
            except OSError:
                shutil.copyfile(f, dest)
