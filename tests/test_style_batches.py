"""One style over a batch of content pictures: each sample keeps its own content, and Measure reports how
the style term spreads over the batch.

Content terms pair a batch by index (sample i follows content i); a single style image is every
sample's style. Scored on the decoded result, sample by sample, and by the twin Gram network.
"""

from __future__ import annotations

import json

import torch

from headless.testbed import graphs as G

SCALE = 3.0


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def test_one_style_over_a_content_batch_keeps_each_content_and_reports_the_spread(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    # Two content pictures far apart (dark and light grey) in one batch; one style picture.
    for name, colour in (("content_a", 0x202020), ("content_b", 0xE0E0E0)):
        g[name] = {"class_type": "EmptyImage", "inputs": {"width": G.SIZE, "height": G.SIZE, "batch_size": 1,
                                                          "color": colour}}
    g["content"] = {"class_type": "ImageBatch", "inputs": {"image1": G.link("content_a"), "image2": G.link("content_b")}}
    last = G.add_all_losses(g, terms=("mse", "gram"), weights={"mse": 2.0})
    G.add_twin_networks(g, tiny_models)
    score = G.add_all_losses(g, prefix="s", terms=("mse", "gram"), vgg="vgg_t")
    samp = G.sampling()
    G.add_ksampler(g, "plain", samp)
    G.add_guided_sampler(g, "guided", last, G.guidance_options(scale=SCALE), samp)
    G.add_decode_measure(g, "plain", "plain", score)
    G.add_decode_measure(g, "guided", "guided", score)
    comfy.run(g)

    content = comfy.output("content")  # (2, H, W, 3)
    guided, plain = comfy.output("guided_dec"), comfy.output("plain_dec")
    assert guided.shape[0] == content.shape[0] == 2
    own = [_mse(guided[i], content[i]) for i in range(2)]
    other = [_mse(guided[i], content[1 - i]) for i in range(2)]
    before = [_mse(plain[i], content[i]) for i in range(2)]
    before_other = [_mse(plain[i], content[1 - i]) for i in range(2)]
    gain = [b - o for b, o in zip(before, own, strict=True)]
    gain_other = [b - o for b, o in zip(before_other, other, strict=True)]
    print(f"\nper sample, pixel MSE to its own content / to the other: guided {own} / {other}, plain {before} / "
          f"{before_other}")
    # Sample i follows content i, not the other picture: guidance brings each closer to its own content, and by
    # more than to the other. (Had every sample followed content 0, sample 1 would gain toward the other instead.)
    # The shared style pulls both toward its own look, so the light sample also comes a little closer to the dark one.
    assert all(g > h and g > 0 for g, h in zip(gain, gain_other, strict=True)), (gain, gain_other)
    assert own[0] < 0.5 * other[0], (own, other)

    reports = {n: json.loads(comfy.output(f"{n}_m", 1)) for n in ("plain", "guided")}
    gram = {n: next(t for t in r["terms"] if t["kind"] == "gram_style") for n, r in reports.items()}
    print(f"twin Gram over the batch: plain {gram['plain']['value']:.3g} ± {gram['plain']['spread']:.2g}, "
          f"guided {gram['guided']['value']:.3g} ± {gram['guided']['spread']:.2g}")
    assert gram["guided"]["value"] < gram["plain"]["value"]
    assert all(t["spread"] is not None and t["spread"] > 0 for r in reports.values() for t in r["terms"])
    assert " ± " in comfy.output("guided_m", 0)


def test_one_picture_has_no_spread(comfy, tiny_models):
    g = G.base_graph(tiny_models)
    last = G.add_all_losses(g, terms=("mse",))
    g["m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {"image": G.link("content"), "losses": G.link(last),
                                                               "seed": 0}}
    comfy.run(g)
    (term,) = json.loads(comfy.output("m", 1))["terms"]
    assert term["spread"] is None and " ± " not in comfy.output("m", 0)


def test_one_content_over_several_seeds_guides_every_sample_and_keeps_them_apart(comfy, tiny_models):
    """One content, a batch of three samples (ComfyUI draws each its own noise): every sample comes closer to the
    content and, by the twin Gram network, to the style; and the samples stay distinct pictures."""
    n = 3
    g = G.base_graph(tiny_models)
    g["enc_one"] = g["enc"]
    g["enc"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": G.link("enc_one"), "amount": n}}
    last = G.add_all_losses(g, terms=("mse", "gram"), weights={"mse": 2.0})
    G.add_twin_networks(g, tiny_models)
    score = G.add_all_losses(g, prefix="s", terms=("gram",), vgg="vgg_t")
    samp = G.sampling(denoise=1.0)
    G.add_ksampler(g, "plain", samp)
    G.add_guided_sampler(g, "guided", last, G.guidance_options(scale=SCALE), samp)
    for run in ("plain", "guided"):
        G.add_decode_measure(g, run, run, score)
        for i in range(n):
            g[f"{run}_{i}"] = {"class_type": "ImageFromBatch", "inputs": {"image": G.link(f"{run}_dec"),
                                                                          "batch_index": i, "length": 1}}
            g[f"{run}_{i}_m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {
                "image": G.link(f"{run}_{i}"), "losses": G.link(score), "seed": 0}}
    comfy.run(g)

    content = comfy.output("content")[0]
    guided, plain = comfy.output("guided_dec"), comfy.output("plain_dec")
    assert guided.shape[0] == plain.shape[0] == n
    mse = {run: [_mse(img[i], content) for i in range(n)] for run, img in (("plain", plain), ("guided", guided))}
    gram = {run: [comfy.output(f"{run}_{i}_m", 2) for i in range(n)] for run in ("plain", "guided")}
    apart = {run: min(_mse(img[i], img[j]) for i in range(n) for j in range(i + 1, n))
             for run, img in (("plain", plain), ("guided", guided))}
    print(f"\nper seed, MSE to the content: plain {mse['plain']} guided {mse['guided']}; twin Gram: plain "
          f"{gram['plain']} guided {gram['guided']}; closest pair of samples: {apart}")
    for run in ("plain", "guided"):  # the seeds made different pictures (a batch that shared one noise would not)
        assert apart[run] > 1e-4, apart
    assert all(gd < p for gd, p in zip(mse["guided"], mse["plain"], strict=True)), mse
    assert all(gd < p for gd, p in zip(gram["guided"], gram["plain"], strict=True)), gram
    # Guidance pulls every sample toward one content and one style, yet they stay distinct pictures.
    assert apart["guided"] > 0.1 * apart["plain"], apart
    spread = next(t for t in json.loads(comfy.output("guided_m", 1))["terms"])["spread"]
    assert spread is not None and spread > 0
