"""Decoder stand-ins: TAESD pairs (``vae_approx``), TAESDs packed as full VAE files, narrow KL VAEs.

One TAESD builder (:func:`taesd_modules`) and one KL VAE builder (:func:`kl_vae_state_dict`);
calibrated ones give unit-RMS latents and decode to mid-grey with a spread that VAEDecode's clamp
leaves intact. The tests' own SD1.5 ``taesd`` pair and KL VAE keep their first, uncalibrated
values (``calibrate=False``): the guidance tests were tuned on them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from .common import calibrate_image, calibrate_output, half_state_dict, rms, sample, seeded_fill_, write_atomic

# VAELoader's TAESD names -> (latent channels, seed, calibrated).
TAESD_PAIRS: dict[str, tuple[int, int, bool]] = {
    "taesd": (4, 1, False),  # the tests' SD1.5 pair
    "taesdxl": (4, 73, True),
    "taesd3": (16, 76, True),
    "taef1": (16, 79, True),
}


def taesd_modules(channels: int, seed: int, calibrate: bool = True) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A seeded TAESD encoder/decoder pair; ``calibrate``: unit-RMS latents, mid-grey decodes."""
    from comfy.taesd.taesd import Decoder, Encoder

    enc, dec = Encoder(channels), Decoder(channels)
    seeded_fill_(enc, seed)
    seeded_fill_(dec, seed + 1)
    if not calibrate:
        return enc, dec
    g = torch.Generator().manual_seed(seed + 2)
    images = torch.rand((2, 3, 64, 64), generator=g)
    latents = sample(g, 2, channels, 8, 8)
    with torch.no_grad():
        calibrate_output(enc[-1], lambda: enc(images))  # model-space latents of unit RMS
        enc[-1].bias.sub_(enc(images).mean(dim=(0, 2, 3)))
        # The decoder's raw output is in [0, 1] (TAESD.decode maps it to [-1, 1]).
        calibrate_image(dec[-1], lambda: dec(latents), mean=0.5, std=0.18)
    return enc, dec


def build_taesd_pair(folder: Path, name: str) -> None:
    """``<name>_encoder/_decoder.safetensors`` that VAELoader offers as ``name`` (taesd, taesdxl, taesd3, taef1).

    Each file appears whole (written under a private name, then renamed), the decoder last: a
    reader that sees the decoder sees a complete pair.
    """
    channels, seed, calibrate = TAESD_PAIRS[name]
    enc, dec = taesd_modules(channels, seed, calibrate)
    for part, module in (("encoder", enc), ("decoder", dec)):
        write_atomic(folder / f"{name}_{part}.safetensors", lambda p, m=module: save_file(half_state_dict(m), str(p)))


def taesd_vae_state_dict(channels: int, seed: int, scale: float, shift: float,
                         calibrate: bool = True) -> dict[str, torch.Tensor]:
    """fp16 TAESD keyed as ComfyUI's VAE detects it inside a VAE file, with the family's scale and shift."""
    enc, dec = taesd_modules(channels, seed, calibrate)
    sd = {**half_state_dict(enc, "taesd_encoder."), **half_state_dict(dec, "taesd_decoder.")}
    sd["vae_scale"] = torch.tensor(scale)
    sd["vae_shift"] = torch.tensor(shift)
    return sd


def kl_ddconfig(z_channels: int = 4) -> dict:
    """SD's VAE layout (4 levels, 8x downscale), narrow; ``z_channels`` 4 (SD/SDXL) or 16 (SD3/Flux).

    Loaded with an explicit config (ComfyUI's VAELoader would build the full-width layout):
    ``comfy.sd.VAE(sd, config={"params": {"ddconfig": kl_ddconfig(z), "embed_dim": z}})``.
    ``headless/testbed/standin_nodes.py`` repeats it (that file is loaded on its own).
    """
    return {"double_z": True, "z_channels": z_channels, "resolution": 256, "in_channels": 3, "out_ch": 3,
            "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}


def kl_vae_state_dict(z_channels: int = 4, scale: float | None = None, shift: float = 0.0,
                      seed: int = 95) -> dict[str, torch.Tensor]:
    """A narrow AutoencoderKL (float32), calibrated for a latent format with ``scale``/``shift``.

    Calibrated: encoded content lands at unit RMS in the model's latent space; a unit-RMS model
    latent decodes to mid-grey with spread. ``scale`` None: seeded weights only (the tests' VAE).
    """
    from comfy.ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig=kl_ddconfig(z_channels), embed_dim=z_channels)
    seeded_fill_(vae, seed)
    if scale is not None:
        g = torch.Generator().manual_seed(seed + 1)
        images = torch.rand((2, 3, 64, 64), generator=g) * 2 - 1
        latents = sample(g, 2, z_channels, 8, 8) / scale + shift  # unit-RMS model latents, in VAE space
        with torch.no_grad():
            mean_rows = vae.quant_conv.weight[:z_channels]
            before = rms(vae.quant_conv(vae.encoder(images))[:, :z_channels])
            mean_rows.mul_((1.0 / scale) / max(before, 1e-8))
            vae.quant_conv.bias[:z_channels] = shift
            vae.quant_conv.bias[z_channels:] = -20.0  # log-variance: mode() ignores it; keep it sane anyway
            calibrate_image(vae.decoder.conv_out, lambda: vae.decode(latents), mean=0.0, std=0.36)
    return {k: v.detach().float().contiguous() for k, v in vae.state_dict().items()}
