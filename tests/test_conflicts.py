"""Conflicts between terms, measured: each term's effect (its own progress under the combined step) and the
cosine between terms' pulls, in sampler/balance.py and in Measure.

A share of the direction is not a share of the effect: two terms that pull against each other each
steer half of the step and both get nowhere. The effect says so; the share cannot.
"""

from __future__ import annotations

import json

import pytest
import torch

from headless.testbed import graphs as G


def _terms(leaf: torch.Tensor, directions: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Linear losses <leaf, v> per sample: their gradient is v whatever the leaf."""
    return {k: (leaf * v).flatten(1).sum(1) for k, v in directions.items()}


def test_effects_equal_shares_without_conflict_and_fall_with_it(balance):
    leaf = torch.zeros(2, 3, 4, 4, requires_grad=True)
    e1, e2 = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    e1[:, 0], e2[:, 1] = 1.0, 1.0
    # Orthogonal pulls: each term's effect is its share, the cosine 0.
    b = balance.balanced_direction(_terms(leaf, {"a": e1, "b": e2}), {"a": 3.0, "b": 1.0}, leaf, report=True)
    assert b.effects["a"] == pytest.approx(0.75) and b.effects["b"] == pytest.approx(0.25)
    assert b.cosines[("a", "b")] == pytest.approx(0.0, abs=1e-12)
    # Opposite pulls at 2:1: the step serves the stronger one by a third of its solo progress, and undoes the other's.
    b = balance.balanced_direction(_terms(leaf, {"a": e1, "c": -e1}), {"a": 2.0, "c": 1.0}, leaf, report=True)
    assert b.effects["a"] == pytest.approx(1 / 3) and b.effects["c"] == pytest.approx(-1 / 3)
    assert b.cosines[("a", "c")] == pytest.approx(-1.0)
    # A negative weight is a pull the other way: the same loss at -1 against +1 is a full conflict, and alone
    # (with the sign) it gets all of its own (reversed) progress.
    b = balance.balanced_direction(_terms(leaf, {"a": e1, "n": e1}), {"a": 1.0, "n": -1.0}, leaf, report=True)
    assert b.cosines[("a", "n")] == pytest.approx(-1.0) and b.effects["n"] == pytest.approx(0.0, abs=1e-12)
    b = balance.balanced_direction(_terms(leaf, {"n": e1}), {"n": -1.0}, leaf, report=True)
    assert b.effects["n"] == pytest.approx(1.0)
    # A term with no gradient has no effect to report; without ``report`` nothing is computed.
    b = balance.balanced_direction({"a": (leaf * e1).flatten(1).sum(1), "z": torch.zeros(2)}, {"a": 1.0, "z": 1.0},
                                   leaf, report=True)
    assert b.effects["z"] is None and b.cosines[("a", "z")] is None and b.effects["a"] == pytest.approx(1.0)
    assert balance.balanced_direction(_terms(leaf, {"a": e1}), {"a": 1.0}, leaf).effects == {}


def test_measure_reports_effects_and_names_the_pair_that_conflicts(comfy, tiny_models):
    """Two pixel-MSE terms toward a picture and toward its negative, scored on mid grey: their gradients are
    opposite, so Measure reports a cosine near -1 and effects near +-1/3 at weights 2 and 1, while the shares say
    2/3 and 1/3."""
    g = G.base_graph(tiny_models)
    g["neg_content"] = {"class_type": "ImageInvert", "inputs": {"image": G.link("content")}}
    g["grey"] = {"class_type": "EmptyImage", "inputs": {"width": G.SIZE, "height": G.SIZE, "batch_size": 1,
                                                        "color": 0x808080}}
    g["m1"] = {"class_type": "StyleGuidanceContentMSE",
               "inputs": {"content": G.link("content"), "weight": 2.0, "fit": "stretch"}}
    g["m2"] = {"class_type": "StyleGuidanceContentMSE",
               "inputs": {"content": G.link("neg_content"), "weight": 1.0, "fit": "stretch", "losses": G.link("m1")}}
    g["meas"] = {"class_type": "StyleGuidanceMeasure", "inputs": {"image": G.link("grey"), "losses": G.link("m2"),
                                                                  "seed": 0}}
    comfy.run(g)
    report = json.loads(comfy.output("meas", 1))
    terms = {t["name"]: t for t in report["terms"]}
    names = sorted(terms)
    print(f"\nopposite MSE terms on grey: {json.dumps(report['terms'])}; cosines {report['cosines']}")
    assert len(names) == 2 and len(report["cosines"]) == 1
    (pair,) = report["cosines"]
    assert pair["cosine"] < -0.99, pair
    first, second = (terms[n] for n in (pair["a"], pair["b"]))
    strong, weak = (first, second) if first["weight"] == 2.0 else (second, first)
    assert strong["share"] == pytest.approx(2 / 3, abs=1e-3) and weak["share"] == pytest.approx(1 / 3, abs=1e-3)
    assert strong["effect"] == pytest.approx(1 / 3, abs=0.02) and weak["effect"] == pytest.approx(-1 / 3, abs=0.02)
    text = comfy.output("meas", 0)
    assert "pulls against" in text and "effect -3" in text, text
    # The runner keeps both in losses.json (and the effect in losses.csv).
    from headless import results

    parsed = results.parse_measure(comfy.output("meas", 1))
    assert parsed["cosines"][0]["cosine"] < -0.99 and all(t["effect"] is not None for t in parsed["terms"])
    old = results.parse_measure({**report, "version": 4, "cosines": None,
                                 "terms": [{k: v for k, v in t.items() if k != "effect"} for t in report["terms"]]})
    assert old["cosines"] == [] and all(t["effect"] is None for t in old["terms"])
