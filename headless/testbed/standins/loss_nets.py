"""Loss-network stand-ins: VGG19 features and a small open_clip, each with a scoring twin (another seed).

Tests score guided results with the twins, so a test passes only when guidance moves a picture,
not one network's own objective.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY_VGG = "vgg19-random.safetensors"
TINY_VGG_TWIN = "vgg19-twin.safetensors"
TINY_OPENCLIP = "sg_tiny_openclip.safetensors"
TINY_OPENCLIP_TWIN = "sg_tiny_openclip_twin.safetensors"
TINY_OPENCLIP_ARCH = "StyleGuidance-tiny"


def build_vgg(path: Path, seed: int = 3) -> None:
    """torchvision VGG19 ``features`` with seeded random weights (torchvision key names)."""
    import torchvision

    torch.manual_seed(seed)
    vgg = torchvision.models.vgg19(weights=None).features
    save_file({f"features.{k}": v.contiguous() for k, v in vgg.state_dict().items()}, str(path))


def random_vgg19_features(seed: int = 0):
    """The pack's VGG19 feature extractor with seeded random (Kaiming, as torchvision) weights.

    Built on the meta device and then filled from a private generator, so the global RNG is
    left as it was.
    """
    import torchvision

    from losses import VGG19Features

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.inference_mode(False):
        with torch.device("meta"):
            seq = torchvision.models.vgg19(weights=None).features
        seq = seq.to_empty(device="cpu")
        with torch.no_grad():
            for m in seq:
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                    torch.nn.init.zeros_(m.bias)
        return VGG19Features(seq)


def tiny_open_clip_config() -> dict:
    """A scaled-down open_clip model config (same family as ViT-B-32)."""
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1},
    }


def ensure_tiny_open_clip_registered() -> str:
    """Register :func:`tiny_open_clip_config` with open_clip as ``TINY_OPENCLIP_ARCH`` (idempotent)."""
    from losses import register_open_clip_config

    register_open_clip_config(TINY_OPENCLIP_ARCH, tiny_open_clip_config())
    return TINY_OPENCLIP_ARCH


def build_open_clip(path: Path, seed: int = 4) -> None:
    """Random tiny open_clip model plus its sidecar config JSON (``<file>.json``)."""
    import open_clip

    cfg = tiny_open_clip_config()
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    Path(str(path) + ".json").write_text(json.dumps(cfg))
