"""API-format prompts for the model families beyond SD1.5 (stand-ins from headless.testbed.standins).

Every family's graph has the same node ids, so tests read them alike: ``model`` (the loader),
``vae`` (the guidance/encode decoder), ``content``/``style``, ``enc`` (encoded content),
``pos``/``neg`` (conditioning; Flux's positive passes through the core FluxGuidance), the
guiding loss chain ending at ``l3`` (pixel MSE + Gram on VGG + CLIP) and the scoring chain
ending at ``s3`` (the same terms on the twin VGG/open_clip, never used to guide).
"""

from __future__ import annotations

import json
from typing import Any

from .graphs import link
from .standins.families import FAMILIES
from .standins.family import Family

SIZE = 64
STEPS = 4
TOKENS = 16  # conditioning length: short keeps the cross-attention projections (and Flux) cheap
FLUX_GUIDANCE = 3.5
# The shipped default. Guidance's step is a fraction of the denoiser's own update, and 3 (the
# SD1.5 tests' value) overshoots on SD2.x v-pred and the flow models: the twin-scored loss rises.
SCALE = 0.3
TWIN_TERMS = ("pixel_mse_content", "gram_style", "clip_style")


def model_node(fam: Family) -> dict:
    if fam.dit is not None:  # a tiny DiT at its own sizes (standin_dit_nodes.py says why not UNETLoader)
        return {"class_type": "SGTestDiTLoader", "inputs": {"unet_name": fam.file}}
    if fam.folder == "diffusion_models":
        return {"class_type": "UNETLoader", "inputs": {"unet_name": fam.file, "weight_dtype": "default"}}
    return {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": fam.file}}


def vae_node(fam: Family, vae: str) -> dict:
    """``taesd``: the family's TAESD through VAELoader; ``kl``: the narrow KL VAE of its latents.

    SD2.x shares SD1.5's latents and so its 'taesd' pair; the tests' SD1.5 pair (standins.suite_models)
    is not calibrated and saturates, so SD2.x decodes with a calibrated TAESD of the same latent format,
    packed as a full VAE file (VAELoader by file name).
    """
    if vae == "taesd" and fam.taesd:
        name = fam.vae_file if fam.taesd == "taesd" else fam.taesd
        return {"class_type": "VAELoader", "inputs": {"vae_name": name}}
    if fam.latent_format == "Flux2":  # no tiny decoder exists: always its (narrow) VAE
        from .standins.flux2 import VAE_FILE, VAE_Z

        return {"class_type": "SGTestKLVAE", "inputs": {"vae_name": VAE_FILE, "z_channels": VAE_Z,
                                                        "batch_norm_latent": True}}
    if fam.latent_format == "HunyuanImage21":  # no tiny decoder either; VAELoader would build it full width
        from .standins.hunyuan_image import VAE_FILE as HUNYUAN_VAE

        return {"class_type": "SGTestHunyuanImageVAE", "inputs": {"vae_name": HUNYUAN_VAE}}
    return {"class_type": "SGTestKLVAE", "inputs": {"vae_name": fam.kl_vae_file, "z_channels": fam.latent_channels}}


def family_graph(key: str, models: dict, vae: str = "taesd", size: int = SIZE) -> dict[str, dict[str, Any]]:
    """Loader, decoder, pictures, encoded content, conditioning, guiding and scoring loss chains."""
    fam = FAMILIES[key]
    cond = {"seed": 0, "tokens": TOKENS, "dim": fam.context_dim, "pooled_dim": fam.pooled_dim,
            "width": size, "height": size}
    g: dict[str, dict[str, Any]] = {
        "model": model_node(fam),
        "vae": vae_node(fam, vae),
        "content": {"class_type": "SGTestImage", "inputs": {"width": size, "height": size, "seed": 1, "batch_size": 1}},
        "style": {"class_type": "SGTestImage", "inputs": {"width": size + 16, "height": size, "seed": 7, "batch_size": 1}},
        "enc": {"class_type": "VAEEncode", "inputs": {"pixels": link("content"), "vae": link("vae")}},
        "pos_raw": {"class_type": "SGTestConditioning", "inputs": {"text": "a painting", **cond}},
        "neg": {"class_type": "SGTestConditioning", "inputs": {"text": "", **cond}},
        "vgg": {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": models["vgg"]}},
        "oclip": {"class_type": "StyleGuidanceOpenCLIPLoader",
                  "inputs": {"arch": models["open_clip_arch"], "clip_name": models["open_clip"]}},
        "vgg_twin": {"class_type": "StyleGuidanceVGGLoader", "inputs": {"vgg_name": models["vgg_twin"]}},
        "oclip_twin": {"class_type": "StyleGuidanceOpenCLIPLoader",
                       "inputs": {"arch": models["open_clip_arch"], "clip_name": models["open_clip_twin"]}},
    }
    for i, (key_, shape) in enumerate(fam.cond_extra):  # e.g. HiDream's Llama features
        for name in ("pos_raw", "neg"):
            g[f"{name}_{i}"] = g.pop(name)
            g[name] = {"class_type": "SGTestConditioningExtra", "inputs": {
                "conditioning": link(f"{name}_{i}"), "key": key_, "shape": shape, "seed": 20 + i + (name == "neg")}}
    if fam.guidance_embed:
        g["pos"] = {"class_type": "FluxGuidance", "inputs": {"conditioning": link("pos_raw"), "guidance": FLUX_GUIDANCE}}
    else:
        g["pos"] = g.pop("pos_raw")
    add_chain(g, "l", "vgg", "oclip")
    add_chain(g, "s", "vgg_twin", "oclip_twin")
    return g


def add_chain(g: dict, prefix: str, vgg: str, oclip: str, weights: dict | None = None) -> str:
    """Pixel MSE to the content, Gram (VGG) and CLIP to the style: the cheap chain of the family tests."""
    w = {"mse": 1.0, "gram": 1.0, "clip": 1.0, **(weights or {})}
    g[f"{prefix}1"] = {"class_type": "StyleGuidanceContentMSE",
                       "inputs": {"content": link("content"), "weight": w["mse"], "fit": "stretch"}}
    g[f"{prefix}2"] = {"class_type": "StyleGuidanceGramStyle",
                       "inputs": {"style": link("style"), "vgg": link(vgg), "weight": w["gram"],
                                  "layers": "relu1_1..relu5_1 (Gatys)", "losses": link(f"{prefix}1")}}
    g[f"{prefix}3"] = {"class_type": "StyleGuidanceCLIPStyle",
                       "inputs": {"style": link("style"), "weight": w["clip"], "open_clip": link(oclip),
                                  "num_cutouts": 2, "cut_min": 0.5, "distance": "spherical", "flip": True, "seed": 0,
                                  "losses": link(f"{prefix}2")}}
    return f"{prefix}3"


def cfg_for(key: str) -> float:
    """Flux dev is guidance-distilled: cfg 1 (no negative pass), strength through FluxGuidance; a family's own cfg
    (Z-Image Turbo: 1) otherwise."""
    fam = FAMILIES[key]
    if fam.cfg is not None:
        return fam.cfg
    return 1.0 if fam.guidance_embed else 2.0


def sampling(key: str, **over) -> dict:
    s = {"seed": 3, "steps": STEPS, "cfg": cfg_for(key), "sampler_name": "euler", "scheduler": "simple",
         "denoise": 0.7}
    s.update(over)
    return s


def options(**over) -> dict:
    opts = {"mode": "x0", "scale": SCALE, "start_percent": 0.0, "end_percent": 1.0, "recurrence": 1,
            "recurrence_start_percent": 0.0, "recurrence_end_percent": 1.0, "grad_clip": 0.0, "loss_resolution": 0}
    opts.update(over)
    return opts


def add_plain_and_guided(g: dict, node: str, opts: dict, samp: dict, model: str = "model",
                         losses: str = "l3", zero: bool = False, positive: list | None = None,
                         negative: list | None = None) -> None:
    """``plain`` and ``guided`` latents, same seed, through node 'sampler', 'guider' or 'apply'.

    ``zero`` adds ``zero``: the same guided node at scale 0 (must equal ``plain`` bit for bit).
    ``positive``/``negative``: other conditioning links (e.g. a ControlNet apply node's outputs).
    Each result is decoded (``<name>_dec``) and scored by the twin chain (``<name>_score``).
    """
    pos, neg = positive or link("pos"), negative or link("neg")
    names = ["plain", "guided"] + (["zero"] if zero else [])
    scale = {"guided": opts["scale"], "zero": 0.0}
    if node in ("sampler", "apply"):
        g["plain"] = {"class_type": "KSampler", "inputs": {
            "model": link(model), "positive": pos, "negative": neg, "latent_image": link("enc"), **samp}}
    if node == "sampler":
        for name in names[1:]:
            g[name] = {"class_type": "StyleGuidanceSampler", "inputs": {
                "model": link(model), "positive": pos, "negative": neg, "latent_image": link("enc"),
                "vae": link("vae"), "losses": link(losses), **samp, **opts, "scale": scale[name]}}
    elif node == "apply":
        for name in names[1:]:
            g[f"{name}_patch"] = {"class_type": "StyleGuidanceApply", "inputs": {
                "model": link(model), "vae": link("vae"), "losses": link(losses), **opts, "scale": scale[name]}}
            g[name] = {"class_type": "KSampler", "inputs": {
                "model": link(f"{name}_patch"), "positive": pos, "negative": neg,
                "latent_image": link("enc"), **samp}}
    elif node == "guider":
        g["noise"] = {"class_type": "RandomNoise", "inputs": {"noise_seed": samp["seed"]}}
        g["ksel"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": samp["sampler_name"]}}
        g["sigmas"] = {"class_type": "BasicScheduler", "inputs": {
            "model": link(model), "scheduler": samp["scheduler"], "steps": samp["steps"], "denoise": samp["denoise"]}}
        g["plain_guider"] = {"class_type": "CFGGuider", "inputs": {
            "model": link(model), "positive": pos, "negative": neg, "cfg": samp["cfg"]}}
        for name in names[1:]:
            g[f"{name}_guider"] = {"class_type": "StyleGuidanceGuider", "inputs": {
                "model": link(model), "positive": pos, "negative": neg, "cfg": samp["cfg"],
                "vae": link("vae"), "losses": link(losses), **opts, "scale": scale[name]}}
        for name in names:
            g[name] = {"class_type": "SamplerCustomAdvanced", "inputs": {
                "noise": link("noise"), "guider": link(f"{name}_guider"), "sampler": link("ksel"),
                "sigmas": link("sigmas"), "latent_image": link("enc")}}
    else:
        raise ValueError(node)
    for name in names:  # SamplerCustomAdvanced's first output is the sampled latent, as KSampler's
        g[f"{name}_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": link(name), "vae": link("vae")}}
        g[f"{name}_score"] = {"class_type": "StyleGuidanceMeasure",
                              "inputs": {"image": link(f"{name}_dec"), "losses": link("s3"), "seed": 0}}


def add_flipped(g: dict, losses: str = "l3") -> None:
    """``flipped``: the ``guided`` node with its update's sign flipped (the counterfactual), decoded and scored."""
    g["flip"] = {"class_type": "SGTestNegateLosses", "inputs": {"losses": link(losses)}}
    g["flipped"] = {**g["guided"], "inputs": {**g["guided"]["inputs"], "losses": link("flip")}}
    g["flipped_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": link("flipped"), "vae": link("vae")}}
    g["flipped_score"] = {"class_type": "StyleGuidanceMeasure",
                          "inputs": {"image": link("flipped_dec"), "losses": link("s3"), "seed": 0}}


def scores(comfy, name: str) -> dict[str, float]:
    """The twin networks' (and pixel MSE's) scores of the decoded ``plain``/``guided`` result."""
    report = json.loads(comfy.output(f"{name}_score", 1))
    return {"total": report["total"], **{t["name"]: t["value"] for t in report["terms"]}}


def ratios(comfy, guided: str = "guided") -> dict[str, float]:
    """Twin-scored total and per-term values of the ``guided`` result over plain's."""
    plain, other = scores(comfy, "plain"), scores(comfy, guided)
    return {t: other[t] / plain[t] for t in ("total", *TWIN_TERMS)}
