"""Two styles in one picture, each under its own feathered mask."""

from __future__ import annotations

from headless.workflow import UIGraph

from .common import MODELS_NOTE, PROMPT, SD15_CKPT, finish, loaders, scaled_content

SIZE = 512
FEATHER = 96


def style_transfer_regions(g: UIGraph) -> None:
    g.note("# Regions: two styles in one picture\n"
           "The left half of the picture is guided toward one style, the right half toward another. Each style "
           "term takes a *mask*: it is computed from, and acts on, the white part only. The masks are built with "
           "the core mask nodes: a *SolidMask* half pasted on an empty one (*MaskComposite*), softened across the "
           f"seam by *FeatherMask* ({FEATHER} px, so the styles blend there instead of meeting at a hard edge) and "
           "*InvertMask* for the other side. Any MASK works: a painted one (Load Image's alpha), a segmentation.\n\n"
           "The content terms act on the whole picture. *Combine Losses* joins the two style chains; every term "
           "keeps its own weight, mask and window. Measured on the stand-ins (tests/test_regions.py): each region "
           "moves toward its own style and away from the other, and swapping the masks reverses both.\n\n"
           "**Right style**: the sample style inverted stands in for a second picture here; load your own "
           "instead.\n"
           + MODELS_NOTE.format(ckpt=SD15_CKPT, extra="- `models/vae_approx/taesd_encoder.safetensors` and "
                                "`taesd_decoder.safetensors` (madebyollin/taesd)\n"),
           0, height=620)
    n = loaders(g, SD15_CKPT, PROMPT)
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")[0]
    scaled_content(g, n, SIZE)
    latent = g.add("VAEEncode", 1, pixels=n["scaled"][0], vae=n["ckpt"][2])[0]
    right_style = g.add("ImageInvert", 1, title="Right style (the sample inverted: load your own)",
                        image=n["style"][0])[0]
    blank = g.add("SolidMask", 1, title="Empty mask", value=0.0, width=SIZE, height=SIZE)[0]
    half = g.add("SolidMask", 1, title="Left half", value=1.0, width=SIZE // 2, height=SIZE)[0]
    hard = g.add("MaskComposite", 1, destination=blank, source=half, x=0, y=0, operation="add")[0]
    left = g.add("FeatherMask", 1, title="Left region (feathered seam)", mask=hard, left=0, top=0, right=FEATHER,
                 bottom=0)[0]
    right = g.add("InvertMask", 1, title="Right region", mask=left)[0]
    g.add("MaskPreview", 1, title="Left region", mask=left)

    content = g.add("StyleGuidanceContentMSE", 2, content=n["scaled"][0], weight=1.0)[0]
    content = g.add("StyleGuidanceVGGContent", 2, content=n["scaled"][0], vgg=n["vgg"][0], weight=1.0,
                    losses=content)[0]
    chain = g.add("StyleGuidanceCLIPStyle", 2, title="CLIP Style, left", style=n["style"][0],
                  open_clip=n["oclip"][0], weight=1.0, num_cutouts=8, losses=content, mask=left)[0]
    left_chain = g.add("StyleGuidanceGramStyle", 2, title="Gram Style, left", style=n["style"][0], vgg=n["vgg"][0],
                       weight=1.5, losses=chain, mask=left)[0]
    chain = g.add("StyleGuidanceCLIPStyle", 2, title="CLIP Style, right", style=right_style,
                  open_clip=n["oclip"][0], weight=1.0, num_cutouts=8, mask=right)[0]
    right_chain = g.add("StyleGuidanceGramStyle", 2, title="Gram Style, right", style=right_style, vgg=n["vgg"][0],
                        weight=1.5, losses=chain, mask=right)[0]
    losses = g.add("StyleGuidanceCombine", 3, losses_a=left_chain, losses_b=right_chain)[0]
    out = g.add("StyleGuidanceSampler", 3, model=n["model"], positive=n["pos"][0], negative=n["neg"][0],
                latent_image=latent, vae=taesd, losses=losses, seed=42, steps=20, cfg=7.0, sampler_name="euler",
                scheduler="normal", denoise=0.65, mode="x0", scale=0.4, start_percent=0.0, end_percent=0.7,
                loss_resolution=256)[0]
    finish(g, out, n["ckpt"][2], losses, "regions")
