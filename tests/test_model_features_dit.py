"""Model-feature terms (ZeCon, Attention Distillation) on DiTs: Flux, Chroma, Flux.2, Qwen-Image, SD3, Lumina 2,
Z-Image.

Tiny models of each family are built through ComfyUI's own classes (tests/dit_feature_models.py), with a
twin (same architecture, another seed). Guided runs go through ComfyUI's sampling (``comfy.sample.sample``)
with a post-CFG function that does what the engine does for latent terms (build a probe from the
evaluation, take the weighted term's gradient w.r.t. x0 through ``autograd_compat.backward_through``,
step with the engine's normalised update). Each term is scored by the TWIN model's probe: guided below
plain, the flipped update above it. The pack is loaded through ComfyUI's custom-node loader (``pk``).
"""

from __future__ import annotations

import importlib
import time
from types import SimpleNamespace

import dit_feature_models as D
import pytest
import torch

pytestmark = pytest.mark.compat  # reads ComfyUI internals: also run against the newer ComfyUI tree

SEED = 5
STEPS = 4
DENOISE = 0.7
FAMILIES = ("flux", "chroma", "flux2", "qwen_image", "sd3", "lumina2", "z_image")


@pytest.fixture(scope="module")
def pk(pack):
    name = pack.__name__
    return SimpleNamespace(
        mf=importlib.import_module(f"{name}.sampler.model_probe"),
        dp=importlib.import_module(f"{name}.sampler.dit_probe"),
        ac=importlib.import_module(f"{name}.sampler.autograd_compat"),
        lm=importlib.import_module(f"{name}.losses.model_features"),
        base=importlib.import_module(f"{name}.losses.chain"),
        guidance=importlib.import_module(f"{name}.sampler.guidance"),
    )


_MODELS: dict = {}


def models(key: str) -> SimpleNamespace:
    if key not in _MODELS:
        _MODELS[key] = D.twins(key)
    return _MODELS[key]


def latents(key: str, seed: int, size: int = D.LATENT) -> torch.Tensor:
    """A smooth VAE-space latent (a 'picture'): low-frequency noise, upsampled."""
    t = D.TINY[key]
    g = torch.Generator().manual_seed(seed)
    low = torch.randn((1, t.channels, size // 4, size // 4), generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return x.unsqueeze(2) if t.frames else x


def sample(model, latent, pos, neg, cfg: float = 1.0, steps: int = STEPS, denoise: float = DENOISE) -> torch.Tensor:
    import comfy.sample

    noise = comfy.sample.prepare_noise(latent, SEED)
    return comfy.sample.sample(model, noise, steps, cfg, "euler", "simple", pos, neg, latent, denoise=denoise,
                               seed=SEED, disable_pbar=True)


def guided(pk, model, terms, scale: float = 0.5, sign: float = 1.0, record: list | None = None):
    chain = pk.base.CombinedLoss(terms)
    chain.reset_rng(SEED)
    m = model.clone()

    def post_cfg(args: dict) -> torch.Tensor:
        denoised = args["denoised"]
        ctx = pk.mf.ProbeContext(model=args["model"], positive=args["cond"], negative=args["uncond"],
                                 model_options=args["model_options"], sigma=args["sigma"], x_t=args["input"], seed=SEED)

        def run():
            with torch.inference_mode(False), torch.enable_grad():
                probe = pk.mf.make_probe(ctx)
                x0 = denoised.detach().float().clone().requires_grad_(True)
                values = [t.forward_latent(x0, probe) for t in chain.terms]
                total = torch.stack([t.weight * v for t, v in zip(chain.terms, values, strict=True)]).sum(0)
                (grad,) = torch.autograd.grad(total.sum(), x0)
            if record is not None:
                record.append(probe.passes)
            return grad

        grad = pk.ac.backward_through(args["model"], run)
        return pk.guidance.guided_prediction(args["input"], denoised, sign * grad, scale)

    m.set_model_sampler_post_cfg_function(post_cfg)
    return m


def score(pk, make_term, model, pos, latent, sigmas=(0.3, 0.6)) -> float:
    """The term's value on a result latent through a Measure probe of ``model`` (two noise levels, two draws)."""
    vals = []
    for s in sigmas:
        for k in (0, 1):
            probe = pk.mf.measure_probe(model, pos, k, s)
            term = make_term()
            term.reset_rng(k)
            with torch.inference_mode(False), torch.no_grad():
                vals.append(float(term.forward_latent(probe.to_model_space(latent), probe).mean()))
    return sum(vals) / len(vals)


# ---------------------------------------------------------------- layouts, presets, refusals
def test_layouts_and_presets_of_each_family(pk, comfy_base):
    flux = pk.mf.model_layout(models("flux").model.model)
    assert flux.blocks == (*(("double_block", i) for i in range(3)), *(("single_block", i) for i in range(3)))
    z, ad = pk.lm.DEFAULT_ZECON_MODEL_PRESET, pk.lm.DEFAULT_AD_PRESET
    assert pk.lm.resolve_zecon_blocks(z, flux) == (0, 1, 2, 3)  # early + middle thirds, two blocks each
    assert pk.lm.resolve_zecon_blocks("early blocks (DiT: 2 blocks of the first third; cheapest)", flux) == (0, 1)
    assert pk.lm.resolve_ad_layers(ad, flux) == (("single_block", 1, 0), ("single_block", 2, 0))  # late third
    for key, n in (("chroma", 6), ("flux2", 6), ("qwen_image", 4), ("sd3", 4), ("lumina2", 4), ("z_image", 4)):
        lay = pk.mf.model_layout(models(key).model.model)
        assert len(lay.blocks) == n, key
        assert pk.lm.resolve_ad_layers(ad, lay)[-1] == (*lay.blocks[-1], 0)
    # the DiT presets are refused on a UNet, naming the node
    unet = pk.lm.ModelLayout("SD15", 12, (2, 5, 8, 11), (("output", 0, 0),))
    with pytest.raises(ValueError, match=r"ZeCon Content Loss \(Style Guidance\): the preset .* is for DiT models"):
        pk.lm.resolve_zecon_blocks("late blocks (DiT: 2 blocks of the last third)", unet, pk.lm.ModelZeConLoss.node_name)


@pytest.mark.parametrize("key", ["hidream", "omnigen2"])
def test_unreachable_families_are_refused_naming_node_and_family(pk, comfy_base, key):
    import comfy.supported_models as sm

    from headless.testbed.standin_dit_nodes import model_config_for
    from headless.testbed.standins import dit
    from headless.testbed.standins.families import FAMILIES as ALL

    spec = ALL[key].dit
    base = model_config_for(spec.model_config, dit.config(spec)).get_model({}, device="meta")
    assert isinstance(base.model_config, getattr(sm, spec.model_config))
    term = pk.lm.AttentionDistillationLoss(torch.zeros(1, 16, 8, 8))
    family = type(base.model_config).__name__
    with pytest.raises(ValueError, match=rf"Attention Distillation Style Loss \(Style Guidance\): the {family} model .* "
                                         r"not supported"):
        pk.mf.check_supported(SimpleNamespace(model=base), [term])


@pytest.mark.parametrize("key", ["lumina2", "z_image"])
def test_attention_distillation_is_refused_on_nextdit_and_zecon_accepted(pk, comfy_base, key):
    """Lumina 2 / Z-Image: the probe reads the attention exactly (test_attention_capture_is_...), and AD lowers the
    guiding model's own loss, but in sampling an independent twin scored the guided result further from the style
    (Lumina 2 guided / plain 1.08, flipped 0.97; Z-Image 1.06 / 0.97): refused by name, ZeCon accepted."""
    m = models(key)
    family = type(m.model.model.model_config).__name__
    ad = pk.lm.AttentionDistillationLoss(latents(key, 2, size=12))
    with pytest.raises(ValueError, match=rf"Attention Distillation Style Loss \(Style Guidance\): Attention Distillation "
                                         rf"is not offered on {family} .*ZeCon Content Loss works"):
        pk.mf.check_supported(m.model, [ad])
    pk.mf.check_supported(m.model, [pk.lm.ModelZeConLoss(latents(key, 1))])


# ---------------------------------------------------------------- the probe on a DiT
@pytest.mark.parametrize("key", FAMILIES)
def test_block_features_on_the_grid_stop_early_and_carry_the_gradient(pk, comfy_base, key):
    m = models(key)
    net = m.model.model.diffusion_model
    lay = pk.mf.model_layout(m.model.model)
    last_name, last_i = lay.blocks[-1]
    ran = []
    lists = {"double_block": ("double_blocks", "transformer_blocks", "joint_blocks"), "single_block": ("single_blocks",),
             "layer": ("layers",)}
    block = next(getattr(net, a) for a in lists[last_name] if hasattr(net, a))[last_i]
    handle = block.register_forward_pre_hook(lambda *a: ran.append(1))
    try:
        probe = pk.mf.measure_probe(m.model, m.pos, 0, 0.5)
        x0 = probe.to_model_space(latents(key, 1))
        with torch.inference_mode(False), torch.enable_grad():
            x = x0.clone().requires_grad_(True)

            def run():
                feats = probe.input_block_features(x, 0.5, [0, 1])
                (g,) = torch.autograd.grad(feats[1].square().mean(), x)
                return feats, g

            feats, g = pk.ac.backward_through(m.model.model, run)
        p = 1 if key == "flux2" else 2
        assert feats[0].shape[-2:] == (D.LATENT // p, D.LATENT // p) and feats[0].shape[0] == 1
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        assert not ran, "the pass ran past the deepest wanted block"
        ad = pk.lm.AttentionDistillationLoss(latents(key, 2, size=12)[:, :, 0] if D.TINY[key].frames else latents(key, 2, 12))
        score(pk, lambda: ad, m.model, m.pos, latents(key, 1), sigmas=(0.5,))
        assert ran, "AD's default (late) preset must run the last block"
    finally:
        handle.remove()


def test_attention_capture_keeps_text_apart_and_composes_with_another_override(pk, comfy_base):
    m = models("flux")
    seen = []

    def other_pack(func, *args, **kwargs):  # another pack's attention override: scales every result
        seen.append(args[0].shape)
        return func(*args, **kwargs) * 0.5

    patched = m.model.clone()
    patched.model_options["transformer_options"]["optimized_attention_override"] = other_pack
    lay = pk.mf.model_layout(m.model.model)
    x = pk.mf.measure_probe(m.model, m.pos, 0, 0.5).to_model_space(latents("flux", 1))
    key = (*lay.blocks[0], 0)
    caps = {}
    for name, model in (("plain", m.model), ("other", patched)):
        probe = pk.mf.measure_probe(model, m.pos, 0, 0.5)
        with torch.inference_mode(False), torch.no_grad():
            caps[name] = probe.self_attention(x, 0.5, [key])[key]
    c = caps["plain"]
    assert c.q.shape[1] == (D.LATENT // 2) ** 2 and c.hw == (4, 4)  # the picture's tokens only
    assert c.k_keep.shape[1] == D.TINY["flux"].text_len  # the text tokens' keys, apart
    assert len(seen) == 1, "the other override ran once (the pass stopped after the wanted block)"
    torch.testing.assert_close(caps["other"].out, 0.5 * c.out)  # what the model computed, the other pack included
    assert "optimized_attention_override" not in m.model.model_options["transformer_options"]


@pytest.mark.parametrize("key", FAMILIES)
def test_attention_capture_is_the_attention_the_model_computed(pk, comfy_base, key):
    """softmax(q [k_keep, k]^T / sqrt(d)) [v_keep, v] from what the probe captured equals the result the model
    computed for the picture's queries: every key the picture attends to is in the capture (the text's, the
    picture's, and on Z-Image the padding tokens'), none is missing or extra."""
    m = models(key)
    lay = pk.mf.model_layout(m.model.model)
    probe = pk.mf.measure_probe(m.model, m.pos, 0, 0.5)
    x = probe.to_model_space(latents(key, 1))
    for block in (lay.blocks[0], lay.blocks[-1]):
        wanted = (*block, 0)
        with torch.inference_mode(False), torch.no_grad():
            c = probe.self_attention(x, 0.5, [wanted])[wanted]

        def heads(t: torch.Tensor, h: int = c.heads) -> torch.Tensor:
            b, n, d = t.shape
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = heads(c.q), heads(torch.cat((c.k_keep, c.k), 1)), heads(torch.cat((c.v_keep, c.v), 1))
        out = (torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ v).transpose(1, 2).reshape(c.out.shape)
        err = float((out - c.out).abs().max() / c.out.abs().max())
        assert c.q.shape[1] == (D.LATENT // (1 if key == "flux2" else 2)) ** 2, (key, c.q.shape)
        assert err < 1e-4, (key, block, err)


def _saved_and_gradient(pk, key: str, which: str, recompute: bool) -> tuple[float, torch.Tensor, int, int]:
    """(loss, its gradient w.r.t. x0, bytes of activations autograd saved outside checkpointed regions, block
    forwards) of one term's gradient pass on a 32x32 latent (256 picture tokens: activations outweigh weights)."""
    m = models(key)
    net = m.model.model.diffusion_model
    probe = pk.mf.measure_probe(m.model, m.pos, 0, 0.5)
    x0 = probe.to_model_space(latents(key, 3, size=32)).detach().float()
    term = _terms(pk, key, which)()
    term.recompute = recompute
    weights = {p.data_ptr() for p in net.parameters()}
    saved: dict[int, int] = {}
    runs = []
    blocks = [b for a in ("double_blocks", "single_blocks", "transformer_blocks", "joint_blocks")
              for b in (getattr(net, a, None) or ())]
    handles = [b.register_forward_pre_hook(lambda *a: runs.append(1)) for b in blocks]

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in weights:  # a weight is kept either way; count each storage once
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        # This hook replaces autograd_compat's while it is on: copy activations as that one does (Flux's blocks
        # update saved activations in place).
        return t.clone() if t.requires_grad else t

    try:
        with torch.inference_mode(False), torch.enable_grad():
            x = x0.clone().requires_grad_(True)

            def run():  # may run twice (the in-place retry of autograd_compat): each attempt from the same seed
                term.reset_rng(0)
                saved.clear()
                runs.clear()
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    v = term.forward_latent(x, probe).sum()
                (g,) = torch.autograd.grad(v, x)
                return float(v), g

            value, grad = pk.ac.backward_through(m.model.model, run)
    finally:
        for h in handles:
            h.remove()
    return value, grad, sum(saved.values()), len(runs)


@pytest.mark.parametrize("which", ["zecon", "ad"])
@pytest.mark.parametrize("key", ["flux", "qwen_image"])
def test_recompute_gives_the_same_gradient_and_keeps_fewer_activations(pk, comfy_base, key, which):
    """Activation checkpointing through the probe pass: the same loss and gradient, the checkpointed blocks run
    again in the backward, and autograd keeps only their inputs. (Flux.2 and Chroma, Flux's blocks, measured alike:
    docs/model_features.md; left out here for the suite's time.) (SD3's replaced blocks are recomputed by ComfyUI
    itself; Lumina 2 / Z-Image are hooked, not replaced: recompute leaves both as they are.)"""
    v0, g0, kept0, runs0 = _saved_and_gradient(pk, key, which, False)
    v1, g1, kept1, runs1 = _saved_and_gradient(pk, key, which, True)
    print(f"\n{key} {which}: activations kept {kept0 / 2**10:.0f} KiB -> {kept1 / 2**10:.0f} KiB "
          f"({kept1 / kept0:.2f}x); block forwards {runs0} -> {runs1}")
    assert v1 == pytest.approx(v0, rel=1e-6)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-6 * float(g0.abs().max()))
    assert runs1 > runs0, "no block was recomputed"
    assert kept1 < 0.7 * kept0, (kept0, kept1)


# ---------------------------------------------------------------- guidance, scored by the twin
def _terms(pk, key: str, which: str):
    t = D.TINY[key]
    content = latents(key, 1)
    style = latents(key, 2, size=12)
    if t.frames:
        style = style[:, :, 0]
    if which == "zecon":
        return lambda: pk.lm.ModelZeConLoss(content, num_patches=16, seed=1)
    return lambda: pk.lm.AttentionDistillationLoss(style, seed=2)



NEXTDIT = ("lumina2", "z_image")  # Attention Distillation refused there (test_attention_distillation_is_refused_...)


@pytest.mark.slow
@pytest.mark.parametrize("key,which", [(k, w) for k in FAMILIES for w in ("zecon", "ad") if not (k in NEXTDIT and w == "ad")])
def test_each_term_lowers_its_twin_scored_loss_and_leaves_nothing_behind(pk, comfy_base, key, which):
    m = models(key)
    model, lat = m.model, latents(key, 3)
    make = _terms(pk, key, which)
    grad_before = [p.requires_grad for p in model.model.parameters()]
    before_to = repr(model.model_options.get("transformer_options"))
    plain = sample(model, lat, m.pos, m.neg)
    record: list = []
    t0 = time.perf_counter()
    res = {"guided": sample(guided(pk, model, [make()], record=record), lat, m.pos, m.neg)}
    t_guided = time.perf_counter() - t0
    res["flipped"] = sample(guided(pk, model, [make()], sign=-1.0), lat, m.pos, m.neg)
    res["plain"] = plain
    assert len(record) == STEPS and all(torch.isfinite(v).all() for v in res.values())
    twin = {k: score(pk, make, m.twin, m.pos, v) for k, v in res.items()}
    assert twin["guided"] < twin["plain"] < twin["flipped"], twin
    # nothing left behind: plain sampling bit-identical, requires_grad as it was, no option added
    t0 = time.perf_counter()
    assert torch.equal(sample(model, lat, m.pos, m.neg), plain)
    t_plain = time.perf_counter() - t0
    assert [p.requires_grad for p in model.model.parameters()] == grad_before
    assert repr(model.model_options.get("transformer_options")) == before_to
    hooked = [n for n, mod in model.model.diffusion_model.named_modules() if mod._forward_hooks or mod._forward_pre_hooks]
    assert not hooked, f"hooks left on {hooked[:3]}"  # NextDiT's blocks are hooked for each probe pass only
    print(f"\n{key} {which}: twin-scored guided/plain {twin['guided'] / twin['plain']:.3f}, flipped/plain "
          f"{twin['flipped'] / twin['plain']:.3f}; time guided/plain {t_guided / t_plain:.2f}")


@pytest.mark.slow
def test_composes_with_core_skip_layer_guidance_and_another_block_patch(pk, comfy_base):
    """A core DiT patch node in the same graph (SkipLayerGuidanceDiT: its own pass with blocks replaced) and another
    pack's persistent block replacement: both act, the probe calls the replacement, nothing leaks either way."""
    import comfy_extras.nodes_slg as slg

    m = models("flux")
    lat = latents("flux", 3)

    def make():
        return pk.lm.ModelZeConLoss(latents("flux", 1), num_patches=16, seed=1)

    out = slg.SkipLayerGuidanceDiT.execute(m.model, scale=2.0, start_percent=0.0, end_percent=1.0, double_layers="1",
                                           single_layers="1")
    slg_model = out.result[0] if hasattr(out, "result") else out[0]
    runs = {"slg": sample(slg_model, lat, m.pos, m.neg), "slg+zecon": sample(guided(pk, slg_model, [make()]), lat, m.pos, m.neg),
            "zecon": sample(guided(pk, m.model, [make()]), lat, m.pos, m.neg)}
    assert all(torch.isfinite(v).all() for v in runs.values())
    assert (runs["slg+zecon"] - runs["slg"]).abs().mean() > 1e-4  # guidance acts on top of SLG
    assert (runs["slg+zecon"] - runs["zecon"]).abs().mean() > 1e-4  # and SLG on top of guidance
    assert "patches_replace" not in slg_model.model_options["transformer_options"]  # SLG's skip stays in its pass

    calls = []

    def other_pack(args, extra):  # another pack's replacement of double block 0: halves the image stream after it
        calls.append(1)
        out = extra["original_block"](args)
        return {**out, "img": out["img"] * 0.5}

    other = m.model.clone()
    other.set_model_patch_replace(other_pack, "dit", "double_block", 0)
    feats = {}
    for name, model in (("plain", m.model), ("other", other)):
        probe = pk.mf.measure_probe(model, m.pos, 0, 0.5)
        with torch.inference_mode(False), torch.no_grad():
            feats[name] = probe.input_block_features(probe.to_model_space(lat), 0.5, [0])[0]
    assert len(calls) == 1
    torch.testing.assert_close(feats["other"], 0.5 * feats["plain"])
    assert set(other.model_options["transformer_options"]["patches_replace"]["dit"]) == {("double_block", 0)}
