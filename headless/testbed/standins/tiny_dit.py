"""Tiny mode's loaders for stand-ins the core loaders would build at full size: the tiny DiTs and narrow VAEs.

ComfyUI's detection recognises the tiny DiT stand-ins (Z-Image, Flux.2; :mod:`.dit`) by their keys
and then forces the real widths on them (Z-Image 3840, Flux.2 6144: billions of parameters), and
``VAELoader`` builds every KL VAE from a fixed full-width config, so a narrow one (Flux.2's, the only
decoder that family has) does not load. In tiny mode each ``UNETLoader`` whose file is a tiny DiT
(:data:`.names.DIT_UNETS`) becomes ``SGTestDiTLoader`` under the same node id and file name (the
stand-in's own sizes from its metadata; ``headless/testbed/standin_dit_nodes.py``), and each
``VAELoader`` of a narrow VAE (:data:`.names.NARROW_VAES`) becomes ``SGTestKLVAE`` with that
VAE's layout. The stand-in files go under the workflow's own names (:mod:`.install`), so the
untouched workflow still validates; only the rewritten prompt runs. The test nodes are not part
of the pack; the runner registers them only when this rewrite (or :mod:`.tiny_text`'s) happened.
Plain data and dict surgery: no torch, no ComfyUI.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from .names import DIT_UNETS, NARROW_VAES

DIT_LOADER = "SGTestDiTLoader"
KL_VAE_LOADER = "SGTestKLVAE"


@dataclass
class LoaderSwap:
    """One core loader replaced by a test loader of the same file."""

    node: str
    loader: str  # the core class it was
    file: str
    replacement: str  # the test class it is now
    why: str

    def describe(self) -> str:
        return (f"{self.loader} node {self.node} ({self.file}) loaded by {self.replacement} ({self.why})")


def _swap(node_id: str, node: dict) -> tuple[dict, LoaderSwap] | None:
    cls, inputs = node.get("class_type"), node.get("inputs") or {}
    if cls == "UNETLoader" and isinstance(inputs.get("unet_name"), str) and inputs["unet_name"] in DIT_UNETS:
        name = inputs["unet_name"]
        new = {"class_type": DIT_LOADER, "inputs": {"unet_name": name}}
        why = (f"the tiny {DIT_UNETS[name]} stand-in at its own sizes; UNETLoader would build it at the width "
               "ComfyUI's detection forces")
    elif cls == "VAELoader" and isinstance(inputs.get("vae_name"), str) and inputs["vae_name"] in NARROW_VAES:
        name = inputs["vae_name"]
        z_channels, batch_norm = NARROW_VAES[name]
        new = {"class_type": KL_VAE_LOADER,
               "inputs": {"vae_name": name, "z_channels": z_channels, "batch_norm_latent": batch_norm}}
        why = "a narrow VAE of the same layout; VAELoader builds KL VAEs at full width"
    else:
        return None
    title = (node.get("_meta") or {}).get("title") or cls
    new["_meta"] = {"title": f"{title} (tiny mode: {new['class_type']})"}
    return new, LoaderSwap(node_id, str(cls), name, new["class_type"], why)


def replace_full_size_loaders(api: dict) -> tuple[dict, list[LoaderSwap]]:
    """A copy of ``api`` with each loader of a tiny DiT or narrow VAE stand-in swapped for its test loader.

    Same node id, same file name: every link to the loader stays valid (both give MODEL / VAE as
    output 0). Prompts without such loaders come back unchanged (a copy), with no swaps.
    """
    new = copy.deepcopy(api)
    done: list[LoaderSwap] = []
    for node_id, node in api.items():
        swapped = _swap(str(node_id), node) if isinstance(node, dict) else None
        if swapped is not None:
            new[node_id], swap = swapped
            done.append(swap)
    return new, done


def tiny_rewrite(api: dict) -> tuple[dict, list[str]]:
    """Both tiny-mode rewrites: text encoders that cannot shrink (:mod:`.tiny_text`), then the loaders above.

    Returns the new prompt and one line per replacement, for the TINY MODE banner ("Replaced: ...").
    ``ValueError`` when a text encoder cannot be replaced (see ``replace_fixed_text_encoders``).
    """
    from .tiny_text import replace_fixed_text_encoders

    api, texts = replace_fixed_text_encoders(api)
    api, swaps = replace_full_size_loaders(api)
    return api, [r.describe() for r in texts] + [s.describe() for s in swaps]


def test_nodes(api: dict) -> set[str]:
    """The SGTest* classes a (rewritten) prompt uses: what a ComfyUI must have registered to run it."""
    return {str(n.get("class_type")) for n in api.values()
            if isinstance(n, dict) and str(n.get("class_type", "")).startswith("SGTest")}
