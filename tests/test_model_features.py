"""Model-feature terms (ZeCon on the UNet encoder, Attention Distillation) on a real ComfyUI model.

The model is the tests' tiny SD1.5 checkpoint, loaded by CheckpointLoaderSimple in ComfyUI's
executor. Guided runs go through ComfyUI's own sampling (``comfy.sample.sample``) with a post-CFG
function that does what the engine does for latent terms: build a probe from the evaluation
(:func:`make_probe`), take the weighted terms' gradient w.r.t. x0 and step with the engine's
normalised update (``sampler.guidance.guided_prediction``).
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import torch
from stand_in_denoiser import smooth_denoiser

from headless.testbed import graphs as G

pytestmark = pytest.mark.compat  # also run against the newer ComfyUI tree (.ci/run)

SEED = 5
STEPS = 5
DENOISE = 0.8


@pytest.fixture(scope="module")
def pk(pack):
    """The pack's own modules, as ComfyUI's loader imported them (the same classes the nodes use)."""
    name = pack.__name__
    return SimpleNamespace(
        mf=importlib.import_module(f"{name}.sampler.model_probe"),
        lm=importlib.import_module(f"{name}.losses.model_features"),
        base=importlib.import_module(f"{name}.losses.chain"),
        guidance=importlib.import_module(f"{name}.sampler.guidance"),
        losses=importlib.import_module(f"{name}.losses"),
    )


def _loader_graph(models: dict) -> dict:
    g = G.base_graph(models)
    g = {k: g[k] for k in ("ckpt", "vae", "content", "style", "enc", "pos", "neg")}
    g["senc"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("style"), "vae": G.link("vae")}}
    G.add_ksampler(g, "plain", G.sampling(steps=2))
    for n in ("plain", "senc"):
        g[f"{n}_d"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(n), "vae": G.link("vae")}}
        g[f"{n}_o"] = {"class_type": "PreviewImage", "inputs": {"images": G.link(f"{n}_d")}}
    return g


@pytest.fixture(scope="module")
def loaded(comfy, tiny_models):
    comfy.run(_loader_graph(tiny_models))
    model, content = comfy.output("ckpt"), comfy.output("enc")
    # the stand-in denoiser's prior has the content latent's variance (model space), as a trained model's data would
    var = float(model.model.process_latent_in(content["samples"]).var())
    return SimpleNamespace(model=model, smooth=smooth_denoiser(model, data_var=var), pos=comfy.output("pos"), neg=comfy.output("neg"),
                           content=comfy.output("enc"), style=comfy.output("senc"), vae=comfy.output("vae"),
                           content_image=comfy.output("content"))


def _sample(model, latent: torch.Tensor, pos, neg, cfg: float = 1.0, steps: int = STEPS, denoise: float = DENOISE,
            seed: int = SEED) -> torch.Tensor:
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, steps, cfg, "euler", "normal", pos, neg, latent, denoise=denoise,
                               seed=seed, disable_pbar=True)


def guided_model(pk, model, terms, scale: float = 1.0, sign: float = 1.0, seed: int = SEED, record: list | None = None):
    """A clone of ``model`` whose post-CFG function guides by the latent terms (as the engine will)."""
    chain = pk.base.CombinedLoss(terms)
    chain.reset_rng(seed)
    m = model.clone()

    def post_cfg(args: dict) -> torch.Tensor:
        denoised = args["denoised"]
        ctx = pk.mf.ProbeContext(model=args["model"], positive=args["cond"], negative=args["uncond"],
                                 model_options=args["model_options"], sigma=args["sigma"], x_t=args["input"], seed=seed)
        with torch.inference_mode(False), torch.enable_grad():
            probe = pk.mf.make_probe(ctx)
            x0 = denoised.detach().float().clone().requires_grad_(True)
            values = [t.forward_latent(x0, probe) for t in chain.terms]
            total = torch.stack([t.weight * v for t, v in zip(chain.terms, values, strict=True)]).sum(0)
            (grad,) = torch.autograd.grad(total.sum(), x0)
        if record is not None:
            record.append([float(v.detach().mean()) for v in values])
        return pk.guidance.guided_prediction(args["input"], denoised, sign * grad, scale)

    m.set_model_sampler_post_cfg_function(post_cfg)
    return m


def measure(pk, term, model, pos, latent: torch.Tensor, sigma: float = 1.0, seed: int = 0) -> float:
    """The term's value on a result latent (VAE space), through a Measure-node probe."""
    probe = pk.mf.measure_probe(model, pos, seed, sigma)
    term.reset_rng(seed)
    with torch.inference_mode(False), torch.no_grad():
        return float(term.forward_latent(probe.to_model_space(latent), probe).mean())


def _decode(vae, latent: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vae.decode(latent).float()


# ---------------------------------------------------------------- layouts and presets
SD15_UNET = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, use_spatial_transformer=True,
                 legacy=False, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], use_linear_in_transformer=False,
                 context_dim=768, num_heads=8, num_head_channels=-1)
SDXL_UNET = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, use_spatial_transformer=True,
                 legacy=False, num_classes="sequential", adm_in_channels=2816, num_res_blocks=[2, 2, 2],
                 channel_mult=[1, 2, 4], transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_middle=10,
                 transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], use_linear_in_transformer=True,
                 context_dim=2048, num_head_channels=64, num_heads=-1)


def _meta_unet(config: dict, family: str):
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**config, device="meta", operations=comfy.ops.disable_weight_init)
    return SimpleNamespace(diffusion_model=unet, model_config=type(family, (), {})())


def test_presets_name_the_published_layers_on_real_architectures(pk, comfy_base):
    sd15 = pk.mf.model_layout(_meta_unet(SD15_UNET, "SD15"))
    sdxl = pk.mf.model_layout(_meta_unet(SDXL_UNET, "SDXL"))
    zecon, ad = pk.lm.DEFAULT_ZECON_MODEL_PRESET, pk.lm.DEFAULT_AD_PRESET
    # ZeCon's nce_layers [0, 2, 5, 8, 11] are SD1.5's input blocks 0, 2, 5, 8, 11; SDXL has three levels.
    assert pk.lm.resolve_zecon_blocks(zecon, sd15) == (0, 2, 5, 8, 11)
    assert pk.lm.resolve_zecon_blocks(zecon, sdxl) == (0, 2, 5, 8)
    assert pk.lm.resolve_zecon_blocks("fine levels (input blocks 0,2,5; cheapest)", sd15) == (0, 2, 5)
    # The paper's self_layers (10, 16) on SD1.5 (16 self-attentions) and (64, 70) on SDXL (70).
    assert len(sd15.attn1) == 16 and len(sdxl.attn1) == 70
    assert pk.lm.resolve_ad_layers(ad, sd15) == sd15.attn1[10:16] == tuple(("output", i, 0) for i in range(6, 12))
    assert pk.lm.resolve_ad_layers(ad, sdxl) == sdxl.attn1[64:70]
    assert {k[:2] for k in sdxl.attn1[64:70]} == {("output", 3), ("output", 4), ("output", 5)}


def test_flux_layout_is_found_and_a_missing_model_refused(pk, comfy_base):
    import comfy.supported_models as sm

    from headless.testbed.standins.flux import FLUX_CONFIG, flux_params

    flux = sm.Flux(flux_params({**FLUX_CONFIG, "depth_single_blocks": 1}))  # + what the installed Flux requires
    base = flux.get_model({}, device="meta")
    term = pk.lm.AttentionDistillationLoss(torch.zeros(1, 16, 8, 8))
    pk.mf.check_supported(SimpleNamespace(model=base), [term])  # DiTs: tests/test_model_features_dit.py
    assert pk.mf.model_layout(base).blocks == (("double_block", 0), ("single_block", 0))
    video = SimpleNamespace(model=SimpleNamespace(diffusion_model=torch.nn.Linear(1, 1), model_config=type("WAN21", (), {})()))
    with pytest.raises(ValueError, match=r"Attention Distillation Style Loss \(Style Guidance\): the WAN21 model .* not supported"):
        pk.mf.check_supported(video, [term])
    term.weight = 0.0  # an inactive term costs nothing and is not checked
    pk.mf.check_supported(video, [term])


def test_tiny_model_layout_and_preset_check(pk, loaded):
    lay = pk.mf.model_layout(loaded.model.model)
    assert lay.family == "SD15" and lay.input_blocks == 2 and lay.level_ends == (1,)
    assert lay.attn1 == (("input", 1, 0), ("middle", 0, 0), ("output", 0, 0), ("output", 1, 0))
    zecon = pk.lm.ModelZeConLoss(loaded.content["samples"])
    ad = pk.lm.AttentionDistillationLoss(loaded.style["samples"])
    pk.mf.check_supported(loaded.model, [zecon, ad])  # supported: no error
    empty = pk.lm.ModelLayout("SDXL", 9, (2, 5, 8), (("middle", 0, 0),))  # no decoder self-attention at all
    with pytest.raises(ValueError, match=r"Attention Distillation Style Loss \(Style Guidance\): the preset .* names no self-attention"):
        ad.layers(empty)


# ---------------------------------------------------------------- the probe
def test_zecon_pass_stops_after_the_deepest_block_and_grad_reaches_x0(pk, loaded):
    dm = loaded.model.model.diffusion_model
    calls = {"middle": 0}
    handle = dm.middle_block[0].register_forward_hook(lambda *a: calls.__setitem__("middle", calls["middle"] + 1))
    try:
        probe = pk.mf.measure_probe(loaded.model, loaded.pos, 0, 1.0)
        x0 = probe.to_model_space(loaded.content["samples"]).clone()
        with torch.inference_mode(False), torch.enable_grad():
            x = x0.requires_grad_(True)
            feats = probe.input_block_features(probe.noised(x, torch.randn_like(x), probe.sigma_min), probe.sigma_min,
                                               [0, 1])
            (g,) = torch.autograd.grad(feats[1].float().square().mean(), x)
        assert calls["middle"] == 0, "the pass ran past the deepest wanted input block"
        assert sorted(feats) == [0, 1] and feats[1].shape[0] == x0.shape[0]
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        ad = pk.lm.AttentionDistillationLoss(loaded.style["samples"])
        measure(pk, ad, loaded.model, loaded.pos, loaded.content["samples"])
        assert calls["middle"] == 2, "the attention passes (style, output) must run through the middle block"
    finally:
        handle.remove()


def test_existing_attention_patch_is_called_and_observed_not_overridden(pk, loaded):
    seen = []

    def other_pack(q, k, v, extra_options):  # PAG's perturbation: the layer returns its values
        seen.append(tuple(q.shape))
        return v

    m = loaded.model.clone()
    m.set_model_attn1_replace(other_pack, "output", 1)  # the 2-key form, as PAG uses
    probe = pk.mf.measure_probe(m, loaded.pos, 0, 1.0)
    x = probe.to_model_space(loaded.content["samples"])
    with torch.inference_mode(False), torch.no_grad():
        caps = probe.self_attention(x, 1.0, [("output", 0, 0), ("output", 1, 0)])
    assert len(seen) == 1, "the other pack's patch must run exactly once per pass"
    assert torch.equal(caps[("output", 1, 0)].out, caps[("output", 1, 0)].v)
    assert not torch.equal(caps[("output", 0, 0)].out, caps[("output", 0, 0)].v)
    assert caps[("output", 1, 0)].hw == tuple(x.shape[-2:])
    # nothing was added to the model's own options
    assert set(m.model_options["transformer_options"]["patches_replace"]["attn1"]) == {("output", 1)}


# ---------------------------------------------------------------- guidance lowers the term, independently scored
def _pixel_mse(vae, latent: torch.Tensor, reference: torch.Tensor) -> float:
    """MSE of the decoded pictures (the decoder is the only network; the reference is decoded the same way)."""
    return float((_decode(vae, latent) - _decode(vae, reference)).square().mean())


def _latent_mse(latent: torch.Tensor, reference: torch.Tensor) -> float:
    return float((latent.float() - reference.float()).square().mean())


@pytest.mark.slow
def test_zecon_guidance_keeps_the_content_and_the_model_is_left_unchanged(pk, loaded):
    model, lat = loaded.smooth, loaded.content["samples"]
    # ComfyUI's parameters may or may not require grad depending on how (and by which earlier
    # graph) they were loaded; what guidance must do is leave that flag as it found it.
    grad_before = [p.requires_grad for p in model.model.parameters()]
    before_to = repr(model.model_options.get("transformer_options"))
    before_keys = set(model.model_options)
    plain_before = _sample(model, lat, loaded.pos, loaded.neg)

    def term():
        return pk.lm.ModelZeConLoss(lat, num_patches=64, seed=1)

    record: list = []
    guided = _sample(guided_model(pk, model, [term()], scale=0.3, record=record), lat, loaded.pos, loaded.neg)
    flipped = _sample(guided_model(pk, model, [term()], scale=0.3, sign=-1.0), lat, loaded.pos, loaded.neg)
    plain_after = _sample(model, lat, loaded.pos, loaded.neg)

    assert len(record) == STEPS  # one guided evaluation per euler step at cfg 1
    results = {"plain": plain_before, "guided": guided, "flipped": flipped}
    # its own objective, on the model's own features
    own = {k: measure(pk, term(), model, loaded.pos, v) for k, v in results.items()}
    assert own["guided"] < 0.7 * own["plain"] < 0.7 * own["flipped"], own
    # independent of the model: distance to the content latent, and of the decoded pictures
    lat_mse = {k: _latent_mse(v, lat) for k, v in results.items()}
    assert lat_mse["guided"] < 0.8 * lat_mse["plain"] < 0.8 * lat_mse["flipped"], lat_mse
    px = {k: _pixel_mse(loaded.vae, v, lat) for k, v in results.items()}
    assert px["guided"] < px["plain"] < px["flipped"], px
    # the model is unchanged: bit-identical plain sampling, nothing requires grad, no patch left
    assert torch.equal(plain_before, plain_after)
    assert [p.requires_grad for p in model.model.parameters()] == grad_before
    assert repr(model.model_options.get("transformer_options")) == before_to
    assert set(model.model_options) == before_keys


def _ad_score(pk, term, model, pos, latent) -> float:
    """AD value averaged over two noise levels and two noise draws (one draw is a noisy estimate)."""
    return sum(measure(pk, term(), model, pos, latent, sigma=s, seed=k) for s in (0.3, 1.0) for k in (0, 1)) / 4


@pytest.mark.slow
def test_attention_distillation_lowers_its_loss_and_the_flipped_update_raises_it(pk, loaded):
    model, lat, style = loaded.smooth, loaded.content["samples"], loaded.style["samples"]
    assert style.shape[-2:] != lat.shape[-2:]  # the style keeps its own size (80x64 px vs 64x64)

    def term():
        return pk.lm.AttentionDistillationLoss(style, seed=2)

    results = {"plain": _sample(model, lat, loaded.pos, loaded.neg),
               "guided": _sample(guided_model(pk, model, [term()], scale=0.3), lat, loaded.pos, loaded.neg),
               "flipped": _sample(guided_model(pk, model, [term()], scale=0.3, sign=-1.0), lat, loaded.pos, loaded.neg)}
    score = {k: _ad_score(pk, term, model, loaded.pos, v) for k, v in results.items()}
    assert score["guided"] < 0.8 * score["plain"] < 0.8 * score["flipped"], score


# ---------------------------------------------------------------- nodes
def test_nodes_append_their_terms_and_validate_presets(comfy, tiny_models, pk):
    g = _loader_graph(tiny_models)
    g["z"] = {"class_type": "StyleGuidanceModelZeCon", "inputs": {
        "content": G.link("enc"), "weight": 0.5, "layers": "fine levels (input blocks 0,2,5; cheapest)",
        "num_patches": 64, "tau": 0.07, "seed": 3}}
    g["a"] = {"class_type": "StyleGuidanceAttentionDistillation", "inputs": {
        "style": G.link("senc"), "weight": 2.0, "layers": "decoder, all self-attentions", "seed": 1, "losses": G.link("z")}}
    g["show"] = {"class_type": "PreviewAny", "inputs": {"source": G.link("a")}}
    comfy.run(g)
    chain = comfy.output("a")
    z, a = chain.terms
    assert (z.kind, z.weight, z.num_patches, z.preset) == ("zecon_content", 0.5, 64, "fine levels (input blocks 0,2,5; cheapest)")
    assert (a.kind, a.weight, a.space) == ("attention_distillation_style", 2.0, "latent")
    assert a.reference.shape[-2:] == comfy.output("senc")["samples"].shape[-2:]
    bad = dict(g, a={**g["a"], "inputs": {**g["a"]["inputs"], "layers": "every layer"}})
    _, _, outputs, errors = comfy.validate(bad)
    assert "show" not in outputs and "a" in errors and "every layer" in str(errors["a"])


# ---------------------------------------------------------------- composition: LoRA and PAG
def _write_lora(path, seed: int = 0) -> None:
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    r = 4
    tensors = {
        "lora_unet_input_blocks_0_0.lora_down.weight": torch.randn(r, 4, 3, 3, generator=gen) * 0.3,
        "lora_unet_input_blocks_0_0.lora_up.weight": torch.randn(320, r, 1, 1, generator=gen) * 0.3,
        "lora_unet_output_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight": torch.randn(r, 320, generator=gen) * 0.1,
        "lora_unet_output_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight": torch.randn(320, r, generator=gen) * 0.1,
    }
    save_file({k: v.half() for k, v in tensors.items()}, str(path))


@pytest.fixture(scope="module")
def composed(comfy, tiny_models, comfy_base, loaded):
    _write_lora(comfy_base / "models" / "loras" / "sg_test_unet_lora.safetensors")
    g = _loader_graph(tiny_models)
    g["lora"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": G.link("ckpt"), "lora_name": "sg_test_unet_lora.safetensors", "strength_model": 1.0}}
    g["pag"] = {"class_type": "PerturbedAttentionGuidance", "inputs": {"model": G.link("ckpt"), "scale": 2.0}}
    for n in ("lora", "pag"):
        G.add_ksampler(g, f"k_{n}", G.sampling(steps=1), model=n)
        g[f"k_{n}_d"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link(f"k_{n}"), "vae": G.link("vae")}}
        g[f"k_{n}_o"] = {"class_type": "PreviewImage", "inputs": {"images": G.link(f"k_{n}_d")}}
    comfy.run(g)
    var = float(loaded.model.model.process_latent_in(loaded.content["samples"]).var())
    return SimpleNamespace(lora=smooth_denoiser(comfy.output("lora"), data_var=var),
                           pag=smooth_denoiser(comfy.output("pag"), data_var=var), var=var)


@pytest.mark.slow
def test_lora_weights_are_what_the_probe_sees_and_nothing_leaks(pk, loaded, composed):
    lat = loaded.content["samples"]

    def feats(model):
        probe = pk.mf.measure_probe(model, loaded.pos, 0, 1.0)
        x = probe.to_model_space(lat)
        with torch.inference_mode(False), torch.no_grad():
            return probe.input_block_features(x, probe.sigma_min, [0])[0].clone()

    grad_before = [p.requires_grad for p in loaded.model.model.parameters()]
    base_before, plain_before = feats(loaded.model), _sample(loaded.smooth, lat, loaded.pos, loaded.neg, steps=3)
    with_lora = feats(composed.lora)
    assert not torch.allclose(base_before, with_lora, atol=1e-3), "the probe did not run the LoRA-patched weights"
    terms = [pk.lm.ModelZeConLoss(lat, num_patches=32, seed=1), pk.lm.AttentionDistillationLoss(loaded.style["samples"])]
    lora_plain = _sample(composed.lora, lat, loaded.pos, loaded.neg, steps=3)
    lora_guided = _sample(guided_model(pk, composed.lora, terms, scale=0.3), lat, loaded.pos, loaded.neg, steps=3)
    assert not torch.allclose(lora_plain, lora_guided)
    torch.testing.assert_close(feats(composed.lora), with_lora, rtol=0, atol=0)
    # the base model afterwards: same features, bit-identical plain sampling, requires_grad as it was
    assert torch.equal(feats(loaded.model), base_before)
    assert torch.equal(_sample(loaded.smooth, lat, loaded.pos, loaded.neg, steps=3), plain_before)
    assert [p.requires_grad for p in loaded.model.model.parameters()] == grad_before


@pytest.mark.slow
def test_composes_with_the_core_pag_node(pk, loaded, composed):
    lat, style = loaded.content["samples"], loaded.style["samples"]

    def term():
        return pk.lm.AttentionDistillationLoss(style, seed=2)

    runs = {
        "pag": _sample(composed.pag, lat, loaded.pos, loaded.neg, steps=3),
        "pag+ad": _sample(guided_model(pk, composed.pag, [term()], scale=0.3), lat, loaded.pos, loaded.neg, steps=3),
        "ad": _sample(guided_model(pk, loaded.smooth, [term()], scale=0.3), lat, loaded.pos, loaded.neg, steps=3),
    }
    assert all(torch.isfinite(v).all() for v in runs.values())
    # both patches act: AD changes PAG's result, and PAG changes AD's
    assert (runs["pag+ad"] - runs["pag"]).abs().mean() > 1e-3
    assert (runs["pag+ad"] - runs["ad"]).abs().mean() > 1e-3
    # PAG's own perturbed pass is untouched by the probe (its patch lives only in PAG's pass options)
    assert "patches_replace" not in composed.pag.model_options["transformer_options"]
