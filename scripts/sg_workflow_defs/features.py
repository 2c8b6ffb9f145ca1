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
    standard_layout,
)
from .layout import arrange, arrange_variants, reroute


def style_transfer_controlnet(g: UIGraph) -> None:
    note = g.note("# Style transfer, SD1.5 with a canny ControlNet keeping the layout\n"
           "The content image's edges (core *Canny* node) drive a ControlNet on both conditionings, so the "
           "sampler can re-draw more of the picture (*denoise* 0.85) while the layout stays. Guidance decodes "
           "with TAESD in *x0* mode during the first 70% of the steps. LoRA, FreeU and the other model patches "
           "compose with it; so does *Apply Style Guidance* with the stock KSampler.\n\n"
           "**What to change for the layout**: ControlNet *strength* (0.8) and its *end_percent*; Canny's "
           "thresholds (lower: more edges kept).\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra=(
               f"- `models/controlnet/{SD15_CANNY}` (comfyanonymous/ControlNet-v1-1_fp16_safetensors)\n"
               "- `models/vae_approx/taesd_encoder.safetensors` and `taesd_decoder.safetensors` (madebyollin/taesd)\n"))
           + LOSS_TIPS, 0, height=560)
    n = loaders(g, SD15_CKPT, PROMPT)
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")
    scaled_content(g, n, 512)
    edges = g.add("Canny", 1, title="Edges of the content (the layout)", image=n["scaled"][0], low_threshold=0.4,
                  high_threshold=0.8)
    shown = g.add("PreviewImage", 1, title="Canny edges", images=edges[0])
    shown.size = [320, 200]  # a glance at the edges; a full-size preview would push the loss band off a fit view
    cnet = g.add("ControlNetLoader", 1, control_net_name=SD15_CANNY)
    cn = g.add("ControlNetApplyAdvanced", 2, positive=n["pos"][0], negative=n["neg"][0], control_net=cnet[0],
               image=edges[0], strength=0.8, start_percent=0.0, end_percent=1.0, vae=n["ckpt"][2])
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=n["ckpt"][2])
    losses = all_losses(g, n)
    sampler = g.add("StyleGuidanceSampler", 3, title="Guided sampler", model=n["model"], positive=cn[0],
                    negative=cn[1], latent_image=encode[0], vae=taesd[0], losses=losses, seed=42, steps=25, cfg=7.0,
                    sampler_name="euler", scheduler="normal", denoise=0.85, mode="x0", scale=0.3, start_percent=0.0,
                    end_percent=0.7, loss_resolution=384)
    out = finish(g, sampler[0], n["ckpt"][2], losses, "controlnet")
    standard_layout(g, note, n, [[n["ckpt"], taesd, cnet], [n["pos"], n["neg"], edges, encode], [cn, shown]],
                    [sampler], out)


def stock_ksampler_patch(g: UIGraph) -> None:
    note = g.note("# Guidance as a model patch, with the core KSampler and a LoRA\n"
           "*Apply Guidance to Model* patches the MODEL (after the LoRA here), so any sampler node takes it: the core "
           "KSampler below, or custom samplers. Other model patches (LoRA, FreeU, ControlNet on the conditioning) "
           "compose with it. This chain uses three losses: VGG content, CLIP style and Gram style.\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra=f"- `models/loras/{LORA_FILE}`: any SD1.5 LoRA (or delete the "
                                "LoRA node and wire the checkpoint's MODEL/CLIP straight through)\n")
           + LOSS_TIPS, 0, height=560)
    n = loaders(g, SD15_CKPT, PROMPT, lora=LORA_FILE)
    scaled_content(g, n, 512)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=n["ckpt"][2])
    vgg = g.add("StyleGuidanceVGGContent", 2, content=n["scaled"][0], vgg=n["vgg"][0], weight=1.0)
    clip = g.add("StyleGuidanceCLIPStyle", 2, style=n["style"][0], open_clip=n["oclip"][0], weight=1.5, losses=vgg[0])
    gram = g.add("StyleGuidanceGramStyle", 2, style=n["style"][0], vgg=n["vgg"][0], weight=1.5, losses=clip[0])
    losses = gram[0]
    apply = g.add("StyleGuidanceApply", 3, model=n["model"], vae=n["ckpt"][2], losses=losses, mode="x0", scale=0.3,
                  start_percent=0.0, end_percent=0.8, loss_resolution=384)
    ksampler = g.add("KSampler", 3, title="KSampler (core), guided by the patch", model=apply[0], positive=n["pos"][0],
                     negative=n["neg"][0], latent_image=encode[0], seed=42, steps=25, cfg=7.0, sampler_name="euler",
                     scheduler="normal", denoise=0.6)
    out = finish(g, ksampler[0], n["ckpt"][2], losses, "ksampler_patch")
    n["content_losses"], n["style_losses"] = [vgg], [clip, gram]
    # the patch sits with the model it patches: the latent's link to the KSampler then stays above the losses
    standard_layout(g, note, n, [[n["ckpt"], n["lora"]], [n["pos"], n["neg"], encode], [apply]], [ksampler], out)


ABLATION_NOTE = """# Ablation: each {kind} loss alone
The same content/style pair, seed and settings, sampled once per loss term with that term alone
(one column each, left to right: {terms}). Each result is saved and scored with all {count} {kind}
terms by a *Measure Losses* node, so the numbers compare like with like; the *Scores* boxes show
them after a run. The {other} terms have their own ablation workflow (ablation_{other}_terms);
all five together: style_transfer_sd15 or style_transfer_fast.
"""

# Ablation settings, shared by every sampler of both ablation workflows.
ABLATION_SAMPLER = dict(seed=42, steps=20, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.6, mode="x0",
                        scale=0.5, start_percent=0.0, end_percent=0.7, loss_resolution=256)


def _ablation(g: UIGraph, kind: str, other: str, singles: list[tuple[str, str, dict]]) -> None:
    """One sampler per loss term, each alone; ``singles``: (term title, node type, inputs by name)."""
    note = g.note(ABLATION_NOTE.format(kind=kind, other=other, count=len(singles),
                                       terms=", ".join(t for t, _k, _v in singles))
                  + MODELS_NOTE.format(ckpt=SD15_CKPT, extra="- `models/vae_approx/taesd_*.safetensors` (madebyollin/taesd)\n"),
                  0, height=560)
    uses_clip = any(k == "StyleGuidanceCLIPStyle" for _t, k, _v in singles)
    n = loaders(g, SD15_CKPT, PROMPT, open_clip=uses_clip)  # an unused loader would only be clutter
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")
    scaled_content(g, n, 512)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=n["ckpt"][2])
    sources = {"content": n["scaled"][0], "style": n["style"][0], "vgg": n["vgg"][0]}
    if uses_clip:
        sources["open_clip"] = n["oclip"][0]
    terms = [g.add(kind_, 2, title=f"{title} (alone)", **{k: sources.get(v, v) for k, v in values.items()})
             for title, kind_, values in singles]
    # one Combine takes up to three chains: every term, for the scores
    every = g.add("StyleGuidanceCombine", 2, title=f"All {kind} terms (for the scores)",
                  **{f"losses_{slot}": t[0] for slot, t in zip("abc", terms, strict=False)})
    combines = [every]
    hop = reroute(g, n["ckpt"][2])  # the decoders' VAE, along the model band's edge
    variants = []
    for (title, _kind, _values), term in zip(singles, terms, strict=True):
        sampler = g.add("StyleGuidanceSampler", 3, title=f"Sampler: {title} only", model=n["model"],
                        positive=n["pos"][0], negative=n["neg"][0], latent_image=encode[0], vae=taesd[0],
                        losses=term[0], **ABLATION_SAMPLER)
        decode = g.add("VAEDecode", 3, title=f"Decode: {title} only", samples=sampler[0], vae=hop[0])
        save = g.add("SaveImage", 3, title=f"Result: {title} only", images=decode[0],
                     filename_prefix=f"style_guidance/ablation_{title.lower().replace(' ', '_')}")
        save.size = [320, 250]
        scores = g.add("StyleGuidanceMeasure", 3, title=f"Scores of '{title} only'", image=decode[0], losses=every[0],
                       seed=0)
        shown = g.add("PreviewAny", 3, title=f"Scores: {title} only", source=scores[0])
        shown.size = [320, 150]
        variants.append([sampler, decode, save, scores, shown])
    networks = [n["scaled"], n["vgg"], n.get("oclip")]
    arrange_variants(g, note, [n["content"], n["style"]], [[n["ckpt"], taesd, encode], [n["pos"], n["neg"], hop]],
                     networks, [*terms, *combines], variants)


def ablation_content_terms(g: UIGraph) -> None:
    _ablation(g, "content", "style", [
        ("Pixel MSE", "StyleGuidanceContentMSE", {"content": "content", "weight": 1.0}),
        ("VGG content", "StyleGuidanceVGGContent", {"content": "content", "vgg": "vgg", "weight": 1.0}),
        ("VGG PatchNCE", "StyleGuidanceZeCon", {"content": "content", "vgg": "vgg", "weight": 1.0}),
    ])


def ablation_style_terms(g: UIGraph) -> None:
    _ablation(g, "style", "content", [
        ("CLIP style", "StyleGuidanceCLIPStyle", {"style": "style", "open_clip": "open_clip", "weight": 1.5}),
        ("Gram style", "StyleGuidanceGramStyle", {"style": "style", "vgg": "vgg", "weight": 1.5}),
    ])


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

**Images**: the two sample pictures are in ComfyUI's `input/` folder (the pack copies them there
when it loads); pick your own in the two Load Image nodes (content: what to keep; style: how it
should look).

**What to change**
- *scale* on the guider: how hard guidance pushes (0 = plain sampling from the inversion).
- the *weight* on each loss node: its share of the guidance direction (here 1 and 1: half content, half
  style). After a run the *Loss terms of the result* node shows each term's value, weight and measured share
  on itself.
- *denoise* on Invert Latent: how much is re-drawn (with an inversion start, high values still keep the layout).
"""


def style_transfer_model_features(g: UIGraph) -> None:
    note = g.note(MODEL_FEATURES_NOTE.format(ckpt=SD15_CKPT), 0, height=560)
    ckpt = g.add("CheckpointLoaderSimple", 0, ckpt_name=SD15_CKPT)
    content = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    style = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    pos = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=ckpt[1])
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt", text="blurry, low quality, watermark, text", clip=ckpt[1])
    scaled = g.add("ImageScale", 1, title="Content at generation size", image=content[0], upscale_method="lanczos",
                   width=512, height=512, crop="center")
    style_scaled = g.add("ImageScale", 1, title="Style at 512 px (any size works; larger costs more)", image=style[0],
                         upscale_method="lanczos", width=512, height=512, crop="center")
    latent = g.add("VAEEncode", 1, title="Content latent", pixels=scaled[0], vae=ckpt[2])
    style_latent = g.add("VAEEncode", 1, title="Style latent", pixels=style_scaled[0], vae=ckpt[2])
    zecon = g.add("StyleGuidanceModelZeCon", 2, content=latent[0], weight=1.0)
    attention = g.add("StyleGuidanceAttentionDistillation", 2, style=style_latent[0], weight=1.0, losses=zecon[0])
    losses = attention[0]
    inv = g.add("StyleGuidanceInvert", 2, title="Invert the content (the start)", model=ckpt[0], positive=pos[0],
                negative=neg[0], latent=latent[0], steps=30, scheduler="normal", denoise=0.8, cfg=1.0)
    guider = g.add("StyleGuidanceGuider", 3, model=ckpt[0], positive=pos[0], negative=neg[0], cfg=5.0, vae=ckpt[2],
                   losses=losses, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.8)
    select = g.add("KSamplerSelect", 3, sampler_name="euler")
    custom = g.add("SamplerCustomAdvanced", 3, noise=inv[0], guider=guider[0], sampler=select[0], sigmas=inv[2],
                   latent_image=latent[0])
    hop = reroute(g, ckpt[2])
    decode = g.add("VAEDecode", 4, samples=custom[0], vae=hop[0])
    save = g.add("SaveImage", 4, title="Result", images=decode[0], filename_prefix="style_guidance/model_features")
    model_hop, pos_hop = reroute(g, ckpt[0]), reroute(g, pos[0])  # to the scores, above the sampling column
    scores = g.add("StyleGuidanceMeasure", 4, title="Loss terms of the result", image=decode[0], losses=losses, seed=0,
                   model=model_hop[0], positive=pos_hop[0], latent=custom[0])
    shown = g.add("PreviewAny", 4, title="Loss values", source=scores[0])
    arrange(g, note, [content, style], [[ckpt], [pos, neg], [hop, select]], [scaled, style_scaled],
            [[latent, style_latent], [zecon, inv, attention]], [model_hop, pos_hop, guider, custom, decode],
            [save, scores, shown], {scores.id: 1000.0})
