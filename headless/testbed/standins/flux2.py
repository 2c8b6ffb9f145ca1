"""Flux.2 dev (flow, guidance-distilled, 128-channel latents packed 2x2 from a 32-channel VAE).

ComfyUI detects Flux.2 as a Flux layout with ``double_stream_modulation_img.lin.weight`` (global
modulation) and forces 48 heads of 128, i.e. width 6144: one double block alone is ~1.5B parameters
with the modulation layers. The stand-in: width 64 (2 heads of 32, four RoPE axes of 8), one double
and one single block, 64-d text features, the guidance embedding; everything else (patch size 1,
SiLU-gated MLP, no biases, index reference method) from ComfyUI's own detection. Built through
``comfy.supported_models.Flux2`` (:mod:`.dit`), loaded by ``SGTestDiTLoader``.

Flux.2's VAE is an AutoencoderKL whose 32-channel latents are packed 2x2 into 128 channels and
normalised by a batch-norm's running statistics (``bn.running_mean``/``running_var``; ComfyUI's
VAELoader detects it by ``bn.running_mean``). ComfyUI 0.3.75 has no tiny decoder for it. The stand-in
(:func:`flux2_vae_state_dict`) is that layout at SD's narrow test width (``SGTestKLVAE`` with
``batch_norm_latent``): it encodes pictures to unit-variance model latents (the statistics are those
of its own encodings) and decodes unit-normal latents to mid-grey with spread.
"""

from __future__ import annotations

import torch

from . import dit
from .common import calibrate_image, seeded_fill_
from .decoders import kl_ddconfig
from .family import Family

KEY = "flux2"
SEED = 190
WIDTH, TEXT = 64, 64
VAE_Z = 32  # the VAE's own latent channels; the model sees 4 x 32 = 128
VAE_FILE = "sg_tiny_flux2_vae.safetensors"

TINY = {"image_model": "flux2", "hidden_size": WIDTH, "num_heads": 2, "axes_dim": [8, 8, 8, 8], "depth": 1,
        "depth_single_blocks": 1, "context_in_dim": TEXT}
SKELETON = {"double_blocks.0.img_attn.norm.key_norm.scale": (WIDTH // 2,), "img_in.weight": (WIDTH, 128),
            "txt_in.weight": (WIDTH, TEXT), "double_stream_modulation_img.lin.weight": (6 * WIDTH, WIDTH),
            "guidance_in.in_layer.weight": (WIDTH, 256), "single_blocks.0.norm.key_norm.scale": (WIDTH // 2,)}
TEXT_LEN = 512  # model_base.Flux2 pads the text to 512 tokens (zeros in front)


def _run(net: torch.nn.Module, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn((1, 128, 4, 4), generator=gen)
    ctx = torch.cat([torch.zeros((1, TEXT_LEN - 16, TEXT)), torch.randn((1, 16, TEXT), generator=gen)], dim=1)
    return net(x, torch.tensor([0.5]), context=ctx, guidance=torch.tensor([3.5]))


SPEC = dit.DiTSpec("Flux2", "comfy.ldm.flux.model.Flux", TINY, SKELETON, _run, lambda net: net.final_layer.linear)

FAMILY = Family(KEY, "Flux.2 dev", "Flux2", "Flux2", 128, "", 1.0, 0.0, "diffusion_models",
                "sg_tiny_flux2_dev.safetensors", TEXT, 0, flow=True, guidance_embed=True,
                build=lambda s: dit.build(SPEC, s), seed=SEED, dit=SPEC,
                cond_extra=(("pooled_output", ""),))  # its text encoder gives no pooled vector


def flux2_ddconfig() -> dict:
    """The narrow test layout (``decoders.kl_ddconfig``) with Flux.2's packed, batch-normalised latents."""
    return {**kl_ddconfig(VAE_Z), "batch_norm_latent": True}


def flux2_vae_state_dict(seed: int = SEED + 10) -> dict[str, torch.Tensor]:
    """A narrow Flux.2 VAE (fp32): unit-variance model latents from pictures, mid-grey pictures from unit latents."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig=flux2_ddconfig(), embed_dim=VAE_Z)
    seeded_fill_(vae, seed)
    g = torch.Generator().manual_seed(seed + 1)
    images = torch.rand((4, 3, 64, 64), generator=g) * 2 - 1
    with torch.no_grad():
        vae.quant_conv.bias[VAE_Z:] = -20.0  # log-variance rows: mode() ignores them; keep them sane
        vae.bn.running_mean.zero_()
        vae.bn.running_var.fill_(1.0 - vae.bn_eps)
        packed = vae.encode(images)  # (4, 128, 4, 4), normalised by the identity statistics
        vae.bn.running_mean.copy_(packed.mean(dim=(0, 2, 3)))
        vae.bn.running_var.copy_(packed.var(dim=(0, 2, 3)).clamp_min(1e-6))
        latents = torch.randn((2, 4 * VAE_Z, 4, 4), generator=g)
        calibrate_image(vae.decoder.conv_out, lambda: vae.decode(latents), mean=0.0, std=0.36)
    return {k: v.detach().float().contiguous() for k, v in vae.state_dict().items()}
