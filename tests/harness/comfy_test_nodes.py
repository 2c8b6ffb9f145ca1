"""Test-only ComfyUI nodes. Copied into the test base's custom_nodes; never shipped.

They stand in for what the tiny test models lack: a text encoder (random but seeded
conditioning), a small full-architecture VAE, and generated test images.
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
    needs its config given: ``z_channels`` 4 (SD1.x/SD2.x/SDXL latents) or 16 (SD3/Flux).
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ("STRING", {"default": "sg_tiny_kl_vae.safetensors"})},
                "optional": {"z_channels": ("INT", {"default": 4, "min": 1, "max": 64})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, vae_name, z_channels=4):
        import comfy.sd
        import comfy.utils
        import folder_paths

        ddconfig = {
            "double_z": True, "z_channels": z_channels, "resolution": 256, "in_channels": 3, "out_ch": 3,
            "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
        }
        sd = comfy.utils.load_torch_file(folder_paths.get_full_path_or_raise("vae", vae_name))
        vae = comfy.sd.VAE(sd=sd, config={"params": {"ddconfig": ddconfig, "embed_dim": z_channels}})
        vae.latent_channels = z_channels  # ComfyUI reads it from the weights only when it detects the config
        return (vae,)


class SGTestImage:
    """A deterministic test picture: smooth colour field plus seeded texture, NHWC in [0,1]."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 64, "min": 8, "max": 1024, "step": 8}),
            "height": ("INT", {"default": 64, "min": 8, "max": 1024, "step": 8}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 16}),
        }}

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


NODE_CLASS_MAPPINGS = {
    "SGTestNaN": SGTestNaN,
    "SGTestConditioning": SGTestConditioning,
    "SGTestKLVAE": SGTestKLVAE,
    "SGTestImage": SGTestImage,
    "SGTestLatent": SGTestLatent,
    "SGTestClipVision": SGTestClipVision,
}
