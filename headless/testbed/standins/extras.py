"""Stand-ins that patch the tiny SD1.5 UNet: a ControlNet and LoRAs (a non-empty one and an empty one)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from .common import rms, save_streaming, seeded_fill_
from .sd15 import SD15_TINY_UNET, tiny_sd15_unet

CONTROLNET_FILE = "sg_tiny_sd15_controlnet.safetensors"
LORA_FILE = "sg_tiny_sd15_lora.safetensors"


def sd15_controlnet(seed: int = 110, gain: float = 0.5) -> torch.nn.Module:
    """A ControlNet for the tiny SD1.5 UNet (width 320, one level), 3-channel hint (canny, lineart).

    A trained ControlNet starts from zero convolutions; these are random (``gain``), so the
    control visibly changes what the UNet predicts.
    """
    import comfy.ops
    from comfy.cldm.cldm import ControlNet

    net = ControlNet(hint_channels=3, **SD15_TINY_UNET, operations=comfy.ops.manual_cast, dtype=torch.float32)
    seeded_fill_(net, seed)
    with torch.no_grad():
        for conv in [*(z[0] for z in net.zero_convs), net.middle_block_out[0]]:
            conv.weight.mul_(gain)
    return net


def build_controlnet(path: Path, seed: int = 110) -> None:
    """The ControlNet in the original ``control_model.`` layout ControlNetLoader detects."""
    save_streaming(sd15_controlnet(seed), path, "control_model.")


def build_lora(path: Path, seed: int = 120, rank: int = 4, scale: float = 1.0) -> None:
    """A non-empty LoRA (kohya key names) on every attention projection of the tiny SD1.5 UNet.

    ``lora_up @ lora_down`` has the RMS of the layer's own weight times ``scale``, so at strength 1
    the patched attention differs clearly from the original.
    """
    unet = tiny_sd15_unet(0)
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for name, mod in unet.named_modules():
        if not isinstance(mod, torch.nn.Linear) or ".attn" not in name:
            continue
        out_f, in_f = mod.weight.shape
        down = torch.randn((rank, in_f), generator=g) / in_f**0.5
        up = torch.randn((out_f, rank), generator=g) / rank**0.5
        up *= scale * rms(mod.weight) / max(rms(up @ down), 1e-8)
        key = "lora_unet_" + name.replace(".", "_")
        sd[f"{key}.lora_down.weight"] = down.half().contiguous()
        sd[f"{key}.lora_up.weight"] = up.half().contiguous()
        sd[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(sd, str(path))


def build_empty_lora(path: Path) -> None:
    """A LoRA file with no tensors: LoraLoader accepts it and patches nothing."""
    save_file({}, str(path))
