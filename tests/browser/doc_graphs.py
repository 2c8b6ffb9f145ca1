"""Small editor graphs that show one node of the pack in context, for its help-page picture.

Built from the live node definitions (``/object_info``), so a node added to the pack gets
its graph without anything written here: the node itself, a source for each input it needs
(a checkpoint loader for MODEL/CLIP/VAE, Load Image for IMAGE, prompts for CONDITIONING, a
loss node for GUIDANCE_LOSS, ... each recursively complete) and one typical consumer of its
first output (Apply Guidance to Model for a loss chain, VAE Decode for a latent, ...).
The node the picture is about is drawn in the pack's colour.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))

from headless.workflow import UIGraph, UINode, defs_from_object_info  # noqa: E402

PREFIX = "StyleGuidance"
FOCUS_COLOURS = {"color": "#4b2a6e", "bgcolor": "#5d3a86"}
WIDGETS: dict[str, dict[str, Any]] = {  # file names as in the shipped workflows
    "CheckpointLoaderSimple": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"},
    "StyleGuidanceVGGLoader": {"vgg_name": "vgg19-dcbee923.pth"},
    "StyleGuidanceOpenCLIPLoader": {"arch": "ViT-B-32", "clip_name": "open_clip_vit_b_32_laion2b_s34b_b79k.safetensors"},
    "CLIPTextEncode": {"text": "an oil painting, rich colours, visible brush strokes"},
}
# First output type of the node -> (consumer node type, the consumer's input it feeds).
CONSUMERS = {
    "GUIDANCE_LOSS": ("StyleGuidanceApply", "losses"),
    "MODEL": ("KSampler", "model"),
    "LATENT": ("VAEDecode", "samples"),
    "GUIDER": ("SamplerCustomAdvanced", "guider"),
    "STYLE_VGG": ("StyleGuidanceVGGContent", "vgg"),
    "STYLE_CLIP": ("StyleGuidanceCLIPStyle", "open_clip"),
    "STRING": ("PreviewAny", "source"),
    "IMAGE": ("PreviewImage", "images"),
}
# Optional inputs worth showing connected (the network a loss needs, given either way).
SHOW_OPTIONAL = {"STYLE_CLIP"}


class DocGraph:
    """One picture's graph: sources are made once per type and role, then reused."""

    def __init__(self, info: dict) -> None:
        self.info = info
        self.g = UIGraph(defs_from_object_info(info))
        self.g.COLUMN_WIDTH = 420  # as in scripts/workflows.py: room for the pack's longer names
        self.made: dict[tuple[str, str], tuple[UINode, int]] = {}
        self.losses = 0

    # -- inputs ------------------------------------------------------------------------------
    def _link_inputs(self, kind: str) -> list[tuple[str, str]]:
        """(name, type) of the inputs of ``kind`` that take a link and should be connected."""
        spec = self.info[kind].get("input", {})
        out = []
        for section in ("required", "optional"):
            for name, value in (spec.get(section) or {}).items():
                t = value[0] if isinstance(value, list) and value else value
                if not isinstance(t, str) or t in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                    continue
                opts = value[1] if isinstance(value, list) and len(value) > 1 and isinstance(value[1], dict) else {}
                if opts.get("forceInput"):
                    continue
                if section == "required" or t in SHOW_OPTIONAL:
                    out.append((name, t))
        return out

    def add(self, kind: str, column: int, title: str | None = None, **given: Any) -> UINode:
        """Place ``kind`` with every needed input connected (sources one column to the left)."""
        values = dict(WIDGETS.get(kind, {}))
        for name, t in self._link_inputs(kind):
            if name not in given:
                values[name] = self.source(t, name, column - 1)
        values.update(given)
        return self.g.add(kind, column, title=title, **values)

    # -- sources -----------------------------------------------------------------------------
    def source(self, t: str, role: str, column: int) -> tuple[UINode, int]:
        key = self._key(t, role)
        if key not in self.made:
            self.made[key] = self._make(t, role, column)
        return self.made[key]

    def _key(self, t: str, role: str) -> tuple[str, str]:
        if t == "IMAGE":
            return (t, "style" if "style" in role else "content")
        if t in ("CONDITIONING",):
            return (t, role)
        if t == "GUIDANCE_LOSS":
            self.losses += 1
            return (t, str(self.losses))
        return (t, "")

    def _make(self, t: str, role: str, column: int) -> tuple[UINode, int]:
        makers: dict[str, Callable[[], tuple[UINode, int]]] = {
            "MODEL": lambda: (self._ckpt(column), 0),
            "CLIP": lambda: (self._ckpt(column), 1),
            "VAE": lambda: (self._ckpt(column), 2),
            "IMAGE": lambda: self._image(role, column),
            "CONDITIONING": lambda: self.add("CLIPTextEncode", column, title=f"{role.capitalize()} prompt",
                                             **({"text": "blurry, low quality"} if role == "negative" else {}))[0],
            "LATENT": lambda: self.add("VAEEncode", column)[0],
            "STYLE_VGG": lambda: self.add("StyleGuidanceVGGLoader", column)[0],
            "STYLE_CLIP": lambda: self.add("StyleGuidanceOpenCLIPLoader", column)[0],
            "GUIDANCE_LOSS": lambda: self.add("StyleGuidanceContentMSE" if self.losses % 2 else "StyleGuidanceGramStyle",
                                              column)[0],
            "NOISE": lambda: self.add("RandomNoise", column)[0],
            "SAMPLER": lambda: self.add("KSamplerSelect", column)[0],
            "SIGMAS": lambda: self.add("BasicScheduler", column)[0],
            "GUIDER": lambda: self.add("CFGGuider", column)[0],
            "CLIP_VISION": lambda: self.add("CLIPVisionLoader", column)[0],
        }
        if t not in makers:
            raise KeyError(f"no source for an input of type {t} ({role}): add one to tests/browser/doc_graphs.py")
        return makers[t]()

    def _ckpt(self, column: int) -> UINode:
        if ("CKPT", "") not in self.made:
            self.made[("CKPT", "")] = (self.g.add("CheckpointLoaderSimple", column, **WIDGETS["CheckpointLoaderSimple"]), 0)
        return self.made[("CKPT", "")][0]

    def _image(self, role: str, column: int) -> tuple[UINode, int]:
        style = "style" in role
        node = self.g.add("LoadImage", column, title="Style image" if style else "Content image",
                          image="style_guidance_style.jpg" if style else "style_guidance_content.jpg")
        return node[0]


def build(info: dict, node_id: str) -> dict:
    """The editor-format workflow showing ``node_id`` between its sources and a consumer."""
    doc = DocGraph(info)
    node = doc.add(node_id, 0)
    outputs = info[node_id].get("output") or []
    if outputs and outputs[0] in CONSUMERS:
        consumer, slot_name = CONSUMERS[outputs[0]]
        if consumer != node_id:
            doc.add(consumer, 1, **{slot_name: node[0]})
    data = doc.g.to_json()
    for entry in data["nodes"]:
        if entry["type"].startswith(PREFIX):
            entry["size"] = [max(entry["size"][0], 370), entry["size"][1]]
        if entry["id"] == node.id:
            entry.update(FOCUS_COLOURS)
    return data


def pack_nodes(info: dict) -> list[str]:
    return sorted(k for k in info if k.startswith(PREFIX))
