"""Issue 20, defect 9 (the rest): Measure's message on DiT models, and the Sampler and Measure on inpainting models.

Both tests failed before their fix: Measure on SD3/Flux with Attention Distillation gave the DiT
refusal without the node's name; on a 9-channel inpainting model the Sampler refused an Attention
Distillation style of another size while Measure scored the same chain.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from headless import protocol as P
from headless.testbed import graphs as G

pytestmark = pytest.mark.compat  # reads ComfyUI's concat conditioning: also run against the newer tree

INPAINT_CKPT = "sg_tiny_sd15_inpaint.safetensors"


def _ad(style: str = "senc") -> dict:
    return {"class_type": "StyleGuidanceAttentionDistillation",
            "inputs": {"style": G.link(style), "weight": 1.0, "layers": "decoder, all self-attentions",
                       "seed": 0}}


def _measure(image: str, model: str, latent: str = "enc") -> dict:
    return {"class_type": "StyleGuidanceMeasure", "inputs": {
        "image": G.link(image), "losses": G.link("ad"), "seed": 0, "model": G.link(model), "positive": G.link("pos"),
        "latent": G.link(latent)}}


@pytest.mark.parametrize("key", ["sd3", "flux"])
def test_measure_scores_attention_distillation_on_a_dit(comfy, families, key):
    """Measure runs outside sampling, under the executor's inference mode, on the DiT feature path.

    It once refused DiTs; once they were supported it failed with "Inference tensors cannot be saved
    for backward" (conditioning made by the text encoder inside inference mode).
    """
    from headless.testbed.family_graphs import family_graph

    g = family_graph(key, families)
    g = {k: g[k] for k in ("model", "vae", "content", "style", "enc", "pos", "pos_raw", "neg") if k in g}
    g["senc"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("style"), "vae": G.link("vae")}}
    g["ad"] = _ad()
    g["m"] = _measure("content", "model")
    (payload,) = comfy.run(g).outputs["m"][P.MEASURE_UI_KEY]
    terms = json.loads(payload)["terms"]
    ad = [t for t in terms if t["kind"] == "attention_distillation_style"]
    assert len(ad) == 1 and ad[0]["value"] is not None and math.isfinite(ad[0]["value"]) and ad[0]["value"] > 0, terms


@pytest.mark.parametrize("mode", ["x0", "xt"])
def test_attention_distillation_guides_sd3_in_the_sampler(comfy, families, mode):
    """SD3's joint blocks recompute under activation checkpointing once a block patch wraps them: the
    backward of an x0 step ran after the feature pass had put ComfyUI's inference-mode weights back,
    and failed ("Inference tensors cannot be saved for backward")."""
    from headless.testbed.family_graphs import family_graph, options, sampling

    g = family_graph("sd3", families)
    g = {k: g[k] for k in ("model", "vae", "content", "style", "enc", "pos", "pos_raw", "neg") if k in g}
    g["senc"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("style"), "vae": G.link("vae")}}
    g["ad"] = _ad()
    g["guided"] = {"class_type": "StyleGuidanceSampler", "inputs": {
        "model": G.link("model"), "positive": G.link("pos"), "negative": G.link("neg"),
        "latent_image": G.link("enc"), "vae": G.link("vae"), "losses": G.link("ad"),
        **sampling("sd3", steps=2), **options(mode=mode)}}
    g["out"] = {"class_type": "PreviewAny", "inputs": {"source": G.link("guided")}}
    text = " ".join(str(v) for v in comfy.run(g).outputs["out"].get("text", []))
    assert text and "nan" not in text.lower(), text[:400]


# ---------------------------------------------------------------- 9-channel inpainting model
@pytest.fixture(scope="module")
def inpaint_ckpt(comfy_base) -> str:
    """The tests' tiny SD1.5 UNet with 9 input channels (latent + mask + masked image): ComfyUI loads it as inpainting."""
    from headless.testbed.standins.common import cached, place, save_streaming, seeded_fill_
    from headless.testbed.standins.family import unet
    from headless.testbed.standins.sd15 import SD15_TINY_UNET

    def build(path):
        net = unet(**{**SD15_TINY_UNET, "in_channels": 9}, out_channels=4, transformer_depth_output=[1, 1],
                   num_head_channels=-1)
        seeded_fill_(net, 0, gain=0.5)
        save_streaming(net, path, "model.diffusion_model.")

    place(cached(INPAINT_CKPT, build), comfy_base / "models" / "checkpoints" / INPAINT_CKPT)
    return INPAINT_CKPT


def _inpaint_graph(models: dict, ckpt: str, style_size: int, inpaint_cond: bool) -> dict:
    g = G.base_graph({**models, "ckpt": ckpt})
    g = {k: g[k] for k in ("ckpt", "vae", "content", "style", "enc", "pos", "neg")}
    g["style"]["inputs"].update(width=style_size, height=style_size)
    g["senc"] = {"class_type": "VAEEncode", "inputs": {"pixels": G.link("style"), "vae": G.link("vae")}}
    if inpaint_cond:  # the core node that gives an inpainting model its mask and masked image
        g["mask"] = {"class_type": "ImageToMask", "inputs": {"image": G.link("content"), "channel": "red"}}
        g["ic"] = {"class_type": "InpaintModelConditioning", "inputs": {
            "positive": G.link("pos"), "negative": G.link("neg"), "vae": G.link("vae"), "pixels": G.link("content"),
            "mask": G.link("mask"), "noise_mask": True}}
    g["ad"] = _ad()
    G.add_guided_sampler(g, "gs", "ad", G.guidance_options(scale=0.5), G.sampling(steps=2, cfg=1.0, denoise=0.6))
    g["gs_d"] = {"class_type": "VAEDecode", "inputs": {"samples": G.link("gs"), "vae": G.link("vae")}}
    g["m"] = _measure("gs_d", "ckpt", "gs")
    if inpaint_cond:
        for node in ("gs", "m"):
            g[node]["inputs"]["positive"] = G.link("ic", 0)
        g["gs"]["inputs"]["negative"] = G.link("ic", 1)
    return g


@pytest.mark.parametrize("inpaint_cond", [False, True], ids=["plain-conditioning", "InpaintModelConditioning"])
@pytest.mark.parametrize("style_size", [G.SIZE, G.SIZE + 16], ids=["same-size", "other-size"])
def test_inpainting_model_sampler_and_measure_agree(comfy, tiny_models, inpaint_ckpt, style_size, inpaint_cond):
    """Both nodes accept an AD style of any size on a 9-channel model, and score the style pass alike.

    The style pass describes the style alone: the output's mask and masked image are left out and the
    model gets its own 'nothing known' fill (full mask, blank image) at the style's size, in the
    Sampler and in Measure alike (before: the Sampler refused another size, Measure scored it).
    """
    g = _inpaint_graph(tiny_models, inpaint_ckpt, style_size, inpaint_cond)
    comfy.run(g)
    assert comfy.output("ckpt").model.model_config.unet_config["in_channels"] == 9
    report = json.loads(comfy.output("m", 1))
    (term,) = report["terms"]
    print(f"\nstyle {style_size}px, inpaint conditioning {inpaint_cond}: AD {term['value']:.6g}")
    assert term["value"] is not None and term["value"] > 0 and term["share"] == pytest.approx(1.0)
    out = comfy.output("gs")["samples"]
    assert torch.isfinite(out).all()


def test_inpainting_style_pass_is_the_same_in_sampler_and_measure(comfy, tiny_models, inpaint_ckpt, pack):
    """The AD style pass's keys are the same through the Sampler's probe (conds as a sampling run processes them,
    with the output's mask and masked image) and through Measure's (conds of the plain or the inpainting positive)."""
    import importlib

    mm = importlib.import_module("comfy.model_management")
    helpers = importlib.import_module("comfy.sampler_helpers")
    samplers = importlib.import_module("comfy.samplers")
    mf = importlib.import_module(f"{pack.__name__}.sampler.model_probe")
    comfy.run(_inpaint_graph(tiny_models, inpaint_ckpt, G.SIZE + 16, True))
    model, pos, style = comfy.output("ckpt"), comfy.output("ic", 0), comfy.output("senc")["samples"]
    content, mask = comfy.output("ic", 2)["samples"], comfy.output("ic", 2)["noise_mask"]
    comfy.run(_inpaint_graph(tiny_models, inpaint_ckpt, G.SIZE + 16, False))
    pos_plain = comfy.output("pos")
    layers, sigma = (("output", 1, 0),), 1.0

    def keys(probe) -> torch.Tensor:
        with torch.inference_mode(False), torch.no_grad():
            x = probe.to_model_space(style)
            return probe.self_attention(probe.noised(x, torch.zeros_like(x), sigma), sigma, layers, reference=True)[layers[0]].k

    mm.load_models_gpu([model])
    base = model.model
    lat = base.process_latent_in(content)
    processed = samplers.process_conds(
        base, torch.zeros_like(lat), {"positive": helpers.convert_cond(pos)}, lat.device,
        latent_image=lat, denoise_mask=mask.reshape(1, 1, *mask.shape[-2:]), seed=0)["positive"]
    assert processed[0]["model_conds"]["c_concat"].cond.shape[1] == 5  # the output's mask + masked image
    model.pre_run()  # what a sampling run does around its model calls
    try:
        sampler_k = keys(mf.ComfyModelProbe(base, processed, model.model_options, sigma, 0, lat.device))
    finally:
        model.cleanup()
    for p in (pos, pos_plain):
        torch.testing.assert_close(keys(mf.measure_probe(model, p, 0, sigma)), sampler_k)
