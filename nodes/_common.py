"""Shared wiring for the node classes: socket types, common inputs, reference images."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..losses import CombinedLoss, comfy_image_to_nchw, comfy_mask_to_bhw
from ..sampler.settings import GuidanceSettings
from ._api import io

CATEGORY = "style_guidance"

# Custom socket types (public contract: stored in workflows).
GuidanceLossType = io.Custom("GUIDANCE_LOSS")
VGGType = io.Custom("STYLE_VGG")
OpenCLIPType = io.Custom("STYLE_CLIP")

PAIRING_NOTE = (
    " A batch of references pairs with the generated batch by index (sample i uses reference i mod R): "
    "one reference applies to every sample."
)


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Build loss objects outside ComfyUI's inference mode so autograd can use them later."""
    with torch.inference_mode(False), torch.no_grad():
        yield


def reference(image: torch.Tensor, name: str) -> torch.Tensor:
    """ComfyUI IMAGE (B,H,W,C) -> an ordinary (non-inference) tensor (B,3,H,W) in [0,1]."""
    return comfy_image_to_nchw(image, name).clone()


def optional_mask(mask: torch.Tensor | None, name: str = "mask") -> torch.Tensor | None:
    return None if mask is None else comfy_mask_to_bhw(mask, name).clone()


def chain(previous: CombinedLoss | None, term) -> CombinedLoss:
    """Append a term to the incoming chain without touching the (cached) upstream object."""
    return (previous or CombinedLoss()).with_term(term)


def weight_input(default: float, what: str) -> io.Float.Input:
    return io.Float.Input(
        "weight", default=default, min=0.0, max=1e6, step=0.01,
        tooltip=f"Strength of this term in the total loss. Higher: {what}. 0 switches the term off (it then costs nothing).",
    )


def chain_inputs(kind: str) -> list:
    """The optional inputs every loss node has: an incoming chain and a mask."""
    return [
        GuidanceLossType.Input(
            "losses", optional=True,
            tooltip="Earlier loss terms to add this one to. Chain any subset of loss nodes, then wire the last into a sampler.",
        ),
        io.Mask.Input(
            "mask", optional=True,
            tooltip=(f"Where this {kind} term acts: it is computed from and applied to the white region only, so two "
                     "chains with complementary masks can give one picture two styles. Any size; resized to the image."),
        ),
    ]


RECURRENCE_MAX = 10

def guidance_inputs(with_mode: bool = True) -> list:
    """The guidance options shared by the sampler, guider and model-patch nodes."""
    d = GuidanceSettings()
    inputs = []
    if with_mode:
        inputs.append(io.Combo.Input(
            "mode", options=["x0", "xt"], default=d.mode,
            tooltip=("x0: gradient w.r.t. the denoised prediction (MPGD-like; cheap, no backward through the model). "
                     "xt: gradient w.r.t. the noisy latent through the model (FreeDoM-like; stronger, ~3x the cost of a step)."),
        ))
    inputs += [
        io.Float.Input("scale", default=d.scale, min=0.0, max=10.0, step=0.01,
                       tooltip=("Guidance strength, as a fraction of the denoiser's own update per step (the gradient is "
                                "normalised, so one value works across models and sizes). 0 = plain sampling. Typical 0.1-1.")),
        io.Float.Input("start_percent", default=d.start_percent, min=0.0, max=1.0, step=0.01,
                       tooltip="Guidance starts at this fraction of the sampling steps (FreeDoM/MPGD guide from ~0.3)."),
        io.Float.Input("end_percent", default=d.end_percent, min=0.0, max=1.0, step=0.01,
                       tooltip="Guidance stops at this fraction of the steps; late steps only refine detail (~0.7 in FreeDoM/MPGD)."),
        io.Int.Input("recurrence", default=d.recurrence, min=1, max=RECURRENCE_MAX,
                     tooltip=("Time-travel: inside the recurrence window each step is taken, re-noised and taken again, this many "
                              "times in all (1 = off). Stronger guidance at k times the cost; multistep samplers run single-step there.")),
        io.Float.Input("recurrence_start_percent", default=d.recurrence_start_percent, min=0.0, max=1.0, step=0.01,
                       tooltip="Recurrence window start (fraction of the steps)."),
        io.Float.Input("recurrence_end_percent", default=d.recurrence_end_percent, min=0.0, max=1.0, step=0.01,
                       tooltip="Recurrence window end (fraction of the steps)."),
        io.Float.Input("grad_clip", default=d.grad_clip, min=0.0, max=100.0, step=0.1,
                       tooltip="Clip the normalised gradient at this many RMS units per element (0 = off); tames outlier pixels."),
        io.Int.Input("loss_resolution", default=d.loss_resolution, min=0, max=4096, step=8,
                     tooltip=("Longer side (px) the decoded image is downscaled to before the loss networks; 0 = decoded size. "
                              "384-512 keeps 1024 px generations fast and within memory.")),
    ]
    return inputs


def settings_from(values: dict, mode: str | None = None) -> GuidanceSettings:
    """Build settings from node inputs (missing keys take defaults)."""
    d = GuidanceSettings()
    return GuidanceSettings(
        mode=mode or values.get("mode", d.mode),
        scale=float(values.get("scale", d.scale)),
        start_percent=float(values.get("start_percent", d.start_percent)),
        end_percent=float(values.get("end_percent", d.end_percent)),
        recurrence=int(values.get("recurrence", d.recurrence)),
        recurrence_start_percent=float(values.get("recurrence_start_percent", d.recurrence_start_percent)),
        recurrence_end_percent=float(values.get("recurrence_end_percent", d.recurrence_end_percent)),
        grad_clip=float(values.get("grad_clip", d.grad_clip)),
        loss_resolution=int(values.get("loss_resolution", d.loss_resolution)),
    )


class GuidanceValidation:
    """Mixin: checks the guidance window and recurrence window before anything runs.

    ``validate_inputs`` names only these inputs: ComfyUI skips its own type/range checks
    for exactly the inputs a node's validate_inputs takes, so every other input keeps them.
    """

    @classmethod
    def validate_inputs(cls, start_percent: float | None = None, end_percent: float | None = None,
                        recurrence: int | None = None, recurrence_start_percent: float | None = None,
                        recurrence_end_percent: float | None = None) -> bool | str:
        values = {"start_percent": start_percent, "end_percent": end_percent, "recurrence": recurrence,
                  "recurrence_start_percent": recurrence_start_percent, "recurrence_end_percent": recurrence_end_percent}
        if recurrence is not None and not 1 <= recurrence <= RECURRENCE_MAX:
            return f"recurrence must lie in 1..{RECURRENCE_MAX}, got {recurrence}"
        problem = settings_from({k: v for k, v in values.items() if v is not None}).validate()
        return True if problem is None else problem
