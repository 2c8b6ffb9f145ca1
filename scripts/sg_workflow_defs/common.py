"""What the shipped workflow definitions share: model file names, the notes, the loader and loss columns."""

from __future__ import annotations

from headless.workflow import UIGraph, UINode

from .layout import arrange, reroute

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
**Images**: the two sample pictures are in ComfyUI's `input/` folder (the pack copies them there
when it loads); pick your own in the two Load Image nodes (content: what to keep; style: how it
should look).

The headless runner does all of this for you:
`python -m headless <this file> --content a.png --style b.png --output out/`
"""

FAMILY_MODELS_NOTE = f"""
**Model files** (put them where ComfyUI looks):
{{models}}- `models/vgg/{VGG_FILE}`: torchvision's VGG19 (download.pytorch.org/models/{VGG_FILE})
- `models/open_clip/{OPEN_CLIP_FILE}`: open_clip ViT-B-32 laion2b_s34b_b79k
  (hf.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K, `open_clip_model.safetensors`, renamed)

**Images**: the two sample pictures are in ComfyUI's `input/` folder (the pack copies them there
when it loads); pick your own in the two Load Image nodes (content: what to keep; style: how it
should look).

The headless runner does all of this for you:
`python -m headless <this file> --content a.png --style b.png --output out/`
"""

LOSS_TIPS = """
**What to change**
- *scale* on the sampler: how hard guidance pushes (a fraction of each denoising step; 0 = plain sampling).
- the *weight* on each loss node: its share of the guidance direction (weight / sum of the weights; each
  term's gradient is normalised on its own, so the shares hold whatever the loss's units). Shipped:
  Pixel MSE 1, VGG 1, VGG PatchNCE 1 (content: half), CLIP 1.5, Gram 1.5 (style: half). After a run the
  *Loss terms of the result* node shows each term's value, weight and measured share on itself.
- *denoise*: how much of the content image is re-drawn (lower keeps more content).
"""


def loaders(g: UIGraph, ckpt: str, text: str, lora: str | None = None, open_clip: bool = True) -> dict:
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
    if open_clip:
        n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    n["pos"] = g.add("CLIPTextEncode", 1, title="Positive prompt", text=text, clip=n["clip"])
    n["neg"] = g.add("CLIPTextEncode", 1, title="Negative prompt", text="blurry, low quality, watermark, text",
                     clip=n["clip"])
    return n


def scaled_content(g: UIGraph, n: dict, size: int) -> None:
    n["scaled"] = g.add("ImageScale", 1, title="Content at generation size", image=n["content"][0],
                        upscale_method="lanczos", width=size, height=size, crop="center")


def all_losses(g: UIGraph, n: dict, column: int = 2, weights: dict | None = None) -> tuple:
    """The five losses chained: Pixel MSE content, VGG content, VGG PatchNCE content, CLIP style, Gram style.

    ``n["content_losses"]`` and ``n["style_losses"]`` get the nodes (the layout's two loss columns).
    """
    w = {**SHIPPED_WEIGHTS, **(weights or {})}
    mse = g.add("StyleGuidanceContentMSE", column, content=n["scaled"][0], weight=w["mse"])
    vgg = g.add("StyleGuidanceVGGContent", column, content=n["scaled"][0], vgg=n["vgg"][0], weight=w["vgg"], losses=mse[0])
    zecon = g.add("StyleGuidanceZeCon", column, content=n["scaled"][0], vgg=n["vgg"][0], weight=w["zecon"], losses=vgg[0])
    clip = g.add("StyleGuidanceCLIPStyle", column, style=n["style"][0], open_clip=n["oclip"][0], weight=w["clip"],
                 num_cutouts=8, losses=zecon[0])
    gram = g.add("StyleGuidanceGramStyle", column, style=n["style"][0], vgg=n["vgg"][0], weight=w["gram"], losses=clip[0])
    n["content_losses"], n["style_losses"] = [mse, vgg, zecon], [clip, gram]
    return gram[0]


def finish(g: UIGraph, latent: tuple, vae: tuple, losses: tuple, prefix: str, column: int = 4) -> dict[str, UINode]:
    """Decode, save, score and show the scores; returns the nodes by role.

    The decoder's VAE comes through a Reroute (``"hop"``), which the layout puts at the top
    right of the model band: its link then runs in a gap, not behind the loss terms.
    """
    hop = reroute(g, vae)
    decode = g.add("VAEDecode", column, samples=latent, vae=hop[0])
    save = g.add("SaveImage", column, title="Result", images=decode[0], filename_prefix=f"style_guidance/{prefix}")
    scores = g.add("StyleGuidanceMeasure", column, title="Loss terms of the result", image=decode[0], losses=losses,
                   seed=0)
    shown = g.add("PreviewAny", column, title="Loss values", source=scores[0])
    return {"decode": decode, "save": save, "measure": scores, "preview": shown, "hop": hop}


def standard_layout(g: UIGraph, note: UINode, n: dict, model: list[list], sampling: list, out: dict) -> None:
    """:func:`layout.arrange` for the workflows built from :func:`loaders`, :func:`all_losses` and :func:`finish`.

    ``model``: up to three columns of the model band; the decoder's VAE hop (``out["hop"]``) heads
    the third, the decoder sits under the sampling nodes, and the scores start low enough (y 900)
    for the loss chain's link to pass under the sampling column.
    """
    model = [*model, [], []][:3]
    model[2] = [out["hop"], *model[2]]
    arrange(g, note, [n["content"], n["style"]], model, [n["scaled"], n["vgg"], n["oclip"]],
            [n["content_losses"], n["style_losses"]], [*sampling, out["decode"]],
            [out["save"], out["measure"], out["preview"]], {out["measure"].id: 900.0})


PROMPT = "an oil painting, rich colours, visible brush strokes"
# Every workflow's weights: shares of the guidance direction (weight / 6), content half (MSE, VGG,
# VGG PatchNCE, 1/6 each) and style half (CLIP, Gram, 1/4 each: semantics and colour/texture evenly).
SHIPPED_WEIGHTS = {"mse": 1.0, "vgg": 1.0, "zecon": 1.0, "clip": 1.5, "gram": 1.5}


def style_transfer(g: UIGraph, intro: str, ckpt: str, extra_models: str, decoder: str, size: int,
                    prefix: str, **sampler: object) -> None:
    """Content image encoded, guided by all five losses, decoded, saved and scored.

    ``decoder``: a VAE file name (that VAE then also encodes and decodes the result) or a
    TAESD name (guidance only; the checkpoint's VAE encodes and decodes).
    """
    note = g.note(intro + MODELS_NOTE.format(ckpt=ckpt, extra=extra_models) + LOSS_TIPS, 0, height=560)
    n = loaders(g, ckpt, PROMPT)
    if decoder.startswith("taesd"):
        guide_vae = g.add("VAELoader", 1, title=f"Guidance decoder ({decoder.upper()})", vae_name=decoder)[0]
        io_vae = n["ckpt"][2]
    else:
        guide_vae = io_vae = g.add("VAELoader", 1, title="VAE (also the guidance decoder)", vae_name=decoder)[0]
    scaled_content(g, n, size)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=io_vae)
    losses = all_losses(g, n)
    sampler_node = g.add("StyleGuidanceSampler", 3, title="Guided sampler", model=n["model"], positive=n["pos"][0],
                         negative=n["neg"][0], latent_image=encode[0], vae=guide_vae, losses=losses, seed=42, **sampler)
    out = finish(g, sampler_node[0], io_vae, losses, prefix)
    standard_layout(g, note, n, [[n["ckpt"], n.get("lora"), guide_vae[0]], [n["pos"], n["neg"], encode]],
                    [sampler_node], out)
