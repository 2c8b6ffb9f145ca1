"""Two styles in one picture, each under its own feathered mask."""

from __future__ import annotations

from headless.workflow import UIGraph

from .common import MODELS_NOTE, PROMPT, SD15_CKPT, finish, loaders, scaled_content
from .layout import arrange

SIZE = 512
FEATHER = 96


def style_transfer_regions(g: UIGraph) -> None:
    note = g.note("# Regions: two styles in one picture\n"
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
    n = loaders(g, SD15_CKPT, PROMPT, open_clip=False)  # Gram alone scores a region's style
    taesd = g.add("VAELoader", 1, title="Guidance decoder (TAESD)", vae_name="taesd")
    scaled_content(g, n, SIZE)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=n["ckpt"][2])
    right_style = g.add("ImageInvert", 1, title="Right style (the sample inverted: load your own)",
                        image=n["style"][0])
    blank = g.add("SolidMask", 1, title="Empty mask", value=0.0, width=SIZE, height=SIZE)
    half = g.add("SolidMask", 1, title="Left half", value=1.0, width=SIZE // 2, height=SIZE)
    hard = g.add("MaskComposite", 1, destination=blank[0], source=half[0], x=0, y=0, operation="add")
    left = g.add("FeatherMask", 1, title="Left region (feathered seam)", mask=hard[0], left=0, top=0,
                 right=FEATHER, bottom=0)
    right = g.add("InvertMask", 1, title="Right region", mask=left[0])

    mse = g.add("StyleGuidanceContentMSE", 2, content=n["scaled"][0], weight=1.0)
    vgg = g.add("StyleGuidanceVGGContent", 2, content=n["scaled"][0], vgg=n["vgg"][0], weight=1.0, losses=mse[0])
    gram_l = g.add("StyleGuidanceGramStyle", 2, title="Gram Style, left", style=n["style"][0], vgg=n["vgg"][0],
                   weight=1.5, losses=vgg[0], mask=left[0])
    gram_r = g.add("StyleGuidanceGramStyle", 2, title="Gram Style, right", style=right_style[0], vgg=n["vgg"][0],
                   weight=1.5, mask=right[0])
    combine = g.add("StyleGuidanceCombine", 3, losses_a=gram_l[0], losses_b=gram_r[0])
    losses = combine[0]
    sampler = g.add("StyleGuidanceSampler", 3, title="Guided sampler", model=n["model"], positive=n["pos"][0],
                    negative=n["neg"][0], latent_image=encode[0], vae=taesd[0], losses=losses, seed=42, steps=20,
                    cfg=7.0, sampler_name="euler", scheduler="normal", denoise=0.65, mode="x0", scale=0.4,
                    start_percent=0.0, end_percent=0.7, loss_resolution=256)
    out = finish(g, sampler[0], n["ckpt"][2], losses, "regions")
    model = [[n["ckpt"], taesd], [n["pos"], n["neg"], encode], [out["hop"]]]
    networks = [n["scaled"], n["vgg"], right_style, blank, half, hard, left, right]
    arrange(g, note, [n["content"], n["style"]], model, networks, [[mse, vgg, gram_l], [gram_r, combine]],
            [sampler, out["decode"]], [out["save"], out["measure"], out["preview"]], {out["measure"].id: 900.0})
