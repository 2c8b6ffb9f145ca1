"""One node per loss term. Each appends its term to an optional incoming chain."""

from __future__ import annotations

from ..losses import (
    CLIP_DISTANCES,
    DEFAULT_VGG_CONTENT_PRESET,
    DEFAULT_ZECON_PRESET,
    GRAM_STYLE_LAYERS,
    VGG_CONTENT_LAYER_PRESETS,
    ZECON_LAYER_PRESETS,
    CLIPStyleLoss,
    CombinedLoss,
    ContentMSELoss,
    GramStyleLoss,
    VGGContentLoss,
    ZeConLoss,
)
from ..losses.base import FIT_MODES
from ._api import io
from ._common import (
    CATEGORY,
    PAIRING_NOTE,
    GuidanceLossType,
    OpenCLIPType,
    VGGType,
    building,
    chain,
    chain_inputs,
    optional_mask,
    reference,
    weight_input,
)

GRAM_LAYER_PRESETS: dict[str, tuple[str, ...]] = {
    "relu1_1..relu5_1 (Gatys)": GRAM_STYLE_LAYERS,
    "relu1_1..relu3_1 (fine texture)": GRAM_STYLE_LAYERS[:3],
    "relu3_1..relu5_1 (coarse patterns)": GRAM_STYLE_LAYERS[2:],
}

FIT_TOOLTIP = ("How the content image meets the generated size when their aspect ratios differ: stretch (resize, "
               "distorting if the aspects differ) or center_crop (crop to the generated aspect, then resize).")


def _out() -> list:
    return [GuidanceLossType.Output(display_name="losses", tooltip="The chain so far; wire into a sampler or the next loss node.")]


def _content_input() -> io.Image.Input:
    return io.Image.Input("content", tooltip="The picture whose layout should survive." + PAIRING_NOTE)


def _style_input() -> io.Image.Input:
    return io.Image.Input("style", tooltip="The picture whose look should be taken (any size or aspect)." + PAIRING_NOTE)


class StyleGuidanceContentMSE(io.ComfyNode):
    """Pixel MSE to the content image: keeps colours and layout close to the original."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceContentMSE", display_name="Pixel MSE Content Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description="Mean squared pixel difference to the content image. Strong and literal: keeps colours too.",
            inputs=[_content_input(), weight_input(1.0, "closer to the content pixels, less room for style"),
                    io.Combo.Input("fit", options=list(FIT_MODES), default="stretch", tooltip=FIT_TOOLTIP),
                    *chain_inputs("content")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, content, weight: float, fit: str, losses: CombinedLoss | None = None, mask=None) -> io.NodeOutput:
        with building():
            term = ContentMSELoss(reference(content, "content"), weight=weight, mask=optional_mask(mask), fit=fit)
        return io.NodeOutput(chain(losses, term))


class StyleGuidanceVGGContent(io.ComfyNode):
    """VGG feature MSE to the content image: keeps structure, lets colours and texture change."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceVGGContent", display_name="VGG Content Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description="MSE between VGG19 feature maps of the content and generated images (Gatys-style content loss).",
            inputs=[_content_input(), VGGType.Input("vgg", tooltip="From 'Load VGG19'. Share one loader between VGG losses."),
                    weight_input(1.0, "more of the content's structure kept"),
                    io.Combo.Input("layers", options=list(VGG_CONTENT_LAYER_PRESETS), default=DEFAULT_VGG_CONTENT_PRESET,
                                   tooltip="Which VGG layers define 'content': deeper (relu4_2) keeps objects and layout, shallower keeps edges."),
                    io.Combo.Input("fit", options=list(FIT_MODES), default="stretch", tooltip=FIT_TOOLTIP),
                    *chain_inputs("content")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, content, vgg, weight: float, layers: str, fit: str, losses=None, mask=None) -> io.NodeOutput:
        with building():
            term = VGGContentLoss(reference(content, "content"), vgg, VGG_CONTENT_LAYER_PRESETS[layers],
                                  weight=weight, mask=optional_mask(mask), fit=fit)
        return io.NodeOutput(chain(losses, term))


class StyleGuidanceZeCon(io.ComfyNode):
    """ZeCon patch-wise contrastive content loss: same place should match, other places should not."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceZeCon", display_name="ZeCon Content Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description=("ZeCon / CUT PatchNCE on VGG19 features: each generated patch must resemble the content patch at "
                         "the same place more than any other sampled patch. Keeps structure while allowing strong restyling."),
            inputs=[_content_input(), VGGType.Input("vgg", tooltip="From 'Load VGG19'. Share one loader between VGG losses."),
                    weight_input(1.0, "structure follows the content more closely"),
                    io.Combo.Input("layers", options=list(ZECON_LAYER_PRESETS), default=DEFAULT_ZECON_PRESET,
                                   tooltip="VGG layers whose patches are contrasted; mid layers carry local structure."),
                    io.Int.Input("num_patches", default=256, min=2, max=4096,
                                 tooltip="Locations sampled per layer (positives + negatives). More: steadier, slower."),
                    io.Float.Input("tau", default=0.07, min=0.001, max=10.0, step=0.005,
                                   tooltip="Temperature of the contrast; lower punishes confusable patches harder (0.07 as in CUT/ZeCon)."),
                    io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                                 tooltip="Seed for the sampled locations (reseeded from the sampling seed each run: repeatable)."),
                    io.Combo.Input("fit", options=list(FIT_MODES), default="stretch", tooltip=FIT_TOOLTIP),
                    *chain_inputs("content")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, content, vgg, weight: float, layers: str, num_patches: int, tau: float, seed: int, fit: str,
                losses=None, mask=None) -> io.NodeOutput:
        with building():
            term = ZeConLoss(reference(content, "content"), vgg, ZECON_LAYER_PRESETS[layers], num_patches=num_patches,
                             tau=tau, weight=weight, mask=optional_mask(mask), seed=seed, fit=fit)
        return io.NodeOutput(chain(losses, term))


class StyleGuidanceCLIPStyle(io.ComfyNode):
    """CLIP image-image distance to the style image, averaged over random cutouts."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceCLIPStyle", display_name="CLIP Style Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description=("Distance between CLIP embeddings of the style image and cutouts of the generated image. Captures "
                         "the overall look; it also pulls in some of the style image's content and is weak on colour (add Gram)."),
            inputs=[_style_input(),
                    weight_input(1.0, "the picture looks more like the style image overall"),
                    OpenCLIPType.Input("open_clip", optional=True, tooltip="From 'Load open_clip'. Connect this or clip_vision."),
                    io.ClipVision.Input("clip_vision", optional=True,
                                        tooltip="From the core 'Load CLIP Vision' (CLIP ViT-L/H/G, SigLIP). Connect this or open_clip."),
                    io.Int.Input("num_cutouts", default=8, min=0, max=64,
                                 tooltip="Random crops of the generated image scored per step (0 = whole image once). More: fewer adversarial artefacts, slower."),
                    io.Float.Input("cut_min", default=0.5, min=0.05, max=1.0, step=0.05,
                                   tooltip="Smallest cutout, as a fraction of the image's shorter side."),
                    io.Combo.Input("distance", options=list(CLIP_DISTANCES), default=CLIP_DISTANCES[0],
                                   tooltip="spherical: squared great-circle distance (CLIP-guided diffusion); cosine: 1 - cos."),
                    io.Boolean.Input("flip", default=True, tooltip="Randomly mirror cutouts (augmentation against adversarial gradients)."),
                    io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False, tooltip="Seed for the cutouts (reseeded per run: repeatable)."),
                    *chain_inputs("style")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, style, weight: float, num_cutouts: int, cut_min: float, distance: str, flip: bool, seed: int,
                open_clip=None, clip_vision=None, losses=None, mask=None) -> io.NodeOutput:
        if (open_clip is None) == (clip_vision is None):
            raise ValueError("CLIP style: connect exactly one CLIP model, either open_clip (Load open_clip) or "
                             "clip_vision (core Load CLIP Vision).")
        if open_clip is not None:
            encoder = open_clip
        else:
            from ..sampler.clip_vision import clip_vision_encoder

            encoder = clip_vision_encoder(clip_vision)
        with building():
            term = CLIPStyleLoss(reference(style, "style"), encoder, weight=weight, mask=optional_mask(mask),
                                 num_cutouts=num_cutouts, cut_min=cut_min, distance=distance, flip=flip, seed=seed)
        return io.NodeOutput(chain(losses, term))


class StyleGuidanceGramStyle(io.ComfyNode):
    """Gram-matrix (texture/colour statistics) distance to the style image on VGG19 features."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceGramStyle", display_name="Gram Style Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description="Gatys' style loss: matches VGG19 feature correlations (textures, brush strokes, colours) of the style image.",
            inputs=[_style_input(), VGGType.Input("vgg", tooltip="From 'Load VGG19'. Share one loader between VGG losses."),
                    weight_input(1.0, "stronger texture and colour of the style image"),
                    io.Combo.Input("layers", options=list(GRAM_LAYER_PRESETS), default=next(iter(GRAM_LAYER_PRESETS)),
                                   tooltip="Which VGG layers' statistics to match: early = fine texture/colour, deep = larger motifs."),
                    *chain_inputs("style")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, style, vgg, weight: float, layers: str, losses=None, mask=None) -> io.NodeOutput:
        with building():
            term = GramStyleLoss(reference(style, "style"), vgg, GRAM_LAYER_PRESETS[layers], weight=weight,
                                 mask=optional_mask(mask))
        return io.NodeOutput(chain(losses, term))


class StyleGuidanceCombine(io.ComfyNode):
    """Joins two loss chains (e.g. two masked styles) into one."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceCombine", display_name="Combine Losses (Style Guidance)", category=f"{CATEGORY}/losses",
            description="Merges two GUIDANCE_LOSS chains; terms keep their own weights and masks.",
            inputs=[GuidanceLossType.Input("losses_a", tooltip="First chain."),
                    GuidanceLossType.Input("losses_b", tooltip="Second chain.")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, losses_a: CombinedLoss, losses_b: CombinedLoss) -> io.NodeOutput:
        return io.NodeOutput(losses_a.merge(losses_b))


NODES = [StyleGuidanceContentMSE, StyleGuidanceVGGContent, StyleGuidanceZeCon, StyleGuidanceCLIPStyle,
         StyleGuidanceGramStyle, StyleGuidanceCombine]
