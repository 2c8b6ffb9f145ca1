"""Checkpoint-only style transfer on the DiTs: Flux.1 dev and Qwen-Image with the model's own features.

The DiT twins of ``features.style_transfer_model_features``: ZeCon and Attention Distillation on the
transformer's blocks (docs/model_features.md, "DiTs"), sampling from the content's inversion, no VGG,
open_clip, CLIP vision or tiny-decoder file. Loaders, model files and sampling settings as the family
workflows (``families.style_transfer_flux``, ``dits.style_transfer_qwen_image``).
"""

from __future__ import annotations

from headless.testbed.standins.names import (
    CLIP_L,
    FLUX_UNET,
    FLUX_VAE,
    QWEN_IMAGE_TEXT_ENCODER,
    QWEN_IMAGE_UNET,
    QWEN_IMAGE_VAE,
    T5XXL,
)
from headless.workflow import UIGraph, UINode

from .common import CONTENT_IMAGE, PROMPT, STYLE_IMAGE
from .dits import QWEN_HF, QWEN_SHIFT
from .layout import arrange, reroute

# The DiT presets docs/model_features.md recommends: ZeCon on the first third (layout; the pass stops
# there), AD on every block of the last third (the paper's late self-attentions carried over).
ZECON_PRESET = "early blocks (DiT: 2 blocks of the first third; cheapest)"
AD_PRESET = "late blocks (DiT: every block of the last third)"
DENOISE = 0.8  # as the SD1.5 checkpoint-only workflow: an inversion start keeps the layout at high denoise

IMAGES_NOTE = """
**Images**: the two sample pictures are in ComfyUI's `input/` folder (the pack copies them there
when it loads); pick your own in the two Load Image nodes (content: what to keep; style: how it
should look).

The headless runner does all of this for you:
`python -m headless <this file> --content a.png --style b.png --output out/`
"""

CHANGE_NOTE = """
**What to change**
- *scale* on the guider: how hard guidance pushes (0 = plain sampling from the inversion).
- the *weight* on each loss node: its share of the guidance direction (here 1 and 1: half content, half
  style). After a run the *Loss terms of the result* node shows each term's value, weight and measured share
  on itself.
- *denoise* on Invert Latent: how much is re-drawn (with an inversion start, high values still keep the layout).
- *layers* on the two loss nodes: fewer or earlier blocks cost less memory and time (see Memory).
"""

FLUX_NOTE = f"""# Style transfer with Flux.1 dev alone (model features), 1024 px
No VGG, no open_clip, no CLIP vision file, no tiny decoder: both losses read Flux's own transformer.
- **ZeCon Content Loss** (*early blocks (DiT)*) keeps the layout: the image tokens of double blocks 9
  and 18, seen at the lowest noise level, must match the content's at the same place; the pass
  stops after double block 18 (a third of the model).
- **Attention Distillation Style Loss** (*late blocks (DiT)*, the paper's late layers carried over)
  takes the look: in every block of the last third (single blocks 19-37) the result's image queries
  attend to the style's image keys and values, and the result's own attention is pulled toward that.
- **Invert Latent** starts sampling from an ODE inversion of the content (same model, FluxGuidance
  and schedule) instead of fresh noise, so the layout survives a high *denoise*. Its *steps*,
  *scheduler* and *denoise* must match the sampler's: the sampler takes the inverted *noise* and
  the *sigmas* from it.

**Sampling** as style_transfer_flux: cfg 1 (Flux dev is guidance-distilled: no negative pass),
FluxGuidance 3.5, euler + simple, 20 steps, denoise {DENOISE}; *x0* mode, scale 0.3, window 0-0.8
(*xt* would need a backward through the 12B transformer). The guider's VAE is the Flux VAE (`ae`):
no decoder runs for guidance (every term reads the model's features); it encodes the content and
the style and decodes the result.

**Cost per guided step** (x0; a plain evaluation = 1): ZeCon one forward+backward through a third of
the depth (about 1), AD one no-grad pass on the style plus one forward+backward through the whole
depth (about 4): about 6x a plain step.

**Memory** (activations a grad pass keeps, bf16, batch 1, beside the weights; docs/model_features.md):
both loss nodes have *recompute* on: the blocks before those AD reads keep only their inputs and run
again in the backward (the same result, for about one more forward of them). At 1024 px AD on the
late blocks then keeps about 11 GB on Flux.1 (29 GB with recompute off), ZeCon's early blocks about
1 GB (10 GB off); the terms run one after the other, so AD sets the peak. To need less: AD *early
blocks (DiT)* (about 10 GB: every block it reads keeps its activations), or generate at 512 px
(about a third).

**Model files** (put them where ComfyUI looks):
- `models/diffusion_models/{FLUX_UNET}` (black-forest-labs/FLUX.1-dev)
- `models/text_encoders/{CLIP_L}` and `models/text_encoders/{T5XXL}` (comfyanonymous/flux_text_encoders)
- `models/vae/{FLUX_VAE}`: the Flux VAE (black-forest-labs/FLUX.1-dev)
"""

QWEN_SIZE = 1024
QWEN_NOTE = f"""# Style transfer with Qwen-Image alone (model features), {QWEN_SIZE} px
No VGG, no open_clip, no CLIP vision file, no tiny decoder: both losses read Qwen-Image's own
transformer (60 joint blocks; its latents are Wan 2.1's, one frame, handled as one picture).
- **ZeCon Content Loss** (*early blocks (DiT)*) keeps the layout: the image tokens of blocks 9 and
  19, seen at the lowest noise level, must match the content's at the same place; the pass stops
  after block 19 (a third of the model).
- **Attention Distillation Style Loss** (*late blocks (DiT)*, the paper's late layers carried over)
  takes the look: in every block of the last third (blocks 40-59) the result's image queries attend
  to the style's image keys and values, and the result's own attention is pulled toward that.
- **Invert Latent** starts sampling from an ODE inversion of the content (same model and schedule)
  instead of fresh noise, so the layout survives a high *denoise*. Its *steps*, *scheduler* and
  *denoise* must match the sampler's: the sampler takes the inverted *noise* and the *sigmas* from it.

**Sampling** as style_transfer_qwen_image: ModelSamplingAuraFlow shift {QWEN_SHIFT}, cfg 2.5 (not
guidance-distilled: the negative prompt is used; the inversion runs at cfg 1), euler + simple, 20
steps, denoise {DENOISE}; *x0* mode, scale 0.3, window 0-0.8 (*xt* would need a backward through the 20B
transformer). {QWEN_SIZE} px rather than the template's 1328: the grad passes' memory grows with the
picture's tokens. The guider's VAE is the Qwen-Image VAE: no decoder runs for guidance (every term
reads the model's features); it encodes the content and the style and decodes the result.

**Cost per guided step** (x0; a plain evaluation with its negative pass = 2): ZeCon one
forward+backward through a third of the depth (about 1), AD one no-grad pass on the style plus one
forward+backward through the whole depth (about 4): about 3.5x a plain step.

**Memory** (activations a grad pass keeps, bf16, batch 1, beside the weights; docs/model_features.md):
both loss nodes have *recompute* on: the blocks before those AD reads keep only their inputs and run
again in the backward (the same result, for about one more forward of them). At 1024 px AD on the
late blocks then keeps about 10 GB on Qwen-Image (25 GB with recompute off), ZeCon's early blocks
about 1 GB (8 GB off); the terms run one after the other, so AD sets the peak; at 1328 px about 1.7
times that. To need less: AD *early blocks (DiT)* (about 8 GB at 1024 px: every block it reads keeps
its activations), or generate at 512 px (about a third).

**Model files** (put them where ComfyUI looks):
- `models/diffusion_models/{QWEN_IMAGE_UNET}` ({QWEN_HF}/diffusion_models)
- `models/text_encoders/{QWEN_IMAGE_TEXT_ENCODER}` ({QWEN_HF}/text_encoders; CLIPLoader type qwen_image)
- `models/vae/{QWEN_IMAGE_VAE}` ({QWEN_HF}/vae)
"""


def _checkpoint_only(g: UIGraph, note: UINode, loaders: list[UINode], model: tuple, vae: tuple,
                     prompts: list[UINode], pos: tuple, neg: tuple, size: int, cfg: float, prefix: str) -> None:
    """Images, the two latents, ZeCon + AD, the inversion, the guider and its sampler, the scores."""
    content = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    style = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    scaled = g.add("ImageScale", 1, title="Content at generation size", image=content[0], upscale_method="lanczos",
                   width=size, height=size, crop="center")
    style_scaled = g.add("ImageScale", 1, title="Style at 512 px (any size works; larger costs more)", image=style[0],
                         upscale_method="lanczos", width=512, height=512, crop="center")
    latent = g.add("VAEEncode", 1, title="Content latent", pixels=scaled[0], vae=vae)
    style_latent = g.add("VAEEncode", 1, title="Style latent", pixels=style_scaled[0], vae=vae)
    zecon = g.add("StyleGuidanceModelZeCon", 2, content=latent[0], layers=ZECON_PRESET, weight=1.0, recompute=True)
    attention = g.add("StyleGuidanceAttentionDistillation", 2, style=style_latent[0], layers=AD_PRESET, weight=1.0,
                      losses=zecon[0], recompute=True)
    losses = attention[0]
    inv = g.add("StyleGuidanceInvert", 2, title="Invert the content (the start)", model=model, positive=pos,
                negative=neg, latent=latent[0], steps=20, scheduler="simple", denoise=DENOISE, cfg=1.0)
    guider = g.add("StyleGuidanceGuider", 3, model=model, positive=pos, negative=neg, cfg=cfg, vae=vae,
                   losses=losses, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.8)
    select = g.add("KSamplerSelect", 3, sampler_name="euler")
    custom = g.add("SamplerCustomAdvanced", 3, noise=inv[0], guider=guider[0], sampler=select[0], sigmas=inv[2],
                   latent_image=latent[0])
    hop = reroute(g, vae)
    decode = g.add("VAEDecode", 4, samples=custom[0], vae=hop[0])
    save = g.add("SaveImage", 4, title="Result", images=decode[0], filename_prefix=f"style_guidance/{prefix}")
    model_hop, pos_hop = reroute(g, model), reroute(g, pos)  # to the scores, above the sampling column
    scores = g.add("StyleGuidanceMeasure", 4, title="Loss terms of the result", image=decode[0], losses=losses, seed=0,
                   model=model_hop[0], positive=pos_hop[0], latent=custom[0])
    shown = g.add("PreviewAny", 4, title="Loss values", source=scores[0])
    arrange(g, note, [content, style], [loaders, prompts, [hop, select]], [scaled, style_scaled],
            [[latent, style_latent], [zecon, inv, attention]], [model_hop, pos_hop, guider, custom, decode],
            [save, scores, shown], {scores.id: 1000.0})


def style_transfer_model_features_flux(g: UIGraph) -> None:
    note = g.note(FLUX_NOTE + IMAGES_NOTE + CHANGE_NOTE, 0, height=560)
    unet = g.add("UNETLoader", 0, unet_name=FLUX_UNET, weight_dtype="default")
    clip = g.add("DualCLIPLoader", 0, clip_name1=CLIP_L, clip_name2=T5XXL, type="flux", device="default")
    ae = g.add("VAELoader", 1, title="Flux VAE", vae_name=FLUX_VAE)
    text = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=clip[0])
    pos = g.add("FluxGuidance", 1, conditioning=text[0], guidance=3.5)
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt (unused at cfg 1)", text="", clip=clip[0])
    _checkpoint_only(g, note, [unet, clip, ae], unet[0], ae[0], [text, pos, neg], pos[0], neg[0], 1024, 1.0,
                     "model_features_flux")


def style_transfer_model_features_qwen_image(g: UIGraph) -> None:
    note = g.note(QWEN_NOTE + IMAGES_NOTE + CHANGE_NOTE, 0, height=560)
    unet = g.add("UNETLoader", 0, unet_name=QWEN_IMAGE_UNET, weight_dtype="default")
    clip = g.add("CLIPLoader", 0, clip_name=QWEN_IMAGE_TEXT_ENCODER, type="qwen_image", device="default")
    vae = g.add("VAELoader", 1, title="Qwen-Image VAE", vae_name=QWEN_IMAGE_VAE)
    model = g.add("ModelSamplingAuraFlow", 1, model=unet[0], shift=QWEN_SHIFT)
    pos = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=clip[0])
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt", text="", clip=clip[0])
    _checkpoint_only(g, note, [unet, clip, vae], model[0], vae[0], [model, pos, neg], pos[0], neg[0], QWEN_SIZE,
                     2.5, "model_features_qwen_image")
