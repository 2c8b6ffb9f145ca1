"""Measure a loss chain on an image: each term's value, weight and share of the guidance direction."""

from __future__ import annotations

import json

import torch

from ..losses import CombinedLoss
from ..protocol import MEASURE_UI_KEY
from ..sampler.measure import measure
from ._api import io
from ._common import CATEGORY, GuidanceLossType, building, reference

# One float output per kind, in this order (output indices are part of saved workflows: append only).
KINDS = ("content_mse", "vgg_content", "zecon", "clip_style", "gram_style", "range", "zecon_model",
         "attention_distillation")
DISPLAY_NAME = "Measure Losses (Style Guidance)"


class StyleGuidanceMeasure(io.ComfyNode):
    """Evaluates every term of a GUIDANCE_LOSS chain on an image and reports the values and the balance."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceMeasure", display_name=DISPLAY_NAME, category=f"{CATEGORY}/utils",
            description=("Scores an image with a loss chain: each term's unweighted value, its weight, and its measured "
                         "share of the guidance direction (what a guided step would do with these weights on this "
                         "picture). Tune weights by these shares."),
            inputs=[
                io.Image.Input("image", tooltip="The picture to score (e.g. a decoded result). A batch reports the mean."),
                GuidanceLossType.Input("losses", tooltip="The chain to evaluate (the same one the sampler used)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Seed for random parts (CLIP cutouts, PatchNCE patches) so measurements repeat."),
                io.Model.Input("model", optional=True,
                               tooltip="Only for terms on the model's own features: the model they read."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="Only for terms on the model's own features: the conditioning to run the model with."),
                io.Latent.Input("latent", optional=True,
                                tooltip=("Only for terms on the model's own features: the picture's latent (e.g. the sampler's "
                                         "output). Attention Distillation is measured at the mid-schedule noise level.")),
            ],
            outputs=[
                io.String.Output(display_name="text", tooltip="One line per term: name, value, weight, share of the direction."),
                io.String.Output(display_name="json", tooltip=("{'version': 2, 'total': ..., 'terms': [{name, kind, value, "
                                                               "weight, weight_share, share, note}, ...]} as JSON.")),
                io.Float.Output(display_name="total", tooltip="Weighted total loss (mean over the batch)."),
                *[io.Float.Output(display_name=k, tooltip=f"Unweighted {k} value (sum over terms of that kind; 0 if none).")
                  for k in KINDS],
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, image, losses: CombinedLoss, seed: int = 0, model=None, positive=None,
                latent=None) -> io.NodeOutput:
        make_probe = None
        samples = None
        if losses.latent_terms and model is not None and positive is not None and latent is not None:
            from ..sampler import model_probe

            model_probe.check_supported(model, [t for _, t in losses.latent_terms], who=DISPLAY_NAME)
            samples = latent["samples"]
            # Attention Distillation compares at a noise level: mid-schedule, as the model defines it.
            sigma = float(model.get_model_object("model_sampling").percent_to_sigma(0.5))
            make_probe = lambda: model_probe.measure_probe(model, positive, seed, sigma)  # noqa: E731
        with building():
            images = reference(image, "image")
            device = _device_of(losses)
            losses.to(device)
            result = measure(losses, images.to(device), seed, latent=samples, make_probe=make_probe)
        by_kind = {k: 0.0 for k in KINDS}
        for t in result.terms:
            if t.kind in by_kind and t.value is not None:
                by_kind[t.kind] += t.value
        text = result.text()
        payload = json.dumps(result.as_dict(), allow_nan=False)
        ui = {"text": [text], MEASURE_UI_KEY: [payload]}
        return io.NodeOutput(text, payload, result.total, *[by_kind[k] for k in KINDS], ui=ui)


def _device_of(losses: CombinedLoss) -> torch.device:
    """The device the chain's networks sit on (CPU when they have none)."""
    for term in losses.active_terms:
        for p in term.parameters():
            return p.device
    return torch.device("cpu")


NODES = [StyleGuidanceMeasure]
