"""Inversion on the newer flow DiTs: Qwen-Image (one-frame 5-D latents), Z-Image and Flux.2 (128-channel latents).

The same round trip as tests/test_inversion.py (invert the content latent up the schedule, then the
Euler sampler back down from the inverted noise), on each family's own stand-in, through its own
model sampling (shift) and latent format. Two denoisers per family: the smooth wrapper of
tests/stand_in_denoiser.py (which behaves like a trained model, so the figure measures the
inversion) and the bare random DiT (whose ODE expands errors; the figure is what refine buys there).
"""

from __future__ import annotations

import importlib

import pytest
import torch
from stand_in_denoiser import smooth_denoiser

from headless.testbed import family_graphs as F
from headless.testbed.graphs import link

pytestmark = pytest.mark.compat  # also run against the newer ComfyUI tree (.ci/run)

KEYS = ("qwen_image", "z_image", "flux2")


@pytest.fixture(scope="module")
def inv(pack):
    return importlib.import_module(f"{pack.__name__}.sampler.inversion")


@pytest.fixture(scope="module")
def models(comfy_base, tiny_models) -> dict:
    from headless.testbed.standins import qwen_image, suite_models

    return {**tiny_models, **suite_models.build_dit_families(comfy_base / "models", keys=("z_image", "flux2")),
            **qwen_image.build_qwen_image(comfy_base / "models")}


def _loaded(comfy, models: dict, key: str) -> dict:
    """The family's model, conditioning and VAE-encoded content, as the executor made them."""
    g = F.family_graph(key, models)
    if key == "qwen_image":
        from headless.testbed.standins import qwen_image

        g["vae"] = qwen_image.vae_node("lighttae")
    keep = {"model", "vae", "content", "enc"} | {k for k in g if k.startswith(("pos", "neg"))}
    g = {k: v for k, v in g.items() if k in keep}
    g["plain"] = {"class_type": "KSampler", "inputs": {
        "model": link("model"), "positive": link("pos"), "negative": link("neg"), "latent_image": link("enc"),
        **F.sampling(key, steps=1)}}
    g["out"] = {"class_type": "PreviewAny", "inputs": {"source": link("plain")}}
    comfy.run(g)
    return {n: comfy.output(n) for n in ("model", "pos", "neg", "enc")}


def _euler(model, pos, neg, noise, latent, sigmas):
    import comfy.samplers

    return comfy.samplers.sample(model, noise, pos, neg, 1.0, model.load_device, comfy.samplers.sampler_object("euler"),
                                 sigmas, model_options=model.model_options, latent_image=latent, seed=0)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def _round_trips(inv, model, pos, neg, content: dict) -> dict:
    lat = content["samples"]
    errors = {}
    for steps, refine in ((4, 0), (8, 0), (4, 2)):
        r = inv.invert(model, pos, neg, content, steps, "simple", 1.0, refine=refine)
        out = _euler(model, pos, neg, inv.InvertedNoise(r).generate_noise(content), lat, r.sigmas)
        assert out.shape == lat.shape
        errors[f"{steps}" + (f"+refine{refine}" if refine else "")] = _rel(out, lat)
    fresh = _euler(model, pos, neg, torch.randn(lat.shape, generator=torch.Generator().manual_seed(0)), lat, r.sigmas)
    errors["fresh noise"] = _rel(fresh, lat)
    return errors


@pytest.mark.parametrize("key", KEYS)
def test_inversion_round_trip_on_the_family(comfy, models, inv, key):
    got = _loaded(comfy, models, key)
    model, content = got["model"], got["enc"]
    if key == "qwen_image":
        assert content["samples"].dim() == 5 and content["samples"].shape[2] == 1  # one frame, kept as such
    var = float(model.model.process_latent_in(content["samples"]).var())
    smooth = _round_trips(inv, smooth_denoiser(model, data_var=var), got["pos"], got["neg"], content)
    bare = _round_trips(inv, model, got["pos"], got["neg"], content)
    print(f"\n{key} reconstruction error (RMS / content RMS): smooth {smooth}; bare stand-in {bare}")
    # A trained-like denoiser: more steps and refine each bring the round trip closer; both far below fresh noise.
    assert smooth["8"] < 0.8 * smooth["4"] < 0.5 * smooth["fresh noise"], smooth
    assert smooth["4+refine2"] < 0.6 * smooth["4"], smooth
    # The random DiT: refine makes each step the inverse of the sampler's, whatever the ODE does.
    assert bare["4+refine2"] < bare["4"] and bare["4+refine2"] < 0.5 * bare["fresh noise"], bare
