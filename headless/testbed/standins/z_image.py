"""Z-Image (Turbo): Lumina 2's NextDiT with Z-Image's modulation, timestep scale and token padding.

ComfyUI tells Z-Image from Lumina 2 by width alone (3840: 30 heads, four refiner blocks, ~0.9B
parameters at one main layer), and ``comfy.supported_models.ZImage`` matches only that width. The
stand-in keeps every Z-Image setting detection would give (``z_image_modulation``, ``time_scale``
1000, RoPE theta 256 with axes 32/48/48 of lengths 1536/512/512, FFN 8/3, pad tokens of 32) at width
256 (2 heads of 128; the modulation needs 256), and is built through ``ZImage`` directly (:mod:`.dit`); ``SGTestDiTLoader`` loads it. Z-Image
Turbo runs at cfg 1 (distilled): the tests do too.
"""

from __future__ import annotations

from . import dit
from .family import Family
from .lumina2 import TEXT, run_nextdit, skeleton

KEY = "z_image"
SEED = 160
WIDTH = 256  # Z-Image's modulation reads a 256-d timestep embedding: min(width, 256) must be 256

TINY = {"image_model": "lumina2", "dim": WIDTH, "cap_feat_dim": TEXT, "n_layers": 1, "n_heads": 2, "n_kv_heads": 2,
        "axes_dims": [32, 48, 48], "axes_lens": [1536, 512, 512], "rope_theta": 256.0, "ffn_dim_multiplier": 8.0 / 3.0,
        "z_image_modulation": True, "time_scale": 1000.0, "pad_tokens_multiple": 32}

SPEC = dit.DiTSpec("ZImage", "comfy.ldm.lumina.model.NextDiT", TINY, skeleton(WIDTH, z_image=True), run_nextdit,
                   lambda net: net.final_layer.linear)

FAMILY = Family(KEY, "Z-Image Turbo", "ZImage", "Flux", 16, "taef1", 0.3611, 0.1159, "diffusion_models",
                "sg_tiny_z_image.safetensors", TEXT, 0, flow=True, build=lambda s: dit.build(SPEC, s), seed=SEED,
                dit=SPEC, cfg=1.0)
