"""Loss terms on the loaded diffusion model's own features, and inversion of the content latent.

No extra weight files: ZeCon reads the UNet's encoder, Attention Distillation its self-attention,
and the inversion runs the model itself. The maths lives in losses/model_features.py and
sampler/inversion.py; the probes in sampler/model_probe.py.
"""

from __future__ import annotations

import logging

from ..losses.model_features import (
    AD_LAYER_PRESETS,
    DEFAULT_AD_PRESET,
    DEFAULT_ZECON_MODEL_PRESET,
    ZECON_BLOCK_PRESETS,
    AttentionDistillationLoss,
    ModelZeConLoss,
)
from ..sampler import comfy_adapter as adapter
from ._api import io
from ._common import (
    CATEGORY,
    PAIRING_NOTE,
    GuidanceLossType,
    building,
    chain,
    chain_inputs,
    check_term_window,
    optional_mask,
    term_options,
    validated,
    weight_input,
)

log = logging.getLogger("style_guidance")

_MODEL_NOTE = (" Works with UNet models (SD1.x, SD2.x, SDXL and fine-tunes) and with Flux.1, Flux.2, Chroma, Qwen-Image "
               "and SD3/SD3.5 DiTs (on a DiT: the picture's tokens of chosen blocks; presets in thirds of the block "
               "stack); ZeCon also with Lumina 2 and Z-Image; other families (HiDream, OmniGen2, video models) are "
               "refused with a message before sampling. Uses the sampler's model as loaded and patched (LoRA etc. apply) and its positive conditioning.")


def _recompute_input() -> io.Input:
    return io.Boolean.Input(
        "recompute", default=False, optional=True,
        tooltip=("DiTs (Flux, Flux.2, Chroma, Qwen-Image): keep only each block's inputs during this term's pass and "
                 "run the block again in the backward (activation checkpointing). Same result, far less memory (Flux.1 "
                 "at 1024 px: ZeCon's default about 1.7 GB of activations instead of 19, AD's default about 11 GB instead "
                 "of 29: the blocks whose attention AD reads keep theirs) for about one more forward of the term's pass. "
                 "SD3 (ComfyUI already does it there), Lumina 2 / Z-Image and UNets ignore it."))


def _out() -> list:
    return [GuidanceLossType.Output(display_name="losses", tooltip="The chain so far; wire into a sampler or the next loss node.")]


def _samples(latent: dict, name: str):
    if not isinstance(latent, dict) or "samples" not in latent:
        raise ValueError(f"{name}: expected a LATENT (connect VAE Encode of the image)")
    return latent["samples"]


@validated(check=check_term_window)
class StyleGuidanceModelZeCon(io.ComfyNode):
    """ZeCon as published: patch-contrastive content loss on the diffusion UNet's encoder features."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceModelZeCon", display_name=ModelZeConLoss.node_name, category=f"{CATEGORY}/losses",
            description=(
                "ZeCon (Yang et al. 2023) on the model's own features: each location of the result, seen by the UNet's "
                "input blocks at the lowest noise level, must match the content at the same place more than any other "
                "sampled place. Needs no VGG and no decoder. Cost per guided evaluation: the UNet's encoder forward+backward "
                "on the result (1.34x a plain cfg evaluation in all, SD1.5 at 512 px, by FLOPs)." + _MODEL_NOTE),
            inputs=[
                io.Latent.Input("content", tooltip=("The VAE-encoded content image (VAE Encode with the model's VAE); another "
                                                    "size is stretched to the output's." + PAIRING_NOTE)),
                weight_input(1.0, "the layout follows the content more closely"),
                io.Combo.Input("layers", options=list(ZECON_BLOCK_PRESETS), default=DEFAULT_ZECON_MODEL_PRESET,
                               tooltip=("UNet input blocks whose features are contrasted (SD1.5 numbering; SDXL's are 0,2,5,8). "
                                        "The pass stops after the deepest one. Cost per guided evaluation (FLOPs, SD1.5 at "
                                        "512 px): 'all levels' adds 0.34x a plain cfg evaluation, 'fine levels' 0.25x; the "
                                        "content's features once per run.")),
                io.Int.Input("num_patches", default=256, min=2, max=4096,
                             tooltip="Locations sampled per block (positives + negatives); 256 as in ZeCon/CUT."),
                io.Float.Input("tau", default=0.07, min=0.001, max=10.0, step=0.005,
                               tooltip="Temperature of the contrast (0.07 as in ZeCon/CUT)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Seed for the sampled locations and the low-level noise (mixed with the sampling seed: runs repeat)."),
                *chain_inputs("content"),
                _recompute_input(),
            ],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, content, weight: float, layers: str, num_patches: int, tau: float, seed: int,
                losses=None, mask=None, start_percent: float | None = None,
                end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None, recompute: bool = False) -> io.NodeOutput:
        with building():
            term = ModelZeConLoss(_samples(content, "content"), layers, num_patches=num_patches, tau=tau, weight=weight,
                                  mask=optional_mask(mask), seed=seed, recompute=bool(recompute),
                                  **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


@validated(check=check_term_window)
class StyleGuidanceAttentionDistillation(io.ComfyNode):
    """Attention Distillation style loss: the output's self-attention pulled toward attending to the style's keys/values."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceAttentionDistillation", display_name=AttentionDistillationLoss.node_name,
            category=f"{CATEGORY}/losses",
            description=(
                "Attention Distillation (Zhou et al., CVPR 2025): at chosen self-attention layers of the UNet, the result's "
                "own attention output is pulled (L1) toward what its queries get when they attend to the style image's keys "
                "and values, both at the current noise level. Transfers texture, colour and brushwork without CLIP or VGG. "
                "Cost per guided evaluation: one UNet forward of the style latent plus one UNet forward+backward of the "
                "result, each up to the last chosen layer (with the paper's layers, SD1.5 at 512 px, by FLOPs: 2.5x a plain "
                "evaluation at cfg > 1, about 4x at cfg 1)." + _MODEL_NOTE),
            inputs=[
                io.Latent.Input("style", tooltip=("The VAE-encoded style image, any size (it keeps its own size: attention takes "
                                                  "any number of keys; on inpainting models its pass gets a full mask and a blank image, not the output's)."
                                                  + PAIRING_NOTE)),
                weight_input(1.0, "stronger texture, colour and strokes of the style image"),
                io.Combo.Input("layers", options=list(AD_LAYER_PRESETS), default=DEFAULT_AD_PRESET,
                               tooltip=("Self-attention layers compared. The paper uses the UNet's last 6 (SD1.5: output blocks "
                                        "6-11; SDXL: output blocks 3-5). Encoder layers are cheaper (the pass stops earlier) "
                                        "but carry less style.")),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Seed for the noise the style and the result are brought to the current noise level with."),
                *chain_inputs("style"),
                _recompute_input(),
            ],
            outputs=_out(),
        )

    @classmethod
    def execute(cls, style, weight: float, layers: str, seed: int, losses=None, mask=None,
                start_percent: float | None = None, end_percent: float | None = None, weight_curve: str | None = None,
                weight_values: str | None = None, recompute: bool = False) -> io.NodeOutput:
        with building():
            term = AttentionDistillationLoss(_samples(style, "style"), layers, weight=weight, mask=optional_mask(mask),
                                             seed=seed, recompute=bool(recompute),
                                             **term_options(start_percent, end_percent, weight_curve, weight_values))
        return io.NodeOutput(chain(losses, term))


@validated()
class StyleGuidanceInvert(io.ComfyNode):
    """Inverts a latent to the noisy latent the sampler starts from (DDIM/ODE inversion with the loaded model)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceInvert", display_name="Invert Latent (Style Guidance)",
            category=f"{CATEGORY}/sampling",
            description=(
                "Runs the model's sampling ODE backwards from the latent up the schedule the sampler will use (DDIM "
                "inversion for eps/v models, Euler ODE inversion for flow models), so sampling starts from noise that "
                "leads back to the content instead of fresh random noise: the layout survives far better than with "
                "denoise alone (ZeCon's and StyleID's start). Cost: steps x one model call (x2 at cfg > 1), x(1+refine)."),
            inputs=[
                io.Model.Input("model", tooltip="The model the sampler will use (connect it BEFORE any Style Guidance patch)."),
                io.Conditioning.Input("positive", tooltip="Conditioning for the inversion (the sampler's positive is a good choice)."),
                io.Conditioning.Input("negative", tooltip="Used only when cfg is not 1."),
                io.Latent.Input("latent", tooltip="The VAE-encoded content image."),
                io.Int.Input("steps", default=30, min=1, max=10000, tooltip="The sampler's steps (same schedule)."),
                io.Combo.Input("scheduler", options=adapter.scheduler_names(), default="normal",
                               tooltip="The sampler's scheduler (same schedule)."),
                io.Float.Input("denoise", default=1.0, min=0.01, max=1.0, step=0.01,
                               tooltip=("The sampler's denoise: the inversion stops at the first sigma of that truncated "
                                        "schedule (use the same value on the sampler).")),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="CFG of the inversion; 1 (the usual choice) reconstructs best and costs one model call per step."),
                io.Int.Input("refine", default=0, min=0, max=10,
                             tooltip=("Fixed-point iterations per step that make each step the exact inverse of the Euler "
                                      "step back down (closer reconstruction with euler), one model call each.")),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=False,
                             tooltip="The seed SamplerCustomAdvanced gets with this noise (ancestral samplers' noise, the losses' randomness)."),
            ],
            outputs=[
                io.Noise.Output(display_name="noise", tooltip=(
                    "For SamplerCustomAdvanced: sampling with these sigmas starts exactly at the inverted latent, whatever "
                    "latent_image you give it (the content latent or an empty one of the same size).")),
                io.Latent.Output(display_name="latent_no_noise", tooltip=(
                    "For KSamplerAdvanced with add_noise 'disable', steps = total_steps and start_at_step = start_at_step: "
                    "sampling starts exactly at the inverted latent (not possible for flow models at denoise 1: use noise).")),
                io.Sigmas.Output(display_name="sigmas", tooltip="The schedule inverted to (wire into SamplerCustomAdvanced)."),
                io.Int.Output(display_name="total_steps", tooltip="KSamplerAdvanced 'steps' for the same schedule."),
                io.Int.Output(display_name="start_at_step", tooltip="KSamplerAdvanced 'start_at_step' for the same schedule."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent, steps: int, scheduler: str, denoise: float, cfg: float,
                refine: int, seed: int) -> io.NodeOutput:
        from ..sampler.inversion import InvertedNoise, invert

        samples = _samples(latent, "latent")
        result = invert(model, positive, negative, latent, steps, scheduler, denoise, cfg=cfg, refine=refine, seed=seed)
        out = {k: v for k, v in latent.items() if k != "noise_mask"}
        start = result.zero_noise_latent()
        if start is None:
            log.warning("[Style Guidance] Invert Latent: at denoise 1 a flow model's first sigma is 1, where sampling "
                        "ignores the starting latent, so 'latent_no_noise' cannot start there (it passes the input latent "
                        "on); use the 'noise' output with SamplerCustomAdvanced, or a denoise below 1")
            start = samples
        out["samples"] = start.to(samples.dtype)
        return io.NodeOutput(InvertedNoise(result, seed), out, result.sigmas.clone(), result.total_steps,
                             result.start_at_step)


NODES = [StyleGuidanceModelZeCon, StyleGuidanceAttentionDistillation, StyleGuidanceInvert]
