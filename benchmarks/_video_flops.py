"""Real-size FLOP and activation accounting of Wan 2.1 video guidance, on shapes only (for ``bench_video.py``).

Every network is built at its real configuration inside ``FakeTensorMode`` (no weights, nothing
computed) and run on the shapes the sampler gives it; FLOPs are FlopCounterMode's formulas (matmul,
convolution, attention; elementwise work is not counted), the same ones ``_realsize_flops`` uses.
Components: ComfyUI's ``WanModel`` (14B and 1.3B) at the CFG batch, the guidance decoders
(``lighttaew2_1``, i.e. ComfyUI's TAEHV with 16 latent channels in the pack's parallel mode, and
the Wan 2.1 VAE at width 96) forward + backward to the latent for every frame, VGG19's conv
layers up to relu5_1 (the Gram term's deepest layer) on every frame at the decoded size
(``loss_resolution`` 0, the node default) and the CLIP ViT-B/32 image tower on the CLIP term's
8 cutouts (its node default) of every frame at 224 px, each forward + backward to its input.
The decoder's saved activations (what its backward keeps alive) are summed by storage through
``saved_tensors_hooks``: chunked decoding would cut that to one chunk's worth.
Needs ComfyUI importable (``bench_video.py`` sets it up) and open_clip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from _realsize_flops import _flop_formulas
from torch.utils._python_dispatch import TorchDispatchMode

# Wan 2.1 T2V diffusion models (the released configs, as ComfyUI's detection reads them from the files).
WAN_CONFIGS = {
    "Wan 2.1 T2V 14B": {"dim": 5120, "ffn_dim": 13824, "num_heads": 40, "num_layers": 40},
    "Wan 2.1 T2V 1.3B": {"dim": 1536, "ffn_dim": 8960, "num_heads": 12, "num_layers": 30},
}
TEXT_TOKENS = 512  # umT5-XXL context length Wan pads its prompt to
CLIP_CUTOUTS = 8  # StyleGuidanceCLIPStyle's default num_cutouts
VGG_DEPTH = 30  # torchvision vgg19().features[:30] ends at relu5_1, the Gram default layers' deepest


class Flops(TorchDispatchMode):
    """FLOPs of the dispatched ops (FlopCounterMode's formulas plus CPU flash attention), no module tracking."""

    def __init__(self) -> None:
        super().__init__()
        self.formulas = _flop_formulas()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


class SavedBytes:
    """Bytes of the distinct storages autograd saves for backward inside the block (the activations kept)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        key = st._cdata  # the storage itself (fake ones have no address); views of one count once
        if key not in self.seen:
            self.seen.add(key)
            self.bytes += st.nbytes()
        return t

    def hooks(self) -> torch.autograd.graph.saved_tensors_hooks:
        """A context in which every tensor saved for backward is counted."""
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def _fake(fn: Callable[[Flops], object]) -> tuple[int, object]:
    """Run ``fn(counter)`` on shapes only; its FLOPs and its return value."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    counter = Flops()
    with torch.inference_mode(False), FakeTensorMode(allow_non_fake_inputs=True):
        with counter:
            extra = fn(counter)
    return counter.total, extra


def wan_eval_flops(config: dict, batch: int, latent: tuple[int, int, int]) -> int:
    """One WanModel forward (no grad) at ``batch`` (2: CFG) on a (16, T, h, w) latent and 512 text tokens."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    t, h, w = latent

    def run(_c: Flops) -> None:
        model = WanModel(model_type="t2v", text_len=TEXT_TOKENS, in_dim=16, out_dim=16, dtype=torch.bfloat16,
                         operations=comfy.ops.disable_weight_init, **config)
        with torch.no_grad():
            model(torch.randn(batch, 16, t, h, w, dtype=torch.bfloat16), torch.full((batch,), 500.0),
                  torch.randn(batch, TEXT_TOKENS, 4096, dtype=torch.bfloat16))

    return _fake(run)[0]


def _decoder(kind: str) -> torch.nn.Module:
    """The real-config guidance decoder in bf16, weights frozen (the pack's decoder copy takes no weight grads)."""
    # Built in bf16 directly: Module.to() cannot swap fake parameters.
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        return _build_decoder(kind).requires_grad_(False)
    finally:
        torch.set_default_dtype(default)


def _build_decoder(kind: str) -> torch.nn.Module:
    """ComfyUI's module for ``kind`` at the real configuration."""
    if kind == "lighttaew2_1":
        from comfy.taesd.taehv import TAEHV

        dec = TAEHV(latent_channels=16, latent_format=None, show_progress_bar=False)
        dec.parallel = True  # as the pack's DecoderCopy runs it: frames in parallel, gradient through memory
    else:
        from comfy.ldm.wan.vae import WanVAE

        dec = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True], dropout=0.0)
    return dec


def decoder_costs(kind: str, latent: tuple[int, int, int]) -> dict:
    """Forward and backward FLOPs of one decode of a (1, 16, T, h, w) latent, its output shape, saved bytes."""
    t, h, w = latent

    def run(counter: Flops) -> dict:
        dec = _decoder(kind)
        z = torch.randn(1, 16, t, h, w, dtype=torch.bfloat16, requires_grad=True)
        saved = SavedBytes()
        with torch.enable_grad(), saved.hooks():
            out = dec.decode(z)
        fwd = counter.total
        torch.autograd.grad(out, z, grad_outputs=torch.ones_like(out))
        return {"fwd": fwd, "bwd": counter.total - fwd, "out_shape": list(out.shape), "saved_bytes": saved.bytes,
                "params": sum(p.numel() for p in dec.decoder.parameters())}

    return _fake(run)[1]


def _fwd_bwd(build: Callable[[], torch.nn.Module], x_shape: tuple[int, ...],
             head: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]) -> dict:
    """Forward and backward-to-input FLOPs of ``head(net, x)`` on an input of ``x_shape``."""

    def run(counter: Flops) -> dict:
        net = build().requires_grad_(False)
        x = torch.randn(*x_shape, requires_grad=True)
        saved = SavedBytes()
        with torch.enable_grad(), saved.hooks():
            y = head(net, x)
        fwd = counter.total
        torch.autograd.grad(y.float().sum(), x)
        return {"fwd": fwd, "bwd": counter.total - fwd, "saved_bytes": saved.bytes}

    return _fake(run)[1]


def vgg_costs(frames: int, size: tuple[int, int]) -> dict:
    """VGG19 convs to relu5_1 on every frame at the loss size, forward + backward (the Gram term)."""
    import torchvision

    return _fwd_bwd(lambda: torchvision.models.vgg19().features[:VGG_DEPTH], (frames, 3, *size), lambda n, x: n(x))


def clip_costs(frames: int) -> dict:
    """CLIP ViT-B/32's image tower on 8 cutouts of every frame at 224 px, forward + backward (the CLIP term)."""
    from open_clip.transformer import VisionTransformer

    # ViT-B-32's tower built directly (create_model's .to() cannot move fake parameters).
    return _fwd_bwd(lambda: VisionTransformer(image_size=224, patch_size=32, width=768, layers=12, heads=12,
                                              mlp_ratio=4.0, output_dim=512),
                    (frames * CLIP_CUTOUTS, 3, 224, 224), lambda n, x: n(x))


def account(width: int = 832, height: int = 480, frames: int = 33, cfg_batch: int = 2) -> dict:
    """The whole accounting: plain evaluations of both models, the guidance extra per decoder, the ratios."""
    t = 1 + (frames - 1) // 4
    latent = (t, height // 8, width // 8)
    out: dict = {"width": width, "height": height, "frames": frames, "latent_frames": t, "cfg_batch": cfg_batch,
                 "models": {name: wan_eval_flops(cfg, cfg_batch, latent) for name, cfg in WAN_CONFIGS.items()},
                 "decoders": {k: decoder_costs(k, latent) for k in ("lighttaew2_1", "wan21_vae")},
                 "vgg": vgg_costs(frames, (height, width)), "clip": clip_costs(frames)}
    losses = sum(out[k]["fwd"] + out[k]["bwd"] for k in ("vgg", "clip"))
    out["losses"] = losses
    out["ratios"] = {}
    for dec, d in out["decoders"].items():
        extra = d["fwd"] + d["bwd"] + losses
        for model, plain in out["models"].items():
            out["ratios"][f"{model} | {dec}"] = {"plain": plain, "extra": extra, "ratio": (plain + extra) / plain}
    return out


def markdown(a: dict) -> list[str]:
    """The accounting as Markdown lines."""
    tf = 1e12
    md = [f"## Real-size FLOP floors: {a['width']}x{a['height']}, {a['frames']} frames ({a['latent_frames']} latent "
          f"frames), shapes only", "",
          "| component | forward TFLOP | backward TFLOP | note |", "|---|---|---|---|"]
    for name, fl in a["models"].items():
        md.append(f"| {name}, one evaluation (CFG batch {a['cfg_batch']}) | {fl / tf:.1f} | - | plain sampling's work |")
    for name, d in a["decoders"].items():
        md.append(f"| {name} decoder ({d['params'] / 1e6:.1f}M params) | {d['fwd'] / tf:.2f} | {d['bwd'] / tf:.2f} | "
                  f"saved activations (bf16) {d['saved_bytes'] / 2**30:.1f} GiB |")
    md.append(f"| VGG19 to relu5_1, {a['frames']} frames at {a['width']}x{a['height']} | {a['vgg']['fwd'] / tf:.2f} | "
              f"{a['vgg']['bwd'] / tf:.2f} | Gram term; saved activations (fp32) {a['vgg']['saved_bytes'] / 2**30:.1f} GiB |")
    md.append(f"| CLIP ViT-B/32, {a['frames']} x {CLIP_CUTOUTS} cutouts at 224 | {a['clip']['fwd'] / tf:.2f} | "
              f"{a['clip']['bwd'] / tf:.2f} | CLIP term; saved activations (fp32) {a['clip']['saved_bytes'] / 2**30:.1f} GiB |")
    md += ["", "| model | guidance decoder | plain TFLOP per evaluation | guidance extra (x0) | guided/plain floor |",
           "|---|---|---|---|---|"]
    for key, r in a["ratios"].items():
        md.append(f"| {key} | {r['plain'] / tf:.1f} | {r['extra'] / tf:.2f} | {r['ratio']:.2f}x |")  # key: 'model | decoder'
    return md
