"""Blends of several styles: a style batch taken as one target (style_batch = blend, blend_weights a, b).

As a/b falls, the result's twin-scored distance to style A must rise and to style B fall, for the
Gram and the CLIP term, over three ratios. Scored with the twin networks (other seeds), each
style on its own.
"""

from __future__ import annotations

import pytest

from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed

SCALE = 8.0
RATIOS = ((4.0, 1.0), (1.0, 1.0), (1.0, 4.0))


def _styles(g: dict) -> None:
    """Two opposite looks, about as far from the content picture: the dark sample style and its negative."""
    g["style_a"] = {"class_type": "LoadImage", "inputs": {"image": "style_guidance_style.jpg"}}
    g["style_b"] = {"class_type": "ImageInvert", "inputs": {"image": G.link("style_a")}}
    g["styles"] = {"class_type": "ImageBatch", "inputs": {"image1": G.link("style_a"), "image2": G.link("style_b")}}


def _style_terms(g: dict, prefix: str, style: str, vgg: str, clip: str, first: str | None = None,
                 blend: str | None = None, weights: tuple[float, float] = (1.0, 1.0)) -> str:
    extra = {} if blend is None else {"style_batch": "blend", "blend_weights": blend}
    g[f"{prefix}_clip"] = {"class_type": "StyleGuidanceCLIPStyle", "inputs": {
        "style": G.link(style), "weight": weights[0], "open_clip": G.link(clip), "num_cutouts": 2, "cut_min": 0.5,
        "distance": "spherical", "flip": True, "seed": 0, "style_size": 64, **extra, **({"losses": G.link(first)} if first else {})}}
    g[f"{prefix}_gram"] = {"class_type": "StyleGuidanceGramStyle", "inputs": {
        "style": G.link(style), "vgg": G.link(vgg), "weight": weights[1], "layers": "relu1_1..relu5_1 (Gatys)", "style_size": 64,
        "losses": G.link(f"{prefix}_clip"), **extra}}
    return f"{prefix}_gram"


@pytest.mark.slow
def test_blend_ratio_moves_each_twin_style_distance_in_order(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    _styles(g)
    G.add_twin_networks(g, tiny_models)
    score_a = _style_terms(g, "sa", "style_a", "vgg_t", "oclip_t")
    score_b = _style_terms(g, "sb", "style_b", "vgg_t", "oclip_t")
    samp, opts = G.sampling(steps=8), G.guidance_options(scale=SCALE)
    names = []
    for i, (a, b) in enumerate(RATIOS):
        last = _style_terms(g, f"r{i}", "styles", "vgg", "oclip", blend=f"{a:g}, {b:g}",
                            weights=(1.0, 1.0))
        G.add_guided_sampler(g, f"run{i}", last, opts, samp)
        G.add_decode_measure(g, f"a{i}", f"run{i}", score_a)
        g[f"b{i}_m"] = {"class_type": "StyleGuidanceMeasure",
                        "inputs": {"image": G.link(f"a{i}_dec"), "losses": G.link(score_b), "seed": 0}}
        names.append(i)
    comfy.run(g)

    rows = []
    for kind in ("gram", "clip"):
        da = [comfy.output(f"a{i}_m", G.SCORE_INDEX[kind]) for i in names]
        db = [comfy.output(f"b{i}_m", G.SCORE_INDEX[kind]) for i in names]
        rows.append((kind, da, db))
        print(f"\n{kind}: a:b " + "  ".join(f"{a:g}:{b:g} -> A {x:.4g} B {y:.4g}"
                                            for (a, b), x, y in zip(RATIOS, da, db, strict=True)))
    for kind, da, db in rows:
        # less of A in the blend: further from A, closer to B
        assert da[0] < da[1] < da[2], (kind, da)
        assert db[0] > db[1] > db[2], (kind, db)


def test_blend_weights_are_checked_at_validation_and_against_the_batch(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    _styles(g)
    last = _style_terms(g, "r", "styles", "vgg", "oclip", blend="1, x")
    G.add_guided_sampler(g, "guided", last, G.guidance_options(), G.sampling(steps=1))
    G.add_decode_measure(g, "g", "guided", last)
    with pytest.raises(PromptFailed, match="blend_weights"):
        comfy.run(g)
    for node in ("r_clip", "r_gram"):
        g[node]["inputs"]["blend_weights"] = "1, 2, 3"
    with pytest.raises(PromptFailed, match="3 weight.*batch of 2"):
        comfy.run(g)
