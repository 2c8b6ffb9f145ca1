"""Inversion of a latent with the loaded model, and starting the samplers from it.

Reconstruction and content tests use the smooth stand-in denoiser (tests/stand_in_denoiser.py):
the random tiny UNet's own sampling ODE is expansive (its prediction grows with sigma), which no
trained model's is, so it would measure the stand-in rather than the inversion.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch
from stand_in_denoiser import smooth_denoiser

from headless.testbed import graphs as G

pytestmark = pytest.mark.compat  # also run against the newer ComfyUI tree (.ci/run)

STEPS_FIGURES: dict = {}


@pytest.fixture(scope="module")
def pk(pack):
    name = pack.__name__
    return SimpleNamespace(inv=importlib.import_module(f"{name}.sampler.inversion"),
                           mf=importlib.import_module(f"{name}.sampler.model_probe"),
                           lm=importlib.import_module(f"{name}.losses.model_features"),
                           base=importlib.import_module(f"{name}.losses.chain"),
                           guidance=importlib.import_module(f"{name}.sampler.guidance"))


def _graph(models: dict) -> dict:
    g = G.base_graph(models)
    g = {k: g[k] for k in ("ckpt", "vae", "content", "style", "enc", "pos", "neg")}
    g["senc"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("style"), "vae": G.link("vae")}}
    g["flow"] = {"class_type": "ModelSamplingSD3", "inputs": {"model": G.link("ckpt"), "shift": 3.0}}
    for n, model in (("plain", "ckpt"), ("plain_flow", "flow")):
        G.add_ksampler(g, n, G.sampling(steps=1), model=model)
        g[f"{n}_d"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(n), "vae": G.link("vae")}}
        g[f"{n}_o"] = {"class_type": "PreviewImage", "inputs": {"images": G.link(f"{n}_d")}}
    g["s_d"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link("senc"), "vae": G.link("vae")}}
    g["s_o"] = {"class_type": "PreviewImage", "inputs": {"images": G.link("s_d")}}
    return g


@pytest.fixture(scope="module")
def loaded(comfy, tiny_models):
    comfy.run(_graph(tiny_models))
    model, content = comfy.output("ckpt"), comfy.output("enc")
    var = float(model.model.process_latent_in(content["samples"]).var())
    return SimpleNamespace(model=model, flow=comfy.output("flow"), pos=comfy.output("pos"), neg=comfy.output("neg"),
                           content=content, style=comfy.output("senc"), vae=comfy.output("vae"),
                           smooth=smooth_denoiser(model, data_var=var),
                           smooth_flow=smooth_denoiser(comfy.output("flow"), data_var=var))


def _euler(model, pos, neg, noise, latent, sigmas, cfg=1.0):
    import comfy.samplers

    return comfy.samplers.sample(model, noise, pos, neg, cfg, model.load_device, comfy.samplers.sampler_object("euler"),
                                 sigmas, model_options=model.model_options, latent_image=latent, seed=0)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


# ---------------------------------------------------------------- exactness of the two ways to start
@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_noise_and_zero_noise_latent_give_exactly_x_t(pk, loaded, flow, denoise):
    model = loaded.flow if flow else loaded.model
    r = pk.inv.invert(model, loaded.pos, loaded.neg, loaded.content, 2, "normal", denoise)
    ms = model.get_model_object("model_sampling")
    s0 = r.sigmas[0]
    max_denoise = pk.inv._max_denoise(ms, float(s0))
    assert max_denoise == (denoise == 1.0)
    lat = loaded.content["samples"]
    lat_in = model.model.process_latent_in(lat)
    # SamplerCustomAdvanced: noise_scaling(sigma_0, noise, latent) is the inverted x_t, for the content latent ...
    x = ms.noise_scaling(s0, pk.inv.InvertedNoise(r).generate_noise({"samples": lat}), lat_in, max_denoise)
    torch.testing.assert_close(x, r.x_t, rtol=1e-5, atol=1e-5)
    # ... and for an empty latent of the same size (ComfyUI does not shift all-zero latents)
    empty = torch.zeros_like(lat)
    x = ms.noise_scaling(s0, pk.inv.InvertedNoise(r).generate_noise({"samples": empty}), empty, max_denoise)
    torch.testing.assert_close(x, r.x_t, rtol=1e-5, atol=1e-5)
    # KSamplerAdvanced with add_noise disabled: zero noise on the returned latent gives x_t
    z = r.zero_noise_latent()
    if flow and denoise == 1.0:  # sigma_0 = 1: a flow model's start ignores the latent entirely
        assert z is None
        return
    x = ms.noise_scaling(s0, torch.zeros_like(z), model.model.process_latent_in(z), max_denoise)
    torch.testing.assert_close(x, r.x_t, rtol=1e-5, atol=1e-5)
    if flow:
        assert not torch.allclose(z, model.model.process_latent_out(r.x_t))  # flow needs x_t / (1 - sigma_0)


def test_inverted_noise_pairs_by_index_and_refuses_another_size(pk, loaded):
    r = pk.inv.invert(loaded.model, loaded.pos, loaded.neg, loaded.content, 1, "normal", 0.5)
    lat = loaded.content["samples"]
    noise = pk.inv.InvertedNoise(r).generate_noise({"samples": lat.repeat(3, 1, 1, 1)})
    assert noise.shape[0] == 3 and torch.equal(noise[0], noise[2])
    with pytest.raises(ValueError, match="inversion was made for"):
        pk.inv.InvertedNoise(r).generate_noise({"samples": torch.zeros(1, 4, 16, 8)})
    with pytest.raises(ValueError, match="denoise must lie in"):
        pk.inv.invert(loaded.model, loaded.pos, loaded.neg, loaded.content, 4, "normal", 0.0)


def test_invert_node_feeds_sampler_custom_advanced_and_ksampler_advanced_alike(comfy, tiny_models):
    """The node's NOISE+SIGMAS (SamplerCustomAdvanced) and LATENT+step counts (KSamplerAdvanced) sample the same."""
    g = _graph(tiny_models)
    g = {k: v for k, v in g.items() if not k.startswith(("plain", "s_", "flow", "senc"))}
    g["inv"] = {"class_type": "StyleGuidanceInvert", "inputs": {
        "model": G.link("ckpt"), "positive": G.link("pos"), "negative": G.link("neg"), "latent": G.link("enc"),
        "steps": 3, "scheduler": "normal", "denoise": 0.6, "cfg": 1.0, "refine": 0, "seed": 11}}
    g["guider"] = {"class_type": "CFGGuider", "inputs": {"model": G.link("ckpt"), "positive": G.link("pos"),
                                                         "negative": G.link("neg"), "cfg": 1.0}}
    g["ksel"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}}
    g["custom"] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": G.link("inv", 0), "guider": G.link("guider"), "sampler": G.link("ksel"), "sigmas": G.link("inv", 2),
        "latent_image": G.link("enc")}}
    g["adv"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": G.link("ckpt"), "add_noise": "disable", "noise_seed": 0, "steps": G.link("inv", 3), "cfg": 1.0,
        "sampler_name": "euler", "scheduler": "normal", "positive": G.link("pos"), "negative": G.link("neg"),
        "latent_image": G.link("inv", 1), "start_at_step": G.link("inv", 4), "end_at_step": 10000,
        "return_with_leftover_noise": "disable"}}
    for n in ("custom", "adv"):
        g[f"{n}_d"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(n), "vae": G.link("vae")}}
        g[f"{n}_o"] = {"class_type": "PreviewImage", "inputs": {"images": G.link(f"{n}_d")}}
    comfy.run(g)
    assert comfy.node_output("inv")[3][0] == 5 and comfy.node_output("inv")[4][0] == 2  # int(3 / 0.6) = 5
    a, b = comfy.output("custom")["samples"], comfy.output("adv")["samples"]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- reconstruction
@pytest.mark.slow
@pytest.mark.parametrize("flow", [False, True], ids=["eps", "flow"])
def test_inversion_then_euler_reconstructs_the_content(pk, loaded, flow):
    model = loaded.smooth_flow if flow else loaded.smooth
    lat = loaded.content["samples"]
    errors = {}
    for steps in (4, 8) if flow else (4, 8, 16):
        r = pk.inv.invert(model, loaded.pos, loaded.neg, loaded.content, steps, "normal", 1.0)
        out = _euler(model, loaded.pos, loaded.neg, pk.inv.InvertedNoise(r).generate_noise(loaded.content), lat, r.sigmas)
        errors[steps] = _rel(out, lat)
    r = pk.inv.invert(model, loaded.pos, loaded.neg, loaded.content, 4, "normal", 1.0, refine=2)
    out = _euler(model, loaded.pos, loaded.neg, pk.inv.InvertedNoise(r).generate_noise(loaded.content), lat, r.sigmas)
    errors["4+refine2"] = _rel(out, lat)
    fresh = _euler(model, loaded.pos, loaded.neg, torch.randn(lat.shape, generator=torch.Generator().manual_seed(0)),
                   lat, r.sigmas)
    errors["fresh noise"] = _rel(fresh, lat)
    STEPS_FIGURES["flow" if flow else "eps"] = errors
    print(f"\nreconstruction error (RMS / content RMS), {'flow' if flow else 'eps'}: {errors}")
    assert errors[8] < 0.8 * errors[4] < 0.5 * errors["fresh noise"], errors
    assert errors["4+refine2"] < 0.6 * errors[4], errors
    if not flow:
        assert errors[16] < 0.8 * errors[8] and errors[16] < 0.3, errors


# ---------------------------------------------------------------- content kept: inversion vs denoise
@pytest.mark.slow
def test_guided_from_the_inversion_keeps_more_content_than_denoise(pk, loaded, tiny_models, comfy_base):
    """Same schedule (8 steps, denoise 0.7), same guidance (Attention Distillation, scale 0.3): start from the
    inversion or from fresh noise. Scored on decoded pictures by pixel MSE and a twin-VGG content loss."""
    import comfy.sample
    import folder_paths

    from losses import VGGContentLoss, load_vgg19_features

    model, lat = loaded.smooth, loaded.content["samples"]
    steps, denoise = 8, 0.7
    r = pk.inv.invert(model, loaded.pos, loaded.neg, loaded.content, steps, "normal", denoise)
    seed = 3

    def guided():
        term = pk.lm.AttentionDistillationLoss(loaded.style["samples"], seed=2)
        term.reset_rng(seed)
        m = model.clone()

        def post_cfg(args):
            ctx = pk.mf.ProbeContext(model=args["model"], positive=args["cond"], negative=args["uncond"],
                                     model_options=args["model_options"], sigma=args["sigma"], x_t=args["input"],
                                     seed=seed)
            with torch.inference_mode(False), torch.enable_grad():
                x0 = args["denoised"].detach().float().clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(term.forward_latent(x0, pk.mf.make_probe(ctx)).sum(), x0)
            return pk.guidance.guided_prediction(args["input"], args["denoised"], grad, 0.3)

        m.set_model_sampler_post_cfg_function(post_cfg)
        return m

    from_inversion = _euler(guided(), loaded.pos, loaded.neg, pk.inv.InvertedNoise(r).generate_noise(loaded.content),
                            lat, r.sigmas)
    from_noise = _euler(guided(), loaded.pos, loaded.neg, comfy.sample.prepare_noise(lat, seed), lat, r.sigmas)

    vae = loaded.vae
    with torch.no_grad():
        content_px = vae.decode(lat).float()
        pics = {"inversion": vae.decode(from_inversion).float(), "denoise": vae.decode(from_noise).float()}
    twin = load_vgg19_features(folder_paths.get_full_path("vgg", tiny_models["vgg_twin"]))
    vgg = VGGContentLoss(content_px.permute(0, 3, 1, 2).clone(), twin, ("relu3_1", "relu4_2"))
    with torch.no_grad():
        mse = {k: float((v - content_px).square().mean()) for k, v in pics.items()}
        vgg_score = {k: float(vgg(v.permute(0, 3, 1, 2))) for k, v in pics.items()}
    STEPS_FIGURES["content"] = {"pixel_mse": mse, "twin_vgg": vgg_score}
    print(f"\ncontent kept (lower is closer): pixel MSE {mse}, twin-VGG content {vgg_score}")
    assert mse["inversion"] < 0.7 * mse["denoise"], mse
    assert vgg_score["inversion"] < 0.9 * vgg_score["denoise"], vgg_score
