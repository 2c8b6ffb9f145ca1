"""Tiny, seeded stand-ins for the model families beyond SD1.5, recognised by ComfyUI's own detection.

Families: SD2.x v-prediction, SDXL, SD3.5 (MMDiT, flow) and Flux.1 dev (flow, guidance-distilled),
each with its TAESD-family decoder pair (``taesd``, ``taesdxl``, ``taesd3``, ``taef1`` in
``vae_approx``), a small full VAE of its latent format, and for SD1.5 a ControlNet and a LoRA that
fit the tiny SD1.5 UNet of :mod:`headless.tiny_models`.

What ComfyUI's detection (``comfy.model_detection`` / ``comfy.supported_models``) forces:

- SD2.x: ``SD20`` matches context 1024, model_channels 320, linear transformer projections; it
  reads v-prediction from the spread of ``output_blocks.11.1.transformer_blocks.0.norm1.bias``
  (std > 0.09), so the UNet needs twelve output blocks and a transformer in the last one. Here:
  SD2's own layout (4 levels x 2 res blocks) at width 320 with two transformers: ~70M parameters.
- SDXL: ``SDXL`` matches ``transformer_depth == [0, 0, 2, 2, 10, 10]`` exactly (24 transformer
  blocks at context 2048) but not the channel widths, so every level is 320 wide: ~120M.
- SD3: hidden size is 64 x depth; depth 2 (hidden 128) with RMS q/k norms as in SD3.5: ~3M.
- Flux: detection fixes 24 heads of width 128, so the hidden size must be 3072; one double block
  and no single block is the smallest Flux it accepts: 404M parameters (0.8 GB in fp16). It is
  built once and cached (``STYLE_GUIDANCE_CACHE``); everything else builds in seconds.
- Full VAEs: ``comfy.sd.VAE`` builds a KL VAE from a fixed config (width 128, 4 levels) whatever
  the file holds, so a narrow KL VAE loads only with an explicit config (the tests' loader). A
  file that VAELoader reads as a full VAE and that is small is a TAESD with the family's
  ``vae_scale``/``vae_shift`` (ComfyUI detects ``taesd_decoder.*`` inside a VAE file).
- Text encoders: ComfyUI builds CLIP-L (123M) and T5-XXL (4.7B) from fixed configs. Stand-ins use
  CLIP-L only: inside the SD3 checkpoint (``text_encoders.clip_l.*``; ComfyUI then builds an SD3
  text encoder with CLIP-L alone) and as ``clip_l`` for Flux, where :func:`family_overrides` runs
  DualCLIPLoader as type ``sd3`` on CLIP-L twice: (1, 77, 4096) context and a pooled vector whose
  first 768 values (what Flux reads) are CLIP-L's.

Stand-ins behave: every diffusion model's output layer is rescaled so its prediction (noise,
velocity) has unit RMS on unit-variance inputs, norms keep scale 1, and every decoder is
calibrated to mid-grey with a spread that VAEDecode's clamp leaves intact.
Requires ComfyUI to be importable (after :func:`headless.comfy_host.configure_comfy`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from .tiny_models import place
from .tiny_models import seeded_fill_ as _fill

CACHE_VERSION = "tiny_families_v3"
SD2_VPRED_NORM_STD = 0.15  # ComfyUI calls an SD2 UNet v-prediction above 0.09


@dataclass(frozen=True)
class Family:
    """One model family: what ComfyUI detects, its latents, its decoders and its conditioning."""

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

    @property
    def kl_vae_file(self) -> str:
        return f"sg_tiny_kl_vae_{self.latent_channels}ch.safetensors"

    @property
    def vae_file(self) -> str:
        """A TAESD packed as a full VAE file of this family (VAELoader reads it from models/vae)."""
        return f"sg_tiny_{self.key}_vae.safetensors"


FAMILIES: dict[str, Family] = {
    "sd15": Family("sd15", "SD1.5", "SD15", "SD15", 4, "taesd", 0.18215, 0.0, "checkpoints",
                   "sg_tiny_sd15.safetensors", 768, 0),
    "sd2v": Family("sd2v", "SD2.x v-prediction", "SD20", "SD15", 4, "taesd", 0.18215, 0.0, "checkpoints",
                   "sg_tiny_sd2v.safetensors", 1024, 0, v_prediction=True),
    "sdxl": Family("sdxl", "SDXL", "SDXL", "SDXL", 4, "taesdxl", 0.13025, 0.0, "checkpoints",
                   "sg_tiny_sdxl.safetensors", 2048, 1280),
    "sd3": Family("sd3", "SD3.5", "SD3", "SD3", 16, "taesd3", 1.5305, 0.0609, "checkpoints",
                  "sg_tiny_sd35.safetensors", 4096, 2048, flow=True),
    "flux": Family("flux", "Flux.1 dev", "Flux", "Flux", 16, "taef1", 0.3611, 0.1159, "diffusion_models",
                   "sg_tiny_flux1_dev.safetensors", 4096, 768, flow=True, guidance_embed=True),
    "qwen_image": Family("qwen_image", "Qwen-Image", "QwenImage", "Wan21", 16, "lighttaew2_1.safetensors", 1.0, 0.0,
                         "diffusion_models", "sg_tiny_qwen_image.safetensors", 3584, 0, flow=True),  # tiny_qwen_image
}
TAESD_CHANNELS = {"taesd": 4, "taesdxl": 4, "taesd3": 16, "taef1": 16}
CONTROLNET_FILE = "sg_tiny_sd15_controlnet.safetensors"
LORA_FILE = "sg_tiny_sd15_lora.safetensors"


# ---------------------------------------------------------------------------------------------
# Seeded weights


def _rms(t: torch.Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


@torch.no_grad()
def _calibrate_output(layer: torch.nn.Module, run: Callable[[], torch.Tensor], target_rms: float = 1.0) -> float:
    """Rescale ``layer`` (the network's last) so ``run()`` has RMS ``target_rms``; return the RMS before."""
    before = _rms(run())
    factor = target_rms / max(before, 1e-8)
    layer.weight.mul_(factor)
    if getattr(layer, "bias", None) is not None:
        layer.bias.mul_(factor)
    return before


@torch.no_grad()
def _calibrate_image(layer: torch.nn.Module, run: Callable[[], torch.Tensor], mean: float, std: float) -> None:
    """Give the image channels of ``run()`` (N,3,H,W) the wanted spread around ``mean``: no saturation."""
    out = run().float()
    spread = float((out - out.mean(dim=(0, 2, 3), keepdim=True)).std())  # within channels: the bias moves means
    layer.weight.mul_(std / max(spread, 1e-8))
    out = run().float()
    layer.bias.add_(mean - out.mean(dim=(0, 2, 3)))


def _sample(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(shape, generator=gen)


def _half(sd: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}


# ---------------------------------------------------------------------------------------------
# Diffusion models


def _unet(**config) -> torch.nn.Module:
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    base = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, use_spatial_transformer=True,
                legacy=False, use_linear_in_transformer=True, num_heads=-1, num_head_channels=64,
                operations=comfy.ops.manual_cast, dtype=torch.float32)
    return UNetModel(**{**base, **config})


def sd2v_unet(seed: int = 30) -> torch.nn.Module:
    """SD2's layout (4 levels x 2 res blocks, 12 output blocks) at width 320, two transformers.

    Detected as ``SD20`` with v-prediction: ComfyUI decides v-prediction from the spread of the
    last output block's first transformer norm bias, set here to std 0.15 (norm scales stay 1).
    """
    unet = _unet(num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 1, 1, 1], context_dim=1024,
                 transformer_depth=[1, 0, 0, 0, 0, 0, 0, 0], transformer_depth_output=[1] + [0] * 11,
                 transformer_depth_middle=-2)
    _fill(unet, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        bias = unet.output_blocks[11][1].transformer_blocks[0].norm1.bias
        bias.copy_(torch.randn(bias.shape, generator=gen) * SD2_VPRED_NORM_STD)
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx = _sample(g, 1, 4, 8, 8), _sample(g, 1, 77, 1024)
    _calibrate_output(unet.out[2], lambda: unet(x, torch.tensor([500.0]), context=ctx))
    return unet


def sdxl_unet(seed: int = 40) -> torch.nn.Module:
    """SDXL's transformer depths (0, 0, 2, 2, 10, 10: what ``SDXL`` matches) at width 320 on all levels."""
    unet = _unet(num_res_blocks=[2, 2, 2], channel_mult=[1, 1, 1], context_dim=2048, adm_in_channels=2816,
                 num_classes="sequential", transformer_depth=[0, 0, 2, 2, 10, 10],
                 transformer_depth_output=[0] * 9, transformer_depth_middle=-2)
    _fill(unet, seed)
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx, y = _sample(g, 1, 4, 8, 8), _sample(g, 1, 77, 2048), _sample(g, 1, 2816)
    _calibrate_output(unet.out[2], lambda: unet(x, torch.tensor([500.0]), context=ctx, y=y))
    return unet


def sd3_mmdit(seed: int = 50) -> torch.nn.Module:
    """An SD3.5-style MMDiT (RMS q/k norms) of depth 2: hidden 128, 2 heads, 16 latent channels."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper

    net = OpenAISignatureMMDITWrapper(
        input_size=None, patch_size=2, in_channels=16, out_channels=16, depth=2, adm_in_channels=2048,
        context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 128}},
        num_patches=64 * 64, pos_embed_max_size=64, pos_embed_scaling_factor=None, qk_norm="rms",
        x_block_self_attn_layers=[], operations=comfy.ops.manual_cast, dtype=torch.float32)
    _fill(net, seed)
    # pos_embed is a buffer made with torch.empty (real files carry it): left as is it holds whatever
    # memory it got, NaN at times. SD3's own table: 2D sin-cos over the 64x64 patch grid.
    from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

    table = get_2d_sincos_pos_embed(net.hidden_size, 64)
    with torch.no_grad():
        net.pos_embed.copy_(torch.from_numpy(table).float().reshape(net.pos_embed.shape))
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx, y = _sample(g, 1, 16, 8, 8), _sample(g, 1, 77, 4096), _sample(g, 1, 2048)
    _calibrate_output(net.final_layer.linear, lambda: net(x, torch.tensor([500.0]), context=ctx, y=y))
    return net


FLUX_CONFIG = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096,
                   hidden_size=3072, mlp_ratio=4.0, num_heads=24, depth=1, depth_single_blocks=0,
                   axes_dim=[16, 56, 56], theta=10000, patch_size=2, qkv_bias=True, guidance_embed=True)


def flux_dit(seed: int = 60) -> torch.nn.Module:
    """The smallest Flux.1-dev ComfyUI detects: hidden 3072, one double block, guidance embedding."""
    import comfy.ops
    from comfy.ldm.flux.model import Flux

    net = Flux(**FLUX_CONFIG, operations=comfy.ops.manual_cast, dtype=torch.float32)
    _fill(net, seed)
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx, y = _sample(g, 1, 16, 8, 8), _sample(g, 1, 77, 4096), _sample(g, 1, 768)
    _calibrate_output(net.final_layer.linear,
                      lambda: net(x, torch.tensor([0.5]), context=ctx, y=y, guidance=torch.tensor([3.5])))
    return net


DIFFUSION_BUILDERS: dict[str, Callable[[int], torch.nn.Module]] = {
    "sd2v": sd2v_unet, "sdxl": sdxl_unet, "sd3": sd3_mmdit, "flux": flux_dit,
}
SEEDS = {"sd2v": 30, "sdxl": 40, "sd3": 50, "flux": 60}


def _save_streaming(net: torch.nn.Module, path: Path, prefix: str, extra: dict | None = None) -> None:
    """fp16 file of ``net``'s weights; each tensor is halved and the fp32 one dropped as it goes."""
    sd = net.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k in list(sd):
        t = sd.pop(k).detach()
        if t.is_floating_point() and not torch.isfinite(t).all():  # e.g. a buffer nobody initialised
            raise RuntimeError(f"stand-in {path.name}: {k} is not finite")
        out[prefix + k] = t.to(torch.float16).contiguous()
    out.update(extra or {})
    save_file(out, str(path))


def build_diffusion_model(key: str, path: Path, complete: bool = False) -> None:
    """Write the family's stand-in diffusion model (``complete``: SD3 with CLIP-L and a VAE inside).

    Checkpoints carry ComfyUI's ``model.diffusion_model.`` prefix; Flux is a bare diffusion model
    file for UNETLoader, as Black Forest Labs ship it.
    """
    fam = FAMILIES[key]
    net = DIFFUSION_BUILDERS[key](SEEDS[key])
    prefix = "model.diffusion_model." if fam.folder == "checkpoints" else ""
    extra: dict[str, torch.Tensor] = {}
    if complete:
        if key != "sd3":
            raise ValueError(f"no complete stand-in checkpoint for {key}")
        extra.update(clip_l_state_dict(SEEDS[key] + 10, prefix="text_encoders.clip_l."))
        extra.update(_half(taesd_full_vae_state_dict(key, SEEDS[key] + 20), "first_stage_model."))
        extra["first_stage_model.vae_scale"] = torch.tensor(fam.vae_scale)
        extra["first_stage_model.vae_shift"] = torch.tensor(fam.vae_shift)
    _save_streaming(net, path, prefix, extra)


# ---------------------------------------------------------------------------------------------
# Text encoder (CLIP-L, the one ComfyUI text encoder small enough to stand in)


def clip_l_state_dict(seed: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Random CLIP-L text encoder weights under ``prefix`` (``""``: a standalone clip_l file)."""
    from .tiny_models import sd1_text_encoder_state_dict

    sd = sd1_text_encoder_state_dict(seed)
    out = {}
    for k, v in sd.items():
        k = k[len("cond_stage_model."):]
        if prefix == "":  # standalone files hold the transformers layout without the wrapper
            k = k[len("transformer."):] if k.startswith("transformer.") else k
        out[prefix + k] = v
    return out


# ---------------------------------------------------------------------------------------------
# Decoders


def _taesd_modules(channels: int, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A TAESD encoder/decoder pair calibrated to behave: unit-RMS latents, mid-grey decodes."""
    from comfy.taesd.taesd import Decoder, Encoder

    enc, dec = Encoder(channels), Decoder(channels)
    _fill(enc, seed)
    _fill(dec, seed + 1)
    g = torch.Generator().manual_seed(seed + 2)
    images = torch.rand((2, 3, 64, 64), generator=g)
    latents = _sample(g, 2, channels, 8, 8)
    with torch.no_grad():
        _calibrate_output(enc[-1], lambda: enc(images))  # model-space latents of unit RMS
        enc[-1].bias.sub_(enc(images).mean(dim=(0, 2, 3)))
        # The decoder's raw output is in [0, 1] (TAESD.decode maps it to [-1, 1]).
        _calibrate_image(dec[-1], lambda: dec(latents), mean=0.5, std=0.18)
    return enc, dec


def build_taesd_pair(folder: Path, name: str, seed: int | None = None) -> None:
    """``<name>_encoder/_decoder.safetensors`` that VAELoader offers as ``name`` (taesd, taesdxl, taesd3, taef1)."""
    channels = TAESD_CHANNELS[name]
    enc, dec = _taesd_modules(channels, seed if seed is not None else 70 + list(TAESD_CHANNELS).index(name) * 3)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_half(enc.state_dict()), str(folder / f"{name}_encoder.safetensors"))
    save_file(_half(dec.state_dict()), str(folder / f"{name}_decoder.safetensors"))


def taesd_full_vae_state_dict(key: str, seed: int) -> dict[str, torch.Tensor]:
    """A calibrated TAESD of the family's channel count, keyed as ComfyUI's VAE detects it."""
    fam = FAMILIES[key]
    enc, dec = _taesd_modules(fam.latent_channels, seed)
    sd = {f"taesd_encoder.{k}": v for k, v in enc.state_dict().items()}
    sd.update({f"taesd_decoder.{k}": v for k, v in dec.state_dict().items()})
    return sd


def build_family_vae(key: str, path: Path, seed: int = 90) -> None:
    """A file VAELoader reads as the family's full VAE (a TAESD with the family's scale and shift)."""
    fam = FAMILIES[key]
    sd = _half(taesd_full_vae_state_dict(key, seed))
    sd["vae_scale"] = torch.tensor(fam.vae_scale)
    sd["vae_shift"] = torch.tensor(fam.vae_shift)
    save_file(sd, str(path))


def kl_ddconfig(z_channels: int) -> dict:
    """SD's VAE layout (4 levels, 8x downscale), narrow; ``z_channels`` 4 (SD/SDXL) or 16 (SD3/Flux)."""
    return {"double_z": True, "z_channels": z_channels, "resolution": 256, "in_channels": 3, "out_ch": 3,
            "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}


def kl_vae_state_dict(z_channels: int, scale: float, shift: float, seed: int = 95) -> dict[str, torch.Tensor]:
    """A narrow AutoencoderKL calibrated for a latent format with ``scale``/``shift``.

    Encoded content lands at unit RMS in the model's latent space; a unit-RMS model latent
    decodes to mid-grey with spread. Loaded with an explicit config (ComfyUI's VAELoader would
    build the full-width layout): ``comfy.sd.VAE(sd, config={"params": {"ddconfig": kl_ddconfig(z),
    "embed_dim": z}})``.
    """
    from comfy.ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig=kl_ddconfig(z_channels), embed_dim=z_channels)
    _fill(vae, seed)
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.rand((2, 3, 64, 64), generator=g) * 2 - 1
    latents = _sample(g, 2, z_channels, 8, 8) / scale + shift  # unit-RMS model latents, in VAE space
    with torch.no_grad():
        mean_rows = vae.quant_conv.weight[:z_channels]
        before = _rms(vae.quant_conv(vae.encoder(images))[:, :z_channels])
        mean_rows.mul_((1.0 / scale) / max(before, 1e-8))
        vae.quant_conv.bias[:z_channels] = shift
        vae.quant_conv.bias[z_channels:] = -20.0  # log-variance: mode() ignores it; keep it sane anyway
        _calibrate_image(vae.decoder.conv_out, lambda: vae.decode(latents), mean=0.0, std=0.36)
    return {k: v.detach().float().contiguous() for k, v in vae.state_dict().items()}


# ---------------------------------------------------------------------------------------------
# SD1.5 extras: ControlNet and LoRA matching headless.tiny_models' tiny SD1.5 UNet

SD15_TINY_UNET = dict(image_size=32, in_channels=4, model_channels=320, num_res_blocks=[1], channel_mult=[1],
                      transformer_depth=[1], transformer_depth_middle=1, num_heads=8, use_spatial_transformer=True,
                      context_dim=768, use_linear_in_transformer=False, legacy=False)


def sd15_controlnet(seed: int = 110, gain: float = 0.5) -> torch.nn.Module:
    """A ControlNet for the tiny SD1.5 UNet (width 320, one level), 3-channel hint (canny, lineart).

    A trained ControlNet starts from zero convolutions; these are random (``gain``), so the
    control visibly changes what the UNet predicts.
    """
    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    net = ControlNet(hint_channels=3, **SD15_TINY_UNET, operations=comfy.ops.manual_cast, dtype=torch.float32)
    _fill(net, seed)
    with torch.no_grad():
        for conv in [*(z[0] for z in net.zero_convs), net.middle_block_out[0]]:
            conv.weight.mul_(gain)
    return net


def build_controlnet(path: Path, seed: int = 110) -> None:
    """The ControlNet in the original ``control_model.`` layout ControlNetLoader detects."""
    _save_streaming(sd15_controlnet(seed), path, "control_model.")


def build_lora(path: Path, seed: int = 120, rank: int = 4, scale: float = 1.0) -> None:
    """A non-empty LoRA (kohya key names) on every attention projection of the tiny SD1.5 UNet.

    ``lora_up @ lora_down`` has the RMS of the layer's own weight times ``scale``, so at strength 1
    the patched attention differs clearly from the original.
    """
    from .tiny_models import tiny_sd15_unet

    unet = tiny_sd15_unet(0)
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for name, mod in unet.named_modules():
        if not isinstance(mod, torch.nn.Linear) or ".attn" not in name:
            continue
        out_f, in_f = mod.weight.shape
        down = torch.randn((rank, in_f), generator=g) / in_f**0.5
        up = torch.randn((out_f, rank), generator=g) / rank**0.5
        up *= scale * _rms(mod.weight) / max(_rms(up @ down), 1e-8)
        key = "lora_unet_" + name.replace(".", "_")
        sd[f"{key}.lora_down.weight"] = down.half().contiguous()
        sd[f"{key}.lora_up.weight"] = up.half().contiguous()
        sd[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(sd, str(path))


# ---------------------------------------------------------------------------------------------
# Building the tests' set, with a cache for the heavy ones


def cache_dir() -> Path:
    """Where built stand-ins are kept between runs (next to headless.tiny_models' cache)."""
    root = os.environ.get("STYLE_GUIDANCE_CACHE") or Path(__file__).resolve().parents[1] / ".cache"
    return Path(root) / CACHE_VERSION


def cached(name: str, build: Callable[[Path], None]) -> Path:
    """Build ``name`` once into the cache (atomically) and return its path."""
    path = cache_dir() / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        build(tmp)
        os.replace(tmp, path)
    return path


def _diffusion_cached(key: str, complete: bool = False) -> Path:
    suffix = "_complete" if complete else ""
    return cached(f"{key}{suffix}.safetensors", lambda p: build_diffusion_model(key, p, complete=complete))


def build_families(models_dir: Path, keys: tuple[str, ...] = ("sd2v", "sdxl", "sd3", "flux")) -> dict[str, str]:
    """Write the families' stand-ins under ``models_dir`` (ComfyUI layout); return their file names.

    Diffusion models, TAESD pairs (taesdxl, taesd3, taef1; 'taesd' is headless.tiny_models'),
    a VAE file per family (a calibrated TAESD; SD1.5's too), narrow KL VAEs (4 and 16 latent
    channels), the SD1.5 ControlNet and LoRA.
    """
    names: dict[str, str] = {}
    for key in ("sd15", *keys):
        fam = FAMILIES[key]
        if key != "sd15":  # SD1.5's UNet is headless.tiny_models'; its calibrated VAE file is made here
            place(_diffusion_cached(key), models_dir / fam.folder / fam.file)
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


# ---------------------------------------------------------------------------------------------
# Stand-ins under a shipped workflow's own file names (hooked into tiny_models.install_for_workflow)

# Real file names (as ComfyUI's examples and the model pages call them) -> stand-in builders.
SD35_CKPT = "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"
FLUX_UNET = "flux1-dev.safetensors"
FLUX_VAE = "ae.safetensors"
CLIP_L = "clip_l.safetensors"
T5XXL = "t5xxl_fp16.safetensors"
SD15_CANNY = "control_v11p_sd15_canny_fp16.safetensors"


def _clip_l_file(path: Path) -> None:
    save_file(clip_l_state_dict(130), str(path))


def _t5_placeholder(path: Path) -> None:
    """Not a T5 (ComfyUI builds T5-XXL at 4.7B whatever the file holds): tiny mode never loads it."""
    save_file({"sg_tiny_placeholder": torch.zeros(1)}, str(path), metadata={
        "style_guidance": "placeholder for t5xxl; tiny mode runs DualCLIPLoader on clip_l only"})


STANDINS: dict[tuple[str, str], tuple[str, Callable[[Path], None]]] = {
    ("checkpoints", SD35_CKPT): ("sd3_complete.safetensors", lambda p: build_diffusion_model("sd3", p, complete=True)),
    ("diffusion_models", FLUX_UNET): ("flux.safetensors", lambda p: build_diffusion_model("flux", p)),
    ("vae", FLUX_VAE): ("flux_vae.safetensors", lambda p: build_family_vae("flux", p)),
    ("text_encoders", CLIP_L): ("clip_l.safetensors", _clip_l_file),
    ("text_encoders", T5XXL): ("t5xxl_placeholder.safetensors", _t5_placeholder),
    ("controlnet", SD15_CANNY): (CONTROLNET_FILE, build_controlnet),
}


def install_standin(models_dir: Path, folder: str, name: str) -> str | None:
    """Write the stand-in for ``folder/name`` if this module knows it; return the path, else None.

    TAESD names (``taesdxl``, ``taesd3``, ``taef1``) arrive as folder ``vae``: their pairs go to
    ``vae_approx``. An existing file is left alone (returns ``""``).
    """
    if folder == "vae" and name in ("taesdxl", "taesd3", "taef1"):  # 'taesd' stays headless.tiny_models' pair
        target_dir = models_dir / "vae_approx"
        if (target_dir / f"{name}_decoder.safetensors").is_file():
            return ""
        build_taesd_pair(target_dir, name)
        return str(target_dir / f"{name}_decoder.safetensors")
    known = STANDINS.get((folder, name))
    if known is None:
        return None
    target = models_dir / folder / name
    if target.exists():
        return ""
    place(cached(*known), target)
    return str(target)


def family_overrides(api_prompt: dict) -> dict[str, dict]:
    """Input changes for tiny mode beyond size/steps: the text encoders that cannot be shrunk.

    SDXL checkpoints run as the SD1.5 stand-in, so their ``taesdxl`` guidance decoder becomes ``taesd``.
    DualCLIPLoader of type ``flux`` (CLIP-L + T5-XXL) becomes type ``sd3`` on CLIP-L twice:
    the same CONDITIONING shapes Flux reads ((1, 77, 4096) context; the pooled vector's first
    768 values), with no T5.
    """
    changes: dict[str, dict] = {}
    # A checkpoint this module has no stand-in for gets headless.tiny_models' SD1.5 one (an SDXL stand-in
    # would need SDXL's CLIP-G, 694M parameters ComfyUI builds from a fixed config): its TAESDXL
    # decoder would then be another family's, which guidance refuses, so it becomes TAESD.
    sd15_standin = any(node.get("class_type") in ("CheckpointLoaderSimple", "CheckpointLoader")
                       and ("checkpoints", node.get("inputs", {}).get("ckpt_name")) not in STANDINS
                       for node in api_prompt.values())
    for node_id, node in api_prompt.items():
        inputs = node.get("inputs", {})
        if sd15_standin and node.get("class_type") == "VAELoader" and inputs.get("vae_name") == "taesdxl":
            changes[str(node_id)] = {"vae_name": "taesd"}
        if node.get("class_type") == "DualCLIPLoader" and inputs.get("type") == "flux":
            clip_l = next((inputs[k] for k in ("clip_name1", "clip_name2")
                           if isinstance(inputs.get(k), str) and "clip_l" in inputs[k].lower()), None)
            if clip_l:
                changes[str(node_id)] = {"clip_name1": clip_l, "clip_name2": clip_l, "type": "sd3"}
    return changes
