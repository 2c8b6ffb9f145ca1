"""What every stand-in builder shares: seeded weights, calibration, fp16 files, the one cache, placing files.

Stand-ins behave like real models where the tests depend on it: diffusion outputs are rescaled to
unit RMS (:func:`calibrate_output`), decoders to mid-grey with a spread VAEDecode's clamp leaves
intact (:func:`calibrate_image`). Heavy stand-ins are built once into ONE cache folder
(:func:`cache_dir`, versioned by :data:`CACHE_VERSION`) by :func:`cached` (build under a private
name, then rename) and put under a models folder by :func:`place` (atomic too).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

CACHE_VERSION = "standins_v1"  # bump when a cached stand-in's bytes change


def seeded_fill_(module: torch.nn.Module, seed: int, gain: float = 1.0) -> None:
    """Seeded init: ComfyUI's ops skip weight init, so every tensor is filled here (fan-in scaled normals,
    norm scales 1, biases 0). Shared by every stand-in builder and the benchmarks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (gain / fan_in**0.5))
            elif name.endswith("weight") or name.endswith("scale"):
                p.fill_(1.0)
            else:
                p.zero_()


def half_state_dict(source: torch.nn.Module | dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """fp16, contiguous copies of a module's state dict (or of a state dict), keys under ``prefix``."""
    sd = source.state_dict() if isinstance(source, torch.nn.Module) else source
    return {prefix + k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}


def rms(t: torch.Tensor) -> float:
    """Root mean square of ``t``."""
    return float(t.detach().float().pow(2).mean().sqrt())


def sample(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Standard normal noise of ``shape`` from ``gen``."""
    return torch.randn(shape, generator=gen)


@torch.no_grad()
def calibrate_output(layer: torch.nn.Module, run: Callable[[], torch.Tensor], target_rms: float = 1.0) -> float:
    """Rescale ``layer`` (the network's last) so ``run()`` has RMS ``target_rms``; return the RMS before."""
    before = rms(run())
    factor = target_rms / max(before, 1e-8)
    layer.weight.mul_(factor)
    if getattr(layer, "bias", None) is not None:
        layer.bias.mul_(factor)
    return before



def seeded_video_dit(model_config, seed: int, frames: int, text_dim: int, last: Callable[[torch.nn.Module],
                     torch.nn.Module]) -> torch.nn.Module:
    """A ``comfy.supported_models`` config's diffusion model (fp32), seeded, with unit-RMS output on
    unit-variance 5-D latents (1, 16, frames, 8, 8) and 16 text tokens (Qwen-Image, Wan 2.1)."""
    model_config.set_inference_dtype(torch.float32, None)
    net = model_config.get_model({}).diffusion_model
    seeded_fill_(net, seed)
    g = torch.Generator().manual_seed(seed + 2)
    x, ctx = torch.randn((1, 16, frames, 8, 8), generator=g), torch.randn((1, 16, text_dim), generator=g)
    calibrate_output(last(net), lambda: net(x, torch.tensor([0.5]), context=ctx))
    return net


@torch.no_grad()
def calibrate_image(layer: torch.nn.Module, run: Callable[[], torch.Tensor], mean: float, std: float) -> None:
    """Give the image channels of ``run()`` (N,3,H,W) the wanted spread around ``mean``: no saturation."""
    out = run().float()
    spread = float((out - out.mean(dim=(0, 2, 3), keepdim=True)).std())  # within channels: the bias moves means
    layer.weight.mul_(std / max(spread, 1e-8))
    out = run().float()
    layer.bias.add_(mean - out.mean(dim=(0, 2, 3)))


def save_streaming(net: torch.nn.Module, path: Path, prefix: str, extra: dict | None = None) -> None:
    """fp16 file of ``net``'s weights; each tensor is halved and the fp32 one dropped as it goes."""
    sd = net.state_dict()
    out: dict[str, torch.Tensor] = {}
    for k in list(sd):
        t = sd.pop(k).detach()
        if t.is_floating_point() and not torch.isfinite(t).all():  # e.g. a buffer nobody initialised
            raise RuntimeError(f"stand-in {path.name}: {k} is not finite")
        out[prefix + k] = t.to(torch.float16).contiguous()
    out.update(extra or {})
    save_file(out, str(path))


def cache_dir() -> Path:
    """Where built stand-ins are kept between runs (``STYLE_GUIDANCE_CACHE`` or ``<repo>/.cache``)."""
    root = os.environ.get("STYLE_GUIDANCE_CACHE") or Path(__file__).resolve().parents[3] / ".cache"
    return Path(root) / CACHE_VERSION


def cached(name: str, build: Callable[[Path], None]) -> Path:
    """Build ``name`` once into the cache and return its path.

    ``build`` writes a private file that is renamed into place when complete, so a reader never
    sees half a file; a sidecar config it writes next to it (``<file>.json``) is renamed first.
    """
    path = cache_dir() / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        build(tmp)
        if Path(str(tmp) + ".json").is_file():  # open_clip's sidecar config travels with it
            os.replace(str(tmp) + ".json", str(path) + ".json")
        os.replace(tmp, path)
    return path


def place(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` atomically: a symlink for big files, a copy for small ones."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    if source.stat().st_size >= (1 << 20):
        os.symlink(source, tmp)
    else:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def write_atomic(path: Path, build: Callable[[Path], None]) -> None:
    """Write ``path`` through ``build`` under a private name, then rename: readers see it whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    build(tmp)
    os.replace(tmp, path)
