"""API-format prompt builders on the stand-in nodes (``SGTest*``), shared by the tests and the benchmarks."""

from __future__ import annotations

from typing import Any

SIZE = 64


def link(node: str, index: int = 0) -> list:
    return [node, index]


def base_graph(models: dict, vae: str = "taesd", size: int = SIZE, batch: int = 1) -> dict[str, dict[str, Any]]:
    """Checkpoint, decoder VAE, content/style pictures, encoded content, conditioning, loss networks."""
    g: dict[str, dict[str, Any]] = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": models["ckpt"]}},
        "vae": ({"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}} if vae == "taesd"
                else {"class_type": "SGTestKLVAE", "inputs": {"vae_name": models["kl_vae"]}}),
        "content": {"class_type": "SGTestImage", "inputs": {"width": size, "height": size, "seed": 1, "batch_size": batch}},
        "style": {"class_type": "SGTestImage", "inputs": {"width": size + 16, "height": size, "seed": 7, "batch_size": 1}},
        "enc": {"class_type": "VAEEncode", "inputs": {"pixels": link("content"), "vae": link("vae")}},
        "pos": {"class_type": "SGTestConditioning", "inputs": {"text": "a painting", "seed": 0}},
        "neg": {"class_type": "SGTestConditioning", "inputs": {"text": "", "seed": 0}},
        "vgg": {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": models["vgg"]}},
        "oclip": {"class_type": "StyleGuidanceOpenCLIPLoader",
                  "inputs": {"arch": models["open_clip_arch"], "clip_name": models["open_clip"]}},
    }
    return g


TERMS = ("mse", "vgg", "patchnce", "clip", "gram")
# Measure-output index of each term's own value (StyleGuidanceMeasure: text, json, total, then per kind).
SCORE_INDEX = {"mse": 3, "vgg": 4, "patchnce": 5, "clip": 6, "gram": 7}


def add_twin_networks(g: dict, models: dict) -> None:
    """Loss networks of the same architectures with other weights, to score results independently."""
    g["vgg_t"] = {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": models["vgg_twin"]}}
    g["oclip_t"] = {"class_type": "StyleGuidanceOpenCLIPLoader",
                    "inputs": {"arch": models["open_clip_arch"], "clip_name": models["open_clip_twin"]}}


def add_all_losses(g: dict, weights: dict[str, float] | None = None, prefix: str = "l",
                   terms: tuple[str, ...] = TERMS, vgg: str = "vgg", clip: str = "oclip",
                   cutouts: int = 2) -> str:
    """Chain the loss nodes named in ``terms`` (default all five); return the id of the last one."""
    w = {"mse": 1.0, "vgg": 1.0, "patchnce": 0.5, "clip": 1.0, "gram": 1.0, **(weights or {})}
    specs = {
        "mse": ("StyleGuidanceContentMSE", {"content": link("content"), "weight": w["mse"], "fit": "stretch"}),
        "vgg": ("StyleGuidanceVGGContent", {"content": link("content"), "vgg": link(vgg), "weight": w["vgg"],
                                            "layers": "relu4_2 (Gatys)", "fit": "stretch"}),
        "patchnce": ("StyleGuidanceZeCon", {"content": link("content"), "vgg": link(vgg), "weight": w["patchnce"],
                                         "layers": "relu2_1+relu3_1+relu4_1", "num_patches": 64, "tau": 0.07,
                                         "seed": 0, "fit": "stretch"}),
        "clip": ("StyleGuidanceCLIPStyle", {"style": link("style"), "weight": w["clip"], "open_clip": link(clip),
                                            "num_cutouts": cutouts, "cut_min": 0.5, "distance": "spherical",
                                            "flip": True, "seed": 0}),
        "gram": ("StyleGuidanceGramStyle", {"style": link("style"), "vgg": link(vgg), "weight": w["gram"],
                                            "layers": "relu1_1..relu5_1 (Gatys)"}),
    }
    last = None
    for i, name in enumerate(t for t in TERMS if t in terms):
        cls, inputs = specs[name]
        node = f"{prefix}{i + 1}"
        g[node] = {"class_type": cls, "inputs": {**inputs, **({"losses": link(last)} if last else {})}}
        last = node
    assert last is not None, "no terms"
    return last


def guidance_options(**over) -> dict:
    opts = {"mode": "x0", "scale": 1.0, "start_percent": 0.0, "end_percent": 1.0, "recurrence": 1,
            "recurrence_start_percent": 0.0, "recurrence_end_percent": 1.0, "grad_clip": 0.0, "loss_resolution": 0}
    opts.update(over)
    return opts


def sampling(**over) -> dict:
    s = {"seed": 3, "steps": 6, "cfg": 2.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.7}
    s.update(over)
    return s


def add_guided_sampler(g: dict, node: str, losses: str, opts: dict, samp: dict, model: str = "ckpt") -> None:
    g[node] = {"class_type": "StyleGuidanceSampler", "inputs": {
        "model": link(model), "positive": link("pos"), "negative": link("neg"), "latent_image": link("enc"),
        "vae": link("vae"), "losses": link(losses), **samp, **opts}}


def add_ksampler(g: dict, node: str, samp: dict, model: str = "ckpt") -> None:
    g[node] = {"class_type": "KSampler", "inputs": {
        "model": link(model), "positive": link("pos"), "negative": link("neg"), "latent_image": link("enc"), **samp}}


def add_decode_measure(g: dict, node: str, latent_node: str, losses: str) -> tuple[str, str]:
    """Decode ``latent_node`` with the graph's VAE and measure it; return (decode id, measure id)."""
    g[f"{node}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": link(latent_node), "vae": link("vae")}}
    g[f"{node}_m"] = {"class_type": "StyleGuidanceMeasure", "inputs": {"image": link(f"{node}_dec"), "losses": link(losses), "seed": 0}}
    return f"{node}_dec", f"{node}_m"


# Chains of a mixed queue (benchmarks/bench_queue.py and its short twin in the tests).
QUEUE_CHAINS: tuple[tuple[str, ...], ...] = (("mse",), ("mse", "gram"), ("vgg", "gram"), ("patchnce", "clip"), TERMS)


def queue_prompt(models: dict, i: int, steps: int = 2, vae_name: str | None = None) -> dict[str, dict[str, Any]]:
    """The i-th prompt of a mixed queue (deterministic in ``i``): mode, loss chain, size 64-128 px,
    batch 1-3, loss resolution and sometimes recurrence vary; ``vae_name`` decodes with that KL VAE
    file (SGTestKLVAE) instead of taesd. Ends in a PreviewImage."""
    import random

    r = random.Random(i)
    size, batch = r.choice((64, 96, 128)), r.randint(1, 3)
    g = base_graph(models, vae="taesd" if vae_name is None else "kl", size=size, batch=batch)
    if vae_name is not None:
        g["vae"]["inputs"]["vae_name"] = vae_name
    last = add_all_losses(g, terms=QUEUE_CHAINS[r.randrange(len(QUEUE_CHAINS))], cutouts=1)
    opts = guidance_options(mode=("x0", "xt")[i % 2], scale=0.5, loss_resolution=r.choice((0, 32, 64)),
                            recurrence=2 if r.random() < 0.2 else 1, recurrence_start_percent=0.3,
                            recurrence_end_percent=0.7)
    add_guided_sampler(g, "run", last, opts, sampling(seed=i, steps=steps))
    g["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": link("run"), "vae": link("vae")}}
    g["show"] = {"class_type": "PreviewImage", "inputs": {"images": link("dec")}}
    return g


def state_prompt(collect: bool = False, tag: str = "") -> dict[str, dict[str, Any]]:
    """A prompt of one SGTestProcessState node (what the server process holds)."""
    return {"state": {"class_type": "SGTestProcessState", "inputs": {"collect": collect, "tag": tag}}}
