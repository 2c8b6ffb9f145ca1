"""VGG19 feature extractor (torchvision layout) and its weight loader."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .terms import FeatureExtractor

__all__ = [
    "VGG19Features",
    "load_vgg19_features",
    "VGG_CONTENT_LAYER_PRESETS",
    "DEFAULT_VGG_CONTENT_PRESET",
    "ZECON_LAYER_PRESETS",
    "DEFAULT_ZECON_PRESET",
    "ZECON_PRESET_ALIASES",
    "GRAM_STYLE_LAYERS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's configuration "E" (VGG19): channel counts, "M" = 2x2 max-pool.
_VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip

# Content layer sets offered by the nodes; the first key is the default.
VGG_CONTENT_LAYER_PRESETS: dict[str, tuple[str, ...]] = {
    "relu4_2 (Gatys)": ("relu4_2",),
    "relu3_1+relu4_1": ("relu3_1", "relu4_1"),
    "relu2_2 (Johnson)": ("relu2_2",),
    "conv1_1+conv2_1 (ZeCon)": ("conv1_1", "conv2_1"),
}
DEFAULT_VGG_CONTENT_PRESET = next(iter(VGG_CONTENT_LAYER_PRESETS))

# PatchNCE layer sets. Default: mid-level ReLU layers. Their receptive fields (16-60 px) make the
# feature at a location distinctive enough for "same place vs other places" to carry structure,
# yet they are far less colour-bound than conv1_1, which would fight the style's palette.
ZECON_LAYER_PRESETS: dict[str, tuple[str, ...]] = {
    "relu2_1+relu3_1+relu4_1": ("relu2_1", "relu3_1", "relu4_1"),
    "conv1_1+conv2_1 (early, colour-bound)": ("conv1_1", "conv2_1"),
    "relu3_1+relu4_1": ("relu3_1", "relu4_1"),
}
DEFAULT_ZECON_PRESET = next(iter(ZECON_LAYER_PRESETS))
# Names saved workflows may still hold. ZeCon's code uses conv1_1+conv2_1 for its VGG *content*
# loss, not for PatchNCE (which it computes on the diffusion model's features), hence the rename.
ZECON_PRESET_ALIASES: dict[str, str] = {"conv1_1+conv2_1 (ZeCon code)": "conv1_1+conv2_1 (early, colour-bound)"}

GRAM_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _layer_names(seq: nn.Sequential) -> list[str]:
    """Standard names (conv1_1, relu1_1, ..., pool5) for the modules of a VGG ``features`` stack."""
    names: list[str] = []
    block, conv = 1, 0
    for i, m in enumerate(seq):
        if isinstance(m, nn.Conv2d):
            conv += 1
            names.append(f"conv{block}_{conv}")
        elif isinstance(m, nn.ReLU):
            if conv == 0:
                raise ValueError(f"VGG features: ReLU at index {i} does not follow a convolution")
            names.append(f"relu{block}_{conv}")
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            raise ValueError(
                f"VGG features: unsupported module {type(m).__name__} at index {i} "
                "(expected only Conv2d, ReLU and pooling, as in torchvision's vgg19().features)"
            )
    return names


def _make_vgg19_sequential() -> nn.Sequential:
    """torchvision's VGG19 ``features`` layout (same indices, so the same state-dict keys)."""
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            cin = int(v)
    return nn.Sequential(*layers)


class VGG19Features(FeatureExtractor):
    """Frozen VGG19 ``features`` returning named maps; ImageNet normalisation is applied inside.

    Input: (B,3,H,W) in [0,1]. Runs only up to the deepest requested layer. ReLUs are
    out-of-place so that a conv output can be returned alongside the following ReLU.
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        names = _layer_names(features)
        # Rebuild with out-of-place ReLU: torchvision's inplace ReLU would overwrite a returned
        # conv output and break its backward.
        mods = [nn.ReLU(inplace=False) if isinstance(m, nn.ReLU) else m for m in features]
        self.body = nn.Sequential(*mods)
        self.available_layers = tuple(names)
        self._index = {n: i for i, n in enumerate(names)}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always stays in eval mode (the stack has no train-time behaviour worth enabling)."""
        return super().train(False)

    def extract(self, images: Tensor, layers: tuple[str, ...]) -> dict[str, Tensor]:
        """Compute the requested layers, stopping after the deepest one."""
        last = max(self._index[n] for n in layers)
        wanted = set(layers)
        dtype = self.mean.dtype
        x = (images.to(dtype) - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for i in range(last + 1):
            x = self.body[i](x)
            name = self.available_layers[i]
            if name in wanted:
                out[name] = x
        return out

    def extra_repr(self) -> str:
        return f"layers={len(self.available_layers)}"


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def read_state_dict(path: str, what: str) -> dict[str, Tensor]:
    """Read a tensor dict from .safetensors or a torch file (weights_only); clear errors naming ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: '{path}'")
    try:
        if path.lower().endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            try:  # mmap avoids a second in-memory copy of large files; legacy formats refuse it
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused an object: say why, not torch's whole story
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what_found = f" (it needs the Python object {found.group(1)})" if found else ""
        raise ValueError(
            f"{what} file '{path}' holds pickled Python objects{what_found}, not just tensors. Loading such a "
            "file can run arbitrary code, so only plain weights are read: use a .safetensors file, or a .pth "
            "saved from the state_dict (torch.save(model.state_dict(), path)) such as torchvision's own file."
        ) from e
    except Exception as e:  # noqa: BLE001 - any reader failure means "unreadable or corrupt"
        raise ValueError(
            f"could not read {what} file '{path}' (unreadable or corrupt, or not a "
            f".safetensors/.pth file): {type(e).__name__}: {e}"
        ) from e
    # Training checkpoints nest the weights; DataParallel prefixes them with "module.".
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{what} file '{path}' does not hold a dict of weights (got {type(obj).__name__})")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


_FEATURES_KEY = re.compile(r"(?:^|\.)features\.(\d+\.(?:weight|bias))$")
_BARE_KEY = re.compile(r"^(\d+\.(?:weight|bias))$")


def _vgg_feature_keys(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a file's keys to Sequential keys ('0.weight'); classifier.* and the rest are dropped."""
    if any(_FEATURES_KEY.search(k) for k in sd):
        return {m.group(1): v for k, v in sd.items() if (m := _FEATURES_KEY.search(k))}
    return {m.group(1): v for k, v in sd.items() if (m := _BARE_KEY.match(k))}


def load_vgg19_features(path: str) -> VGG19Features:
    """Load VGG19 features from torchvision's file (vgg19-dcbee923.pth) or a .safetensors file.

    Accepted keys: "features.N.weight"/"features.N.bias" (classifier.* ignored) or bare
    "N.weight"/"N.bias". Only the feature stack is kept in memory, as float32.
    """
    path = os.fspath(path)
    with torch.inference_mode(False):  # ComfyUI runs nodes under inference_mode
        sd = _vgg_feature_keys(read_state_dict(path, "VGG19 weights"))
        with torch.device("meta"):  # skip a pointless random init; weights are assigned below
            seq = _make_vgg19_sequential()
        expected = seq.state_dict()
        missing = [k for k in expected if k not in sd]
        if missing:
            found = ", ".join(sorted(sd)[:4]) or "none"
            raise ValueError(
                f"'{path}' does not look like a VGG19 weights file: {len(missing)} of {len(expected)} "
                f"feature keys are missing (e.g. features.{missing[0]}); feature keys found: {found}. "
                "Expected torchvision's vgg19 file (features.N.weight) or bare N.weight keys."
            )
        for k, ref in expected.items():
            if tuple(sd[k].shape) != tuple(ref.shape):
                raise ValueError(
                    f"'{path}': weight features.{k} has shape {tuple(sd[k].shape)}, VGG19 expects "
                    f"{tuple(ref.shape)}; the file is not torchvision's VGG19 (VGG16 or a BatchNorm variant?)"
                )
            if not sd[k].is_floating_point():
                raise ValueError(f"'{path}': weight features.{k} has non-float dtype {sd[k].dtype}")
        state = {k: sd[k].detach().float().clone() for k in expected}
        del sd
        seq.load_state_dict(state, strict=True, assign=True)
        return VGG19Features(seq)
