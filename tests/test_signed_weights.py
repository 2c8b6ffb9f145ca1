"""Signed weights: a negative weight pushes away from its term's reference ("a look I do not want").

Shares use |weight|, so a negative term takes as much of the step as a positive one of the same
size, pointed the other way. Scored by the twin networks (not the ones that guided).
"""

from __future__ import annotations

import json

import pytest

from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed

SCALE = 3.0


def test_a_negative_style_weight_raises_its_twin_score_and_a_positive_one_lowers_it(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    toward = G.add_all_losses(g, prefix="p", terms=("mse", "gram"), weights={"gram": 2.0})
    away = G.add_all_losses(g, prefix="n", terms=("mse", "gram"), weights={"gram": -2.0})
    alone = G.add_all_losses(g, prefix="a", terms=("gram",), weights={"gram": -1.0})
    G.add_twin_networks(g, tiny_models)
    score = G.add_all_losses(g, prefix="s", terms=("mse", "gram"), vgg="vgg_t")
    samp, opts = G.sampling(), G.guidance_options(scale=SCALE)
    G.add_ksampler(g, "plain", samp)
    G.add_guided_sampler(g, "toward", toward, opts, samp)
    G.add_guided_sampler(g, "away", away, opts, samp)
    G.add_guided_sampler(g, "alone", alone, opts, samp)
    for n in ("plain", "toward", "away", "alone"):
        G.add_decode_measure(g, n, n, score)
    _, own = G.add_decode_measure(g, "own", "away", away)  # the negative chain's own report
    result = comfy.run(g)

    gram = {n: comfy.output(f"{n}_m", G.SCORE_INDEX["gram"]) for n in ("plain", "toward", "away")}
    mse = {n: comfy.output(f"{n}_m", G.SCORE_INDEX["mse"]) for n in ("plain", "toward", "away", "alone")}
    print(f"\ntwin gram/plain: toward {gram['toward'] / gram['plain']:.3f} away {gram['away'] / gram['plain']:.3f}; "
          f"mse/plain: toward {mse['toward'] / mse['plain']:.3f} away {mse['away'] / mse['plain']:.3f} "
          f"away without the content term {mse['alone'] / mse['plain']:.3f}")
    assert gram["toward"] < 0.95 * gram["plain"], gram
    assert gram["away"] > 1.05 * gram["plain"], gram
    # Moving away from a style moves pixels too, but the content term (a third of the step) still holds them:
    # content error is lower than with the negative style alone.
    assert mse["toward"] < mse["plain"] and mse["away"] < mse["alone"], mse

    report = json.loads(comfy.output(own, 1))
    terms = {t["name"]: t for t in report["terms"]}
    assert terms["gram_style"]["weight"] == -2.0
    assert terms["gram_style"]["weight_share"] == pytest.approx(2 / 3)
    steps = [d for e, d in result.messages if e == "style_guidance.step" and d["node"] == "away"]
    assert steps and all(d["terms"]["gram_style"]["weight"] == -2.0 for d in steps)
    assert all(d["terms"]["gram_style"]["share"] == pytest.approx(2 / 3, abs=1e-4) for d in steps)


def test_a_weight_outside_the_widget_range_is_refused_naming_it(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    last = G.add_all_losses(g, terms=("mse",), weights={"mse": -2e6})
    G.add_guided_sampler(g, "guided", last, G.guidance_options(), G.sampling(steps=1))
    G.add_decode_measure(g, "g", "guided", last)
    with pytest.raises(PromptFailed, match="weight"):
        comfy.run(g)
