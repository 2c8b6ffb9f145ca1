"""The loss, loader and measure nodes inside ComfyUI's executor, from API-format prompts."""

from __future__ import annotations

import json

import pytest

from headless import protocol as P
from headless.testbed import graphs as G
from headless.testbed.inprocess import PromptFailed


def _measure(g: dict, node: str, image: str, losses: str) -> None:
    g[node] = {"class_type": "StyleGuidanceMeasure", "inputs": {"image": G.link(image), "losses": G.link(losses), "seed": 0}}


def test_all_five_losses_chain_and_measure(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    last = G.add_all_losses(g)
    for node in ("l4", "l5"):  # style targets at the style image's own size, so it scores 0 against itself
        g[node]["inputs"]["style_size"] = 0
    _measure(g, "m_content", "content", last)
    _measure(g, "m_style", "style", last)
    result = comfy.run(g)
    report = json.loads(comfy.output("m_content", 1))
    assert report["version"] == P.MEASURE_VERSION
    terms = {t["name"]: t for t in report["terms"]}
    assert set(terms) == {"pixel_mse_content", "vgg_content", "vgg_patchnce_content", "clip_style", "gram_style"}
    # Each term's weight and weight share are reported; shares of the live terms follow the weights.
    weights = {"pixel_mse_content": 1.0, "vgg_content": 1.0, "vgg_patchnce_content": 0.5, "clip_style": 1.0, "gram_style": 1.0}
    assert {k: t["weight"] for k, t in terms.items()} == weights
    for k, t in terms.items():
        assert t["weight_share"] == pytest.approx(weights[k] / 4.5)
    # On the content image itself the pixel and VGG content gradients vanish: no share, a note.
    for k in ("pixel_mse_content", "vgg_content"):
        assert terms[k]["share"] is None and "zero gradient" in terms[k]["note"]
    live = {k: t["share"] for k, t in terms.items() if t["share"] is not None}
    assert sum(live.values()) == pytest.approx(1.0)
    assert live["vgg_patchnce_content"] == pytest.approx(0.5 / 2.5) and live["gram_style"] == pytest.approx(1.0 / 2.5)
    # Scoring the content image itself: the pixel and VGG content terms vanish.
    assert comfy.output("m_content", 3) == pytest.approx(0.0, abs=1e-10)
    assert comfy.output("m_content", 4) == pytest.approx(0.0, abs=1e-10)
    # Scoring the style image: its Gram statistics match exactly, the content terms do not.
    assert comfy.output("m_style", 7) == pytest.approx(0.0, abs=1e-8)
    assert comfy.output("m_style", 3) > 1e-3
    assert "total:" in result.outputs["m_content"]["text"][0]


def test_zero_weight_terms_are_reported_but_skip_their_network(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    last = G.add_all_losses(g, weights={"vgg": 0.0, "patchnce": 0.0, "gram": 0.0})
    _measure(g, "m", "content", last)
    comfy.run(g)
    vgg = comfy.output("vgg")
    before = vgg.calls
    g["m"]["inputs"]["seed"] = 1
    comfy.run(g)
    assert vgg.calls == before  # no active VGG term: VGG never ran
    assert [t["name"] for t in json.loads(comfy.output("m", 1))["terms"]] == ["pixel_mse_content", "clip_style"]


def test_combine_takes_an_optional_third_chain(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    chains = [G.add_all_losses(g, prefix=p, terms=(t,)) for p, t in (("a", "mse"), ("b", "gram"), ("c", "vgg"))]
    g["two"] = {"class_type": "StyleGuidanceCombine", "inputs": {"losses_a": G.link(chains[0]),
                                                                 "losses_b": G.link(chains[1])}}
    g["three"] = {"class_type": "StyleGuidanceCombine", "inputs": {**g["two"]["inputs"], "losses_c": G.link(chains[2])}}
    _measure(g, "m2", "content", "two")
    _measure(g, "m3", "content", "three")
    comfy.run(g)
    names = {node: [t["name"] for t in json.loads(comfy.output(node, 1))["terms"]] for node in ("m2", "m3")}
    assert names == {"m2": ["pixel_mse_content", "gram_style"], "m3": ["pixel_mse_content", "gram_style", "vgg_content"]}


def test_nan_reference_image_is_a_clear_error(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    g["bad"] = {"class_type": "SGTestNaN", "inputs": {"image": G.link("content")}}
    g["l"] = {"class_type": "StyleGuidanceContentMSE", "inputs": {"content": G.link("bad"), "weight": 1.0, "fit": "stretch"}}
    _measure(g, "m", "content", "l")
    with pytest.raises(PromptFailed, match=r"content.*NaN"):
        comfy.run(g)


def test_clip_style_needs_exactly_one_clip_model(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    g["l"] = {"class_type": "StyleGuidanceCLIPStyle", "inputs": {
        "style": G.link("style"), "weight": 1.0, "num_cutouts": 2, "cut_min": 0.5, "distance": "cosine",
        "flip": False, "seed": 0}}
    _measure(g, "m", "content", "l")
    with pytest.raises(PromptFailed, match="connect exactly one CLIP model"):
        comfy.run(g)


def test_clip_style_with_core_clip_vision(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    g["cv"] = {"class_type": "SGTestClipVision", "inputs": {"kind": "clip", "seed": 0}}
    g["l"] = {"class_type": "StyleGuidanceCLIPStyle", "inputs": {
        "style": G.link("style"), "weight": 1.0, "clip_vision": G.link("cv"), "num_cutouts": 0, "cut_min": 0.5,
        "distance": "cosine", "flip": False, "seed": 0, "style_size": 0}}
    _measure(g, "m_style", "style", "l")
    _measure(g, "m_content", "content", "l")
    comfy.run(g)
    assert comfy.output("m_style", 6) < 1e-5  # the style image is at distance 0 from itself
    assert comfy.output("m_content", 6) > comfy.output("m_style", 6)


def test_missing_vgg_file_names_file_and_folder(comfy, comfy_base, tiny_models):
    g = G.base_graph(tiny_models)
    g["vgg"]["inputs"]["vgg_name"] = "vgg19-dcbee923.pth"
    g["l"] = {"class_type": "StyleGuidanceGramStyle", "inputs": {
        "style": G.link("style"), "vgg": G.link("vgg"), "weight": 1.0, "layers": "relu1_1..relu5_1 (Gatys)"}}
    _measure(g, "m", "content", "l")
    # The shipped workflows' stand-in has this name in the test base: hide it for this test.
    present = comfy_base / "models" / "vgg" / "vgg19-dcbee923.pth"
    hidden = present.with_name("hidden-for-test.bin")
    if present.exists():
        present.rename(hidden)
    try:
        _, _, _, node_errors = comfy.validate(g)
    finally:
        if hidden.exists():
            hidden.rename(present)
    text = str(node_errors.get("vgg"))
    assert "vgg19-dcbee923.pth" in text and "vgg" in text and "download.pytorch.org" in text


def test_open_clip_arch_that_does_not_match_the_file(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    g["oclip"]["inputs"]["arch"] = "ViT-B-32"
    # Without the sidecar config for this name, the tiny file cannot be a ViT-B-32.
    g["oclip"]["inputs"]["clip_name"] = tiny_models["open_clip"]
    g["l"] = {"class_type": "StyleGuidanceCLIPStyle", "inputs": {
        "style": G.link("style"), "weight": 1.0, "open_clip": G.link("oclip"), "num_cutouts": 0, "cut_min": 0.5,
        "distance": "cosine", "flip": False, "seed": 0}}
    _measure(g, "m", "content", "l")
    with pytest.raises(PromptFailed, match="does not match open_clip architecture"):
        comfy.run(g)
