"""Schedules: the guidance scale and each term's weight follow a curve over the steps (losses/schedule.py).

Unit tests on the arithmetic, then one graph per curve kind run with ComfyUI's executor: the weight
and scale each step event reports must be the curve at that step's fraction, and a different
curve must report different numbers.
"""

from __future__ import annotations

import math

import pytest

from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed
from losses.schedule import CURVES, Schedule

# -- arithmetic -------------------------------------------------------------------------------------


def test_each_curve_at_known_points() -> None:
    at = {c: Schedule.make(c, "0, 1, 0.5" if c == "values" else None) for c in CURVES}
    us = (0.0, 0.25, 0.5, 0.75)
    assert [at["constant"].factor(u) for u in us] == [1.0] * 4
    assert [at["linear_up"].factor(u) for u in us] == pytest.approx(list(us))
    assert [at["linear_down"].factor(u) for u in us] == pytest.approx([1 - u for u in us])
    assert [at["cosine"].factor(u) for u in us] == pytest.approx([(1 + math.cos(math.pi * u)) / 2 for u in us])
    # values 0, 1, 0.5 at u = 0, 0.5, 1, joined by straight lines
    assert [at["values"].factor(u) for u in us] == pytest.approx([0.0, 0.5, 1.0, 0.75])
    assert Schedule.make("values", "0.3").factor(0.9) == pytest.approx(0.3)


def test_the_window_is_the_constant_curve_and_scales_u() -> None:
    s = Schedule.make("constant", start=0.2, end=0.6)
    assert [s.factor(f) for f in (0.0, 0.19, 0.2, 0.59, 0.6, 0.9)] == [0, 0, 1, 1, 0, 0]
    up = Schedule.make("linear_up", start=0.2, end=0.6)
    assert up.factor(0.4) == pytest.approx(0.5) and up.factor(0.1) == 0.0 and up.factor(0.6) == 0.0


@pytest.mark.parametrize(("curve", "values", "match"), [
    ("ramp", None, "not one of the curves"), ("values", "", "needs at least one number"),
    ("linear_up", "1, 2", "only with weight_curve = values"), ("values", "1, x", "'x' is not a number"),
    ("values", "1, -1", ">= 0"), ("values", "inf", "finite"),
])
def test_bad_schedules_are_refused_naming_the_input(curve, values, match) -> None:
    with pytest.raises(ValueError, match=match):
        Schedule.make(curve, values, name="weight_curve", values_name="weight_values")


# -- graphs ------------------------------------------------------------------------------------------

STEPS = 6
KINDS = {  # curve -> (values, term window) ; the cosine one also has a narrower window
    "constant": ("", (0.0, 1.0)),
    "linear_up": ("", (0.0, 1.0)),
    "linear_down": ("", (0.0, 1.0)),
    "cosine": ("", (0.2, 0.9)),
    "values": ("0.2, 1, 0.5", (0.0, 1.0)),
}
MSE_WEIGHT, GRAM_WEIGHT, SCALE = 1.5, 2.0, 0.8


def _run_curves(comfy, tiny_models, kinds: dict) -> dict[str, list[dict]]:
    g = G.base_graph(tiny_models)
    for curve, (values, (start, end)) in kinds.items():
        last = G.add_all_losses(g, prefix=f"{curve}_", terms=("mse", "gram"),
                                weights={"mse": MSE_WEIGHT, "gram": GRAM_WEIGHT})
        mse = f"{curve}_1"
        g[mse]["inputs"].update(weight_curve=curve, weight_values=values, start_percent=start, end_percent=end)
        opts = G.guidance_options(scale=SCALE, scale_curve=curve, scale_values=values)
        G.add_guided_sampler(g, f"run_{curve}", last, opts, G.sampling(steps=STEPS))
        G.add_decode_measure(g, f"m_{curve}", f"run_{curve}", last)
    result = comfy.run(g)
    events: dict[str, list[dict]] = {c: [] for c in kinds}
    for e, d in result.messages:
        if e == "style_guidance.step" and str(d["node"]).startswith("run_"):
            events[str(d["node"])[4:]].append(d)
    return events


@pytest.mark.slow
def test_each_curve_kind_drives_the_reported_weight_and_scale(comfy, tiny_models):
    events = _run_curves(comfy, tiny_models, KINDS)
    reported = {}
    for curve, (values, (start, end)) in KINDS.items():
        term = Schedule.make(curve, values or None, start, end)
        scale = Schedule.make(curve, values or None)
        # every step where either curve is non-zero is guided; nothing else is
        expected_steps = [i for i in range(STEPS) if scale.factor(i / STEPS) > 0]
        evs = events[curve]
        assert [e["step"] for e in evs] == expected_steps, (curve, [e["step"] for e in evs])
        for e in evs:
            f = e["fraction"]
            assert e["scale"] == pytest.approx(SCALE * scale.factor(f), rel=1e-6), (curve, f)
            w = e["terms"].get("pixel_mse_content", {}).get("weight", 0.0)
            assert w == pytest.approx(MSE_WEIGHT * term.factor(f), rel=1e-6), (curve, f)
            assert e["terms"]["gram_style"]["weight"] == GRAM_WEIGHT
            if term.factor(f) > 0:  # the share follows the scheduled weight
                share = MSE_WEIGHT * term.factor(f) / (MSE_WEIGHT * term.factor(f) + GRAM_WEIGHT)
                assert e["terms"]["pixel_mse_content"]["share"] == pytest.approx(share, abs=1e-4)
            else:
                assert "pixel_mse_content" not in e["terms"]
        reported[curve] = [(e["step"], e["scale"], e["terms"].get("pixel_mse_content", {}).get("weight")) for e in evs]
        print(f"\n{curve}: (step, scale, mse weight) " + " ".join(f"({s},{a:.3g},{w if w is None else round(w, 3)})"
                                                          for s, a, w in reported[curve]))
    # counterfactual: different curves report different numbers
    assert len({tuple(v) for v in reported.values()}) == len(KINDS)


def test_a_values_curve_without_values_is_refused_at_validation(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    last = G.add_all_losses(g, terms=("mse",))
    g[last]["inputs"].update(weight_curve="values", weight_values="")
    G.add_guided_sampler(g, "guided", last, G.guidance_options(), G.sampling(steps=1))
    G.add_decode_measure(g, "g", "guided", last)
    with pytest.raises(PromptFailed, match="weight_values"):
        comfy.run(g)
    g[last]["inputs"].update(weight_curve="constant")
    g["guided"]["inputs"].update(scale_curve="values", scale_values="1, nope")
    with pytest.raises(PromptFailed, match="scale_values"):
        comfy.run(g)
