"""The workflows that show one feature each: ControlNet, the stock KSampler patch, the ablation grid, model features."""

from __future__ import annotations

from headless.testbed.standins.names import SD15_CANNY
from headless.workflow import UIGraph

from .common import (
    CONTENT_IMAGE,
    LORA_FILE,
    LOSS_TIPS,
    MODELS_NOTE,
    PROMPT,
    SD15_CKPT,
    STYLE_IMAGE,
    all_losses,
    finish,
    loaders,
    scaled_content,
)


def style_transfer_controlnet(g: UIGraph) -> None:
    g.note("# Style transfer, SD1.5 with a canny ControlNet keeping the layout\n"
           "The content image's edges (core *Canny* node) drive a ControlNet on both conditionings, so the "
           "sampler can re-draw more of the picture (*denoise* 0.85) while the layout stays. Guidance decodes "
           "with TAESD in *x0* mode during the first 70% of the steps. LoRA, FreeU and the other model patches "
           "compose with it; so does *Apply Style Guidance* with the stock KSampler.\n\n"
           "**What to change for the layout**: ControlNet *strength* (0.8) and its *end_percent*; Canny's "
           "thresholds (lower: more edges kept).\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra=(
               f"- `models/controlnet/{SD15_CANNY}` (comfyanonymous/ControlNet-v1-1_fp16_safetensors)\n"
               "- `models/vae_approx/taesd_encoder.safetensors` and `taesd_decoder.safetensors` (madebyollin/taesd)\n"))
           + LOSS_TIPS, 0, height=600)
    n = loaders(g, SD15_CKPT, PROMPT)
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")[0]
    scaled_content(g, n, 512)
    edges = g.add("Canny", 1, title="Edges of the content (the layout)", image=n["scaled"][0], low_threshold=0.4,
                  high_threshold=0.8)[0]
    g.add("PreviewImage", 1, title="Canny edges", images=edges)
    cnet = g.add("ControlNetLoader", 1, control_net_name=SD15_CANNY)[0]
    cn = g.add("ControlNetApplyAdvanced", 2, positive=n["pos"][0], negative=n["neg"][0], control_net=cnet, image=edges,
               strength=0.8, start_percent=0.0, end_percent=1.0, vae=n["ckpt"][2])
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=n["ckpt"][2])[0]
    losses = all_losses(g, n)
    out = g.add("StyleGuidanceSampler", 3, model=n["model"], positive=cn[0], negative=cn[1], latent_image=latent,
                vae=taesd, losses=losses, seed=42, steps=25, cfg=7.0, sampler_name="euler", scheduler="normal",
                denoise=0.85, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.7, loss_resolution=384)[0]
    finish(g, out, n["ckpt"][2], losses, "controlnet")


def stock_ksampler_patch(g: UIGraph) -> None:
    g.note("# Guidance as a model patch, with the core KSampler and a LoRA\n"
           "*Apply Guidance to Model* patches the MODEL (after the LoRA here), so any sampler node takes it: the core "
           "KSampler below, or custom samplers. Other model patches (LoRA, FreeU, ControlNet on the conditioning) "
           "compose with it. This chain uses three losses: VGG content, CLIP style and Gram style.\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra=f"- `models/loras/{LORA_FILE}`: any SD1.5 LoRA (or delete the "
                                "LoRA node and wire the checkpoint's MODEL/CLIP straight through)\n")
           + LOSS_TIPS, 0, height=540)
    n = loaders(g, SD15_CKPT, PROMPT, lora=LORA_FILE)
    scaled_content(g, n, 512)
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=n["ckpt"][2])[0]
    chain = g.add("StyleGuidanceVGGContent", 2, content=n["scaled"][0], vgg=n["vgg"][0], weight=1.0)[0]
    chain = g.add("StyleGuidanceCLIPStyle", 2, style=n["style"][0], open_clip=n["oclip"][0], weight=1.5, losses=chain)[0]
    losses = g.add("StyleGuidanceGramStyle", 2, style=n["style"][0], vgg=n["vgg"][0], weight=1.5, losses=chain)[0]
    model = g.add("StyleGuidanceApply", 3, model=n["model"], vae=n["ckpt"][2], losses=losses, mode="x0", scale=0.3,
                  start_percent=0.0, end_percent=0.8, loss_resolution=384)[0]
    out = g.add("KSampler", 3, model=model, positive=n["pos"][0], negative=n["neg"][0], latent_image=latent,
                seed=42, steps=25, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6)[0]
    finish(g, out, n["ckpt"][2], losses, "ksampler_patch")


def ablation_grid(g: UIGraph) -> None:
    g.note("# Ablation: each loss alone, then all five\n"
           "The same content/style pair, seed and settings, sampled six times: with Pixel MSE, VGG content, "
           "VGG PatchNCE, CLIP style, Gram style alone, then all five combined. The results are saved as one batch "
           "(left to right in that order), and each is scored with all five losses by a *Measure Losses* node, "
           "so the numbers compare like with like; after a run each *Scores* node shows them on itself.\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra="- `models/vae_approx/taesd_*.safetensors` (madebyollin/taesd)\n"),
           0, height=480)
    n = loaders(g, SD15_CKPT, PROMPT)
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")[0]
    scaled_content(g, n, 512)
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=n["ckpt"][2])[0]
    singles = [
        g.add("StyleGuidanceContentMSE", 2, content=n["scaled"][0], weight=1.0)[0],
        g.add("StyleGuidanceVGGContent", 2, content=n["scaled"][0], vgg=n["vgg"][0], weight=1.0)[0],
        g.add("StyleGuidanceZeCon", 2, content=n["scaled"][0], vgg=n["vgg"][0], weight=1.0)[0],
        g.add("StyleGuidanceCLIPStyle", 2, style=n["style"][0], open_clip=n["oclip"][0], weight=1.5)[0],
        g.add("StyleGuidanceGramStyle", 2, style=n["style"][0], vgg=n["vgg"][0], weight=1.5)[0],
    ]
    everything = singles[0]
    for other in singles[1:]:
        everything = g.add("StyleGuidanceCombine", 3, losses_a=everything, losses_b=other)[0]
    images = []
    for i, chain in enumerate([*singles, everything]):
        out = g.add("StyleGuidanceSampler", 4 + i // 3, model=n["model"], positive=n["pos"][0], negative=n["neg"][0],
                    latent_image=latent, vae=taesd, losses=chain, seed=42, steps=20, cfg=7.0, sampler_name="euler",
                    scheduler="normal", denoise=0.6, mode="x0", scale=0.5, start_percent=0.0, end_percent=0.7,
                    loss_resolution=256)[0]
        image = g.add("VAEDecode", 6, samples=out, vae=n["ckpt"][2])[0]
        scores = g.add("StyleGuidanceMeasure", 7, title=f"Scores of result {i + 1}", image=image, losses=everything,
                       seed=0)
        g.add("PreviewAny", 7, title=f"Loss values of result {i + 1}", source=scores[0])
        images.append(image)
    grid = images[0]
    for image in images[1:]:
        grid = g.add("ImageBatch", 8, image1=grid, image2=image)[0]
    g.add("SaveImage", 8, title="All six results", images=grid, filename_prefix="style_guidance/ablation")


MODEL_FEATURES_NOTE = """# Style transfer with the checkpoint alone
No VGG, no open_clip, no CLIP vision file: both losses read the diffusion model's own features.
- **ZeCon Content Loss** keeps the layout: patches of the result, seen by the UNet's
  encoder at its lowest noise level, must match the content's at the same place (ZeCon, AAAI 2023).
- **Attention Distillation Style Loss** takes the look: at the UNet's last self-attention layers the
  result's attention is pulled toward what it gets attending to the style image (CVPR 2025).
- **Invert Latent** starts sampling from an inversion of the content (DDIM/ODE inversion with the
  same model and schedule) instead of fresh noise, so the layout survives a high *denoise*.
  Its *steps*, *scheduler* and *denoise* must match the sampler's: the sampler takes the
  inverted *noise* and the *sigmas* from it.

**Cost per guided step** (x0 mode): ZeCon runs the UNet's encoder forward+backward on the result;
Attention Distillation one UNet forward on the style plus one forward+backward on the result.
No decoder is involved in guidance.

**Model file** (put it where ComfyUI looks):
- `models/checkpoints/{ckpt}` (any SD1.x/SD2.x/SDXL checkpoint; SD3/Flux are refused)

**Images**: copy `workflows/images/*.jpg` of this pack into ComfyUI's `input/` folder, or
pick your own in the two Load Image nodes (content: what to keep; style: how it should look).

**What to change**
- *scale* on the guider: how hard guidance pushes (0 = plain sampling from the inversion).
- the *weight* on each loss node: its share of the guidance direction (here 1 and 1: half content, half
  style). After a run the *Loss terms of the result* node shows each term's value, weight and measured share
  on itself.
- *denoise* on Invert Latent: how much is re-drawn (with an inversion start, high values still keep the layout).
"""


def style_transfer_model_features(g: UIGraph) -> None:
    g.note(MODEL_FEATURES_NOTE.format(ckpt=SD15_CKPT), 0, height=560)
    ckpt = g.add("CheckpointLoaderSimple", 0, ckpt_name=SD15_CKPT)
    content = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    style = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    pos = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=ckpt[1])
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt", text="blurry, low quality, watermark, text", clip=ckpt[1])
    scaled = g.add("ImageScale", 1, title="Content at generation size", image=content[0], upscale_method="lanczos",
                   width=512, height=512, crop="center")
    style_scaled = g.add("ImageScale", 1, title="Style at 512 px (any size works; larger costs more)", image=style[0],
                         upscale_method="lanczos", width=512, height=512, crop="center")
    latent = g.add("VAEEncode", 1, pixels=scaled[0], vae=ckpt[2])[0]
    style_latent = g.add("VAEEncode", 1, pixels=style_scaled[0], vae=ckpt[2])[0]
    chain = g.add("StyleGuidanceModelZeCon", 2, content=latent, weight=1.0)[0]
    losses = g.add("StyleGuidanceAttentionDistillation", 2, style=style_latent, weight=1.0, losses=chain)[0]
    inv = g.add("StyleGuidanceInvert", 2, model=ckpt[0], positive=pos[0], negative=neg[0], latent=latent, steps=30,
                scheduler="normal", denoise=0.8, cfg=1.0)
    guider = g.add("StyleGuidanceGuider", 3, model=ckpt[0], positive=pos[0], negative=neg[0], cfg=5.0, vae=ckpt[2],
                   losses=losses, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.8)[0]
    sampler = g.add("KSamplerSelect", 3, sampler_name="euler")[0]
    out = g.add("SamplerCustomAdvanced", 3, noise=inv[0], guider=guider, sampler=sampler, sigmas=inv[2],
                latent_image=latent)[0]
    image = g.add("VAEDecode", 4, samples=out, vae=ckpt[2])[0]
    g.add("SaveImage", 4, images=image, filename_prefix="style_guidance/model_features")
    scores = g.add("StyleGuidanceMeasure", 4, title="Loss terms of the result", image=image, losses=losses, seed=0,
                   model=ckpt[0], positive=pos[0], latent=out)
    g.add("PreviewAny", 4, title="Loss values", source=scores[0])
