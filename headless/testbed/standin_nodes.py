"""Stand-in ComfyUI nodes (``SGTest*``) for the tests and the benchmarks; not part of the node pack.

:func:`headless.testbed.base.make_base` copies this file into a base's ``custom_nodes`` (the pack's
own loader never imports it). The nodes stand in for what the tiny models lack: a text encoder
(random but seeded conditioning), a small full-architecture VAE, and generated pictures. The
file is self-contained (ComfyUI loads it as a module of its own, without this repository on
``sys.path``), hence the VAE layout below repeats ``standins.decoders.kl_ddconfig(4)``.
"""

import hashlib

import torch


def _seed_of(text: str, seed: int) -> int:
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class SGTestConditioning:
    """Seeded random conditioning: stands in for a text encoder (tests and benchmarks).

    Default (1, 77, 768) is SD1.5's shape; the optional inputs give other families theirs
    (SDXL: dim 2048 with a 1280-d pooled vector and the image size for its size embedding).
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"text": ("STRING", {"default": "a photo"}), "seed": ("INT", {"default": 0, "min": 0, "max": 2**31})},
            "optional": {
                "tokens": ("INT", {"default": 77, "min": 1, "max": 4096}),
                "dim": ("INT", {"default": 768, "min": 1, "max": 8192}),
                "pooled_dim": ("INT", {"default": 0, "min": 0, "max": 8192}),
                "width": ("INT", {"default": 1024, "min": 8, "max": 16384}),
                "height": ("INT", {"default": 1024, "min": 8, "max": 16384}),
            },
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, text, seed, tokens=77, dim=768, pooled_dim=0, width=1024, height=1024):
        gen = torch.Generator().manual_seed(_seed_of(text, seed))
        cond = torch.randn((1, tokens, dim), generator=gen)
        extra = {}
        if pooled_dim:
            extra = {"pooled_output": torch.randn((1, pooled_dim), generator=gen), "width": width, "height": height,
                     "target_width": width, "target_height": height, "crop_w": 0, "crop_h": 0}
        return ([[cond, extra]],)


class SGTestKLVAE:
    """A small AutoencoderKL (SD VAE architecture, narrow) from a file in models/vae.

    ComfyUI's VAELoader builds every KL VAE at full width (its config is fixed), so a narrow one
    needs its config given: ``z_channels`` 4 (SD1.x/SD2.x/SDXL latents) or 16 (SD3/Flux), or 32 with
    ``batch_norm_latent`` (Flux.2: 128-channel packed latents).
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ("STRING", {"default": "sg_tiny_kl_vae.safetensors"})},
                "optional": {"z_channels": ("INT", {"default": 4, "min": 1, "max": 64}),
                             "batch_norm_latent": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, vae_name, z_channels=4, batch_norm_latent=False):
        import comfy.sd
        import comfy.utils
        import folder_paths

        ddconfig = {
            "double_z": True, "z_channels": z_channels, "resolution": 256, "in_channels": 3, "out_ch": 3,
            "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
        }
        if batch_norm_latent:  # Flux.2: latents packed 2x2 (4 z_channels, half the size), batch-norm statistics
            ddconfig["batch_norm_latent"] = True
        sd = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("vae", vae_name), safe_load=True)
        vae = comfy.sd.VAE(sd=sd, config={"params": {"ddconfig": ddconfig, "embed_dim": z_channels}})
        # ComfyUI sets these from the weights only when it detects the config (as VAELoader does for bn.*)
        vae.latent_channels = z_channels * (4 if batch_norm_latent else 1)
        if batch_norm_latent:
            vae.downscale_ratio = vae.upscale_ratio = 16
        return (vae,)


# The size and seed of a test picture or clip (SGTestImage, SGTestVideo).
_PICTURE_INPUTS = {
    "width": ("INT", {"default": 64, "min": 8, "max": 1024, "step": 8}),
    "height": ("INT", {"default": 64, "min": 8, "max": 1024, "step": 8}),
    "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
}


class SGTestImage:
    """A deterministic test picture: smooth colour field plus seeded texture, NHWC in [0,1]."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**_PICTURE_INPUTS, "batch_size": ("INT", {"default": 1, "min": 1, "max": 16})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, width, height, seed, batch_size):
        gen = torch.Generator().manual_seed(seed)
        ys = torch.linspace(0, 1, height).view(1, height, 1, 1)
        xs = torch.linspace(0, 1, width).view(1, 1, width, 1)
        phase = torch.rand((batch_size, 1, 1, 3), generator=gen) * 6.28
        freq = 2 + torch.rand((batch_size, 1, 1, 3), generator=gen) * 6
        base = 0.5 + 0.35 * torch.sin(freq * (xs + 0.6 * ys) * 3.14 + phase)
        noise = torch.rand((batch_size, height, width, 3), generator=gen)
        return ((0.85 * base + 0.15 * noise).clamp(0, 1),)


class SGTestVideo:
    """A deterministic test clip (frames as an IMAGE batch, as video loaders give it): one SGTestImage-like
    picture of double width, seen through a window that slides ``motion`` pixels per frame (0: a still clip)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **_PICTURE_INPUTS,
            "frames": ("INT", {"default": 5, "min": 1, "max": 64}),
            "motion": ("INT", {"default": 2, "min": 0, "max": 16}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, width, height, seed, frames, motion):
        wide = width + motion * max(frames - 1, 0)
        (picture,) = SGTestImage().run(wide, height, seed, 1)
        return (torch.cat([picture[:, :, f * motion:f * motion + width] for f in range(frames)]),)


class SGTestLatent:
    """Seeded latents of unit RMS in a model's latent space, stored as ComfyUI does (VAE space).

    ``scale``/``shift`` are the latent format's (SD1.5 0.18215/0; SD3 1.5305/0.0609 ...).
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "channels": ("INT", {"default": 4, "min": 1, "max": 128}),
            "size": ("INT", {"default": 8, "min": 1, "max": 512}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 16}),
            "scale": ("FLOAT", {"default": 0.18215, "min": 1e-4, "max": 100.0, "step": 1e-5}),
            "shift": ("FLOAT", {"default": 0.0, "min": -100.0, "max": 100.0, "step": 1e-5}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, channels, size, seed, batch_size, scale, shift):
        gen = torch.Generator().manual_seed(seed)
        return ({"samples": torch.randn((batch_size, channels, size, size), generator=gen) / scale + shift},)


class SGTestClipVision:
    """A tiny ComfyUI ClipVisionModel (CLIP ViT or SigLIP layout) with seeded random weights."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "kind": ("STRING", {"default": "clip"}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
        }}

    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"
    # Tests fetch this node's output object directly; marking it an output lets a prompt
    # consist of this node alone (ComfyUI rejects prompts without outputs).
    OUTPUT_NODE = True

    def run(self, kind, seed):
        import json
        import os
        import tempfile

        import comfy.clip_vision

        config = {
            "num_channels": 3, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "patch_size": 16, "image_size": 64, "layer_norm_eps": 1e-5,
        }
        if kind == "clip":
            config.update({"model_type": "clip_vision_model", "hidden_act": "quick_gelu", "projection_dim": 32})
        elif kind == "siglip":
            config.update({"model_type": "siglip_vision_model", "hidden_act": "gelu_pytorch_tanh",
                           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
        else:
            raise ValueError(f"kind must be 'clip' or 'siglip', got {kind!r}")
        fd, path = tempfile.mkstemp(suffix=".json", prefix="sg_tiny_clip_vision_")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(config, f)
            clip_vision = comfy.clip_vision.ClipVisionModel(path)
        finally:
            os.remove(path)
        # ComfyUI's ops skip weight init (weights are torch.empty): fill every tensor, in place,
        # with scales that keep activations in a sane range.
        gen = torch.Generator().manual_seed(_seed_of(kind, seed))
        with torch.no_grad():
            for name, p in clip_vision.model.named_parameters():
                noise = torch.randn(p.shape, generator=gen)
                if "norm" in name:
                    value = 1.0 + 0.1 * noise if name.endswith("weight") else 0.05 * noise
                elif name.endswith("bias"):
                    value = 0.02 * noise
                elif p.dim() >= 2 and "position_embedding" not in name:
                    value = noise / (p[0].numel() ** 0.5)
                else:
                    value = 0.1 * noise
                p.copy_(value.to(p.dtype))
        return (clip_vision,)


class SGTestNaN:
    """Passes an image on with one NaN pixel: for bad-input tests."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, image):
        out = image.clone()
        out[0, 0, 0, 0] = float("nan")
        return (out,)


class SGTestNegateLosses:
    """The same loss chain with every weight negated: a counterfactual that must make guidance fail."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"losses": ("GUIDANCE_LOSS",)}}

    RETURN_TYPES = ("GUIDANCE_LOSS",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, losses):
        import copy

        flipped = []
        for term in losses.terms:
            twin = copy.copy(term)  # shares networks and targets; the upstream chain keeps its own weight
            twin.weight = -term.weight
            flipped.append(twin)
        return (type(losses)(flipped),)


# Weak references to what the last SGTestOOMLoss failure held (its decoded batch, the graph and
# the ballast); SGTestProcessState reports how many are still alive.
_OOM_WITNESSES: list = []


class SGTestOOMLoss:
    """The same chain, but its first image term raises ``torch.OutOfMemoryError`` on its Nth call.

    Before raising, the failing call builds ``ballast_mib`` MiB on the autograd graph of the
    generated batch, as a loss network's activations would be: after the failure it must be
    released. Weak references to it are kept for :class:`SGTestProcessState`.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "losses": ("GUIDANCE_LOSS",),
            "fail_on_call": ("INT", {"default": 2, "min": 1, "max": 10000}),
            "ballast_mib": ("INT", {"default": 64, "min": 0, "max": 65536}),
        }}

    RETURN_TYPES = ("GUIDANCE_LOSS",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, losses, fail_on_call, ballast_mib):
        import copy
        import weakref

        terms = list(losses.terms)
        index = next(i for i, t in enumerate(terms) if t.weight != 0.0 and t.space == "image")
        original = terms[index]
        twin = copy.copy(original)  # shares networks and targets; the upstream chain is left alone
        calls = [0]

        def forward_features(images, feats):
            calls[0] += 1
            value = original.forward_features(images, feats)
            if calls[0] == fail_on_call:
                ballast = images.float().mean() + torch.zeros(ballast_mib * (1 << 18))  # on the graph
                ballast = ballast * 1.0
                _OOM_WITNESSES.clear()
                _OOM_WITNESSES.extend(weakref.ref(t) for t in (images, ballast, value))
                raise torch.OutOfMemoryError(
                    f"SGTestOOMLoss: simulated out of memory in the loss networks (call {calls[0]})")
            return value

        twin.forward_features = forward_features
        terms[index] = twin
        return (type(losses)(terms),)


def _pack_adapter():
    """The pack's comfy_adapter module as ComfyUI's loader imported it (None before it is)."""
    import sys

    for name, mod in list(sys.modules.items()):
        if name.endswith("sampler.comfy_adapter") and hasattr(mod, "_DECODERS"):
            return mod
    return None


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class SGTestProcessState:
    """Reports, as a STRING (and ui text), what the process holds: for tests that look inside a server.

    JSON: ``rss_mib``; ``models``: per model ComfyUI has loaded, its class and how many of its
    parameters require grad / are not inference tensors; ``decoders``: entries in the pack's
    decoder-copy cache and live ``DecoderCopy`` objects; ``oom_witnesses``: how many tensors of
    the last SGTestOOMLoss failure are alive; with ``collect``, the same again after gc.collect().
    Never cached (it must look at the process each time it runs).
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"collect": ("BOOLEAN", {"default": False}), "tag": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing/style_guidance"

    @classmethod
    def IS_CHANGED(cls, **_kw):
        return float("nan")

    @staticmethod
    def _snapshot() -> dict:
        import gc

        import comfy.model_management as mm

        models = []
        for lm in list(mm.current_loaded_models):
            patcher = lm.model
            module = getattr(patcher, "model", None) if patcher is not None else None
            if not isinstance(module, torch.nn.Module):
                continue
            params = list(module.parameters())
            models.append({
                "class": type(module).__name__, "parameters": len(params),
                "comfy": type(module).__module__.startswith("comfy"),  # ComfyUI's own, or the pack's copy/network
                "requires_grad": sum(bool(p.requires_grad) for p in params),
                "not_inference": sum(not p.is_inference() for p in params),
            })
        adapter = _pack_adapter()
        live = sum(1 for o in gc.get_objects() if type(o).__name__ == "DecoderCopy")
        return {
            "rss_mib": _rss_mib(), "models": models,
            "decoders": {"cached": -1 if adapter is None else len(adapter._DECODERS), "live": live},
            "oom_witnesses": sum(1 for w in _OOM_WITNESSES if w() is not None),
            "grad_enabled": torch.is_grad_enabled(),
        }

    def run(self, collect, tag):
        import gc
        import json

        state = self._snapshot()
        if collect:
            gc.collect()
            state["after_gc"] = self._snapshot()
        state["tag"] = tag
        text = json.dumps(state)
        return {"ui": {"text": [text]}, "result": (text,)}


class SGTestTensor:
    """Any IMAGE or MASK tensor from a shape and dtype: for bad-input tests (odd sizes, channels, dtypes)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "shape": ("STRING", {"default": "1,64,64,3"}),
            "dtype": (["float32", "float16", "bfloat16", "float64", "uint8", "int64", "bool"],),
            "fill": (["texture", "zeros", "ones", "nan", "inf", "big"],),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
        }}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, shape, dtype, fill, seed):
        dims = tuple(int(d) for d in shape.split(",") if d.strip())
        gen = torch.Generator().manual_seed(seed)
        if fill == "texture":
            t = torch.rand(dims, generator=gen)
        elif fill == "zeros":
            t = torch.zeros(dims)
        elif fill == "ones":
            t = torch.ones(dims)
        elif fill == "big":
            t = torch.rand(dims, generator=gen) * 1e4
        else:
            t = torch.rand(dims, generator=gen)
            if t.numel():
                t.view(-1)[0] = float("nan") if fill == "nan" else float("inf")
        if dtype == "uint8":
            t = (t.clamp(0, 1) * 255).to(torch.uint8)
        elif dtype in ("int64", "bool"):
            t = (t > 0.5).to(getattr(torch, dtype))
        else:
            t = t.to(getattr(torch, dtype))
        return (t, t)


NODE_CLASS_MAPPINGS = {
    "SGTestOOMLoss": SGTestOOMLoss,
    "SGTestProcessState": SGTestProcessState,
    "SGTestTensor": SGTestTensor,
    "SGTestNegateLosses": SGTestNegateLosses,
    "SGTestNaN": SGTestNaN,
    "SGTestConditioning": SGTestConditioning,
    "SGTestKLVAE": SGTestKLVAE,
    "SGTestImage": SGTestImage,
    "SGTestVideo": SGTestVideo,
    "SGTestLatent": SGTestLatent,
    "SGTestClipVision": SGTestClipVision,
}
