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

from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed


@pytest.fixture(scope="module")
def pk(pack):
    name = pack.__name__
    mods = ("losses", "sampler.engine", "sampler.settings", "sampler.measure", "sampler.inversion", "sampler.balance")
    return SimpleNamespace(**{m.split(".")[-1]: importlib.import_module(f"{name}.{m}") for m in mods})


def _picture(seed: int, size: int = 40) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _chain(pk, w_mse: float, w_gram: float):
    from headless.testbed.standins.loss_nets import random_vgg19_features

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
    (9e18, "weight must lie in [-1000000.0, 1000000.0], got 9e+18"),
    (-2e6, "weight must lie in [-1000000.0, 1000000.0], got -2000000.0"),
    (float("nan"), "weight must be a finite number"),
])
def test_a_linked_weight_is_checked_as_the_widget_is(comfy, tiny_models, weight, expected):
    with pytest.raises(PromptFailed) as e:
        comfy.run(_primitive_weight_graph(tiny_models, weight))
    assert expected in str(e.value) and "Pixel MSE Content Loss" in str(e.value), str(e.value)[:600]


def test_a_linked_weight_in_range_still_works(comfy, tiny_models):
    comfy.run(_primitive_weight_graph(tiny_models, 3.0))
    assert comfy.output("l1").terms[0].weight == 3.0


# ---------------------------------------------------------------- shared graph pieces
def _base(models: dict) -> dict:
    g = G.base_graph(models)
    return {k: g[k] for k in ("ckpt", "vae", "content", "style", "enc", "pos", "neg", "vgg")}


def _invert_node(model: str = "ckpt", **over) -> dict:
    inputs = {"model": G.link(model), "positive": G.link("pos"), "negative": G.link("neg"), "latent": G.link("enc"),
              "steps": 5, "scheduler": "normal", "denoise": 0.6, "cfg": 1.0, "refine": 0, "seed": 11}
    return {"class_type": "StyleGuidanceInvert", "inputs": {**inputs, **over}}


def _guided_from_inversion(g: dict, node: str, losses: str, scale: float = 0.0, **samp) -> None:
    G.add_guided_sampler(g, node, losses, G.guidance_options(scale=scale),
                         G.sampling(**{"steps": 5, "denoise": 0.6, "cfg": 1.0, **samp}))
    g[node]["inputs"]["noise"] = G.link("inv", 0)


def _preview(g: dict, node: str) -> None:
    g[f"{node}_d"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(node), "vae": G.link("vae")}}
    g[f"{node}_o"] = {"class_type": "PreviewImage", "inputs": {"images": G.link(f"{node}_d")}}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


@pytest.fixture(scope="module")
def loaded(comfy, tiny_models):
    g = _base(tiny_models)
    # One step of a KSampler so the model and both prompts run too: ComfyUI keeps only the outputs
    # a prompt uses, and this fixture must not depend on what an earlier test left in the cache.
    G.add_ksampler(g, "warm", G.sampling(steps=1))
    _preview(g, "warm")
    comfy.run(g)
    return SimpleNamespace(model=comfy.output("ckpt"), pos=comfy.output("pos"), neg=comfy.output("neg"),
                           content=comfy.output("enc"))


# ---------------------------------------------------------------- 2. the inversion's schedule vs the sampler's
def test_guided_ksampler_with_dpm_2_starts_where_the_inversion_ends(comfy, tiny_models):
    """dpm_2 drops the second-to-last sigma: at denoise 0.6 KSampler's schedule starts elsewhere than the
    inversion's. The Guided KSampler follows the inversion's schedule, as SamplerCustomAdvanced does."""
    g = _base(tiny_models)
    last = G.add_all_losses(g, terms=("mse",))
    g["inv"] = _invert_node()
    _guided_from_inversion(g, "guided", last, sampler_name="dpm_2")
    g["guider"] = {"class_type": "CFGGuider", "inputs": {"model": G.link("ckpt"), "positive": G.link("pos"),
                                                         "negative": G.link("neg"), "cfg": 1.0}}
    g["ksel"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpm_2"}}
    g["custom"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": G.link("inv", 0), "guider": G.link("guider"), "sampler": G.link("ksel"), "sigmas": G.link("inv", 2),
        "latent_image": G.link("enc")}}
    for n in ("guided", "custom"):
        _preview(g, n)
    comfy.run(g)
    a, b = comfy.output("guided")["samples"], comfy.output("custom")["samples"]
    print(f"\ndpm_2 at denoise 0.6: Guided KSampler vs SamplerCustomAdvanced on the inversion's sigmas: {_rel(a, b):.4g}")
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_guided_ksampler_refuses_inverted_noise_of_another_schedule(comfy, tiny_models):
    g = _base(tiny_models)
    last = G.add_all_losses(g, terms=("mse",))
    g["inv"] = _invert_node()
    _guided_from_inversion(g, "guided", last, steps=6)
    _preview(g, "guided")
    with pytest.raises(PromptFailed, match=r"the inversion ends at sigma [\d.]+ \(5 steps\) but this sampler's "
                                           r"schedule starts at sigma [\d.]+ \(6 steps\)"):
        comfy.run(g)


@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_ddim_uniform_inversion_ends_where_ksampler_and_ksampler_advanced_start(pk, loaded, denoise):
    """ddim_uniform makes schedules longer than steps + 1 (7 steps: 9 sigmas): the inversion, KSampler and
    KSamplerAdvanced (steps = total_steps, start_at_step) must all start at the same sigma."""
    import comfy.samplers

    r = pk.inversion.invert(loaded.model, loaded.pos, loaded.neg, loaded.content, 7, "ddim_uniform", denoise)
    ks = comfy.samplers.KSampler(loaded.model, steps=7, device="cpu", sampler="euler", scheduler="ddim_uniform",
                                 denoise=denoise).sigmas
    adv = comfy.samplers.KSampler(loaded.model, steps=r.total_steps, device="cpu", sampler="euler",
                                  scheduler="ddim_uniform").sigmas[r.start_at_step:]
    print(f"\nddim_uniform 7 steps, denoise {denoise}: inversion ends at {r.sigma0:.4g}, KSampler starts at "
          f"{float(ks[0]):.4g}, KSamplerAdvanced at {float(adv[0]):.4g}")
    torch.testing.assert_close(r.sigmas, ks.float())
    torch.testing.assert_close(r.sigmas, adv.float())


# ---------------------------------------------------------------- 3. inverting a model the pack already guides
def test_invert_refuses_a_model_patched_by_apply_guidance(comfy, tiny_models):
    g = _base(tiny_models)
    last = G.add_all_losses(g, terms=("mse",))
    g["apply"] = {"class_type": "StyleGuidanceApply", "inputs": {"model": G.link("ckpt"), "vae": G.link("vae"),
                                                                 "losses": G.link(last), **G.guidance_options()}}
    g["inv"] = _invert_node("apply")
    _preview(g, "inv")
    g["inv_o"]["inputs"]["images"] = G.link("inv_d")
    g["inv_d"]["inputs"]["samples"] = G.link("inv", 1)
    with pytest.raises(PromptFailed, match="already carries Style Guidance"):
        comfy.run(g)


# ---------------------------------------------------------------- 4. stochastic samplers on inverted noise
def _logged(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_sde", "lcm"])
def test_a_stochastic_sampler_on_inverted_noise_is_warned_about(comfy, tiny_models, caplog, sampler):
    g = _base(tiny_models)
    last = G.add_all_losses(g, terms=("mse",))
    g["inv"] = _invert_node()
    _guided_from_inversion(g, "guided", last, scale=0.5, sampler_name=sampler, steps=2, denoise=1.0)
    g["inv"]["inputs"].update(steps=2, denoise=1.0)
    _preview(g, "guided")
    with caplog.at_level(logging.WARNING, logger="style_guidance"):
        comfy.run(g)
    assert len(_logged(caplog, f"sampler '{sampler}' adds fresh noise")) == 1


def test_a_deterministic_sampler_on_inverted_noise_is_not_warned_about(comfy, tiny_models, caplog):
    g = _base(tiny_models)
    last = G.add_all_losses(g, terms=("mse",))
    g["inv"] = _invert_node()
    _guided_from_inversion(g, "guided", last, scale=0.5, sampler_name="euler")
    _preview(g, "guided")
    with caplog.at_level(logging.WARNING, logger="style_guidance"):
        comfy.run(g)
    assert not _logged(caplog, "adds fresh noise")


# ---------------------------------------------------------------- 5. every term outside the sampler's window
def test_terms_that_never_meet_the_sampler_window_are_refused_before_sampling(comfy, tiny_models):
    g = _base(tiny_models)
    last = G.add_all_losses(g, terms=("mse", "gram"))
    for node in ("l1", last):
        g[node]["inputs"].update(start_percent=0.0, end_percent=0.3)
    G.add_guided_sampler(g, "guided", last, G.guidance_options(start_percent=0.5), G.sampling(steps=4))
    _preview(g, "guided")
    with pytest.raises(PromptFailed, match="no loss term's own window meets the sampler's window 50%-100%"):
        comfy.run(g)


def test_a_term_outside_the_sampler_window_is_named_and_measure_says_its_window(comfy, tiny_models, caplog):
    import json

    g = _base(tiny_models)
    last = G.add_all_losses(g, terms=("mse", "gram"))
    g["l1"]["inputs"].update(start_percent=0.0, end_percent=0.3)
    G.add_guided_sampler(g, "guided", last, G.guidance_options(start_percent=0.5), G.sampling(steps=4))
    _preview(g, "guided")
    g["m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {"image": G.link("style"), "losses": G.link(last), "seed": 0}}
    with caplog.at_level(logging.WARNING, logger="style_guidance"):
        comfy.run(g)
    assert _logged(caplog, "loss term(s) pixel_mse_content (0%-30%) never act")
    notes = {t["name"]: t["note"] for t in json.loads(comfy.output("m", 1))["terms"]}
    assert "acts only in steps 0%-30%" in notes["pixel_mse_content"] and notes["gram_style"] is None


# ---------------------------------------------------------------- 6. non-finite latents into Invert
@pytest.mark.parametrize("poison", ["nan", "inf", "huge"])
def test_invert_refuses_a_non_finite_latent_by_name(pk, loaded, poison):
    samples = loaded.content["samples"].clone()
    if poison == "huge":
        samples = samples * 0 + 1e30
    else:
        samples[0, 0, 0, 0] = float(poison)
    with pytest.raises(ValueError, match=r"Invert Latent: latent holds (NaN or infinite values|values up to 1e\+30)"):
        pk.inversion.invert(loaded.model, loaded.pos, loaded.neg, {"samples": samples}, 2, "normal", 1.0)


# ---------------------------------------------------------------- 9. messages that name the input and the family
def test_invert_names_a_latent_of_another_family(pk, loaded):
    samples = torch.randn(1, 16, 8, 8)
    with pytest.raises(ValueError, match=r"Invert Latent: latent has 16 channels but the model, .*SD1.x/SD2.x "
                                         r"latents, 4 channels\), takes 4"):
        pk.inversion.invert(loaded.model, loaded.pos, loaded.neg, {"samples": samples}, 2, "normal", 1.0)


def test_guided_ksampler_names_a_5d_latent_on_an_sd2_model(comfy, families):
    from headless.testbed.family_graphs import family_graph

    g = family_graph("sd2v", families)
    g["video"] = {"class_type": "EmptyHunyuanLatentVideo",
                  "inputs": {"width": 64, "height": 64, "length": 1, "batch_size": 1}}
    G.add_guided_sampler(g, "guided", "l1", G.guidance_options(), G.sampling(steps=1), model="model")
    g["guided"]["inputs"]["latent_image"] = G.link("video")
    _preview(g, "guided")
    with pytest.raises(PromptFailed, match=r"Guided KSampler: latent_image has shape \(1, 16, 1, 8, 8\) \(5-D\) but "
                                           r"the model, SD20 .* takes 4-D image latents"):
        comfy.run(g)


def test_a_chain_of_model_feature_terms_alone_meets_the_family_check(pack, comfy_base):
    """Defect 9: a ZeCon-on-model-features chain on a video model is refused by family, not in conv2d."""
    from test_families import _tiny_comfy_model

    name = pack.__name__
    adapter = importlib.import_module(f"{name}.sampler.comfy_adapter")
    mf = importlib.import_module(f"{name}.losses.model_features")
    chain = importlib.import_module(f"{name}.losses.chain")
    settings = importlib.import_module(f"{name}.sampler.settings")
    wan = _tiny_comfy_model("WAN22_T2V", {  # Wan 2.2 5B: video latents not yet guided (Wan 2.1's are)
        "image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "in_dim": 48, "dim": 64,
        "ffn_dim": 128, "freq_dim": 256, "text_dim": 4096, "out_dim": 48, "num_heads": 2, "num_layers": 1})
    losses = chain.CombinedLoss([mf.ModelZeConLoss(torch.randn(1, 48, 8, 8), num_patches=8)])
    with pytest.raises(ValueError, match=r"model: WAN22_T2V makes video-shaped"):
        adapter.install_guidance(wan, None, losses, settings.GuidanceSettings())
