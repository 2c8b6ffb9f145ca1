"""Benchmark-only ComfyUI node, copied into the temporary base's custom_nodes; never shipped.

The benchmarks time sampling, not text encoding, so conditioning is seeded random tensors of
the shape the model family expects (SD1.5: 77x768; SDXL: 77x2048 plus a 1280-d pooled vector
and the image size for its size embedding).
"""

import hashlib

import torch


class SGBenchConditioning:
    """Seeded random CONDITIONING of a given shape; with pooled_dim > 0, SDXL-style extras."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"default": "a painting"}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            "tokens": ("INT", {"default": 77, "min": 1, "max": 4096}),
            "dim": ("INT", {"default": 768, "min": 1, "max": 8192}),
            "pooled_dim": ("INT", {"default": 0, "min": 0, "max": 8192}),
            "width": ("INT", {"default": 1024, "min": 8, "max": 16384}),
            "height": ("INT", {"default": 1024, "min": 8, "max": 16384}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "run"
    CATEGORY = "_for_testing/style_guidance"

    def run(self, text, seed, tokens, dim, pooled_dim, width, height):
        digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:4], "little"))
        cond = torch.randn((1, tokens, dim), generator=gen)
        extra = {}
        if pooled_dim:
            extra = {"pooled_output": torch.randn((1, pooled_dim), generator=gen), "width": width, "height": height,
                     "target_width": width, "target_height": height, "crop_w": 0, "crop_h": 0}
        return ([[cond, extra]],)


NODE_CLASS_MAPPINGS = {"SGBenchConditioning": SGBenchConditioning}
