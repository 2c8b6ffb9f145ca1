"""One node per loss term. Each appends its term to an optional incoming chain."""

from __future__ import annotations

from ..losses import (
    CLIP_DISTANCES,
    DEFAULT_VGG_CONTENT_PRESET,
    DEFAULT_ZECON_PRESET,
    GRAM_STYLE_LAYERS,
    VGG_CONTENT_LAYER_PRESETS,
    ZECON_LAYER_PRESETS,
    ZECON_PRESET_ALIASES,
    CLIPStyleLoss,
    CombinedLoss,
    ContentMSELoss,
    GramStyleLoss,
    RangeLoss,
    TemporalConsistencyLoss,
    VGGContentLoss,
    ZeConLoss,
)
from ..losses.blend import STYLE_BATCH_MODES, parse_blend_weights
from ..losses.inputs import FIT_MODES
from ._api import io, optional_schema_args
from ._common import (
    CATEGORY,
    PAIRING_NOTE,
    GuidanceLossType,
    OpenCLIPType,
    VGGType,
    building,
    chain,
    chain_inputs,
    check_term_window,
    optional_mask,
    reference,
    resolve_alias,
    term_options,
    validated,
    weight_input,
)

GRAM_LAYER_PRESETS: dict[str, tuple[str, ...]] = {
    "relu1_1..relu5_1 (Gatys)": GRAM_STYLE_LAYERS,
    "relu1_1..relu3_1 (fine texture)": GRAM_STYLE_LAYERS[:3],
    "relu3_1..relu5_1 (coarse patterns)": GRAM_STYLE_LAYERS[2:],
}

# What the CLIP style term matches, as the node offers it (label -> CLIPStyleLoss target).
CLIP_TARGET_CHOICES: dict[str, str] = {
    "embedding (whole style image)": "embedding",
    "embedding (mean over style crops)": "crop_embedding",
    "token gram (early layers: style, not content)": "token_gram",
}

FIT_TOOLTIP = ("How the content image meets the generated size when their aspect ratios differ: stretch (resize, "
               "distorting if the aspects differ) or center_crop (crop to the generated aspect, then resize).")
STYLE_SIZE_TOOLTIP = ("Longer side (px) the style image is scaled to before its targets are computed (0 = as loaded). "
                      "Sets the scale of the texture relative to the network (smaller: coarser strokes) and keeps a "
                      "large photo cheap.")


def _out() -> list:
    return [GuidanceLossType.Output(display_name="losses", tooltip="The chain so far; wire into a sampler or the next loss node.")]


def _content_input() -> io.Image.Input:
    return io.Image.Input("content", tooltip="The picture whose layout should survive." + PAIRING_NOTE)


def _style_input() -> io.Image.Input:
    return io.Image.Input("style", tooltip="The picture whose look should be taken (any size or aspect)." + PAIRING_NOTE)


def _style_size_input() -> io.Int.Input:
    return io.Int.Input("style_size", default=512, min=0, max=4096, step=8, optional=True, tooltip=STYLE_SIZE_TOOLTIP)


def _blend_inputs() -> list:
    """How a batch of style images is used: paired by index, or blended into one target."""
    return [
        io.Combo.Input("style_batch", options=list(STYLE_BATCH_MODES), default=STYLE_BATCH_MODES[0], optional=True,
                       tooltip=("How a batch of several style images is used. pair: sample i follows style i mod R "
                                "(one style per sample). blend: every sample follows ONE target, the weighted mean of "
                                "the style images' targets (a mix of styles; weights in blend_weights).")),
        io.String.Input("blend_weights", default="", optional=True,
                        tooltip=("blend only: one weight per style image, in batch order, separated by commas "
                                 "(e.g. '1, 0.5': two thirds of the first style, one third of the second). Empty = "
                                 "equal. Each >= 0; to move away from a style, give it its own term with a negative "
                                 "weight. Can be linked from a node that outputs text.")),
    ]


def _check_style_term(values: dict) -> str | None:
    """Window, then the blend weights' text (their count is checked against the batch at execution)."""
    problem = check_term_window(values)
    if problem:
        return problem
    text = values.get("blend_weights")
    if isinstance(text, str) and text.strip():
        if values.get("style_batch", "pair") == "pair":
            return "blend_weights are used only with style_batch = blend; switch style_batch to blend or clear them"
        try:
            parse_blend_weights(text)
        except ValueError as e:
            return str(e)
    return None


_check = validated(check=check_term_window)
_check_style = validated(check=_check_style_term)


@_check
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
    def execute(cls, content, weight: float, fit: str, losses: CombinedLoss | None = None, mask=None,
                start_percent: float | None = None, end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None) -> io.NodeOutput:
        with building():
            term = ContentMSELoss(reference(content, "content"), weight=weight, mask=optional_mask(mask), fit=fit,
                                  **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


@_check
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
    def execute(cls, content, vgg, weight: float, layers: str, fit: str, losses=None, mask=None,
                start_percent: float | None = None, end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None) -> io.NodeOutput:
        with building():
            term = VGGContentLoss(reference(content, "content"), vgg, VGG_CONTENT_LAYER_PRESETS[layers],
                                  weight=weight, mask=optional_mask(mask), fit=fit,
                                  **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


@validated(check=check_term_window, aliases={"layers": ZECON_PRESET_ALIASES})
class StyleGuidanceZeCon(io.ComfyNode):
    """PatchNCE (CUT / ZeCon's patch-contrastive loss) on VGG19 features."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceZeCon", display_name="VGG PatchNCE Content Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description=("PatchNCE (CUT; the patch-wise contrastive loss ZeCon uses) on VGG19 features: each generated "
                         "patch must resemble the content patch at the same place more than any other sampled patch. "
                         "Keeps structure while allowing strong restyling. ZeCon itself takes these features from the "
                         "diffusion model: see 'ZeCon Content Loss', which needs no VGG file."),
            inputs=[_content_input(), VGGType.Input("vgg", tooltip="From 'Load VGG19'. Share one loader between VGG losses."),
                    weight_input(1.0, "structure follows the content more closely"),
                    io.Combo.Input("layers", options=list(ZECON_LAYER_PRESETS), default=DEFAULT_ZECON_PRESET,
                                   tooltip="VGG layers whose patches are contrasted; mid layers carry local structure, the early ones also colour."),
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
                losses=None, mask=None, start_percent: float | None = None,
                end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None) -> io.NodeOutput:
        preset = ZECON_LAYER_PRESETS[resolve_alias(layers, ZECON_PRESET_ALIASES)]
        with building():
            term = ZeConLoss(reference(content, "content"), vgg, preset, num_patches=num_patches,
                             tau=tau, weight=weight, mask=optional_mask(mask), seed=seed, fit=fit,
                             **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


@_check_style
class StyleGuidanceCLIPStyle(io.ComfyNode):
    """CLIP style term: embedding distance to the style image, or early-token Gram matrices."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            **optional_schema_args(search_aliases=["style transfer", "style loss", "clip guidance"]),
            node_id="StyleGuidanceCLIPStyle", display_name="CLIP Style Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description=("CLIP style term over cutouts of the generated image. The whole-image embedding captures the "
                         "overall look but also pulls in the style image's content and is weak on colour; the crop-mean "
                         "embedding and the early-token Gram carry style, not content."),
            inputs=[_style_input(),
                    weight_input(1.0, "the picture looks more like the style image overall"),
                    OpenCLIPType.Input("open_clip", optional=True, tooltip="From 'Load open_clip'. Connect this or clip_vision."),
                    io.ClipVision.Input("clip_vision", optional=True,
                                        tooltip="From the core 'Load CLIP Vision' (CLIP ViT-L/H/G, SigLIP). Connect this or open_clip."),
                    io.Int.Input("num_cutouts", default=8, min=0, max=64,
                                 tooltip="Random crops of the generated image scored per step (0 = whole image once). More: fewer adversarial artefacts, slower."),
                    io.Float.Input("cut_min", default=0.5, min=0.05, max=1.0, step=0.05,
                                   tooltip="Smallest cutout (and style crop), as a fraction of the image's shorter side."),
                    io.Combo.Input("distance", options=list(CLIP_DISTANCES), default=CLIP_DISTANCES[0],
                                   tooltip="spherical: squared great-circle distance (CLIP-guided diffusion); cosine: 1 - cos. Embedding targets only."),
                    io.Boolean.Input("flip", default=True, tooltip="Randomly mirror cutouts (augmentation against adversarial gradients)."),
                    io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False, tooltip="Seed for the cutouts (reseeded per run: repeatable)."),
                    io.Combo.Input("target", options=list(CLIP_TARGET_CHOICES), default=next(iter(CLIP_TARGET_CHOICES)),
                                   optional=True,
                                   tooltip=("What of the style image to match. whole image: its global embedding (also drags "
                                            "its objects in). mean over style crops: the embedding averaged over 16 crops, so "
                                            "objects average out and texture/palette remain. token gram: Gram matrices of the "
                                            "patch tokens after the first gram_layers layers (FreeDoM/MPGD), colour and "
                                            "texture without content; cheaper, as only those layers run.")),
                    io.Int.Input("gram_layers", default=3, min=1, max=48, optional=True,
                                 tooltip="token gram only: transformer layers run before the tokens are taken (early: colour and fine texture)."),
                    _style_size_input(),
                    *chain_inputs("style"), *_blend_inputs()],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, style, weight: float, num_cutouts: int, cut_min: float, distance: str, flip: bool, seed: int,
                open_clip=None, clip_vision=None, losses=None, mask=None, target: str | None = None,
                gram_layers: int = 3, style_size: int = 512, start_percent: float | None = None,
                end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None, style_batch: str | None = None,
                blend_weights: str | None = None) -> io.NodeOutput:
        if (open_clip is None) == (clip_vision is None):
            raise ValueError("CLIP style: connect exactly one CLIP model, either open_clip (Load open_clip) or "
                             "clip_vision (core Load CLIP Vision).")
        if open_clip is not None:
            encoder = open_clip
        else:
            from ..sampler.clip_vision import clip_vision_encoder

            encoder = clip_vision_encoder(clip_vision)
        kind = CLIP_TARGET_CHOICES[target or next(iter(CLIP_TARGET_CHOICES))]
        with building():
            term = CLIPStyleLoss(reference(style, "style"), encoder, weight=weight, mask=optional_mask(mask),
                                 num_cutouts=num_cutouts, cut_min=cut_min, distance=distance, flip=flip, seed=seed,
                                 target=kind, style_size=style_size, gram_layers=gram_layers,
                                 style_batch=style_batch or "pair", blend_weights=blend_weights,
                                 **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


@_check_style
class StyleGuidanceGramStyle(io.ComfyNode):
    """Gram-matrix (texture/colour statistics) distance to the style image on VGG19 features."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            **optional_schema_args(search_aliases=["style transfer", "style loss", "neural style", "texture loss"]),
            node_id="StyleGuidanceGramStyle", display_name="Gram Style Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description=("Gatys' style loss: matches VGG19 feature correlations (textures, brush strokes, colours) of the "
                         "style image; each layer normalised as Gatys et al. did, so deep layers count as much as early ones."),
            inputs=[_style_input(), VGGType.Input("vgg", tooltip="From 'Load VGG19'. Share one loader between VGG losses."),
                    weight_input(1.0, "stronger texture and colour of the style image"),
                    io.Combo.Input("layers", options=list(GRAM_LAYER_PRESETS), default=next(iter(GRAM_LAYER_PRESETS)),
                                   tooltip="Which VGG layers' statistics to match: early = fine texture/colour, deep = larger motifs."),
                    _style_size_input(),
                    *chain_inputs("style"), *_blend_inputs()],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, style, vgg, weight: float, layers: str, losses=None, mask=None, style_size: int = 512,
                start_percent: float | None = None, end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None, style_batch: str | None = None,
                blend_weights: str | None = None) -> io.NodeOutput:
        with building():
            term = GramStyleLoss(reference(style, "style"), vgg, GRAM_LAYER_PRESETS[layers], weight=weight,
                                 mask=optional_mask(mask), style_size=style_size,
                                 style_batch=style_batch or "pair", blend_weights=blend_weights,
                                 **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


@_check
class StyleGuidanceRange(io.ComfyNode):
    """ZeCon's range term: keeps decoded pixel values inside [0, 1]."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceRange", display_name="Range Loss (Style Guidance)", category=f"{CATEGORY}/losses",
            description=("Mean squared amount by which decoded pixels leave [0, 1] (ZeCon's range loss). Zero while the "
                         "picture is in range, so it only acts when strong guidance pushes colours past what the VAE "
                         "shows (clipped, blotchy highlights)."),
            inputs=[weight_input(0.5, "fewer clipped highlights and shadows"), *chain_inputs("range")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, weight: float, losses=None, mask=None, start_percent: float | None = None,
                end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None) -> io.NodeOutput:
        with building():
            term = RangeLoss(weight=weight, mask=optional_mask(mask), **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


class StyleGuidanceCombine(io.ComfyNode):
    """Joins two or three loss chains (e.g. two masked styles) into one."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceCombine", display_name="Combine Losses (Style Guidance)", category=f"{CATEGORY}/losses",
            description="Merges two or three GUIDANCE_LOSS chains; terms keep their own weights and masks.",
            inputs=[GuidanceLossType.Input("losses_a", tooltip="First chain."),
                    GuidanceLossType.Input("losses_b", tooltip="Second chain."),
                    GuidanceLossType.Input("losses_c", optional=True, tooltip="Optional third chain.")],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, losses_a: CombinedLoss, losses_b: CombinedLoss,
                losses_c: CombinedLoss | None = None) -> io.NodeOutput:
        merged = losses_a.merge(losses_b)
        return io.NodeOutput(merged if losses_c is None else merged.merge(losses_c))


@_check
class StyleGuidanceTemporalConsistency(io.ComfyNode):
    """Keeps the output's frame-to-frame change close to the content video's: no flicker where it stands still."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        inputs = [i for i in chain_inputs("content") if getattr(i, "id", None) != "mask"]  # frames, not regions
        return io.Schema(
            node_id="StyleGuidanceTemporalConsistency", display_name="Temporal Consistency Loss (Style Guidance)",
            category=f"{CATEGORY}/losses",
            description=("Video (Wan 2.1): mean over consecutive frame pairs of |(y[f+1] - y[f]) - (c[f+1] - c[f])|^2, "
                         "the output's change from frame to frame against the content video's. Where the content does "
                         "not move, the style does not flicker; where it moves, the motion is kept."),
            inputs=[io.Image.Input("content", tooltip=(
                        "The content video: its frames as an IMAGE batch (as video loaders give it), one per output "
                        "frame (Wan 2.1: 1 + 4 x (latent frames - 1)). Usually the same video as the content terms'.")),
                    weight_input(1.0, "steadier frames, motion closer to the content's"),
                    io.Int.Input("pool", default=1, min=1, max=16, tooltip=(
                        "Average-pool both videos by this factor before comparing: 1 compares pixels; 4 compares "
                        "coarser structure and lets fine texture change between frames.")),
                    io.Combo.Input("fit", options=list(FIT_MODES), default="stretch", tooltip=FIT_TOOLTIP),
                    *inputs],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, content, weight: float, pool: int, fit: str, losses: CombinedLoss | None = None,
                start_percent: float | None = None, end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None) -> io.NodeOutput:
        with building():
            term = TemporalConsistencyLoss(reference(content, "content"), weight=weight, pool=pool, fit=fit,
                                           **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


NODES = [StyleGuidanceContentMSE, StyleGuidanceVGGContent, StyleGuidanceZeCon, StyleGuidanceCLIPStyle,
         StyleGuidanceGramStyle, StyleGuidanceRange, StyleGuidanceCombine,
         StyleGuidanceTemporalConsistency]
