"""Style transfer through the newer DiT families (Qwen-Image; Z-Image and Flux.2 follow)."""

from __future__ import annotations

from headless.testbed.standins.names import LIGHTTAEW2_1, QWEN_IMAGE_TEXT_ENCODER, QWEN_IMAGE_UNET, QWEN_IMAGE_VAE
from headless.workflow import UIGraph

from .common import (
    CONTENT_IMAGE,
    FAMILY_MODELS_NOTE,
    LOSS_TIPS,
    OPEN_CLIP_FILE,
    PROMPT,
    STYLE_IMAGE,
    VGG_FILE,
    all_losses,
    finish,
    scaled_content,
)

QWEN_HF = "Comfy-Org/Qwen-Image_ComfyUI, split_files"
# As ComfyUI's own Qwen-Image template (image_qwen_image.json): 1328 px, ModelSamplingAuraFlow 3.1,
# 20 steps at cfg 2.5, euler + simple.
QWEN_SIZE, QWEN_SHIFT = 1328, 3.1

QWEN_INTRO = f"""# Style transfer, Qwen-Image at {QWEN_SIZE} px
Qwen-Image is a 20B flow-matching transformer (MMDiT) whose latents are Wan 2.1's: 16 channels in a
5-D tensor with one frame, which guidance handles like any picture. Its text encoder is Qwen2.5-VL 7B.
Guidance decodes with `lighttaew2_1` (Wan 2.1's tiny autoencoder, from `models/vae_approx`) in *x0*
mode during the first 70% of the steps, with the losses scored at 384 px; the Qwen-Image VAE encodes
the content and decodes the result.

**Qwen-Image defaults**: decoder `lighttaew2_1` (the Qwen-Image VAE works too, slower; another
family's decoder such as `taef1` is refused by name), loss_resolution 384, window 0-0.7, scale 0.3,
denoise 0.75; sampling as ComfyUI's Qwen-Image template: ModelSamplingAuraFlow shift {QWEN_SHIFT}, 20 steps,
cfg 2.5 (Qwen-Image is not guidance-distilled: the negative prompt is used), euler + simple. *xt* mode
works but needs the memory of a backward pass through the 20B transformer: use x0. Memory: see
docs/families.md.
"""


def style_transfer_qwen_image(g: UIGraph) -> None:
    g.note(QWEN_INTRO + FAMILY_MODELS_NOTE.format(models=(
        f"- `models/diffusion_models/{QWEN_IMAGE_UNET}` ({QWEN_HF}/diffusion_models)\n"
        f"- `models/text_encoders/{QWEN_IMAGE_TEXT_ENCODER}` ({QWEN_HF}/text_encoders)\n"
        f"- `models/vae/{QWEN_IMAGE_VAE}` ({QWEN_HF}/vae)\n"
        f"- `models/vae_approx/{LIGHTTAEW2_1}` (lightx2v/Autoencoders; VAELoader lists it as is)\n"))
        + LOSS_TIPS, 0, height=660)
    n = {}
    unet = g.add("UNETLoader", 0, unet_name=QWEN_IMAGE_UNET, weight_dtype="default")[0]
    n["clip"] = g.add("CLIPLoader", 0, clip_name=QWEN_IMAGE_TEXT_ENCODER, type="qwen_image", device="default")[0]
    n["content"] = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    n["style"] = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    n["vgg"] = g.add("StyleGuidanceVGGLoader", 0, vgg_name=VGG_FILE)
    n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    model = g.add("ModelSamplingAuraFlow", 1, model=unet, shift=QWEN_SHIFT)[0]
    vae = g.add("VAELoader", 1, title="Qwen-Image VAE", vae_name=QWEN_IMAGE_VAE)[0]
    tae = g.add("VAELoader", 1, title="Guidance decoder (lighttaew2_1)", vae_name=LIGHTTAEW2_1)[0]
    pos = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=n["clip"])[0]
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt", text="", clip=n["clip"])[0]
    scaled_content(g, n, QWEN_SIZE)
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=vae)[0]
    losses = all_losses(g, n)
    out = g.add("StyleGuidanceSampler", 3, model=model, positive=pos, negative=neg, latent_image=latent, vae=tae,
                losses=losses, seed=42, steps=20, cfg=2.5, sampler_name="euler", scheduler="simple", denoise=0.75,
                mode="x0", scale=0.3, start_percent=0.0, end_percent=0.7, loss_resolution=384)[0]
    finish(g, out, vae, losses, "qwen_image")
