"""What the template browser shows of each shipped workflow: order, title, one-line description.

ComfyUI's editor (frontend 1.32 in ComfyUI 0.3.75, 1.35 in 0.8.0) lists a pack's templates by
file name only: the card's title and description are the file name (``_`` shown as spaces), its
picture ``workflows/<name>.jpg``, its category the pack's folder name, its order the server's
directory listing. So the title, the description and the "start here" mark are drawn on the
card's picture (``scripts/gen_pictures.py``); ``web/js/templates.js`` puts the cards in this
order and names the category (``web/templates.json``, written by ``scripts/workflows.py build``).
"""

from __future__ import annotations

CATEGORY = {"en": "Style Guidance", "zh-TW": "風格引導"}  # the category's name in each language
STARTER = "style_transfer_fast"

# name: (title, one-line description); the first is the starter.
TEMPLATES: dict[str, tuple[str, str]] = {
    "style_transfer_fast": ("Start here: style transfer, SD1.5 fast",
                            "Repaint a photo in a style picture's look; the quickest preset"),
    "style_transfer_sd15": ("Style transfer, SD1.5 full quality",
                            "Guidance through the UNet and the full VAE: slowest, most faithful"),
    "style_transfer_sdxl": ("Style transfer, SDXL 1024 px", "SDXL with losses scored at 384 px"),
    "style_transfer_sd35": ("Style transfer, SD3.5 medium", "Flow transformer, TAESD3 for guidance"),
    "style_transfer_flux": ("Style transfer, Flux.1 dev", "cfg 1 + FluxGuidance, TAEF1 for guidance"),
    "style_transfer_qwen_image": ("Style transfer, Qwen-Image", "1328 px, Wan 2.1's tiny decoder for guidance"),
    "style_transfer_z_image_turbo": ("Style transfer, Z-Image Turbo", "8 steps, every one of them guided"),
    "style_transfer_flux2": ("Style transfer, Flux.2 dev", "Guider + SamplerCustomAdvanced, the Flux.2 VAE"),
    "style_transfer_wan": ("Video style transfer, Wan 2.1", "A clip restyled frame by frame, steadied over time"),
    "style_transfer_controlnet": ("Style transfer + ControlNet", "Canny edges keep the layout at denoise 0.85"),
    "stock_ksampler_patch": ("Guidance as a model patch", "Any sampler, here the core KSampler and a LoRA"),
    "style_transfer_model_features": ("Style transfer, checkpoint only",
                                      "No VGG or CLIP: losses on the model's own features"),
    "style_transfer_model_features_flux": ("Style transfer, Flux.1 dev alone",
                                           "No VGG or CLIP: Flux's own blocks, from the inversion"),
    "style_transfer_model_features_qwen_image": ("Style transfer, Qwen-Image alone",
                                                 "No VGG or CLIP: Qwen-Image's own blocks, from the inversion"),
    "style_transfer_regions": ("Regions: two styles in one picture",
                               "One style on the left, another on the right, a soft seam"),
    "ablation_content_terms": ("Ablation: content losses", "Each content loss alone, side by side, scored"),
    "ablation_style_terms": ("Ablation: style losses", "Each style loss alone, side by side, scored"),
}


def index() -> dict:
    """``web/templates.json``: the order and the category name the editor extension applies."""
    return {"category": CATEGORY, "starter": STARTER,
            "order": list(TEMPLATES),
            "templates": {name: {"title": t, "description": d} for name, (t, d) in TEMPLATES.items()}}
