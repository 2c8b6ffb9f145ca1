"""Regions, measured: two styles under two feathered masks in one picture.

The left half is guided toward style A, the right half toward style B (B is A's negative). Each
region is scored on its own, by masked Gram terms on the twin VGG: each region's distance to its
own style falls against plain sampling, the left region ends nearer A than the right one and the
right one nearer B, and the counterfactual (the styles swapped between the masks) reverses both
distances of both regions. Measured, not asserted: against plain sampling the B region's distance
to A falls too (both styles share statistics the plain result lacks; see the printed figures).
Masks come from the core mask nodes (SolidMask, MaskComposite, FeatherMask, InvertMask), as a user
builds them.
"""

from __future__ import annotations

import pytest

from headless.testbed import graphs as G

SIZE = 128  # 16x16 latents: at 64 px (8x8) the decoder's reach couples the two halves
SCALE = 6.0


def _masks_and_styles(g: dict, feather: int = 16) -> None:
    g["style_a"] = {"class_type": "LoadImage", "inputs": {"image": "style_guidance_style.jpg"}}
    g["style_b"] = {"class_type": "ImageInvert", "inputs": {"image": G.link("style_a")}}
    g["blank"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": SIZE, "height": SIZE}}
    g["half"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": SIZE // 2, "height": SIZE}}
    g["left_hard"] = {"class_type": "MaskComposite", "inputs": {
        "destination": G.link("blank"), "source": G.link("half"), "x": 0, "y": 0, "operation": "add"}}
    g["left"] = {"class_type": "FeatherMask", "inputs": {
        "mask": G.link("left_hard"), "left": 0, "top": 0, "right": feather, "bottom": 0}}
    g["right"] = {"class_type": "InvertMask", "inputs": {"mask": G.link("left")}}


def _gram(g: dict, node: str, style: str, mask: str, vgg: str, first: str | None, weight: float = 1.0) -> str:
    g[node] = {"class_type": "StyleGuidanceGramStyle", "inputs": {
        "style": G.link(style), "vgg": G.link(vgg), "weight": weight, "layers": "relu1_1..relu5_1 (Gatys)",
        "style_size": 64, "mask": G.link(mask), **({"losses": G.link(first)} if first else {})}}
    return node


def _two_regions(g: dict, prefix: str, left_style: str, right_style: str) -> str:
    content = G.add_all_losses(g, prefix=f"{prefix}c", terms=("mse",), weights={"mse": 1.0})
    left = _gram(g, f"{prefix}_l", left_style, "left", "vgg", content, 1.5)
    right = _gram(g, f"{prefix}_r", right_style, "right", "vgg", None, 1.5)
    g[f"{prefix}_all"] = {"class_type": "StyleGuidanceCombine",
                          "inputs": {"losses_a": G.link(left), "losses_b": G.link(right)}}
    return f"{prefix}_all"


@pytest.mark.slow
def test_each_region_moves_toward_its_own_style_and_not_the_other(comfy, tiny_models):
    g = G.base_graph(tiny_models, size=SIZE)
    _masks_and_styles(g)
    G.add_twin_networks(g, tiny_models)
    scores = {(r, s): _gram(g, f"s_{r}{s}", f"style_{s}", {"L": "left", "R": "right"}[r], "vgg_t", None)
              for r in ("L", "R") for s in ("a", "b")}
    samp, opts = G.sampling(steps=8), G.guidance_options(scale=SCALE)
    G.add_ksampler(g, "plain", samp)
    G.add_guided_sampler(g, "regions", _two_regions(g, "g", "style_a", "style_b"), opts, samp)
    G.add_guided_sampler(g, "swapped", _two_regions(g, "w", "style_b", "style_a"), opts, samp)
    runs = ("plain", "regions", "swapped")
    for run in runs:
        g[f"{run}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(run), "vae": G.link("vae")}}
        for (r, s), chain in scores.items():
            g[f"{run}_{r}{s}"] = {"class_type": "StyleGuidanceMeasure",
                                  "inputs": {"image": G.link(f"{run}_dec"), "losses": G.link(chain), "seed": 0}}
    comfy.run(g)

    d = {(run, r, s): comfy.output(f"{run}_{r}{s}", G.SCORE_INDEX["gram"]) for run in runs for (r, s) in scores}
    for run in runs:
        print(f"\n{run}: left->A {d[run, 'L', 'a']:.4g} left->B {d[run, 'L', 'b']:.4g} "
              f"right->A {d[run, 'R', 'a']:.4g} right->B {d[run, 'R', 'b']:.4g}")
    # each region's own style: closer than with plain sampling
    assert d["regions", "L", "a"] < d["plain", "L", "a"] and d["regions", "R", "b"] < d["plain", "R", "b"], d
    # and the regions separate: the left one is nearer A than the right one is, the right one nearer B
    # (with plain sampling the halves score alike)
    assert d["regions", "L", "a"] < d["regions", "R", "a"] and d["regions", "R", "b"] < d["regions", "L", "b"], d
    # counterfactual: with the styles swapped between the masks, each region follows the other style
    # (its own distance rises, the other's falls), so no region is pulled by the other region's style
    assert d["swapped", "L", "a"] > d["regions", "L", "a"] and d["swapped", "L", "b"] < d["regions", "L", "b"], d
    assert d["swapped", "R", "b"] > d["regions", "R", "b"] and d["swapped", "R", "a"] < d["regions", "R", "a"], d
