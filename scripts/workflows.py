"""The shipped workflows: write the editor files, generate their API twins, check the twins.

    .venv/bin/python scripts/workflows.py export   # workflows/api/<name>.json from workflows/<name>.json
    .venv/bin/python scripts/workflows.py check    # exit 1 if a twin is missing or stale
    .venv/bin/python scripts/workflows.py build    # rewrite the editor files from the definitions below, then export

The editor files (``workflows/*.json``) are what users open and what ComfyUI's template
browser lists. Edit them in the editor and run ``export``, or edit the definitions here and
run ``build``. The API twins are what "Export (API)" writes; they are generated here by
:func:`headless.workflow.ui_to_api` from ComfyUI's own node definitions, never by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # appended: ComfyUI's own top-level `nodes` must win

# Other families: the names ComfyUI's examples and the model pages use, under which tiny mode puts its stand-ins.
from headless.testbed.standins.names import CLIP_L, FLUX_UNET, FLUX_VAE, SD15_CANNY, SD35_CKPT, T5XXL  # noqa: E402
from headless.workflow import NodeDef, UIGraph, ui_to_api  # noqa: E402

WORKFLOWS = ROOT / "workflows"
API_DIR = WORKFLOWS / "api"

# Node-pack properties the editor records on each node of a saved workflow (what ComfyUI-Manager
# and the template browser read to say which pack, at which version, a node needs): the
# registry id and version of this pack (pyproject.toml), and "comfy-core" at the ComfyUI
# release the workflows are built and tested with.
PACK_ID = re.search(r'^name = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
PACK_VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
CORE_ID, CORE_VERSION = "comfy-core", "0.3.75"

# Model files, by the names the core loaders and their usual download pages use.
SD15_CKPT = "v1-5-pruned-emaonly.safetensors"
SDXL_CKPT = "sd_xl_base_1.0.safetensors"
SD_VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
VGG_FILE = "vgg19-dcbee923.pth"
OPEN_CLIP_FILE = "open_clip_vit_b_32_laion2b_s34b_b79k.safetensors"
LORA_FILE = "add_detail.safetensors"
CONTENT_IMAGE = "style_guidance_content.jpg"
STYLE_IMAGE = "style_guidance_style.jpg"

MODELS_NOTE = f"""
**Model files** (put them where ComfyUI looks):
- `models/checkpoints/{{ckpt}}`
- `models/vgg/{VGG_FILE}`: torchvision's VGG19 (download.pytorch.org/models/{VGG_FILE})
- `models/open_clip/{OPEN_CLIP_FILE}`: open_clip ViT-B-32 laion2b_s34b_b79k
  (hf.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K, `open_clip_model.safetensors`, renamed)
{{extra}}
**Images**: copy `workflows/images/*.jpg` of this pack into ComfyUI's `input/` folder, or
pick your own in the two Load Image nodes (content: what to keep; style: how it should look).

The headless runner does all of this for you:
`python -m headless <this file> --content a.png --style b.png --output out/`
"""

FAMILY_MODELS_NOTE = f"""
**Model files** (put them where ComfyUI looks):
{{models}}- `models/vgg/{VGG_FILE}`: torchvision's VGG19 (download.pytorch.org/models/{VGG_FILE})
- `models/open_clip/{OPEN_CLIP_FILE}`: open_clip ViT-B-32 laion2b_s34b_b79k
  (hf.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K, `open_clip_model.safetensors`, renamed)

**Images**: copy `workflows/images/*.jpg` of this pack into ComfyUI's `input/` folder, or
pick your own in the two Load Image nodes (content: what to keep; style: how it should look).

The headless runner does all of this for you:
`python -m headless <this file> --content a.png --style b.png --output out/`
"""

LOSS_TIPS = """
**What to change**
- *scale* on the sampler: how hard guidance pushes (a fraction of each denoising step; 0 = plain sampling).
- the *weight* on each loss node: its share of the guidance direction (weight / sum of the weights; each
  term's gradient is normalised on its own, so the shares hold whatever the loss's units). Shipped:
  MSE 1, VGG 1, ZeCon 1 (content: half), CLIP 1.5, Gram 1.5 (style: half). The *Loss terms* box shows each
  term's value, weight and measured share after a run.
- *denoise*: how much of the content image is re-drawn (lower keeps more content).
"""


def _loaders(g: UIGraph, ckpt: str, text: str, lora: str | None = None) -> dict:
    """Checkpoint (and LoRA), prompts, VGG, open_clip and the two images (columns 0-1)."""
    n = {}
    n["ckpt"] = g.add("CheckpointLoaderSimple", 0, ckpt_name=ckpt)
    n["model"], n["clip"] = n["ckpt"][0], n["ckpt"][1]
    if lora:
        n["lora"] = g.add("LoraLoader", 1, model=n["ckpt"][0], clip=n["ckpt"][1], lora_name=lora,
                          strength_model=0.6, strength_clip=0.6)
        n["model"], n["clip"] = n["lora"][0], n["lora"][1]
    n["content"] = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    n["style"] = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    n["vgg"] = g.add("StyleGuidanceVGGLoader", 0, vgg_name=VGG_FILE)
    n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    n["pos"] = g.add("CLIPTextEncode", 1, title="Positive prompt", text=text, clip=n["clip"])
    n["neg"] = g.add("CLIPTextEncode", 1, title="Negative prompt", text="blurry, low quality, watermark, text",
                     clip=n["clip"])
    return n


def _scaled_content(g: UIGraph, n: dict, size: int) -> None:
    n["scaled"] = g.add("ImageScale", 1, title="Content at generation size", image=n["content"][0],
                        upscale_method="lanczos", width=size, height=size, crop="center")


def _all_losses(g: UIGraph, n: dict, column: int = 2, weights: dict | None = None) -> tuple:
    """The five losses chained: content MSE, VGG content, ZeCon, CLIP style, Gram style."""
    w = {**SHIPPED_WEIGHTS, **(weights or {})}
    chain = g.add("StyleGuidanceContentMSE", column, content=n["scaled"][0], weight=w["mse"])[0]
    chain = g.add("StyleGuidanceVGGContent", column, content=n["scaled"][0], vgg=n["vgg"][0], weight=w["vgg"], losses=chain)[0]
    chain = g.add("StyleGuidanceZeCon", column, content=n["scaled"][0], vgg=n["vgg"][0], weight=w["zecon"], losses=chain)[0]
    chain = g.add("StyleGuidanceCLIPStyle", column, style=n["style"][0], open_clip=n["oclip"][0], weight=w["clip"],
                  num_cutouts=8, losses=chain)[0]
    return g.add("StyleGuidanceGramStyle", column, style=n["style"][0], vgg=n["vgg"][0], weight=w["gram"], losses=chain)[0]


def _finish(g: UIGraph, latent: tuple, vae: tuple, losses: tuple, prefix: str, column: int = 4) -> None:
    image = g.add("VAEDecode", column, samples=latent, vae=vae)[0]
    g.add("SaveImage", column, images=image, filename_prefix=f"style_guidance/{prefix}")
    scores = g.add("StyleGuidanceMeasure", column, title="Loss terms of the result", image=image, losses=losses, seed=0)
    g.add("PreviewAny", column, title="Loss values", source=scores[0])


PROMPT = "an oil painting, rich colours, visible brush strokes"
# Every workflow's weights: shares of the guidance direction (weight / 6), content half (MSE, VGG,
# ZeCon, 1/6 each) and style half (CLIP, Gram, 1/4 each: semantics and colour/texture evenly).
SHIPPED_WEIGHTS = {"mse": 1.0, "vgg": 1.0, "zecon": 1.0, "clip": 1.5, "gram": 1.5}


def _style_transfer(g: UIGraph, intro: str, ckpt: str, extra_models: str, decoder: str, size: int,
                    prefix: str, **sampler: object) -> None:
    """Content image encoded, guided by all five losses, decoded, saved and scored.

    ``decoder``: a VAE file name (that VAE then also encodes and decodes the result) or a
    TAESD name (guidance only; the checkpoint's VAE encodes and decodes).
    """
    g.note(intro + MODELS_NOTE.format(ckpt=ckpt, extra=extra_models) + LOSS_TIPS, 0, height=520)
    n = _loaders(g, ckpt, PROMPT)
    if decoder.startswith("taesd"):
        guide_vae = g.add("VAELoader", 1, title=f"Guidance decoder ({decoder.upper()})", vae_name=decoder)[0]
        io_vae = n["ckpt"][2]
    else:
        guide_vae = io_vae = g.add("VAELoader", 1, vae_name=decoder)[0]
    _scaled_content(g, n, size)
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=io_vae)[0]
    losses = _all_losses(g, n)
    out = g.add("StyleGuidanceSampler", 3, model=n["model"], positive=n["pos"][0], negative=n["neg"][0],
                latent_image=latent, vae=guide_vae, losses=losses, seed=42, **sampler)[0]
    _finish(g, out, io_vae, losses, prefix)


def style_transfer_sd15(g: UIGraph) -> None:
    _style_transfer(
        g, "# Style transfer, SD1.5, full quality\n"
        "The content image is encoded and partly re-noised (*denoise* 0.6); while it is denoised again, "
        "each step is nudged along the gradient of five losses measured on the decoded image. "
        "Guidance runs in *xt* mode (FreeDoM-style: the gradient goes back through the UNet) and decodes "
        "with the full VAE, so it is the slowest and most faithful preset; see style_transfer_fast for speed.\n",
        SD15_CKPT, f"- `models/vae/{SD_VAE}`: the SD1.5 VAE (stabilityai/sd-vae-ft-mse-original)\n", SD_VAE, 512, "sd15",
        steps=30, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6, mode="xt", scale=0.3,
        start_percent=0.0, end_percent=0.8)


def style_transfer_fast(g: UIGraph) -> None:
    _style_transfer(
        g, "# Style transfer, SD1.5, fast preset\n"
        "Guidance decodes with TAESD (a tiny decoder) in *x0* mode (MPGD-style: no backward pass through the "
        "UNet), only during the first 70% of the steps, and scores the losses at 256 px. The checkpoint's own "
        "VAE still encodes the content and decodes the result.\n",
        SD15_CKPT, "- `models/vae_approx/taesd_encoder.safetensors` and `taesd_decoder.safetensors` (madebyollin/taesd)\n",
        "taesd", 512, "fast",
        steps=20, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6, mode="x0", scale=0.3,
        start_percent=0.0, end_percent=0.7, loss_resolution=256)


def style_transfer_sdxl(g: UIGraph) -> None:
    _style_transfer(
        g, "# Style transfer, SDXL at 1024 px\n"
        "Generation runs at 1024x1024 while the losses are scored at 384 px (*loss_resolution*), which keeps "
        "the VGG/CLIP cost and memory small. TAESDXL decodes for guidance in x0 mode.\n",
        SDXL_CKPT, "- `models/vae_approx/taesdxl_encoder.safetensors` and `taesdxl_decoder.safetensors` "
        "(madebyollin/taesdxl)\n", "taesdxl", 1024, "sdxl",
        steps=25, cfg=6.0, sampler_name="dpmpp_2m", scheduler="karras", denoise=0.65, mode="x0", scale=0.3,
        start_percent=0.0, end_percent=0.7, loss_resolution=384)


def style_transfer_sd35(g: UIGraph) -> None:
    _style_transfer(
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
    g.note("# Style transfer, Flux.1 dev at 1024 px\n"
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
           + LOSS_TIPS, 0, height=620)
    n = {}
    n["model"] = g.add("UNETLoader", 0, unet_name=FLUX_UNET, weight_dtype="default")[0]
    n["clip"] = g.add("DualCLIPLoader", 0, clip_name1=CLIP_L, clip_name2=T5XXL, type="flux", device="default")[0]
    n["content"] = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    n["style"] = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    n["vgg"] = g.add("StyleGuidanceVGGLoader", 0, vgg_name=VGG_FILE)
    n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    ae = g.add("VAELoader", 1, title="Flux VAE", vae_name=FLUX_VAE)[0]
    taef1 = g.add("VAELoader", 1, title="Guidance decoder (TAEF1)", vae_name="taef1")[0]
    pos = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=n["clip"])[0]
    pos = g.add("FluxGuidance", 1, conditioning=pos, guidance=3.5)[0]
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt (unused at cfg 1)", text="", clip=n["clip"])[0]
    _scaled_content(g, n, 1024)
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=ae)[0]
    losses = _all_losses(g, n)
    out = g.add("StyleGuidanceSampler", 3, model=n["model"], positive=pos, negative=neg, latent_image=latent,
                vae=taef1, losses=losses, seed=42, steps=20, cfg=1.0, sampler_name="euler", scheduler="simple",
                denoise=0.75, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.7, loss_resolution=384)[0]
    _finish(g, out, ae, losses, "flux")


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
    n = _loaders(g, SD15_CKPT, PROMPT)
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")[0]
    _scaled_content(g, n, 512)
    edges = g.add("Canny", 1, title="Edges of the content (the layout)", image=n["scaled"][0], low_threshold=0.4,
                  high_threshold=0.8)[0]
    g.add("PreviewImage", 1, title="Canny edges", images=edges)
    cnet = g.add("ControlNetLoader", 1, control_net_name=SD15_CANNY)[0]
    cn = g.add("ControlNetApplyAdvanced", 2, positive=n["pos"][0], negative=n["neg"][0], control_net=cnet, image=edges,
               strength=0.8, start_percent=0.0, end_percent=1.0, vae=n["ckpt"][2])
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=n["ckpt"][2])[0]
    losses = _all_losses(g, n)
    out = g.add("StyleGuidanceSampler", 3, model=n["model"], positive=cn[0], negative=cn[1], latent_image=latent,
                vae=taesd, losses=losses, seed=42, steps=25, cfg=7.0, sampler_name="euler", scheduler="normal",
                denoise=0.85, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.7, loss_resolution=384)[0]
    _finish(g, out, n["ckpt"][2], losses, "controlnet")


def stock_ksampler_patch(g: UIGraph) -> None:
    g.note("# Guidance as a model patch, with the core KSampler and a LoRA\n"
           "*Apply Guidance to Model* patches the MODEL (after the LoRA here), so any sampler node takes it: the core "
           "KSampler below, or custom samplers. Other model patches (LoRA, FreeU, ControlNet on the conditioning) "
           "compose with it. This chain uses three losses: VGG content, CLIP style and Gram style.\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra=f"- `models/loras/{LORA_FILE}`: any SD1.5 LoRA (or delete the "
                                "LoRA node and wire the checkpoint's MODEL/CLIP straight through)\n")
           + LOSS_TIPS, 0, height=540)
    n = _loaders(g, SD15_CKPT, PROMPT, lora=LORA_FILE)
    _scaled_content(g, n, 512)
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=n["ckpt"][2])[0]
    chain = g.add("StyleGuidanceVGGContent", 2, content=n["scaled"][0], vgg=n["vgg"][0], weight=1.0)[0]
    chain = g.add("StyleGuidanceCLIPStyle", 2, style=n["style"][0], open_clip=n["oclip"][0], weight=1.5, losses=chain)[0]
    losses = g.add("StyleGuidanceGramStyle", 2, style=n["style"][0], vgg=n["vgg"][0], weight=1.5, losses=chain)[0]
    model = g.add("StyleGuidanceApply", 3, model=n["model"], vae=n["ckpt"][2], losses=losses, mode="x0", scale=0.3,
                  start_percent=0.0, end_percent=0.8, loss_resolution=384)[0]
    out = g.add("KSampler", 3, model=model, positive=n["pos"][0], negative=n["neg"][0], latent_image=latent,
                seed=42, steps=25, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6)[0]
    _finish(g, out, n["ckpt"][2], losses, "ksampler_patch")


def ablation_grid(g: UIGraph) -> None:
    g.note("# Ablation: each loss alone, then all five\n"
           "The same content/style pair, seed and settings, sampled six times: with content MSE, VGG content, "
           "ZeCon, CLIP style, Gram style alone, then all five combined. The results are saved as one batch "
           "(left to right in that order), and each is scored with all five losses by a *Measure Losses* node, "
           "so the numbers compare like with like; the *Loss values* boxes show them after a run.\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra="- `models/vae_approx/taesd_*.safetensors` (madebyollin/taesd)\n"),
           0, height=480)
    n = _loaders(g, SD15_CKPT, PROMPT)
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")[0]
    _scaled_content(g, n, 512)
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
  style). The *Loss terms* box shows each term's value, weight and measured share after a run.
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


DEFINITIONS: dict[str, Callable[[UIGraph], None]] = {
    "style_transfer_sd15": style_transfer_sd15,
    "style_transfer_fast": style_transfer_fast,
    "style_transfer_sdxl": style_transfer_sdxl,
    "style_transfer_sd35": style_transfer_sd35,
    "style_transfer_flux": style_transfer_flux,
    "style_transfer_controlnet": style_transfer_controlnet,
    "stock_ksampler_patch": stock_ksampler_patch,
    "ablation_grid": ablation_grid,
    "style_transfer_model_features": style_transfer_model_features,
}


def with_pack_properties(data: dict, defs: dict[str, NodeDef]) -> dict:
    """Add ``cnr_id``/``ver`` to every node that comes from a node pack (frontend-only nodes, e.g. Note, get none)."""
    for node in data["nodes"]:
        if node["type"].startswith("StyleGuidance"):
            pack = {"cnr_id": PACK_ID, "ver": PACK_VERSION}
        elif node["type"] in defs:
            pack = {"cnr_id": CORE_ID, "ver": CORE_VERSION}
        else:
            continue
        node["properties"] = {**pack, **node["properties"]}
    return data


# This pack's node names end in "(Style Guidance)": its nodes are drawn wider so the editor
# shows the whole name, and the columns are spaced for them.
COLUMN_WIDTH, PACK_NODE_WIDTH = 420, 370


def widen_pack_nodes(data: dict) -> dict:
    for node in data["nodes"]:
        if node["type"].startswith("StyleGuidance"):
            node["size"] = [max(node["size"][0], PACK_NODE_WIDTH), node["size"][1]]
    return data


def build(name: str, defs: dict[str, NodeDef]) -> str:
    """The editor file text of one definition."""
    g = UIGraph(defs)
    g.COLUMN_WIDTH = COLUMN_WIDTH
    DEFINITIONS[name](g)
    return render(widen_pack_nodes(with_pack_properties(g.to_json(), defs)))


def ui_files() -> list[Path]:
    """The editor-format workflows shipped in ``workflows/``."""
    return sorted(p for p in WORKFLOWS.glob("*.json"))


def twin_path(ui_file: Path) -> Path:
    return API_DIR / ui_file.name


def render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def export(defs: dict[str, NodeDef]) -> dict[Path, str]:
    """The API twin text of every shipped editor file."""
    return {twin_path(f): render(ui_to_api(json.loads(f.read_text()), defs)) for f in ui_files()}


def stale_twins(defs: dict[str, NodeDef]) -> list[str]:
    """Twins that are missing or differ from what :func:`export` generates now."""
    problems = [f"{p.relative_to(ROOT)} is out of date" for p, text in export(defs).items()
                if not p.is_file() or p.read_text() != text]
    expected = {twin_path(f) for f in ui_files()}
    problems += [f"{p.relative_to(ROOT)} has no editor file" for p in API_DIR.glob("*.json") if p not in expected]
    return problems


def load_defs() -> dict[str, NodeDef]:
    """Node definitions from a real ComfyUI with this pack loaded (in this process)."""
    from headless.locate import locate_comfyui
    from headless.testbed import base as hc
    from headless.workflow import defs_in_process

    base = hc.make_base(Path(tempfile.mkdtemp(prefix="sg_workflows_")), standin_nodes=False)
    hc.configure_comfy(locate_comfyui(), base)
    hc.init_nodes()
    return defs_in_process()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["export", "check", "build"])
    args = ap.parse_args()
    defs = load_defs()
    if args.command == "build":
        for name in DEFINITIONS:
            (WORKFLOWS / f"{name}.json").write_text(build(name, defs))
            print(f"wrote workflows/{name}.json")
    if args.command in ("build", "export"):
        API_DIR.mkdir(exist_ok=True)
        for path, text in export(defs).items():
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    problems = stale_twins(defs)
    for p in problems:
        print(p)
    print("API twins are current" if not problems else "run: .venv/bin/python scripts/workflows.py export")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
