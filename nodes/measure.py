"""Measure a loss chain on an image: per-term values as text and numbers, for comparisons and ablations."""

from __future__ import annotations

import json

from ..losses import CombinedLoss
from ._api import io, ui
from ._common import CATEGORY, GuidanceLossType, building, reference

KINDS = ("content_mse", "vgg_content", "zecon", "clip_style", "gram_style")


class StyleGuidanceMeasure(io.ComfyNode):
    """Evaluates every term of a GUIDANCE_LOSS chain on an image and reports the values."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="StyleGuidanceMeasure", display_name="Measure Losses (Style Guidance)", category=f"{CATEGORY}/utils",
            description="Scores an image with a loss chain: each term's unweighted value, the weighted total, as text and numbers.",
            inputs=[
                io.Image.Input("image", tooltip="The picture to score (e.g. a decoded result). A batch reports the mean."),
                GuidanceLossType.Input("losses", tooltip="The chain to evaluate (the same one the sampler used)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Seed for random parts (CLIP cutouts, ZeCon patches) so measurements repeat."),
            ],
            outputs=[
                io.String.Output(display_name="text", tooltip="One line per term: name, weight, value."),
                io.String.Output(display_name="json", tooltip="{term name: value, ..., 'total': weighted total} as JSON."),
                io.Float.Output(display_name="total", tooltip="Weighted total loss (mean over the batch)."),
                *[io.Float.Output(display_name=k, tooltip=f"Unweighted {k} value (sum over terms of that kind; 0 if none).")
                  for k in KINDS],
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, image, losses: CombinedLoss, seed: int = 0) -> io.NodeOutput:
        with building():
            images = reference(image, "image")
            device = _device_of(losses)
            losses.to(device)
            losses.reset_rng(seed)
            result = losses(images.to(device))
        values = {k: float(v.float().mean()) for k, v in result.terms.items()}
        total = float(result.total.float().mean())
        by_kind = {k: 0.0 for k in KINDS}
        kind_of = {name: term.kind for name, term in zip(losses.names, losses.terms, strict=True)}
        for name, value in values.items():
            if kind_of.get(name) in by_kind:
                by_kind[kind_of[name]] += value
        lines = [f"{name}: {values[name]:.6g} (weight {result.weights[name]:g})" for name in values]
        lines.append(f"total: {total:.6g}")
        text = "\n".join(lines)
        payload = json.dumps({**values, "total": total})
        return io.NodeOutput(text, payload, total, *[by_kind[k] for k in KINDS], ui=ui.PreviewText(text))


def _device_of(losses: CombinedLoss):
    """The device the chain's networks sit on (CPU when they have none)."""
    for term in losses.active_terms:
        for p in term.parameters():
            return p.device
    import torch

    return torch.device("cpu")


NODES = [StyleGuidanceMeasure]
