"""Style transfer through every image family the pack ships a workflow for (SD1.5, SDXL, SD3.5, Flux)."""

from __future__ import annotations

from headless.testbed.standins.names import CLIP_L, FLUX_UNET, FLUX_VAE, SD35_CKPT, T5XXL
from headless.workflow import UIGraph

from .common import (
    CONTENT_IMAGE,
    FAMILY_MODELS_NOTE,
    LOSS_TIPS,
    OPEN_CLIP_FILE,
    PROMPT,
    SD15_CKPT,
    SD_VAE,
    SDXL_CKPT,
    STYLE_IMAGE,
    VGG_FILE,
    all_losses,
    finish,
    scaled_content,
    standard_layout,
    style_transfer,
)


def style_transfer_sd15(g: UIGraph) -> None:
    style_transfer(
        g, "# Style transfer, SD1.5, full quality\n"
        "The content image is encoded and partly re-noised (*denoise* 0.6); while it is denoised again, "
        "each step is nudged along the gradient of five losses measured on the decoded image. "
        "Guidance runs in *xt* mode (FreeDoM-style: the gradient goes back through the UNet) and decodes "
        "with the full VAE, so it is the slowest and most faithful preset; see style_transfer_fast for speed.\n",
        SD15_CKPT, f"- `models/vae/{SD_VAE}`: the SD1.5 VAE (stabilityai/sd-vae-ft-mse-original)\n", SD_VAE, 512, "sd15",
        steps=30, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6, mode="xt", scale=0.3,
        start_percent=0.0, end_percent=0.8)


def style_transfer_fast(g: UIGraph) -> None:
    style_transfer(
        g, "# Style transfer, SD1.5, fast preset\n"
        "Guidance decodes with TAESD (a tiny decoder) in *x0* mode (MPGD-style: no backward pass through the "
        "UNet), only during the first 70% of the steps, and scores the losses at 256 px. The checkpoint's own "
        "VAE still encodes the content and decodes the result.\n",
        SD15_CKPT, "- `models/vae_approx/taesd_encoder.safetensors` and `taesd_decoder.safetensors` (madebyollin/taesd)\n",
        "taesd", 512, "fast",
        steps=20, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6, mode="x0", scale=0.3,
        start_percent=0.0, end_percent=0.7, loss_resolution=256)


def style_transfer_sdxl(g: UIGraph) -> None:
    style_transfer(
        g, "# Style transfer, SDXL at 1024 px\n"
        "Generation runs at 1024x1024 while the losses are scored at 384 px (*loss_resolution*), which keeps "
        "the VGG/CLIP cost and memory small. TAESDXL decodes for guidance in x0 mode.\n",
        SDXL_CKPT, "- `models/vae_approx/taesdxl_encoder.safetensors` and `taesdxl_decoder.safetensors` "
        "(madebyollin/taesdxl)\n", "taesdxl", 1024, "sdxl",
        steps=25, cfg=6.0, sampler_name="dpmpp_2m", scheduler="karras", denoise=0.65, mode="x0", scale=0.3,
        start_percent=0.0, end_percent=0.7, loss_resolution=384)


def style_transfer_sd35(g: UIGraph) -> None:
    style_transfer(
        g, "# Style transfer, SD3.5 (medium) at 1024 px\n"
        "SD3.5 is a flow-matching transformer (MMDiT) with 16-channel latents. Guidance decodes with TAESD3 "
        "(the 16-channel tiny decoder of SD3's latents) in *x0* mode during the first 70% of the steps and "
        "scores the losses at 384 px; the checkpoint's own VAE encodes the content and decodes the result.\n\n"
        "**SD3.5 defaults**: decoder `taesd3` (another family's decoder is refused by name), loss_resolution "
        "384, window 0-0.7, scale 0.3, cfg 4.5, euler + sgm_uniform, denoise 0.75 (flow models keep more of the "
        "content at the same denoise than SD1.5). *recurrence* 2 inside 0.2-0.5 strengthens the style at "
        "about 1.3x the guided cost. Memory: see docs/families.md.\n",
        SD35_CKPT, "- the checkpoint is SD3.5 medium with CLIP-G, CLIP-L and T5-XXL fp8 inside "
        "(Comfy-Org/stable-diffusion-3.5-fp8)\n"
        "- `models/vae_approx/taesd3_encoder.safetensors` and `taesd3_decoder.safetensors` (madebyollin/taesd3)\n",
        "taesd3", 1024, "sd35",
        steps=28, cfg=4.5, sampler_name="euler", scheduler="sgm_uniform", denoise=0.75, mode="x0", scale=0.3,
        start_percent=0.0, end_percent=0.7, loss_resolution=384)


def style_transfer_flux(g: UIGraph) -> None:
    note = g.note("# Style transfer, Flux.1 dev at 1024 px\n"
           "Flux dev is guidance-distilled: the sampler runs at *cfg* 1 (no negative pass) and the prompt's "
           "strength comes from *FluxGuidance* (3.5). Guidance decodes with TAEF1 (Flux's 16-channel tiny "
           "decoder) in *x0* mode during the first 70% of the steps, with the losses scored at 384 px; the "
           "Flux VAE (ae) encodes the content and decodes the result.\n\n"
           "**Flux defaults**: decoder `taef1` (taesd3 has the same 16 channels but another scaling: it is "
           "refused by name), loss_resolution 384, window 0-0.7, scale 0.3, cfg 1, FluxGuidance 3.5, euler + "
           "simple, denoise 0.75. *xt* mode works (the backward goes through Flux's in-place blocks with saved "
           "copies) but needs the memory of a Flux backward pass; *recurrence* 2 in 0.2-0.5 strengthens the "
           "style. Memory: see docs/families.md.\n"
           + FAMILY_MODELS_NOTE.format(models=(
               f"- `models/diffusion_models/{FLUX_UNET}` (black-forest-labs/FLUX.1-dev)\n"
               f"- `models/text_encoders/{CLIP_L}` and `models/text_encoders/{T5XXL}` "
               "(comfyanonymous/flux_text_encoders)\n"
               f"- `models/vae/{FLUX_VAE}`: the Flux VAE (black-forest-labs/FLUX.1-dev)\n"
               "- `models/vae_approx/taef1_encoder.safetensors` and `taef1_decoder.safetensors` (madebyollin/taef1)\n"))
           + LOSS_TIPS, 0, height=560)
    n = {}
    unet = g.add("UNETLoader", 0, unet_name=FLUX_UNET, weight_dtype="default")
    clip = g.add("DualCLIPLoader", 0, clip_name1=CLIP_L, clip_name2=T5XXL, type="flux", device="default")
    n["model"], n["clip"] = unet[0], clip[0]
    n["content"] = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    n["style"] = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    n["vgg"] = g.add("StyleGuidanceVGGLoader", 0, vgg_name=VGG_FILE)
    n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    ae = g.add("VAELoader", 1, title="Flux VAE", vae_name=FLUX_VAE)
    taef1 = g.add("VAELoader", 1, title="Guidance decoder (TAEF1)", vae_name="taef1")
    text = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=n["clip"])
    pos = g.add("FluxGuidance", 1, conditioning=text[0], guidance=3.5)
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt (unused at cfg 1)", text="", clip=n["clip"])
    scaled_content(g, n, 1024)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=ae[0])
    losses = all_losses(g, n)
    sampler = g.add("StyleGuidanceSampler", 3, title="Guided sampler", model=n["model"], positive=pos[0],
                    negative=neg[0], latent_image=encode[0], vae=taef1[0], losses=losses, seed=42, steps=20, cfg=1.0,
                    sampler_name="euler", scheduler="simple", denoise=0.75, mode="x0", scale=0.3, start_percent=0.0,
                    end_percent=0.7, loss_resolution=384)
    out = finish(g, sampler[0], ae[0], losses, "flux")
    standard_layout(g, note, n, [[unet, clip, ae, taef1], [text, pos, neg, encode]], [sampler], out)
