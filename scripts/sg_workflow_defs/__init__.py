"""The definitions of the shipped workflows, by name (``scripts/workflows.py build`` writes them)."""

from __future__ import annotations

from collections.abc import Callable

from headless.workflow import UIGraph

from .dits import style_transfer_flux2, style_transfer_qwen_image, style_transfer_z_image_turbo
from .families import (
    style_transfer_fast,
    style_transfer_flux,
    style_transfer_sd15,
    style_transfer_sd35,
    style_transfer_sdxl,
)
from .features import (
    ablation_content_terms,
    ablation_style_terms,
    stock_ksampler_patch,
    style_transfer_controlnet,
    style_transfer_model_features,
)
from .features_dit import style_transfer_model_features_flux, style_transfer_model_features_qwen_image
from .regions import style_transfer_regions
from .video import style_transfer_wan

DEFINITIONS: dict[str, Callable[[UIGraph], None]] = {
    "style_transfer_sd15": style_transfer_sd15,
    "style_transfer_fast": style_transfer_fast,
    "style_transfer_sdxl": style_transfer_sdxl,
    "style_transfer_sd35": style_transfer_sd35,
    "style_transfer_flux": style_transfer_flux,
    "style_transfer_qwen_image": style_transfer_qwen_image,
    "style_transfer_z_image_turbo": style_transfer_z_image_turbo,
    "style_transfer_flux2": style_transfer_flux2,
    "style_transfer_wan": style_transfer_wan,
    "style_transfer_controlnet": style_transfer_controlnet,
    "stock_ksampler_patch": stock_ksampler_patch,
    "ablation_content_terms": ablation_content_terms,
    "ablation_style_terms": ablation_style_terms,
    "style_transfer_model_features": style_transfer_model_features,
    "style_transfer_model_features_flux": style_transfer_model_features_flux,
    "style_transfer_model_features_qwen_image": style_transfer_model_features_qwen_image,
    "style_transfer_regions": style_transfer_regions,
}
