"""The loss package's building blocks under their historical module name.

They live in :mod:`losses.inputs` (validation, pairing, fitting, seeds), :mod:`losses.terms`
(term classes) and :mod:`losses.chain` (:class:`CombinedLoss`); this module re-exports them so
code written against ``losses.base`` keeps working. New code imports from those modules.
"""

from __future__ import annotations

from .chain import CombinedLoss, LossResult
from .inputs import (
    FIT_MODES,
    as_image_batch,
    as_mask_batch,
    center_crop_to_aspect,
    check_fit,
    check_generated,
    comfy_image_to_nchw,
    comfy_mask_to_bhw,
    derive_seed,
    fit_reference,
    pair,
    pair_index,
    resize_constant,
)
from .terms import FeatureExtractor, GuidanceLoss, LatentGuidanceLoss, ModelProbe, register_reference

__all__ = [
    "FIT_MODES",
    "CombinedLoss",
    "FeatureExtractor",
    "GuidanceLoss",
    "LatentGuidanceLoss",
    "LossResult",
    "ModelProbe",
    "as_image_batch",
    "as_mask_batch",
    "center_crop_to_aspect",
    "check_fit",
    "check_generated",
    "comfy_image_to_nchw",
    "comfy_mask_to_bhw",
    "derive_seed",
    "fit_reference",
    "pair",
    "pair_index",
    "register_reference",
    "resize_constant",
]
