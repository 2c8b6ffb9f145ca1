"""The conflict-aware combination (``combine: projected``, PCGrad) against the plain weighted sum.

Unit checks of the projection, then the shipped five-term chain on the stand-ins: the same scale
(the step is normalised, so the same total step size), weighted or projected, each result scored
term by term with twin networks. The figures decide the default (docs/architecture.md).
"""

from __future__ import annotations

import json

import pytest
import torch

from headless.testbed import graphs as G

from .test_conflicts import _terms as _linear
from .test_guidance import SCALE, score_chain, term_ratios


def test_projection_removes_conflicts_and_leaves_agreeing_pulls_alone(balance):
    leaf = torch.zeros(2, 1, 2, 2, requires_grad=True)
    e1, e2 = torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    e1[:, 0, 0, 0], e2[:, 0, 0, 1] = 1.0, 1.0
    # a and b at 135 degrees (cosine -0.71): weighted, b's pull undoes part of a's and vice versa.
    dirs = {"a": e1, "b": -e1 + e2}
    w = {"a": 1.0, "b": 1.0}
    weighted = balance.balanced_direction(_linear(leaf, dirs), w, leaf, report=True)
    projected = balance.balanced_direction(_linear(leaf, dirs), w, leaf, report=True, combine="projected")
    assert weighted.cosines[("a", "b")] == pytest.approx(-2 ** -0.5)
    # Projected: each term keeps a positive effect, more than with the weighted sum.
    for k in ("a", "b"):
        assert projected.effects[k] > weighted.effects[k] > 0.0, (k, projected.effects, weighted.effects)
    # Neither projected pull points against the other's original pull.
    pulls = {k: torch.nn.functional.normalize(v.flatten(1), dim=1) for k, v in dirs.items()}
    proj = balance.project_conflicts({k: p.view(2, 1, 2, 2) for k, p in pulls.items()})
    for i, j in (("a", "b"), ("b", "a")):
        assert float((proj[i].flatten(1) * pulls[j]).sum(1).min()) >= -1e-12
    # Orthogonal or agreeing pulls: the projected direction is the weighted one, bit for bit.
    for d in ({"a": e1, "b": e2}, {"a": e1, "b": e1 + e2}):
        one = balance.balanced_direction(_linear(leaf, d), {"a": 2.0, "b": 1.0}, leaf).direction
        two = balance.balanced_direction(_linear(leaf, d), {"a": 2.0, "b": 1.0}, leaf, combine="projected").direction
        assert torch.equal(one, two)
    # A negative weight is a pull the other way: the same loss at +1 and -1 projects to nothing at all.
    same = balance.balanced_direction(_linear(leaf, {"a": e1, "n": e1}), {"a": 1.0, "n": -1.0}, leaf,
                                      combine="projected")
    assert float(same.direction.abs().max()) == 0.0
    with pytest.raises(ValueError, match="combine"):
        balance.balanced_direction(_linear(leaf, dirs), w, leaf, combine="pcgrad")


def test_groups_are_projected_against_each_other(balance):
    """Image and model-feature groups meet in x0 space: projected, a group that points against the other loses
    that component; weighted, the two opposite groups cancel."""
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[-1.0, 1.0]])
    ones = torch.ones(1)
    weighted = balance.combine_groups([(a, ones), (b, ones)])
    projected = balance.combine_groups([(a, ones), (b, ones)], "projected")
    assert float(weighted[0, 0]) == pytest.approx(2 ** 0.5 - 1.0, rel=1e-5)  # unit RMS each: a*sqrt2 + b
    assert float((projected * a).sum()) > float((weighted * a).sum())
    assert float((projected * b).sum()) > float((weighted * b).sum())


def _chain_graph(models: dict, mode: str, seed: int) -> tuple[dict, dict[str, str]]:
    """Plain, weighted and projected runs of the five-term chain; each result measured by the twin scorer."""
    g = G.base_graph(models)
    last = G.add_all_losses(g)
    score = score_chain(g, models)
    samp = G.sampling(seed=seed)
    G.add_ksampler(g, "plain", samp)
    measures = {"plain": G.add_decode_measure(g, "p", "plain", score)[1]}
    for combine in ("weighted", "projected"):
        G.add_guided_sampler(g, combine, last, G.guidance_options(mode=mode, scale=SCALE, combine=combine), samp)
        measures[combine] = G.add_decode_measure(g, combine[:3], combine, score)[1]
    return g, measures


def _effects(messages, node: str) -> dict[str, list[float]]:
    """Each term's per-step effect, from the sampler node's step events."""
    out: dict[str, list[float]] = {}
    for event, data in messages:
        if event == "style_guidance.step" and data["node"] == node:
            for name, t in data["terms"].items():
                if t["effect"] is not None:
                    out.setdefault(name, []).append(t["effect"])
    return out


@pytest.mark.parametrize("mode", ["x0", "xt"])
def test_projected_against_weighted_scored_by_twins(comfy, tiny_models, mode):
    rows = {}
    effects = {}
    for seed in (3, 11):
        g, measures = _chain_graph(tiny_models, mode, seed)
        result = comfy.run(g)
        for combine in ("weighted", "projected"):
            ratios = term_ratios(comfy, measures["plain"], measures[combine])
            rows.setdefault(combine, []).append(ratios)
            for name, series in _effects(result.messages, combine).items():
                effects.setdefault(combine, {}).setdefault(name, []).extend(series)
    mean = {c: {t: sum(r[t] for r in rs) / len(rs) for t in G.SCORE_INDEX} for c, rs in rows.items()}
    low = {c: {t: min(v) for t, v in e.items()} for c, e in effects.items()}
    print(f"\n{mode}: twin guided/plain per term, mean of seeds 3, 11: {json.dumps(mean)}"
          f"\n{mode}: lowest per-step effect: {json.dumps(low)}")
    for combine, m in mean.items():
        overall = sum(m.values()) / len(m)
        print(f"{mode} {combine}: mean over terms {overall:.3f}, worst term {max(m.values()):.3f}")
    # Both combinations guide: the twin scores fall on average over the terms.
    for combine, m in mean.items():
        assert sum(m.values()) / len(m) < 0.9, (combine, m)
    # This chain's pulls hardly conflict (every term's per-step effect stays positive, PatchNCE's lowest ~0.13),
    # so projecting changes little: measured within 0.012 of the weighted sum per term (seeds 3 and 11).
    assert all(v > 0.05 for v in low["weighted"].values()), low
    assert all(abs(mean["projected"][t] - mean["weighted"][t]) < 0.04 for t in G.SCORE_INDEX), mean
    # The step events carry each term's effect at every guided step, for both combinations.
    for combine in ("weighted", "projected"):
        assert set(effects[combine]) and all(len(v) >= 4 for v in effects[combine].values()), effects


def _negative_style_graph(models: dict, mode: str, seed: int) -> tuple[dict, dict[str, str]]:
    """Content MSE, Gram toward style A and Gram away from B (half A, half another picture): A and B overlap,
    so the two style pulls conflict. Scored with the twin VGG: Gram to A, Gram to B, MSE to the content."""
    g = G.base_graph(models)
    G.add_twin_networks(g, models)
    g["other"] = {"class_type": "SGTestImage", "inputs": {"width": G.SIZE + 16, "height": G.SIZE, "seed": 9,
                                                          "batch_size": 1}}
    g["style_b"] = {"class_type": "ImageBlend", "inputs": {"image1": G.link("style"), "image2": G.link("other"),
                                                           "blend_factor": 0.5, "blend_mode": "normal"}}

    def chain(prefix: str, vgg: str) -> str:
        g[f"{prefix}m"] = {"class_type": "StyleGuidanceContentMSE", "inputs": {
            "content": G.link("content"), "weight": 1.0, "fit": "stretch"}}
        for name, style, w, prev in (("a", "style", 1.0, "m"), ("b", "style_b", -0.5, "a")):
            g[f"{prefix}{name}"] = {"class_type": "StyleGuidanceGramStyle", "inputs": {
                "style": G.link(style), "vgg": G.link(vgg), "weight": w, "layers": "relu1_1..relu5_1 (Gatys)",
                "losses": G.link(f"{prefix}{prev}")}}
        return f"{prefix}b"

    last = chain("l", "vgg")
    samp = G.sampling(seed=seed)
    G.add_ksampler(g, "plain", samp)
    measures = {}
    for combine in ("plain", "weighted", "projected"):
        if combine != "plain":
            G.add_guided_sampler(g, combine, last, G.guidance_options(mode=mode, scale=SCALE, combine=combine), samp)
        g[f"{combine}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(combine), "vae": G.link("vae")}}
        for term, (cls, ref) in {"mse": ("StyleGuidanceContentMSE", "content"),
                                 "a": ("StyleGuidanceGramStyle", "style"),
                                 "b": ("StyleGuidanceGramStyle", "style_b")}.items():
            inputs = ({"content": G.link(ref), "weight": 1.0, "fit": "stretch"} if term == "mse" else
                      {"style": G.link(ref), "vgg": G.link("vgg_t"), "weight": 1.0,
                       "layers": "relu1_1..relu5_1 (Gatys)"})
            g[f"{combine}_s{term}"] = {"class_type": cls, "inputs": inputs}
            g[f"{combine}_{term}"] = {"class_type": "StyleGuidanceMeasure", "inputs": {
                "image": G.link(f"{combine}_dec"), "losses": G.link(f"{combine}_s{term}"), "seed": 0}}
            measures[(combine, term)] = f"{combine}_{term}"
    return g, measures


@pytest.mark.parametrize("mode", ["x0"])  # xt measured alike (docstring); one mode keeps the suite's time
def test_projected_with_a_negative_style_that_overlaps_the_positive_one(comfy, tiny_models, mode):
    """Where pulls do conflict, projecting does not let each term move its own score: the Gram toward A and the
    Gram away from B (which shares half of A) pull nearly opposite ways; the weighted sum still brings the result
    closer to B, and projecting costs A most of its progress while B still falls. Measured (seeds 3 and 11; x0, xt):
    weighted A 0.41/0.42, B 0.44/0.45; projected A 0.62/0.65, B 0.65/0.68; content MSE 0.74-0.77 either way."""
    out = {}
    cos = {}
    for seed in (3,):
        g, measures = _negative_style_graph(tiny_models, mode, seed)
        result = comfy.run(g)
        for combine in ("weighted", "projected"):
            for term in ("mse", "a", "b"):
                r = comfy.output(measures[(combine, term)], 2) / comfy.output(measures[("plain", term)], 2)
                out.setdefault(combine, {}).setdefault(term, []).append(r)
            for event, data in result.messages:
                if event == "style_guidance.step" and data["node"] == combine:
                    for c in data["cosines"]:
                        cos.setdefault(combine, []).append(c["cosine"])
    mean = {c: {t: sum(v) / len(v) for t, v in d.items()} for c, d in out.items()}
    print(f"\n{mode}: twin guided/plain (mse, Gram to A, Gram to B): {json.dumps(mean)}; "
          f"cosines min {min(cos['weighted']):.2f} mean {sum(cos['weighted']) / len(cos['weighted']):.2f}")
    assert min(cos["weighted"]) < -0.5, cos  # the two style terms do conflict
    weighted, projected = mean["weighted"], mean["projected"]
    # Both still guide toward the content and toward A ...
    for m in (weighted, projected):
        assert m["mse"] < 0.9 and m["a"] < 0.9, mean
    # ... projecting removes the conflicting components (A keeps clearly less of its progress), and neither
    # combination moves the result away from B: the reason 'weighted' stays the default.
    assert projected["a"] > weighted["a"] + 0.1, mean
    assert weighted["b"] < 1.0 and projected["b"] < 1.0, mean
