"""HunyuanImage 2.1 (flow; HunyuanVideo's double/single-stream DiT on 2-D, 64-channel latents, 32x downsampling).

ComfyUI detects it as ``image_model: hunyuan_video`` (a text token refiner, ``img_in.proj`` a 2-D patch
embedding) with no ``vector_in``, and picks ``comfy.supported_models.HunyuanImage21``; widths come from
the file, but detection fixes heads of 128 (``num_heads = hidden // 128``) and RoPE axes of 64 + 64.
The stand-in: width 64 (2 heads of 32, axes 16 + 16), one double and one single block, 64-d text
features, no guidance embedding (the base model, real CFG), no ByT5 glyph branch; built through
``HunyuanImage21`` (:mod:`.dit`), loaded by ``SGTestDiTLoader``.

Its VAE (:func:`vae_state_dict`) is ComfyUI's HunyuanImage 2.1 autoencoder (``comfy.ldm.hunyuan_video.vae``:
five pixel-shuffle downsamplings, 64 latent channels) at a narrow width; VAELoader would build the
~405M full-width one, so ``SGTestHunyuanImageVAE`` builds it at the file's widths. Calibrated: pictures
encode to model latents of unit RMS, unit-RMS model latents decode to mid-grey with spread.
"""

from __future__ import annotations

import torch

from . import dit
from .common import calibrate_image, rms, seeded_fill_
from .family import Family

KEY = "hunyuan_image"
SEED = 200
WIDTH, TEXT, CHANNELS = 64, 64, 64
SCALE = 0.75289  # comfy.latent_formats.HunyuanImage21.scale_factor
VAE_FILE = "sg_tiny_hunyuan_image_vae.safetensors"
VAE_WIDTHS = [32, 32, 64, 64, 128, 128]  # ComfyUI's full VAE: 128, 256, 512, 512, 1024, 1024

TINY = {"image_model": "hunyuan_video", "hidden_size": WIDTH, "num_heads": 2, "axes_dim": [16, 16], "depth": 1,
        "depth_single_blocks": 1}
SKELETON = {"txt_in.individual_token_refiner.blocks.0.norm1.weight": (WIDTH,),
            "img_in.proj.weight": (WIDTH, CHANNELS, 1, 1), "final_layer.linear.weight": (CHANNELS, WIDTH),
            "txt_in.input_embedder.weight": (WIDTH, TEXT), "double_blocks.0.img_attn.norm.key_norm.scale": (WIDTH // 2,),
            "single_blocks.0.norm.key_norm.scale": (WIDTH // 2,)}


def _run(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
    x, ctx = torch.randn((1, CHANNELS, 4, 4), generator=gen), torch.randn((1, 16, TEXT), generator=gen)
    return net(x, torch.tensor([0.5]), context=ctx)


SPEC = dit.DiTSpec("HunyuanImage21", "comfy.ldm.hunyuan_video.model.HunyuanVideo", TINY, SKELETON, _run,
                   lambda net: net.final_layer.linear)

FAMILY = Family(KEY, "HunyuanImage 2.1", "HunyuanImage21", "HunyuanImage21", CHANNELS, "", SCALE, 0.0,
                "diffusion_models", "sg_tiny_hunyuan_image.safetensors", TEXT, 0, flow=True,
                build=lambda s: dit.build(SPEC, s), seed=SEED, dit=SPEC)


def vae_ddconfig(widths: list[int] | None = None, num_res_blocks: int = 1) -> dict:
    """ComfyUI's HunyuanImage 2.1 VAE config (``comfy.sd.VAE``, 64 latent channels) at ``widths``."""
    return {"block_out_channels": list(widths or VAE_WIDTHS), "in_channels": 3, "out_channels": 3,
            "num_res_blocks": num_res_blocks, "ffactor_spatial": 32, "downsample_match_channel": True,
            "upsample_match_channel": True, "z_channels": CHANNELS}


def autoencoder(ddconfig: dict) -> torch.nn.Module:
    """The autoencoder ComfyUI's VAE builds for a HunyuanImage 2.1 file, at ``ddconfig``'s widths."""
    from comfy.ldm.models.autoencoder import AutoencodingEngine

    return AutoencodingEngine(
        regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={"target": "comfy.ldm.hunyuan_video.vae.Encoder", "params": ddconfig},
        decoder_config={"target": "comfy.ldm.hunyuan_video.vae.Decoder", "params": ddconfig})


@torch.no_grad()
def _scale_encoder(encoder: torch.nn.Module, k: float) -> None:
    """Multiply the encoder's output by ``k``: every layer that writes to the residual stream is scaled
    (the branches read it through GroupNorm, the skips are linear), and so is the output conv."""
    from comfy.ldm.modules.diffusionmodules.model import AttnBlock, ResnetBlock

    layers = [encoder.conv_in, encoder.conv_out]
    for m in encoder.modules():
        if isinstance(m, ResnetBlock):
            layers.append(m.conv2)
        elif isinstance(m, AttnBlock):
            layers.append(m.proj_out)
        elif hasattr(m, "conv") and type(m).__name__ == "PixelShuffle2D":
            layers.append(m.conv)
    for layer in layers:
        layer.weight.mul_(k)
        if layer.bias is not None:
            layer.bias.mul_(k)


@torch.no_grad()
def _smooth_upsampling(decoder: torch.nn.Module, gain: float = 8.0) -> None:
    """Make each of the decoder's 2x upsamplings act as nearest-neighbour upsampling plus a small residue.

    ``PixelUnshuffle2D`` sends each of its conv's four output-channel groups to one of the four new
    pixels and adds the input's channels spread the same way (depth to space). Random weights turn a
    smooth latent into a 2x2 checkerboard at each of the five stages: nothing of the latent's layout
    survives to the picture, and no latent can bring the picture closer to a content image. A trained
    decoder learns to undo that; here the four groups share one kernel (the same value at the four new
    pixels) and dominate the spread-out input (``gain``)."""
    for m in decoder.modules():
        if type(m).__name__ == "PixelUnshuffle2D":
            w, groups = m.conv.weight, 4
            shared = w[: w.shape[0] // groups].clone()
            w.copy_(shared.repeat(groups, 1, 1, 1) * gain)
            if m.conv.bias is not None:
                m.conv.bias.copy_(m.conv.bias[: w.shape[0] // groups].repeat(groups))


def vae_state_dict(seed: int = SEED + 10) -> dict[str, torch.Tensor]:
    """A narrow HunyuanImage 2.1 VAE (fp32): unit-RMS model latents from pictures, mid-grey pictures from them."""
    vae = autoencoder(vae_ddconfig())
    seeded_fill_(vae, seed)
    _smooth_upsampling(vae.decoder)
    g = torch.Generator().manual_seed(seed + 1)
    # Picture-like inputs (smooth colour fields with some texture): the encoder's skip path keeps low frequencies.
    smooth = torch.nn.functional.interpolate(torch.rand((4, 3, 4, 4), generator=g), size=128, mode="bilinear")
    images = (0.85 * smooth + 0.15 * torch.rand((4, 3, 128, 128), generator=g)) * 2 - 1
    with torch.no_grad():
        mean = lambda: vae.encoder(images)[:, :CHANNELS]  # noqa: E731 (the regulariser's mode)
        _scale_encoder(vae.encoder, (1.0 / SCALE) / max(rms(mean()), 1e-8))
        vae.encoder.conv_out.bias[:CHANNELS] -= mean().mean(dim=(0, 2, 3))
        _scale_encoder(vae.encoder, (1.0 / SCALE) / max(rms(mean()), 1e-8))
        vae.encoder.conv_out.bias[CHANNELS:] = -20.0  # log-variance: mode() ignores it; keep it sane anyway
        latents = torch.randn((2, CHANNELS, 2, 2), generator=g) / SCALE  # unit-RMS model latents, in VAE space
        calibrate_image(vae.decoder.conv_out, lambda: vae.decode(latents), mean=0.0, std=0.36)
    return {k: v.detach().float().contiguous() for k, v in vae.state_dict().items()}
