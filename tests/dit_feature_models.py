"""Tiny DiTs of the families the model-feature terms support, built in-process through ComfyUI's own classes.

Each is ``comfy.supported_models.<class>(config).get_model({})``: ComfyUI's BaseModel (its model
sampling, latent format, conditioning) around its own diffusion model class, narrow (width 64) but with
enough blocks (4 to 6) that early / middle / late presets name different blocks. Weights are seeded
(``seed``; the twin is the same architecture with another seed) and the prediction is rescaled to unit
RMS (standins/common.calibrate_output). Returned as a ModelPatcher with the conditioning that family's
text encoder would give (random, seeded), so graphs of ``comfy.sample.sample`` run on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from headless.testbed.standins.common import calibrate_output, seeded_fill_

TEXT = 64
LATENT = 8  # latent side (64 px)


@dataclass(frozen=True)
class Tiny:
    config_class: str  # comfy.supported_models
    config: dict
    channels: int
    frames: bool = False  # one-frame 5-D latents (Qwen-Image)
    extra: tuple[tuple[str, object], ...] = ()  # conditioning extras: (key, "pooled:<dim>" | value)
    text_len: int = 8


FLUX_SKELETON_FREE = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 64,
                      "context_in_dim": TEXT, "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 3,
                      "depth_single_blocks": 3, "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2,
                      "qkv_bias": True, "guidance_embed": True}

TINY = {
    "flux": Tiny("Flux", FLUX_SKELETON_FREE, 16, extra=(("pooled_output", "pooled:64"), ("guidance", 3.5))),
    "flux2": Tiny("Flux2", {**FLUX_SKELETON_FREE, "image_model": "flux2", "in_channels": 128, "out_channels": 128,
                            "vec_in_dim": None, "axes_dim": [8, 8, 8, 8], "patch_size": 1, "qkv_bias": False,
                            "global_modulation": True, "mlp_silu_act": True, "ops_bias": False,
                            "default_ref_method": "index", "txt_ids_dims": [3]},
                  128, extra=(("guidance", 3.5), ("pooled_output", None))),
    # Chroma: Flux's blocks, modulations from an approximator (headless/testbed/standins/chroma.py, deeper)
    "chroma": Tiny("Chroma", {"image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": TEXT,
                              "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 3, "depth_single_blocks": 3,
                              "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2, "qkv_bias": True,
                              "in_dim": 64, "out_dim": 64, "hidden_dim": 64, "n_layers": 2}, 16,
                   extra=(("pooled_output", None),)),
    "qwen_image": Tiny("QwenImage", {"image_model": "qwen_image", "in_channels": 64, "out_channels": 16,
                                     "num_layers": 4, "attention_head_dim": 32, "num_attention_heads": 2,
                                     "joint_attention_dim": TEXT, "axes_dims_rope": [8, 12, 12]}, 16, frames=True),
    "sd3": Tiny("SD3", {"in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 4, "adm_in_channels": 64,
                        "context_embedder_config": {"target": "torch.nn.Linear",
                                                    "params": {"in_features": TEXT, "out_features": 256}},
                        "num_patches": 32 * 32, "pos_embed_max_size": 32, "pos_embed_scaling_factor": None,
                        "qk_norm": "rms", "x_block_self_attn_layers": []}, 16,
                extra=(("pooled_output", "pooled:64"),)),
    # NextDiT (headless/testbed/standins/lumina2.py, z_image.py) with four main layers: the probe hooks them
    "lumina2": Tiny("Lumina2", {"image_model": "lumina2", "in_channels": 16, "dim": 64, "cap_feat_dim": TEXT, "n_layers": 4, "n_heads": 2,
                                "n_kv_heads": 2, "axes_dims": [8, 12, 12], "axes_lens": [300, 512, 512],
                                "rope_theta": 10000.0, "ffn_dim_multiplier": 4.0}, 16),
    "z_image": Tiny("ZImage", {"image_model": "lumina2", "in_channels": 16, "dim": 256, "cap_feat_dim": TEXT, "n_layers": 4, "n_heads": 2,
                               "n_kv_heads": 2, "axes_dims": [32, 48, 48], "axes_lens": [1536, 512, 512],
                               "rope_theta": 256.0, "ffn_dim_multiplier": 8.0 / 3.0, "z_image_modulation": True,
                               "time_scale": 1000.0, "pad_tokens_multiple": 32}, 16),
}


def _accepted(config_class: str, config: dict) -> dict:
    """``config`` without the fields this ComfyUI's class does not take (0.3.75 has no txt_ids_dims)."""
    from headless.testbed.standin_dit_nodes import accepted_arguments

    ldm = {"Flux": "comfy.ldm.flux.model.Flux", "Flux2": "comfy.ldm.flux.model.Flux", "Chroma": "comfy.ldm.chroma.model.Chroma",
           "QwenImage": "comfy.ldm.qwen_image.model.QwenImageTransformer2DModel",
           "SD3": "comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper",
           "Lumina2": "comfy.ldm.lumina.model.NextDiT", "ZImage": "comfy.ldm.lumina.model.NextDiT"}[config_class]
    accepted = accepted_arguments(ldm)
    out = {k: v for k, v in config.items() if accepted is None or k in accepted or k == "image_model"}
    if config_class in ("Flux", "Flux2", "Chroma") and accepted is not None:  # fields 0.8.0 added (its detection's)
        if "txt_ids_dims" in accepted:
            out.setdefault("txt_ids_dims", [])
        if "vec_in_dim" in accepted:
            out.setdefault("vec_in_dim", None)
    return out


def conditioning(key: str, seed: int = 7) -> list:
    """CONDITIONING as a text encoder node gives it: [[context (1, L, TEXT), extras]]."""
    t = TINY[key]
    g = torch.Generator().manual_seed(seed)
    extras = {}
    for name, value in t.extra:
        if isinstance(value, str) and value.startswith("pooled:"):
            extras[name] = torch.randn((1, int(value.split(":")[1])), generator=g)
        else:
            extras[name] = value
    return [[torch.randn((1, t.text_len, TEXT), generator=g), extras]]


def build(key: str, seed: int):
    """A ModelPatcher of the tiny ``key`` model, weights seeded with ``seed``, prediction of unit RMS."""
    import comfy.model_patcher
    import comfy.supported_models

    t = TINY[key]
    mc = getattr(comfy.supported_models, t.config_class)(_accepted(t.config_class, dict(t.config)))
    mc.set_inference_dtype(torch.float32, None)
    base = mc.get_model({})
    net = base.diffusion_model
    seeded_fill_(net, seed)
    if key == "sd3":
        from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed

        table = get_2d_sincos_pos_embed(net.hidden_size, 32)
        with torch.no_grad():
            net.pos_embed.copy_(torch.from_numpy(table).float().reshape(net.pos_embed.shape))
    patcher = comfy.model_patcher.ModelPatcher(base, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    g = torch.Generator().manual_seed(seed + 2)
    shape = (1, t.channels, 1, LATENT, LATENT) if t.frames else (1, t.channels, LATENT, LATENT)
    x = torch.randn(shape, generator=g)
    cond = conditioning(key)
    c = {"c_crossattn": cond[0][0]}
    if key in ("flux", "flux2", "chroma"):
        c["guidance"] = torch.tensor([0.0 if key == "chroma" else 3.5])
    if key in ("flux", "sd3"):
        c["y"] = cond[0][1]["pooled_output"]
    if key in ("lumina2", "z_image"):
        c["num_tokens"] = t.text_len
    last = {"flux": lambda n: n.final_layer.linear, "flux2": lambda n: n.final_layer.linear,
            "chroma": lambda n: n.final_layer.linear,
            "qwen_image": lambda n: n.proj_out, "sd3": lambda n: n.final_layer.linear,
            "lumina2": lambda n: n.final_layer.linear, "z_image": lambda n: n.final_layer.linear}[key](net)
    with torch.no_grad():
        # the velocity (x - D) / sigma of a flow model, not the denoised prediction, gets unit RMS
        calibrate_output(last, lambda: (x - base.apply_model(x, torch.tensor([0.5]), **c)) / 0.5)
    return patcher


def twins(key: str, seed: int = 11) -> SimpleNamespace:
    """The guiding model and its twin (same architecture, another seed)."""
    return SimpleNamespace(model=build(key, seed), twin=build(key, seed + 1000), pos=conditioning(key),
                           neg=conditioning(key, seed=8))
