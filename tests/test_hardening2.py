"""Hardening, second pass (issue 20): silent failures of the balance, the inversion, windows and inputs.

Each test reproduces one defect of the issue and failed on the code before its fix; the figures
measured before and after are in docs/reliability.md ("Second pass").
"""

from __future__ import annotations

import importlib
import logging
from types import SimpleNamespace

import pytest
import torch

from headless import graphs as G
from headless.comfy_host import PromptFailed


@pytest.fixture(scope="module")
def pk(pack):
    name = pack.__name__
    mods = ("losses", "sampler.engine", "sampler.settings", "sampler.measure", "sampler.inversion", "sampler.balance")
    return SimpleNamespace(**{m.split(".")[-1]: importlib.import_module(f"{name}.{m}") for m in mods})


def _picture(seed: int, size: int = 40) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _chain(pk, w_mse: float, w_gram: float):
    from headless.tiny_models import random_vgg19_features

    vgg = random_vgg19_features(0)
    L = pk.losses
    return L.CombinedLoss([L.ContentMSELoss(_picture(1), weight=w_mse), L.GramStyleLoss(_picture(2), vgg, weight=w_gram)])


# ---------------------------------------------------------------- 1. huge weights
def _guided_step(pk, w_mse: float, w_gram: float):
    chain = _chain(pk, w_mse, w_gram)
    reports = []
    engine = pk.engine.GuidanceEngine(chain, lambda x0: x0, pk.settings.GuidanceSettings(scale=0.5),
                                      report=reports.append)
    engine.begin(0)
    x0 = _picture(3)
    x_t = x0 + torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode(False):
        out = engine.guide_x0(x_t, x0, sigma=1.0, fraction=0.0)
    return out, x0, reports[0]


@pytest.mark.parametrize("factor", [9e18, 1e20, 1e30, 1e39])
def test_scaling_every_weight_by_one_number_changes_nothing(pk, factor):
    """Shares are w_i / sum w_j: 1e20 x (1, 1) must guide exactly as (1, 1) (before: a zero step, 'guided')."""
    ref, x0, ref_report = _guided_step(pk, 1.0, 1.0)
    out, _, report = _guided_step(pk, factor, factor)
    moved = float((out - x0).abs().max())
    print(f"\nweights x{factor:g}: step max {moved:.4g} (reference {float((ref - x0).abs().max()):.4g}); "
          f"shares {report.shares}")
    assert moved > 1e-3, "the step vanished"
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert report.shares == pytest.approx(ref_report.shares, abs=1e-6)


def test_measure_reports_shares_not_nan_for_huge_weights(pk):
    result = pk.measure.measure(_chain(pk, 1e39, 1e39), _picture(3))
    text = result.text()
    print("\n" + text)
    assert "nan" not in text.lower()
    assert sum(t.share for t in result.terms) == pytest.approx(1.0)


def _primitive_weight_graph(models: dict, weight: float) -> dict:
    g = G.base_graph(models)
    last = G.add_all_losses(g, terms=("mse", "gram"))
    g["w"] = {"class_type": "PrimitiveFloat", "inputs": {"value": weight}}
    g["l1"]["inputs"]["weight"] = G.link("w")
    g["m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {"image": G.link("style"), "losses": G.link(last), "seed": 0}}
    return g


@pytest.mark.parametrize("weight,expected", [
    (9e18, "weight must lie in [0.0, 1000000.0], got 9e+18"),
    (-1.0, "weight must be >= 0, got -1.0"),
    (float("nan"), "weight must be a finite number"),
])
def test_a_linked_weight_is_checked_as_the_widget_is(comfy, tiny_models, weight, expected):
    with pytest.raises(PromptFailed) as e:
        comfy.run(_primitive_weight_graph(tiny_models, weight))
    assert expected in str(e.value) and "Pixel MSE Content Loss" in str(e.value), str(e.value)[:600]


def test_a_linked_weight_in_range_still_works(comfy, tiny_models):
    comfy.run(_primitive_weight_graph(tiny_models, 3.0))
    assert comfy.output("l1").terms[0].weight == 3.0
