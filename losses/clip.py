"""Differentiable CLIP image encoder wrapper and an offline open_clip loader.

Nothing here downloads: architectures come from open_clip's bundled configs (or a JSON config
file you pass), weights from a local file.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "CLIPImageEncoder",
    "load_open_clip_encoder",
    "register_open_clip_config",
]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    """(h, w) from an int or a pair."""
    if isinstance(size, int):
        return (size, size)
    h, w = (int(s) for s in size)
    return (h, w)


class CLIPImageEncoder(nn.Module):
    """Frozen, differentiable image encoder: [0,1] images of any size -> embeddings (B,D).

    ``encode`` takes normalised (B,3,S,S) input. Resizing is differentiable: area (box) filter
    when shrinking, as CLIP-guided diffusion does (no aliasing, works on every device), bicubic
    (antialias off) when enlarging; then CLIP mean/std normalisation. ComfyUI's own CLIP
    preprocessing rounds pixel values (zero gradient) and is never used. Embeddings are not
    L2-normalised here.
    """

    def __init__(
        self,
        encode: nn.Module | Callable[[Tensor], Tensor],
        image_size: int | Sequence[int],
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        name: str = "clip",
    ) -> None:
        super().__init__()
        with torch.inference_mode(False):
            if isinstance(encode, nn.Module):
                self.model: nn.Module | None = encode
                self._fn: Callable[[Tensor], Tensor] | None = None
            else:
                self.model = None
                self._fn = encode
            self.image_size: tuple[int, int] = _size2(image_size)
            self.register_buffer("mean", torch.tensor([float(v) for v in mean]).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor([float(v) for v in std]).view(1, 3, 1, 1), persistent=False)
        self.name = name
        self.calls: int = 0
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> CLIPImageEncoder:
        """Always eval: dropout / patch dropout must stay off during guidance."""
        return super().train(False)

    def _dtype(self) -> torch.dtype:
        p = next(self.parameters(), None)
        return p.dtype if p is not None else torch.float32

    def resize(self, images: Tensor) -> Tensor:
        """Differentiable resize of (B,3,H,W) to the encoder's input size (area down, bicubic up)."""
        size = self.image_size
        h, w = images.shape[-2:]
        if (h, w) == size:
            return images
        if h >= size[0] and w >= size[1]:
            return F.interpolate(images, size=size, mode="area")
        return F.interpolate(images, size=size, mode="bicubic", align_corners=False)

    def encode_resized(self, images: Tensor) -> Tensor:
        """Normalise already-resized [0,1] images and encode them -> (B,D)."""
        self.calls += 1
        x = (images.to(self.mean.dtype) - self.mean) / self.std
        x = x.to(self._dtype())
        out = self.model(x) if self.model is not None else self._fn(x)  # type: ignore[misc]
        if isinstance(out, (tuple, list)):  # towers built with output_tokens return (pooled, tokens)
            out = out[0]
        return out

    def forward(self, images: Tensor) -> Tensor:
        """Embeddings (B,D) of [0,1] images of any size."""
        return self.encode_resized(self.resize(images))

    # -- early tokens (token-Gram style targets) ------------------------------------------------
    def _tower(self) -> Any:
        """The module that knows how to give early tokens, or None."""
        m = self.model
        if m is not None and hasattr(m, "tokens") and hasattr(m, "depth"):
            return m  # ComfyUI CLIP_VISION copy (sampler/clip_vision.py)
        if m is not None and hasattr(m, "_embeds") and hasattr(getattr(m, "transformer", None), "resblocks"):
            return m  # an open_clip VisionTransformer
        return None

    def depth(self) -> int:
        """Number of transformer layers (for token targets); 0 when the encoder cannot give tokens."""
        m = self._tower()
        if m is None:
            return 0
        return int(m.depth()) if hasattr(m, "depth") and callable(m.depth) else len(m.transformer.resblocks)

    def tokens_resized(self, images: Tensor, layers: int) -> Tensor:
        """Patch tokens (B,N,D) after the first ``layers`` transformer layers, of resized [0,1] images.

        The class token is left out: it summarises the image, the patch tokens carry its texture.
        """
        m = self._tower()
        if m is None:
            raise ValueError(
                f"clip_style: the encoder '{self.name}' cannot give early-layer tokens; the token-Gram target needs an "
                "open_clip ViT (Load open_clip) or a core CLIP_VISION model"
            )
        self.calls += 1
        x = ((images.to(self.mean.dtype) - self.mean) / self.std).to(self._dtype())
        if hasattr(m, "tokens") and callable(m.tokens):
            return m.tokens(x, layers)
        x = m._embeds(x)
        batch_first = getattr(m.transformer, "batch_first", True)
        if not batch_first:
            x = x.transpose(0, 1)
        for block in list(m.transformer.resblocks)[:layers]:
            x = block(x)
        if not batch_first:
            x = x.transpose(0, 1)
        skip = 1 if getattr(m, "class_embedding", None) is not None else 0
        return x[:, skip:]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> CLIPImageEncoder:
        with torch.inference_mode(False):  # see FeatureExtractor._apply
            return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, image_size={self.image_size}"


# --------------------------------------------------------------------------------------------
# open_clip
# --------------------------------------------------------------------------------------------


def _registry() -> dict[str, Any]:
    """open_clip's live architecture registry (read through the module: rescans rebind it)."""
    from open_clip import factory

    reg = getattr(factory, "_MODEL_CONFIGS", None)
    if not isinstance(reg, dict):
        raise RuntimeError("this open_clip version has no model config registry (open_clip.factory._MODEL_CONFIGS)")
    return reg


def register_open_clip_config(name: str, config: Mapping[str, Any]) -> None:
    """Register a model config dict under ``name`` in open_clip's architecture registry."""
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in config]
    if missing:
        raise ValueError(f"open_clip config for '{name}' lacks {missing} (needs embed_dim, vision_cfg, text_cfg)")
    # open_clip.add_model_config only takes files named after the model; writing the registry
    # directly registers under any name without temporary files. Rescans keep existing entries.
    _registry()[name] = copy.deepcopy(dict(config))


def _read_config_file(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model_cfg, preprocess_cfg) from a bare model config or an open_clip_config.json."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"could not read open_clip config file '{path}': {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"open_clip config file '{path}' must hold a JSON object")
    if "model_cfg" in data:  # hub-style open_clip_config.json
        return dict(data["model_cfg"]), dict(data.get("preprocess_cfg") or {})
    return data, dict(data.pop("preprocess_cfg", None) or {})


def _known_mean_std(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Mean/std shared by every pretrained tag open_clip lists for ``arch`` (metadata only)."""
    try:
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(arch)
        stats = set()
        for tag in tags:
            cfg = open_clip.get_pretrained_cfg(arch, tag)
            if cfg.get("mean") and cfg.get("std"):
                stats.add((tuple(cfg["mean"]), tuple(cfg["std"])))
        return stats.pop() if len(stats) == 1 else None
    except Exception:  # noqa: BLE001 - metadata is a nicety; fall back to the CLIP constants
        return None


def _build_visual(model_cfg: dict[str, Any]) -> nn.Module:
    """Build only the vision tower: no text tower memory, no Hugging Face text model lookups."""
    from open_clip import model as oc_model

    build = getattr(oc_model, "_build_vision_tower", None)
    if build is not None:
        try:
            return build(model_cfg["embed_dim"], model_cfg["vision_cfg"], bool(model_cfg.get("quick_gelu", False)))
        except TypeError:
            pass  # signature changed in this open_clip version: use the public constructor
    import open_clip

    cfg = {k: v for k, v in model_cfg.items() if k != "custom_text"}
    return open_clip.CLIP(**cfg).visual


def _describe_vit(sd: Mapping[str, Tensor]) -> dict[str, int] | None:
    """Width, patch, layers and image size of an open_clip ViT visual state dict (or None)."""
    w = sd.get("conv1.weight")
    pos = sd.get("positional_embedding")
    if w is None or pos is None or w.dim() != 4:
        return None
    layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    grid = int(round((pos.shape[0] - 1) ** 0.5))
    return {
        "width": int(w.shape[0]),
        "patch_size": int(w.shape[-1]),
        "layers": layers,
        "image_size": grid * int(w.shape[-1]),
    }


def _matching_archs(sd: Mapping[str, Tensor]) -> list[str]:
    """Registered architectures whose ViT vision config matches the file's shapes."""
    info = _describe_vit(sd)
    if info is None:
        return []
    out = []
    for name, cfg in _registry().items():
        v = cfg.get("vision_cfg", {})
        size = v.get("image_size")
        size = size[0] if isinstance(size, (list, tuple)) else size
        if (v.get("width"), v.get("patch_size"), v.get("layers"), size) == (
            info["width"], info["patch_size"], info["layers"], info["image_size"],
        ):  # fmt: skip
            out.append(name)
    return out


def _visual_state(sd: dict[str, Tensor], path: str) -> dict[str, Tensor]:
    """The vision-tower part of a full open_clip state dict (or a visual-only one)."""
    if any(k.startswith("visual.") for k in sd):
        return {k[len("visual.") :]: v for k, v in sd.items() if k.startswith("visual.")}
    if any(k.startswith("vision_model.") for k in sd):
        raise ValueError(
            f"weights file '{path}' is in Hugging Face transformers CLIP format (vision_model.*), "
            "not open_clip format; use the open_clip file of the model (e.g. open_clip_model.safetensors "
            "or open_clip_pytorch_model.bin)"
        )
    return dict(sd)  # maybe a visual-only file; the key check below decides


def load_open_clip_encoder(
    arch: str, path: str | None, config_path: str | None = None, seed: int = 0
) -> CLIPImageEncoder:
    """Build an open_clip vision tower offline and wrap it as a :class:`CLIPImageEncoder`.

    ``arch``: an open_clip architecture name (e.g. "ViT-B-32"; use the "-quickgelu" variants for
    OpenAI's original weights). ``config_path``: optional JSON model config registered under
    ``arch`` first (custom or small models). ``path``: local weights (.safetensors, or a torch file
    read with weights_only=True; full open_clip state dicts, optionally nested under
    "state_dict", or visual-only ones); loaded strictly into the vision tower, the text tower is
    never kept. ``path=None`` gives RANDOM weights (seeded by ``seed``, global RNG untouched):
    for tests and benchmarks only.
    """
    from .vgg import read_state_dict  # one reader, one set of error messages

    preprocess: dict[str, Any] = {}
    if config_path:
        model_cfg, preprocess = _read_config_file(os.fspath(config_path))
        register_open_clip_config(arch, model_cfg)
    reg = _registry()
    if arch not in reg:
        close = difflib.get_close_matches(arch, list(reg), n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown open_clip architecture '{arch}'{hint}")
    model_cfg = copy.deepcopy(reg[arch])

    with torch.inference_mode(False):  # ComfyUI runs nodes under inference_mode
        # open_clip initialises from the global RNG: fork it so a random build is repeatable
        # and leaves the caller's random state alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            visual = _build_visual(model_cfg)
        if path is not None:
            path = os.fspath(path)
            sd = _visual_state(read_state_dict(path, "open_clip weights"), path)
            expected = visual.state_dict()
            missing = [k for k in expected if k not in sd]
            unexpected = [k for k in sd if k not in expected]
            wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
            if missing or unexpected or wrong:
                examples = [f"missing {k}" for k in missing[:2]] + [f"unexpected {k}" for k in unexpected[:2]]
                examples += [
                    f"{k} is {tuple(sd[k].shape)} in the file, {tuple(expected[k].shape)} in the model"
                    for k in wrong[:2]
                ]
                matches = [m for m in _matching_archs(sd) if m != arch][:6]
                hint = f" (architectures with matching vision shapes: {', '.join(matches)})" if matches else ""
                raise ValueError(
                    f"weights file '{path}' does not match open_clip architecture '{arch}': "
                    f"{len(missing)} missing / {len(unexpected)} unexpected keys, {len(wrong)} with other shapes, "
                    f"e.g. {'; '.join(examples)}; pick the architecture the file was trained with{hint}"
                )
            visual.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
            del sd
        visual = visual.float()

    size = getattr(visual, "image_size", None) or model_cfg["vision_cfg"].get("image_size", 224)
    mean, std = CLIP_MEAN, CLIP_STD
    known = _known_mean_std(arch)
    if preprocess.get("mean") and preprocess.get("std"):
        mean, std = tuple(preprocess["mean"]), tuple(preprocess["std"])
    elif known is not None:
        mean, std = known
    return CLIPImageEncoder(visual, size, mean, std, name=arch)
