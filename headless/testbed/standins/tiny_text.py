"""Tiny mode's stand-in for text encoders that cannot shrink: seeded conditioning of the right shape.

ComfyUI builds most text encoders from a fixed configuration whatever the file holds (Qwen2.5-VL
7B for Qwen-Image, Qwen3 4B for Z-Image, Gemma 2 2B for Lumina 2, Mistral 3 24B for Flux.2), so
no tiny file can stand in for them. In tiny mode each ``CLIPTextEncode`` fed by such a
``CLIPLoader`` becomes ``SGTestConditioning`` (``headless/testbed/standin_nodes.py``: seeded
random conditioning from the prompt text) with the context the family's stand-in model reads,
and the loader, then orphaned, is dropped: its file is never needed. Where the family's
conditioning carries more than the context (Flux.2: ``pooled_output`` None, its encoder gives no
pooled vector), ``SGTestConditioningExtra`` nodes (``headless/testbed/standin_dit_nodes.py``) add
those keys, the last one under the replaced node's id. The test nodes are not part of the pack;
the runner registers them only in tiny mode.

:data:`FIXED_TEXT_ENCODERS` is the table, one :class:`FixedTextEncoder` per CLIPLoader type
(and, where one type loads several encoders, a file-name match): context tokens, width, pooled
width and extra keys, equal to what the stand-in of ``family`` was built for (a test checks it).
Plain data and dict surgery: no torch, no ComfyUI.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

CONDITIONING_NODE = "SGTestConditioning"
EXTRA_NODE = "SGTestConditioningExtra"
# Text-encode nodes the rewrite replaces: class -> its text input.
TEXT_ENCODE_NODES = {"CLIPTextEncode": "text"}


@dataclass(frozen=True)
class FixedTextEncoder:
    """A CLIPLoader type (and optionally a file-name match) whose encoder has no tiny stand-in."""

    clip_type: str  # CLIPLoader's ``type``
    encoder: str  # what ComfyUI builds, for messages
    family: str  # the stand-in family (standins.families key) this conditioning feeds
    dim: int  # context width: the stand-in's (its detection fixes it)
    pooled: int = 0  # pooled vector width (0: the encoder gives none)
    tokens: int = 32  # context length (any length works; short keeps the stand-in cheap)
    name_contains: str | None = None  # only files whose name contains this (lower case)
    # Keys beyond the context, as the family's Family.cond_extra: (key, shape for SGTestConditioningExtra; "" = None)
    extra: tuple[tuple[str, str], ...] = ()

    def matches(self, clip_type: object, clip_name: object) -> bool:
        if clip_type != self.clip_type or not isinstance(clip_name, str):
            return False
        return self.name_contains is None or self.name_contains in clip_name.lower()


# CLIPLoader type -> the conditioning tiny mode puts in place of its text encoder; first match wins,
# so an entry with ``name_contains`` goes before its type's catch-all. The widths are the stand-ins'
# (the real ones: Qwen2.5-VL 7B 3584, Qwen3 4B 2560, Mistral 3 24B 3 x 5120). Z-Image's Qwen3 4B
# shares type lumina2 with Lumina 2's Gemma 2 2B, and Flux.2 Klein's Qwen3 shares type flux2 with
# dev's Mistral: the file name tells them apart (Lumina 2 and Klein have no workflow, so no entry).
FIXED_TEXT_ENCODERS: tuple[FixedTextEncoder, ...] = (
    FixedTextEncoder("qwen_image", "Qwen2.5-VL 7B", "qwen_image", dim=3584),
    FixedTextEncoder("lumina2", "Qwen3 4B", "z_image", dim=64, name_contains="qwen_3_4b"),
    FixedTextEncoder("flux2", "Mistral 3 Small 24B", "flux2", dim=64, name_contains="mistral",
                     extra=(("pooled_output", ""),)),
    FixedTextEncoder("wan", "umT5-XXL", "wan21", dim=4096),  # Wan 2.1's 4096-wide text projection reads it
)


def fixed_text_encoder(node: dict) -> FixedTextEncoder | None:
    """The table entry for a CLIPLoader node whose encoder cannot shrink, else None."""
    if not isinstance(node, dict) or node.get("class_type") != "CLIPLoader":
        return None
    inputs = node.get("inputs") or {}
    return next((e for e in FIXED_TEXT_ENCODERS if e.matches(inputs.get("type"), inputs.get("clip_name"))), None)


@dataclass
class Replacement:
    """One loader dropped and the text-encode nodes it fed, now seeded conditioning."""

    loader: str
    file: str
    encoder: FixedTextEncoder
    nodes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        e = self.encoder
        shape = f"{e.tokens}x{e.dim}" + (f", pooled {e.pooled}" if e.pooled else "")
        shape += "".join(f", {key} {value or 'None'}" for key, value in e.extra)
        return (f"text encoder {self.file} ({e.encoder}, CLIPLoader node {self.loader}, type {e.clip_type}) not loaded: "
                f"node(s) {', '.join(self.nodes)} give seeded random conditioning ({CONDITIONING_NODE}, {shape})")


def _title(node: dict) -> str:
    return str((node.get("_meta") or {}).get("title") or node.get("class_type"))


def _links_to(value: object, node_id: str) -> bool:
    return isinstance(value, list) and len(value) == 2 and str(value[0]) == node_id


def _conditioning(nid: str, text: object, encoder: FixedTextEncoder, title: str) -> dict[str, dict]:
    """The nodes in place of text-encode node ``nid``: SGTestConditioning, then one
    SGTestConditioningExtra per extra key; the last of them takes ``nid`` (links to it stay valid)."""
    ids = [f"{nid}_tiny{i}" for i in range(len(encoder.extra))] + [nid]
    nodes = {ids[0]: {"class_type": CONDITIONING_NODE,
                      "inputs": {"text": text, "seed": 0, "tokens": encoder.tokens, "dim": encoder.dim,
                                 "pooled_dim": encoder.pooled},
                      "_meta": {"title": title}}}
    for i, (key, shape) in enumerate(encoder.extra):
        nodes[ids[i + 1]] = {"class_type": EXTRA_NODE,
                             "inputs": {"conditioning": [ids[i], 0], "key": key, "shape": shape, "seed": i},
                             "_meta": {"title": f"{title}: {key}"}}
    return nodes


def replace_fixed_text_encoders(api: dict) -> tuple[dict, list[Replacement]]:
    """A copy of ``api`` with every text encoder of :data:`FIXED_TEXT_ENCODERS` replaced.

    Each ``CLIPTextEncode`` the loader feeds becomes :data:`CONDITIONING_NODE` under the same id
    (same text, so positive and negative differ; a linked text stays linked), and the loader is
    dropped. A loader that feeds anything else (a CLIP LoRA, another encode node) raises
    ``ValueError`` naming the node: its output cannot be faked by conditioning alone.
    Prompts without such loaders come back unchanged (a copy), with no replacements.
    """
    new = copy.deepcopy(api)
    done: list[Replacement] = []
    for loader_id, node in api.items():
        encoder = fixed_text_encoder(node)
        if encoder is None:
            continue
        loader_id = str(loader_id)
        users = [(str(nid), name, user) for nid, user in api.items()
                 for name, value in (user.get("inputs") or {}).items() if _links_to(value, loader_id)]
        for nid, name, user in users:
            if user.get("class_type") not in TEXT_ENCODE_NODES or name != "clip":
                raise ValueError(
                    f"node {nid} {_title(user)!r} ({user.get('class_type')}) takes the CLIP of loader {loader_id} "
                    f"({encoder.encoder}, which no tiny file can stand in for); tiny mode replaces only "
                    f"{', '.join(TEXT_ENCODE_NODES)} fed straight from that loader")
        rep = Replacement(loader_id, str((node.get("inputs") or {}).get("clip_name")), encoder)
        for nid, _name, user in users:
            text = (user.get("inputs") or {}).get(TEXT_ENCODE_NODES[user["class_type"]], "")
            new.update(_conditioning(nid, text, encoder, f"{_title(user)} (tiny mode: seeded conditioning)"))
            rep.nodes.append(nid)
        del new[loader_id]
        done.append(rep)
    return new, done
