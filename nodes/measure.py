"""Measure a loss chain on an image: each term's value, weight and share of the guidance direction."""

from __future__ import annotations

import json

import torch

from ..losses import CombinedLoss
from ..protocol import MEASURE_UI_KEY, TERM_KINDS
from ..sampler.measure import measure
from ..sampler.settings import COMBINES
from . import _quality
from ._api import io
from ._common import CATEGORY, COMBINE_TOOLTIP, GuidanceLossType, building, reference

# One float output per kind, in this order (output indices are part of saved workflows: append only;
# the names follow protocol.TERM_KINDS, the slots were content_mse, vgg_content, zecon, clip_style,
# gram_style, range, zecon_model, attention_distillation before Measure payload version 4).
KINDS = ("pixel_mse_content", "vgg_content", "vgg_patchnce_content", "clip_style", "gram_style", "range",
         "zecon_content", "attention_distillation_style")
# Then the optional quality scores (nodes/_quality.py), in this order.
QUALITY = ("LPIPS", "CFSD")
# Kinds added after the quality outputs (appended: the earlier slots keep their indices).
LATER_KINDS = ("temporal_consistency",)
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
                io.Image.Input("content", optional=True,
                               tooltip=("Only for the quality scores: the content picture the image was made from (LPIPS and "
                                        "CFSD compare the image with it). A batch pairs by index (sample i with content i mod R).")),
                io.Combo.Input("quality", options=list(_quality.CHOICES), default="off", optional=True,
                               tooltip=("Quality scores of the style-transfer evaluation protocol, beside the loss terms: "
                                        "LPIPS (AlexNet v0.1, lower = closer to the content's look) and CFSD (VGG19 relu3_1 "
                                        "self-similarity, lower = the content's structure kept), of the image against "
                                        "'content', as the pack's evaluation scores a saved pair. Weights are read, "
                                        "never downloaded: models/evaluation/alexnet-owt-7be5be79.pth (+ the lpips package's "
                                        "heads) and models/vgg/vgg19-dcbee923.pth. CFSD at 512 px is slow on a CPU.")),
                io.Combo.Input("combine", options=list(COMBINES), default="weighted", optional=True,
                               tooltip=("The sampler's 'combine' setting, for the effects and shares: " + COMBINE_TOOLTIP)),
            ],
            outputs=[
                io.String.Output(display_name="text", tooltip=("One line per term: its node's name, value, weight, share "
                                                               "of the direction and effect; pairs of terms that pull "
                                                               "against each other (also shown on this node).")),
                io.String.Output(display_name="json", tooltip=("{'version': 5, 'total': ..., 'terms': [{name, kind, value, "
                                                               "weight, weight_share, share, effect, spread, note}, ...], 'quality': "
                                                               "{LPIPS, CFSD, note}, 'cosines': [{a, b, cosine}, ...]} "
                                                               "as JSON.")),
                io.Float.Output(display_name="total", tooltip="Weighted total loss (mean over the batch)."),
                *[io.Float.Output(display_name=k, tooltip=(f"Unweighted value of the {_title(k)} term ({k}; the "
                                                           "sum if the chain has several, 0 if none)."))
                  for k in KINDS],
                *[io.Float.Output(display_name=k.lower(), tooltip=f"{k} of the image against 'content' (mean over the "
                                                                  "batch); -1 when not computed (quality 'off').")
                  for k in QUALITY],
                *[io.Float.Output(display_name=k, tooltip=(f"Unweighted value of the {_title(k)} term ({k}; the "
                                                           "sum if the chain has several, 0 if none)."))
                  for k in LATER_KINDS],
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, image, losses: CombinedLoss, seed: int = 0, model=None, positive=None,
                latent=None, content=None, quality: str = "off", combine: str = "weighted") -> io.NodeOutput:
        if quality not in _quality.CHOICES:
            raise ValueError(f"quality: unknown choice {quality!r}; choose one of {list(_quality.CHOICES)}")
        if quality != "off" and content is None:
            raise ValueError(f"quality: {quality} compares the image with its content picture: connect 'content', "
                             "or set quality to 'off'")
        if combine not in COMBINES:
            raise ValueError(f"combine: unknown choice {combine!r}; choose one of {list(COMBINES)}")
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
            result = measure(losses, images.to(device), seed, latent=samples, make_probe=make_probe,
                             combine=combine)
            if quality != "off":
                result.quality = _quality.scores(quality, images, reference(content, "content"))
        by_kind = {k: 0.0 for k in (*KINDS, *LATER_KINDS)}
        for t in result.terms:
            if t.kind in by_kind and t.value is not None:
                by_kind[t.kind] += t.value
        text = result.text()
        payload = json.dumps(result.as_dict(), allow_nan=False)
        ui = {"text": [text], MEASURE_UI_KEY: [payload]}
        extra = [-1.0 if result.quality.get(k) is None else float(result.quality[k]) for k in QUALITY]
        return io.NodeOutput(text, payload, result.total, *[by_kind[k] for k in KINDS], *extra,
                             *[by_kind[k] for k in LATER_KINDS], ui=ui)


def _title(kind: str) -> str:
    """The node title a kind comes from, without the pack suffix: 'vgg_patchnce_content' -> 'VGG PatchNCE Content Loss'."""
    part = {"content": " Content", "style": " Style"}.get(kind.rsplit("_", 1)[-1], "")
    return f"{TERM_KINDS[kind][1]}{part} Loss"


def _device_of(losses: CombinedLoss) -> torch.device:
    """The device the chain's networks sit on (CPU when they have none)."""
    for term in losses.active_terms:
        for p in term.parameters():
            return p.device
    return torch.device("cpu")


NODES = [StyleGuidanceMeasure]
