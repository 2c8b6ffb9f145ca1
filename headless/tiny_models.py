"""Tiny, seeded, random-weight model files that ComfyUI's own loaders accept.

Nothing is downloaded. Everything is written under a models folder laid out like
ComfyUI's (``checkpoints``, ``vae_approx``, ``vae``, ``vgg``, ``open_clip``, ``loras``).
Two uses: the tests' own model set (:func:`build_all`), and stand-ins written under the
exact file names a shipped workflow expects (:func:`install_for_workflow`), so that the
runner and the browser test can execute real workflows on a machine without real weights.
Requires ComfyUI to be importable (call after :func:`headless.comfy_host.configure_comfy`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY_CKPT = "sg_tiny_sd15.safetensors"
TINY_KL_VAE = "sg_tiny_kl_vae.safetensors"
TINY_VGG = "vgg19-random.safetensors"
TINY_OPENCLIP = "sg_tiny_openclip.safetensors"
TINY_OPENCLIP_ARCH = "StyleGuidance-tiny"
# Scoring twins: the same architectures with other seeds. Tests score guided results with these,
# so a test passes only when guidance moves a picture, not one network's own objective.
TINY_VGG_TWIN = "vgg19-twin.safetensors"
TINY_OPENCLIP_TWIN = "sg_tiny_openclip_twin.safetensors"


def seeded_fill_(module: torch.nn.Module, seed: int, gain: float = 1.0) -> None:
    """Seeded init: ComfyUI's ops skip weight init, so every tensor is filled here (fan-in scaled normals,
    norm scales 1, biases 0). Shared by every stand-in builder and the benchmarks."""
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
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(
        image_size=32, in_channels=4, model_channels=320, out_channels=4,
        num_res_blocks=[1], channel_mult=[1], transformer_depth=[1], transformer_depth_output=[1, 1],
        transformer_depth_middle=1, num_heads=8, use_spatial_transformer=True, context_dim=768,
        use_linear_in_transformer=False, legacy=False,
        operations=comfy.ops.manual_cast, dtype=torch.float32,
    )
    seeded_fill_(unet, seed, gain=0.5)
    return unet


def build_checkpoint(path: Path, seed: int = 0, complete: bool = False) -> None:
    """SD1.5 checkpoint: tiny UNet; ``complete`` adds a text encoder and a VAE (both random).

    Without them CheckpointLoaderSimple returns no CLIP and no VAE (the tests bring their
    own); shipped workflows need both. ComfyUI builds SD1's text encoder from a fixed
    config, so it cannot be smaller than CLIP-L (123M); the VAE is a TAESD, which ComfyUI
    also detects inside a checkpoint.
    """
    sd = _half_sd(tiny_sd15_unet(seed), "model.diffusion_model.")
    if complete:
        sd.update(sd1_text_encoder_state_dict(seed + 10))
        sd.update({"first_stage_model." + k: v for k, v in _taesd_vae_state_dict(seed + 20).items()})
    save_file(sd, str(path))


def sd1_text_encoder_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """Random CLIP-L text encoder under the checkpoint's ``cond_stage_model.`` prefix."""
    import comfy.ops
    from comfy.sd1_clip import SDClipModel

    with torch.device("meta"):  # the layout only; real tensors are made below, seeded
        enc = SDClipModel(device="meta", dtype=torch.float16, model_options={"custom_operations": comfy.ops.manual_cast})
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, t in enc.state_dict().items():
        if name.endswith("position_ids"):
            continue
        if t.ndim >= 2:
            value = torch.randn(t.shape, generator=gen) * (0.02 if "embedding" in name else t.shape[-1] ** -0.5)
        elif "norm" in name and name.endswith("weight"):
            value = torch.ones(t.shape)
        elif name.endswith("logit_scale"):
            value = torch.tensor(4.6052)
        else:
            value = torch.zeros(t.shape)
        out["cond_stage_model." + name] = value.to(torch.float16).contiguous()
    return out


def build_taesd_pair(folder: Path, name: str, channels: int, seed: int = 1) -> None:
    """Random TAESD encoder/decoder files that VAELoader offers as ``name`` (taesd, taesdxl, ...).

    Each file appears whole (written under a private name, then renamed), the decoder last: a
    reader that sees the decoder sees a complete pair.
    """
    from comfy.taesd.taesd import Decoder, Encoder

    enc, dec = Encoder(channels), Decoder(channels)
    seeded_fill_(enc, seed)
    seeded_fill_(dec, seed + 1)
    for part, module in (("encoder", enc), ("decoder", dec)):
        target = folder / f"{name}_{part}.safetensors"
        tmp = folder / f".{target.name}.{os.getpid()}.partial"
        save_file(_half_sd(module), str(tmp))
        os.replace(tmp, target)


def build_taesd(folder: Path, seed: int = 1) -> None:
    """The tests' TAESD pair, plus a 16-channel taesd3 pair for wiring a VAE that does not fit SD1.5."""
    from . import tiny_families

    build_taesd_pair(folder, "taesd", 4, seed)
    tiny_families.build_taesd_pair(folder, "taesd3")  # calibrated: the SD3.5 family tests decode with it


def tiny_kl_vae_state_dict(seed: int = 2) -> dict[str, torch.Tensor]:
    """Weights of a small AutoencoderKL (the full VAE's architecture at width 32)."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig=tiny_kl_ddconfig(), embed_dim=4)
    seeded_fill_(vae, seed)
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


def ensure_tiny_open_clip_registered() -> str:
    """Register :func:`tiny_open_clip_config` with open_clip as ``TINY_OPENCLIP_ARCH`` (idempotent)."""
    from losses import register_open_clip_config

    register_open_clip_config(TINY_OPENCLIP_ARCH, tiny_open_clip_config())
    return TINY_OPENCLIP_ARCH


def random_vgg19_features(seed: int = 0):
    """The pack's VGG19 feature extractor with seeded random (Kaiming, as torchvision) weights.

    Built on the meta device and then filled from a private generator, so the global RNG is
    left as it was.
    """
    import torchvision

    from losses import VGG19Features

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.inference_mode(False):
        with torch.device("meta"):
            seq = torchvision.models.vgg19(weights=None).features
        seq = seq.to_empty(device="cpu")
        with torch.no_grad():
            for m in seq:
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                    torch.nn.init.zeros_(m.bias)
        return VGG19Features(seq)


def build_open_clip(path: Path, seed: int = 4) -> None:
    """Random tiny open_clip model plus its sidecar config JSON (``<file>.json``)."""
    import open_clip

    cfg = tiny_open_clip_config()
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    Path(str(path) + ".json").write_text(json.dumps(cfg))


def _taesd_vae_state_dict(seed: int) -> dict[str, torch.Tensor]:
    from comfy.taesd.taesd import Decoder, Encoder

    enc, dec = Encoder(4), Decoder(4)
    seeded_fill_(enc, seed)
    seeded_fill_(dec, seed + 1)
    sd = {**_half_sd(enc, "taesd_encoder."), **_half_sd(dec, "taesd_decoder.")}
    sd["vae_scale"] = torch.tensor(0.18215)
    sd["vae_shift"] = torch.tensor(0.0)
    return sd


def build_taesd_as_full_vae(path: Path, seed: int = 1) -> None:
    """A file VAELoader reads as a full VAE (any name) holding a TAESD: fast stand-in."""
    save_file(_taesd_vae_state_dict(seed), str(path))


def build_empty_lora(path: Path) -> None:
    """A LoRA file with no tensors: LoraLoader accepts it and patches nothing."""
    save_file({}, str(path))


def build_all(models_dir: Path) -> dict[str, str]:
    """Write every tiny model; return the file names the tests use."""
    for sub in ("checkpoints", "vae_approx", "vae", "vgg", "open_clip", "clip_vision", "loras", "controlnet"):
        (models_dir / sub).mkdir(parents=True, exist_ok=True)
    build_checkpoint(models_dir / "checkpoints" / TINY_CKPT)
    build_taesd(models_dir / "vae_approx")
    save_file(tiny_kl_vae_state_dict(), str(models_dir / "vae" / TINY_KL_VAE))
    build_vgg(models_dir / "vgg" / TINY_VGG)
    build_open_clip(models_dir / "open_clip" / TINY_OPENCLIP)
    build_vgg(models_dir / "vgg" / TINY_VGG_TWIN, seed=13)
    build_open_clip(models_dir / "open_clip" / TINY_OPENCLIP_TWIN, seed=14)
    return {
        "ckpt": TINY_CKPT, "kl_vae": TINY_KL_VAE, "vgg": TINY_VGG,
        "open_clip": TINY_OPENCLIP, "open_clip_arch": TINY_OPENCLIP_ARCH,
        "vgg_twin": TINY_VGG_TWIN, "open_clip_twin": TINY_OPENCLIP_TWIN,
    }


# ---------------------------------------------------------------------------------------------
# Stand-ins under a workflow's own file names

# (class_type, input name) -> ComfyUI model folder, for the loaders a shipped workflow may use.
MODEL_INPUTS: dict[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("StyleGuidanceVGGLoader", "vgg_name"): "vgg",
    ("StyleGuidanceOpenCLIPLoader", "clip_name"): "open_clip",
}
# VAELoader names that are not files in models/vae but TAESD pairs in models/vae_approx.
TAESD_NAMES = ("taesd", "taesdxl", "taesd3", "taef1", "pixel_space")


def model_files(api_prompt: dict) -> list[tuple[str, str, str, str]]:
    """Every model file a prompt names: (node id, input name, file name, folder)."""
    found = []
    for node_id, node in api_prompt.items():
        for (cls, name), folder in MODEL_INPUTS.items():
            value = node.get("inputs", {}).get(name)
            if node.get("class_type") == cls and isinstance(value, str):
                found.append((str(node_id), name, value, folder))
    return found


def cache_dir() -> Path:
    """Where built stand-ins are kept between runs (``STYLE_GUIDANCE_CACHE`` or ``<repo>/.cache``)."""
    root = os.environ.get("STYLE_GUIDANCE_CACHE") or Path(__file__).resolve().parents[1] / ".cache"
    return Path(root) / "tiny_models_v1"


_BUILDERS = {
    "checkpoints": ("sg_tiny_sd15_complete.safetensors", lambda p: build_checkpoint(p, complete=True)),
    "vae": ("sg_tiny_taesd_vae.safetensors", build_taesd_as_full_vae),
    "loras": ("sg_empty_lora.safetensors", build_empty_lora),
    "vgg": ("vgg19-random.safetensors", build_vgg),
    "vgg_pth": ("vgg19-random.pth", lambda p: torch.save(_vgg_tensors(), p)),
    "open_clip": (TINY_OPENCLIP, build_open_clip),
}


def _vgg_tensors() -> dict[str, torch.Tensor]:
    """The cached safetensors VGG, for its torch-format twin (workflows name torchvision's .pth)."""
    from safetensors.torch import load_file

    return load_file(str(_cached("vgg")))


def _cached(folder: str) -> Path:
    """Build (once) and return the cached stand-in for a model folder."""
    name, build = _BUILDERS[folder]
    path = cache_dir() / folder / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.partial{path.suffix}")
        build(tmp)
        if Path(str(tmp) + ".json").is_file():  # open_clip's sidecar config travels with it
            os.replace(str(tmp) + ".json", str(path) + ".json")
        os.replace(tmp, path)
    return path


def place(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically: a symlink for big files, a copy for small ones."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    if source.stat().st_size >= (1 << 20):
        os.symlink(source, tmp)
    else:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def unsafe_model_name(name: str) -> bool:
    """Whether a model file name could point outside its folder (absolute, drive, '..', NUL)."""
    parts = name.replace("\\", "/").split("/")
    return (not name or "\0" in name or name.startswith(("/", "\\")) or Path(name).is_absolute()
            or (len(name) > 1 and name[1] == ":") or ".." in parts)


def install_for_workflow(models_dir: Path, api_prompt: dict) -> list[str]:
    """Write tiny stand-ins under every model file name ``api_prompt`` expects; return them.

    Files that already exist are left alone. Nothing is written when a name could leave
    ``models_dir`` (``ValueError``), or when a stand-in's ``<name>.json`` config would replace a
    different file of that name (``FileExistsError``). SD3.5, Flux, their text encoders and VAEs,
    the SD1.5 canny ControlNet and the taesdxl/taesd3/taef1 pairs come from
    ``headless.tiny_families``. Folders with no stand-in (other ControlNets, CLIP vision, ...)
    raise ``NotImplementedError`` naming the file.
    """
    from . import tiny_families

    files = model_files(api_prompt)
    bad = [name for _n, _i, name, _f in files if unsafe_model_name(name)]
    if bad:
        raise ValueError(f"model file name(s) outside the models folder: {', '.join(map(repr, bad))}")
    for _n, _i, name, folder in files:
        sidecar = Path(str(models_dir / folder / name) + ".json")
        if folder == "open_clip" and not (models_dir / folder / name).exists() and sidecar.exists() \
                and _json_or_none(sidecar) != tiny_open_clip_config():
            raise FileExistsError(f"{sidecar} exists and is not the tiny open_clip config; the stand-in for "
                                  f"{name} would replace it (move it away, or run with real weights)")
    written = []
    for _node, _input, name, folder in files:
        family_file = tiny_families.install_standin(models_dir, folder, name)  # SD3.5, Flux, ControlNet, taesd3 ...
        if family_file is not None:
            written += [family_file] if family_file else []
            continue
        if folder == "vae" and name in TAESD_NAMES:
            if name not in ("taesd", "taesdxl"):
                raise NotImplementedError(f"no tiny stand-in for the '{name}' VAE (only taesd and taesdxl)")
            target_dir = models_dir / "vae_approx"
            if not (target_dir / f"{name}_decoder.safetensors").is_file():
                target_dir.mkdir(parents=True, exist_ok=True)
                build_taesd_pair(target_dir, name, channels=4)
                written.append(str(target_dir / f"{name}_decoder.safetensors"))
            continue
        if folder not in _BUILDERS:
            raise NotImplementedError(f"no tiny stand-in for {folder}/{name}")
        target = models_dir / folder / name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        torch_format = folder == "vgg" and not name.lower().endswith(".safetensors")
        source = _cached("vgg_pth" if torch_format else folder)
        sidecar = Path(str(source) + ".json")
        if sidecar.is_file() and not Path(str(target) + ".json").exists():  # first: weights never without config
            place(sidecar, Path(str(target) + ".json"))
        place(source, target)
        written.append(str(target))
    return written


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tiny_overrides(api_prompt: dict, size: int = 128, steps: int = 4) -> dict[str, dict]:
    """Input changes that make a real workflow run on the stand-ins, quickly.

    The tiny open_clip file is not the architecture the workflow names; images are scaled
    to ``size`` and samplers run ``steps`` steps so a CPU finishes in seconds.
    """
    from . import tiny_families

    changes: dict[str, dict] = tiny_families.family_overrides(api_prompt)  # text encoders that cannot shrink
    for node_id, node in api_prompt.items():
        cls, inputs = node.get("class_type"), node.get("inputs", {})
        new: dict = {}
        if cls == "StyleGuidanceOpenCLIPLoader":
            new["arch"] = TINY_OPENCLIP_ARCH
        if cls in ("ImageScale", "EmptyLatentImage"):
            new.update({k: size for k in ("width", "height") if isinstance(inputs.get(k), int)})
        if "steps" in inputs and isinstance(inputs["steps"], int):
            new["steps"] = min(inputs["steps"], steps)
        if isinstance(inputs.get("loss_resolution"), int) and inputs["loss_resolution"] > size:
            new["loss_resolution"] = size
        if new:
            changes[str(node_id)] = {**changes.get(str(node_id), {}), **new}
    return changes
