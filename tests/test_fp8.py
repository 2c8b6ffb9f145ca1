"""Guidance on diffusion models whose weights are stored in fp8, as most Flux/Qwen-Image/Z-Image files ship.

Two ways ComfyUI holds fp8 weights, both on the SD1.5 stand-in's UNet (a diffusion-model file):
- UNETLoader's ``weight_dtype`` fp8_e4m3fn on an ordinary fp16 file: weights cast to fp8 at load;
- a "scaled fp8" file: every Linear weight stored as ``float8_e4m3fn`` with its ``scale_weight``
  and a ``scaled_fp8`` marker tensor (ComfyUI 0.3.75 detects it in model_detection and loads it
  with ``ops.scaled_fp8_ops``; 0.8.0 converts it to its quantised layers in ``utils.convert_old_quants``).
x0 and xt guidance must run, stay finite and lower the twin-scored losses as on fp16 weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_guidance import MAX_MEAN_RATIO, MAX_TERM_RATIO, SCALE, score_chain, term_ratios

from headless.testbed import graphs as G

pytestmark = pytest.mark.compat

UNET_FP16 = "sg_tiny_sd15_unet.safetensors"
UNET_SCALED_FP8 = "sg_tiny_sd15_unet_scaled_fp8.safetensors"
FP8_MAX = 448.0  # largest finite float8_e4m3fn


def _scaled_fp8(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every Linear weight (the 2-D ones) as fp8 over a per-tensor scale, as scaled-fp8 checkpoints store them."""
    out: dict[str, torch.Tensor] = {}
    for k, t in sd.items():
        if k.endswith(".weight") and t.ndim == 2:
            w = t.float()
            scale = (w.abs().max() / FP8_MAX).clamp(min=1e-12)
            out[k] = (w / scale).to(torch.float8_e4m3fn)
            out[k[: -len(".weight")] + ".scale_weight"] = scale.reshape(())
        else:
            out[k] = t
    out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return out


@pytest.fixture(scope="module")
def unet_files(comfy_base: Path, tiny_models: dict) -> dict[str, str]:
    """The stand-in checkpoint's UNet as a diffusion-model file, fp16 and scaled fp8."""
    models = Path(comfy_base) / "models"
    prefix = "model.diffusion_model."
    ckpt = load_file(str(models / "checkpoints" / tiny_models["ckpt"]))
    unet = {k[len(prefix):]: v.contiguous() for k, v in ckpt.items() if k.startswith(prefix)}
    folder = models / "diffusion_models"
    folder.mkdir(exist_ok=True)
    save_file(unet, str(folder / UNET_FP16))
    scaled = _scaled_fp8(unet)
    assert sum(t.dtype == torch.float8_e4m3fn for t in scaled.values()) > 10
    save_file(scaled, str(folder / UNET_SCALED_FP8))
    return {"fp8_e4m3fn": UNET_FP16, "scaled_fp8": UNET_SCALED_FP8}


def _is_fp8(p: torch.Tensor) -> bool:
    """fp8 storage: a plain fp8 tensor (0.3.75) or ComfyUI 0.8.0's QuantizedTensor holding fp8 data."""
    import comfy.quant_ops as qo  # present in both trees

    quantized = getattr(qo, "QuantizedTensor", None)
    return p.dtype == torch.float8_e4m3fn or (isinstance(quantized, type) and isinstance(p, quantized))


def _graph(models: dict, unet_name: str, weight_dtype: str, mode: str) -> tuple[dict, str, str]:
    g = G.base_graph(models)
    g["unet"] = {"class_type": "UNETLoader", "inputs": {"unet_name": unet_name, "weight_dtype": weight_dtype}}
    last = G.add_all_losses(g)
    score = score_chain(g, models)
    samp = G.sampling()
    G.add_ksampler(g, "plain", samp, model="unet")
    G.add_guided_sampler(g, "guided", last, G.guidance_options(mode=mode, scale=SCALE), samp, model="unet")
    _, pm = G.add_decode_measure(g, "p", "plain", score)
    _, gm = G.add_decode_measure(g, "g", "guided", score)
    return g, pm, gm


@pytest.mark.parametrize("storage", ["fp8_e4m3fn", "scaled_fp8"])
@pytest.mark.parametrize("mode", ["x0", "xt"])
def test_guidance_on_fp8_weights(comfy, tiny_models, unet_files, storage, mode):
    weight_dtype = storage if storage == "fp8_e4m3fn" else "default"
    g, pm, gm = _graph(tiny_models, unet_files[storage], weight_dtype, mode)
    comfy.run(g)
    model = comfy.output("unet").model
    fp8 = [n for n, p in model.diffusion_model.named_parameters() if _is_fp8(p)]
    assert fp8, f"{storage}: ComfyUI did not keep any weight in fp8"  # else this test tests nothing
    plain, guided = comfy.output("plain")["samples"], comfy.output("guided")["samples"]
    assert torch.isfinite(guided).all() and torch.isfinite(plain).all()
    assert float((guided - plain).abs().mean()) > 1e-3, "guidance did not change the result"
    ratios = term_ratios(comfy, pm, gm)
    mean = sum(ratios.values()) / len(ratios)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
    print(f"{storage}/{mode}: {len(fp8)} fp8 weights; twin mean guided/plain {mean:.3f} ({shown})")
    assert all(v < MAX_TERM_RATIO for v in ratios.values()), f"{storage}/{mode}: a term got worse: {shown}"
    assert mean < MAX_MEAN_RATIO, f"{storage}/{mode}: mean guided/plain {mean:.3f} ({shown})"
    # The model's own weights are left as ComfyUI loaded them (dtype and inference state).
    assert all(_is_fp8(p) for n, p in model.diffusion_model.named_parameters() if n in fp8)
