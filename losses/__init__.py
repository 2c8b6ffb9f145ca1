"""Pure-PyTorch guidance losses for Style Guidance (no ComfyUI imports).

Each term is built once from its reference image (targets precomputed) and maps a generated
batch (B,3,H,W in [0,1]) to a per-sample loss (B,). Batch pairing everywhere: generated sample
i pairs with reference i % R and mask entry i % M (R=1 broadcasts, R=B is per-sample).
:class:`CombinedLoss` chains weighted terms and runs each shared feature extractor once.
"""

from .chain import CombinedLoss, LossResult
from .clip import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPImageEncoder,
    load_open_clip_encoder,
    register_open_clip_config,
)
from .content import ZECON_DEFAULT_LAYERS, ContentMSELoss, VGGContentLoss, ZeConLoss, patch_nce
from .inputs import (
    as_image_batch,
    as_mask_batch,
    comfy_image_to_nchw,
    comfy_mask_to_bhw,
    derive_seed,
    pair_index,
)
from .style import CLIP_DISTANCES, CLIP_TARGETS, CLIPStyleLoss, GramStyleLoss, RangeLoss, gram_matrix
from .temporal import TemporalConsistencyLoss, flicker
from .terms import FeatureExtractor, GuidanceLoss, LatentGuidanceLoss, ModelProbe
from .vgg import (
    DEFAULT_VGG_CONTENT_PRESET,
    DEFAULT_ZECON_PRESET,
    GRAM_STYLE_LAYERS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGG_CONTENT_LAYER_PRESETS,
    ZECON_LAYER_PRESETS,
    ZECON_PRESET_ALIASES,
    VGG19Features,
    load_vgg19_features,
)

__all__ = [
    "CombinedLoss",
    "FeatureExtractor",
    "GuidanceLoss",
    "LatentGuidanceLoss",
    "LossResult",
    "ModelProbe",
    "as_image_batch",
    "as_mask_batch",
    "comfy_image_to_nchw",
    "comfy_mask_to_bhw",
    "derive_seed",
    "pair_index",
    "CLIP_MEAN",
    "CLIP_STD",
    "CLIPImageEncoder",
    "load_open_clip_encoder",
    "register_open_clip_config",
    "ZECON_DEFAULT_LAYERS",
    "ContentMSELoss",
    "VGGContentLoss",
    "ZeConLoss",
    "patch_nce",
    "CLIP_DISTANCES",
    "CLIP_TARGETS",
    "CLIPStyleLoss",
    "GramStyleLoss",
    "RangeLoss",
    "gram_matrix",
    "TemporalConsistencyLoss",
    "flicker",
    "DEFAULT_VGG_CONTENT_PRESET",
    "DEFAULT_ZECON_PRESET",
    "GRAM_STYLE_LAYERS",
    "ZECON_PRESET_ALIASES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGG_CONTENT_LAYER_PRESETS",
    "ZECON_LAYER_PRESETS",
    "VGG19Features",
    "load_vgg19_features",
]
