"""Shared wiring for the node classes: socket types, common inputs, reference images, validation."""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..losses import CombinedLoss, comfy_image_to_nchw, comfy_mask_to_bhw
from ..losses.schedule import CURVES, Schedule
from ..sampler.settings import COMBINES, RECURRENCE_MAX, GuidanceSettings
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


# Pictures thinner than this are refused: the loss networks need a few pixels across, and raising a
# 1 px side to their minimum while keeping the aspect would make the other side enormous.
MAX_ASPECT = 64


def reference(image: torch.Tensor, name: str) -> torch.Tensor:
    """ComfyUI IMAGE (B,H,W,C) -> an ordinary (non-inference) tensor (B,3,H,W) in [0,1]."""
    t = comfy_image_to_nchw(image, name)
    h, w = t.shape[-2:]
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise ValueError(f"{name}: the picture is {w}x{h} px, more than {MAX_ASPECT} times as long as it is wide, "
                         "too thin for the loss networks; crop or pad it to a less extreme shape")
    return t.clone()


def optional_mask(mask: torch.Tensor | None, name: str = "mask") -> torch.Tensor | None:
    """A validated (M,H,W) copy of an optional MASK input."""
    return None if mask is None else comfy_mask_to_bhw(mask, name).clone()


def chain(previous: CombinedLoss | None, term) -> CombinedLoss:
    """Append a term to the incoming chain without touching the (cached) upstream object."""
    return (previous or CombinedLoss()).with_term(term)


# ------------------------------------------------------------------ loss-node inputs
def weight_input(default: float, what: str) -> io.Float.Input:
    """The weight of a loss term: its share of the guidance direction."""
    return io.Float.Input(
        "weight", default=default, min=-1e6, max=1e6, step=0.01,
        tooltip=(f"This term's share of the guidance direction: |weight| / sum of the chain's |weights| (each term's "
                 f"gradient is normalised on its own, so units do not matter). Higher: {what}. Negative: pushes away "
                 "from this term's reference (e.g. a look you do not want). 0 switches the term off (it then costs "
                 "nothing)."),
    )


def chain_inputs(kind: str) -> list:
    """The optional inputs every loss node has: an incoming chain, a mask and its own window."""
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
        io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01, optional=True,
                       tooltip=(f"This {kind} term guides only from this fraction of the sampling steps on, inside the "
                                "sampler's own window (ZeCon, for one, gates its content terms to part of the schedule).")),
        io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01, optional=True,
                       tooltip=f"This {kind} term stops guiding at this fraction of the steps."),
        io.Combo.Input("weight_curve", options=list(CURVES), default=CURVES[0], optional=True,
                       tooltip=(f"How this {kind} term's weight follows the steps inside its start/end_percent: "
                                "constant (the window alone), linear_up (0 -> weight), linear_down (weight -> 0), "
                                "cosine (weight -> 0 along half a cosine), or values (factors typed in "
                                "weight_values). Step events and plots report the weight each step used.")),
        io.String.Input("weight_values", default="", optional=True,
                        tooltip=("values curve only: factors of the weight, separated by commas, spread evenly over "
                                 "the term's window and joined by straight lines (e.g. '1, 1, 0'). Each >= 0.")),
    ]


def term_options(start_percent: float | None, end_percent: float | None, weight_curve: str | None = None,
                 weight_values: str | None = None) -> dict[str, Any]:
    """Keyword arguments for a loss term's own window and weight curve."""
    return {"start_percent": 0.0 if start_percent is None else float(start_percent),
            "end_percent": 1.0 if end_percent is None else float(end_percent),
            "weight_curve": weight_curve or CURVES[0], "weight_values": weight_values or ""}


def check_term_window(values: dict[str, Any]) -> str | None:
    """Cross-check of a loss node's own window and weight curve."""
    start, end = values.get("start_percent"), values.get("end_percent")
    if start is not None and end is not None and not start < end:
        return f"start_percent ({start}) must be below end_percent ({end}): the term guides only between them"
    curve, text = values.get("weight_curve"), values.get("weight_values")
    if curve is not None and (isinstance(text, str) or curve != "values"):  # linked text: checked at execution
        try:
            Schedule.make(curve, text, name="weight_curve", values_name="weight_values")
        except ValueError as e:
            return str(e)
    return None


# ------------------------------------------------------------------ guidance-node inputs
COMBINE_TOOLTIP = (
    "How the loss terms' pulls are added up. weighted: as they are, each by its weight. projected: where two terms "
    "pull against each other, each first loses the part of its pull that would undo the other's (PCGrad), so no "
    "term's progress is cancelled to first order; the step's size is the same, only its direction changes. "
    "Measure's 'effect' shows how much of its own progress each term keeps either way.")
_SETTINGS_INPUTS: dict[str, Callable[[GuidanceSettings], io.Input]] = {
    "mode": lambda d: io.Combo.Input(
        "mode", options=["x0", "xt"], default=d.mode,
        tooltip=("x0: gradient w.r.t. the denoised prediction (MPGD-like; cheap, no backward through the model). "
                 "xt: gradient w.r.t. the noisy latent through the model (FreeDoM-like; stronger, ~3x the cost of a step).")),
    "scale": lambda d: io.Float.Input(
        "scale", default=d.scale, min=0.0, max=10.0, step=0.01,
        tooltip=("Guidance strength, as a fraction of the denoiser's own update per step (the gradient is "
                 "normalised, so one value works across models and sizes). 0 = plain sampling. Typical 0.1-1.")),
    "start_percent": lambda d: io.Float.Input(
        "start_percent", default=d.start_percent, min=0.0, max=1.0, step=0.01,
        tooltip="Guidance starts at this fraction of the sampling steps (FreeDoM/MPGD guide from ~0.3)."),
    "end_percent": lambda d: io.Float.Input(
        "end_percent", default=d.end_percent, min=0.0, max=1.0, step=0.01,
        tooltip="Guidance stops at this fraction of the steps; late steps only refine detail (~0.7 in FreeDoM/MPGD)."),
    "recurrence": lambda d: io.Int.Input(
        "recurrence", default=d.recurrence, min=1, max=RECURRENCE_MAX,
        tooltip=("Time-travel: inside the recurrence window each step is taken, re-noised and taken again, this many "
                 "times in all (1 = off). Stronger guidance at k times the cost; multistep samplers run single-step "
                 "there. Needs a k-diffusion sampler (every KSampler sampler name); with other samplers it is ignored "
                 "and the log says so.")),
    "recurrence_start_percent": lambda d: io.Float.Input(
        "recurrence_start_percent", default=d.recurrence_start_percent, min=0.0, max=1.0, step=0.01,
        tooltip="Recurrence window start (fraction of the steps)."),
    "recurrence_end_percent": lambda d: io.Float.Input(
        "recurrence_end_percent", default=d.recurrence_end_percent, min=0.0, max=1.0, step=0.01,
        tooltip="Recurrence window end (fraction of the steps)."),
    "grad_clip": lambda d: io.Float.Input(
        "grad_clip", default=d.grad_clip, min=0.0, max=100.0, step=0.1,
        tooltip="Clip the normalised gradient at this many RMS units per element (0 = off); tames outlier pixels."),
    "loss_resolution": lambda d: io.Int.Input(
        "loss_resolution", default=d.loss_resolution, min=0, max=4096, step=8,
        tooltip=("Longer side (px) the decoded image is downscaled to before the loss networks; 0 = decoded size "
                 "(at least 32 px). 384-512 keeps 1024 px generations fast and within memory.")),
    "scale_curve": lambda d: io.Combo.Input(
        "scale_curve", options=list(CURVES), default=d.scale_curve, optional=True,
        tooltip=("How the scale follows the steps inside start/end_percent: constant (the window alone), linear_up "
                 "(0 -> scale), linear_down (scale -> 0), cosine (scale -> 0 along half a cosine), or values (the "
                 "factors typed in scale_values). The step plot shows the scale each step used.")),
    "scale_values": lambda d: io.String.Input(
        "scale_values", default=d.scale_values, optional=True,
        tooltip=("values curve only: factors of scale, separated by commas, spread evenly over the window and "
                 "joined by straight lines (e.g. '0, 1, 1, 0.3'). Each >= 0. Can be linked from a node that outputs "
                 "text.")),
    "combine": lambda d: io.Combo.Input(
        "combine", options=list(COMBINES), default=d.combine, optional=True,
        tooltip=COMBINE_TOOLTIP),
}
assert set(_SETTINGS_INPUTS) == set(GuidanceSettings.names()), "every guidance setting needs its node input"


def guidance_inputs(with_mode: bool = True) -> list:
    """The inputs of every GuidanceSettings field, in declaration order (shared by the three guidance nodes)."""
    d = GuidanceSettings()
    return [_SETTINGS_INPUTS[name](d) for name in GuidanceSettings.names() if with_mode or name != "mode"]


def settings_from(values: dict, mode: str | None = None) -> GuidanceSettings:
    """Build settings from node inputs (missing keys take defaults)."""
    return GuidanceSettings.from_values({**values, **({"mode": mode} if mode else {})})


def check_settings(values: dict[str, Any]) -> str | None:
    """Cross-checks of the guidance settings (windows, recurrence, the scale's curve) on the values given."""
    settings = GuidanceSettings.from_values(values)
    problem = settings.validate()
    if problem or (values.get("scale_values") is None and settings.scale_curve == "values"):
        return problem  # linked values: checked when the sampler starts
    try:
        Schedule.make(settings.scale_curve, settings.scale_values, name="scale_curve", values_name="scale_values")
    except ValueError as e:
        return str(e)
    return None


# ------------------------------------------------------------------ validation
def validated(*, combos: tuple[str, ...] | None = None, ints: tuple[str, ...] = (),
              aliases: dict[str, dict[str, str]] | None = None,
              check: Callable[[dict[str, Any]], str | None] | None = None) -> Callable[[type], type]:
    """Class decorator: a ``validate_inputs`` that checks the node's float, combo and named int inputs.

    ComfyUI's own checks let NaN through every float range and (in some versions) skip V3
    combo values; and it skips its checks for exactly the inputs a ``validate_inputs`` takes.
    So this takes over the node's Float inputs, its Combo inputs (``combos`` limits them, e.g.
    to leave file lists to ComfyUI) and the Int inputs named in ``ints``, and checks each:
    finite, inside [min, max], one of the options (``aliases`` maps old saved values). Then the
    node's cross-field ``check``, which also sees the node's text inputs (weights or curve values
    typed as text, which it parses). Every message names the input and what to do.
    """

    def decorate(cls: type) -> type:
        schema = cls.define_schema()
        floats = {i.id: i for i in schema.inputs if isinstance(i, io.Float.Input)}
        int_inputs = {i.id: i for i in schema.inputs if isinstance(i, io.Int.Input) and i.id in ints}
        combo_inputs = {i.id: i for i in schema.inputs if isinstance(i, io.Combo.Input)
                        and (combos is None or i.id in combos)}
        names = [*floats, *int_inputs, *combo_inputs]
        texts = [i.id for i in schema.inputs if isinstance(i, io.String.Input)]
        old = aliases or {}

        def number_problem(name: str, v: Any) -> str | None:
            spec = floats.get(name) or int_inputs.get(name)
            if isinstance(v, float) and not math.isfinite(v):
                return f"{name} must be a finite number, got {v}"
            lo, hi = spec.min, spec.max
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                return f"{name} must lie in [{lo}, {hi}], got {v}"
            return None

        def validate_inputs(klass, **values: Any) -> bool | str:
            for name in names:
                v = values.get(name)
                if v is None:
                    continue
                if name in floats or name in int_inputs:
                    problem = number_problem(name, v)
                    if problem:
                        return problem
                    continue
                options = list(combo_inputs[name].options or [])
                if v not in options and v not in old.get(name, {}):
                    shown = ", ".join(repr(o) for o in options[:12]) + (" ..." if len(options) > 12 else "")
                    return f"{name}: {v!r} is not one of the choices ({shown}); pick one of them"
            if check is not None:
                problem = check(values)
                if problem:
                    return problem
            return True

        params = [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
                   for n in [*names, *texts]]
        # ComfyUI reads the parameter names to decide which inputs to hand over (and not check itself).
        validate_inputs.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        cls.validate_inputs = classmethod(validate_inputs)
        # A value arriving through a link (a Primitive node, another node's output) is not there at
        # validation time, so ComfyUI never checks it: the same checks run again when the node executes.
        execute = cls.__dict__["execute"].__func__
        numbers = [*floats, *int_inputs]

        @functools.wraps(execute)
        def checked_execute(klass, *args: Any, **kwargs: Any) -> Any:
            for name in numbers:
                v = kwargs.get(name)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    problem = number_problem(name, v)
                    if problem:
                        raise ValueError(f"{schema.display_name or schema.node_id}: {problem}")
            return execute(klass, *args, **kwargs)

        cls.execute = classmethod(checked_execute)
        return cls

    return decorate


def resolve_alias(value: str, aliases: dict[str, str]) -> str:
    """A saved (renamed) combo value mapped to its current name."""
    return aliases.get(value, value)
