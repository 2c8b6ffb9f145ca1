"""Text-encoder stand-ins: CLIP-L (the one ComfyUI text encoder small enough to stand in) and a T5 placeholder.

ComfyUI builds CLIP-L (123M) and T5-XXL (4.7B) from fixed configs whatever the file holds, so
CLIP-L is random at full size and T5 is never loaded in tiny mode (see ``install.family_overrides``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def sd1_text_encoder_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """Random CLIP-L text encoder under the checkpoint's ``cond_stage_model.`` prefix."""
    import comfy.ops
    from comfy.sd1_clip import SDClipModel

    with torch.device("meta"):  # the layout only; real tensors are made below, seeded
        enc = SDClipModel(device="meta", dtype=torch.float16, model_options={"custom_operations": comfy.ops.manual_cast})
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, t in enc.state_dict().items():
        if name.endswith("position_ids"):
            continue
        if t.ndim >= 2:
            value = torch.randn(t.shape, generator=gen) * (0.02 if "embedding" in name else t.shape[-1] ** -0.5)
        elif "norm" in name and name.endswith("weight"):
            value = torch.ones(t.shape)
        elif name.endswith("logit_scale"):
            value = torch.tensor(4.6052)
        else:
            value = torch.zeros(t.shape)
        out["cond_stage_model." + name] = value.to(torch.float16).contiguous()
    return out


def clip_l_state_dict(seed: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Random CLIP-L text encoder weights under ``prefix`` (``""``: a standalone clip_l file)."""
    out = {}
    for k, v in sd1_text_encoder_state_dict(seed).items():
        k = k[len("cond_stage_model."):]
        if prefix == "":  # standalone files hold the transformers layout without the wrapper
            k = k[len("transformer."):] if k.startswith("transformer.") else k
        out[prefix + k] = v
    return out


def build_clip_l(path: Path) -> None:
    """A standalone clip_l file (CLIPLoader / DualCLIPLoader)."""
    save_file(clip_l_state_dict(130), str(path))


def build_t5_placeholder(path: Path) -> None:
    """Not a T5 (ComfyUI builds T5-XXL at 4.7B whatever the file holds): tiny mode never loads it."""
    save_file({"sg_tiny_placeholder": torch.zeros(1)}, str(path), metadata={
        "style_guidance": "placeholder for t5xxl; tiny mode runs DualCLIPLoader on clip_l only"})


def build_text_encoder_placeholder(path: Path) -> None:
    """Not a text encoder: a file under the name of one tiny mode replaces by conditioning (``tiny_text``)."""
    save_file({"sg_tiny_placeholder": torch.zeros(1)}, str(path), metadata={
        "style_guidance": "placeholder for a text encoder ComfyUI builds at full size; tiny mode never loads it"})
