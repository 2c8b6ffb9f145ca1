"""The DiT rows of bench_model_features.py: Flux.1-dev and Qwen-Image models, their cells, memory accounting.

Every model is ComfyUI's own class, named by ComfyUI's own detection (Flux) or built through its
``supported_models`` class (Qwen-Image), with the real configuration (Flux.1 dev: hidden 3072,
19 double + 38 single blocks, 11.9B parameters; Qwen-Image: hidden 3072, 60 joint blocks, 20.4B).
Three scales of the same architecture:

    real      the real configuration. On a CPU it is built under ``FakeTensorMode`` (shapes only:
              no memory, nothing computed), which gives exact FLOPs and the bytes autograd keeps;
              on a GPU it is built for real (bf16, seeded random weights) and also timed.
    reduced   the real width, fewer blocks (FAMILIES' ``reduced``), fp32 on the CPU: what is timed there.
    tiny      width 256 and the reduced depth: ``--dry-run`` runs the GPU's code path with it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from bench_model_features import Cell


@dataclass(frozen=True)
class DiTFamily:
    """A DiT family as the benchmark runs it: its depths, its conditioning, its CFG batch."""

    title: str
    real: dict  # depth keys of the real model
    reduced: dict  # depth keys of the CPU-timed variant (the real width)
    tiny_width: dict  # width keys of the dry run's model
    text_dim: int
    pooled: int  # pooled text vector width (0: none)
    guidance: float | None  # the distilled guidance input (Flux dev)
    cfg_batch: int  # 1: cfg 1 (one cond per evaluation); 2: cond + uncond
    frames: bool  # one-frame 5-D latents (Qwen-Image)
    singles: str = ""  # the depth key of a second kind of block (Flux's single blocks)
    extra: dict = field(default_factory=dict)


FAMILIES = {
    "flux": DiTFamily("Flux.1 dev", {"depth": 19, "depth_single_blocks": 38}, {"depth": 2, "depth_single_blocks": 4},
                      {"hidden_size": 256, "num_heads": 2}, 4096, 768, 3.5, 1, False, singles="depth_single_blocks"),
    "qwen_image": DiTFamily("Qwen-Image", {"num_layers": 60}, {"num_layers": 3}, {"num_attention_heads": 2},
                            3584, 0, None, 2, True),
}
TEXT_TOKENS = 512  # T5 padded to 512 as diffusers runs Flux; the same count for Qwen-Image (the docs' accounting)
ZECON_EARLY = "early blocks (DiT: 2 blocks of the first third; cheapest)"
# name -> (term, preset or None for the node's default, recompute); "plain" is the sampling evaluation.
CONFIGS = {
    "plain": "one sampling evaluation at the family's CFG batch (Flux cfg 1: batch 1; Qwen-Image cfg 2.5: batch 2), no grad",
    "zecon": "ZeCon (model features), default preset (early + middle thirds: 2 blocks each): fwd+bwd to 2/3 depth",
    "zecon+rc": "as zecon, recompute on (blocks before the deepest checkpointed: their forward runs again in the bwd)",
    "zecon-early": "ZeCon, 'early blocks (DiT)': fwd+bwd to 1/3 depth",
    "zecon-early+rc": "as zecon-early, recompute on",
    "ad": "Attention Distillation, default preset (late third, every block's joint attention): style fwd + fwd+bwd",
    "ad+rc": "as ad, recompute on (the first two thirds checkpointed; the read blocks keep their graph)",
}
_TERMS = {"zecon": ("zecon", None, False), "zecon+rc": ("zecon", None, True), "zecon-early": ("zecon", ZECON_EARLY, False),
          "zecon-early+rc": ("zecon", ZECON_EARLY, True), "ad": ("ad", None, False), "ad+rc": ("ad", None, True)}


def n_blocks(fam: DiTFamily, depths: dict) -> int:
    """Blocks in forward order (Flux: double then single)."""
    return sum(depths.values())


def describe(family: str, scale: str) -> str:
    """What a scale of the family is, in words (printed with the results)."""
    fam = FAMILIES[family]
    depths = fam.real if scale == "real" else fam.reduced
    width = ", width 256 (2 heads)" if scale == "tiny" else ", real width 3072 (24 heads of 128)"
    blocks = (f"{depths['depth']} double + {depths['depth_single_blocks']} single blocks" if fam.singles
              else f"{depths['num_layers']} joint blocks")
    return f"{fam.title} {scale}: {blocks}{width}"


def model_config(family: str, scale: str):
    """ComfyUI's model config (``supported_models``) for the family at ``scale`` (real, reduced, tiny)."""
    import comfy.model_detection
    import comfy.supported_models

    fam = FAMILIES[family]
    sizes = {**(fam.real if scale == "real" else fam.reduced), **(fam.tiny_width if scale == "tiny" else {})}
    if family == "flux":
        from headless.testbed.standins.flux import FLUX_CONFIG, flux_params

        params = flux_params({**FLUX_CONFIG, **sizes})
        mc = comfy.model_detection.model_config_from_unet_config(params)
        if type(mc).__name__ != "Flux":
            raise RuntimeError(f"ComfyUI detects the Flux.1-dev config as {type(mc).__name__}")
        return mc
    return comfy.supported_models.QwenImage({"image_model": "qwen_image", "in_channels": 64, **sizes})


def build(family: str, scale: str, device: torch.device, dtype: torch.dtype, fake=None):
    """ComfyUI's BaseModel of the family, seeded random weights on ``device`` (``fake``: a FakeTensorMode, no memory)."""
    import comfy.model_patcher

    mc = model_config(family, scale)
    mc.set_inference_dtype(dtype, None)
    with torch.inference_mode(False), (fake or contextlib.nullcontext()):
        base = mc.get_model({}, "", device=device)
        if fake is None:  # (a fake model is already in the inference dtype; .to cannot swap fake parameters)
            base.diffusion_model.to(device=device, dtype=dtype)
            fill_(base.diffusion_model, 60 if family == "flux" else 140)
    if fake is not None:  # real sigmas: the probe and the sampler read them as numbers
        import comfy.model_base

        base.model_sampling = comfy.model_base.model_sampling(mc, base.model_type)
    base.eval()
    # As in sampling (ordinary_weights' copies): frozen weights, so autograd neither saves inputs for weight
    # gradients nor lets the probe's in-place copies clone the weights themselves.
    base.diffusion_model.requires_grad_(False)
    patcher = comfy.model_patcher.ModelPatcher(base, load_device=device, offload_device=device)
    if fake is not None:  # never loaded (nothing to load): ComfyUI's sampling reads the patcher the load sets
        base.current_patcher = patcher
    return patcher


@torch.no_grad()
def fill_(module: torch.nn.Module, seed: int, gain: float = 0.5) -> None:
    """Seeded fan-in scaled normals drawn on the module's own device (a 12B model's values on a GPU in seconds)."""
    gen: dict[torch.device, torch.Generator] = {}
    for name, p in module.named_parameters():
        if p.ndim >= 2:
            g = gen.setdefault(p.device, torch.Generator(device=p.device).manual_seed(seed))
            p.copy_(torch.randn(p.shape, generator=g, device=p.device).mul_(gain / p[0].numel() ** 0.5))
        elif name.endswith(("weight", "scale")):
            p.fill_(1.0)  # norm scales
        else:
            p.zero_()


def conditioning(fam: DiTFamily, tokens: int, seed: int) -> list:
    """Random text conditioning of the family's shape (what its text encoder hands the model)."""
    gen = torch.Generator().manual_seed(seed)
    extra: dict = {}
    if fam.pooled:
        extra["pooled_output"] = torch.randn(1, fam.pooled, generator=gen)
    if fam.guidance is not None:
        extra["guidance"] = fam.guidance
    return [[torch.randn(1, tokens, fam.text_dim, generator=gen), extra]]


class DiTCell(Cell):
    """One image size on a DiT: the flow latent, the family's conds (no uncond at cfg 1), the six term rows."""

    def __init__(self, pk, patcher, family: str, size: int, text_tokens: int, fake=None) -> None:  # noqa: D107
        import comfy.model_patcher
        import comfy.sampler_helpers
        import comfy.samplers

        fam = FAMILIES[family]
        self.pk, self.patcher, self.fake = pk, patcher, fake
        self.base = base = patcher.model
        dev = patcher.load_device
        self.cuda = dev.type == "cuda"
        h = w = size // 8
        shape = (1, 16, 1, h, w) if fam.frames else (1, 16, h, w)
        gen = torch.Generator().manual_seed(size)
        self.x = torch.randn(shape, generator=gen).to(dev)  # x_t of a flow model at mid-schedule: unit variance
        conds = {"positive": comfy.sampler_helpers.convert_cond(conditioning(fam, text_tokens, 1))}
        if fam.cfg_batch > 1:
            conds["negative"] = comfy.sampler_helpers.convert_cond(conditioning(fam, text_tokens, 2))
        with fake or contextlib.nullcontext():
            conds = comfy.samplers.process_conds(base, torch.zeros_like(self.x), conds, dev, seed=0)
        self.pos, self.neg = conds["positive"], conds.get("negative")
        self.sigma_f = float(base.model_sampling.percent_to_sigma(0.5))
        self.sigma = torch.tensor([self.sigma_f], device=dev)
        self.opts = comfy.model_patcher.create_model_options_clone(patcher.model_options)
        self.opts.setdefault("transformer_options", {})
        if fake is not None:  # count what an NVIDIA GPU runs (ComfyUI picks PyTorch's SDPA there), not the CPU's pick
            self.opts["transformer_options"]["optimized_attention_override"] = _sdpa
        lm = pk.lm
        content, style = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
        self.terms = {}
        for name, (kind, preset, rc) in _TERMS.items():
            if kind == "zecon":
                self.terms[name] = lm.ModelZeConLoss(content, preset or lm.DEFAULT_ZECON_MODEL_PRESET, recompute=rc)
            else:
                self.terms[name] = lm.AttentionDistillationLoss(style, preset or lm.DEFAULT_AD_PRESET, recompute=rc)
            self.terms[name].reset_rng(0)

    def run(self, name: str, probe=None, kept: KeptBytes | None = None) -> None:
        """One evaluation of row ``name`` (the term's forward under ``kept``'s hooks when given, then its backward)."""
        import comfy.samplers

        if name == "plain":
            with torch.no_grad():
                comfy.samplers.calc_cond_batch(self.base, [self.pos, self.neg], self.x, self.sigma, self.opts)
            return
        probe = probe or self.probe()
        x0 = self.base.model_sampling.calculate_denoised(self.sigma, torch.randn_like(self.x), self.x)

        def step() -> None:
            leaf = x0.detach().float().clone().requires_grad_(True)
            with kept or contextlib.nullcontext():
                value = self.terms[name].forward_latent(leaf, probe)
            torch.autograd.grad(value.sum(), leaf)

        with torch.inference_mode(False), torch.enable_grad():
            probe.differentiable(step)  # as the engine: Flux's in-place adds get saved copies


def count_cpu_sdpa() -> None:
    """Teach FlopCounterMode the CPU flash-attention kernels (it counts only the CUDA ones), which shapes-only SDPA runs."""
    from torch.utils import flop_counter as fc

    aten = torch.ops.aten
    if aten._scaled_dot_product_flash_attention_for_cpu not in fc.flop_registry:
        fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu, get_raw=True)(fc.sdpa_flop)
        fc.register_flop_formula(aten._scaled_dot_product_flash_attention_for_cpu_backward, get_raw=True)(
            fc.sdpa_backward_flop)


def _sdpa(func, *args, **kwargs):
    """ComfyUI's PyTorch-SDPA attention in place of ``func`` (flash / memory-efficient: no attention matrix kept)."""
    from comfy.ldm.modules.attention import attention_pytorch

    return attention_pytorch(*args, **kwargs)


class KeptBytes:
    """Bytes autograd keeps for the backward during a forward (saved tensors by storage, the weights left out).

    Only the innermost saved-tensor hooks run, so these wrap the ones in force when entered (the probe's copies
    of activations for an in-place model such as Flux) and count what those return: the copies kept, not the
    originals."""

    def __init__(self, module: torch.nn.Module) -> None:  # noqa: D107
        self.weights = {_storage_key(t) for t in [*module.parameters(), *module.buffers()]}
        self.seen: set = set()
        self.total = 0
        self._hooks: contextlib.AbstractContextManager | None = None

    def __enter__(self) -> KeptBytes:
        self.seen.clear()
        self.total = 0
        outer = torch._C._autograd._top_saved_tensors_default_hooks(False)
        pack, unpack = outer if outer is not None else (lambda t: t, lambda t: t)

        def counted(t: torch.Tensor):
            kept = pack(t)
            if isinstance(kept, torch.Tensor):
                key = _storage_key(kept)
                if key not in self.weights and key not in self.seen:
                    self.seen.add(key)
                    self.total += kept.untyped_storage().nbytes()
            return kept

        self._hooks = torch.autograd.graph.saved_tensors_hooks(counted, unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


# ---------------------------------------------------------------- the run
def run(a, pk, cuda: bool, measure, log) -> dict:
    """Every cell of ``--family`` (a DiT): real size under FakeTensorMode, then the timed model; returns the cells."""
    import gc
    import time

    from torch._subclasses.fake_tensor import FakeTensorMode

    t0 = time.perf_counter()
    dev = torch.device("cuda" if cuda else "cpu")
    timed_scale = "tiny" if a.dry_run else ("real" if cuda else "reduced")
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    count_cpu_sdpa()
    plans = [("real", build(a.family, "real", torch.device("cpu"), torch.bfloat16, fake), fake, a.sizes, False)]
    log(f"built {describe(a.family, 'real')} under FakeTensorMode (shapes only)")
    cells: dict = {}
    for scale, patcher, mode, sizes, timed in plans:
        for size in sizes:
            cell = DiTCell(pk, patcher, a.family, size, TEXT_TOKENS, mode)
            cells[f"{scale} {size}"] = _rows(cell, a, timed, measure, log, t0, f"{scale} {size} px")
    if a.time_sizes:
        import comfy.model_management as mm

        # fp32 on a CPU (its bf16 matmuls are slow); bf16 on a GPU, as Flux and Qwen-Image run there.
        log(f"building {describe(a.family, timed_scale)} on {dev}")
        patcher = build(a.family, timed_scale, dev, torch.bfloat16 if cuda else torch.float32)
        mm.load_models_gpu([patcher], force_full_load=True)
        patcher.pre_run()
        try:
            for size in a.time_sizes:
                cell = DiTCell(pk, patcher, a.family, size, a.text_tokens)
                cells[f"{timed_scale} {size}"] = _rows(cell, a, True, measure, log, t0, f"{timed_scale} {size} px")
                del cell
                gc.collect()
        finally:
            patcher.cleanup()
    return {"scales": {s: describe(a.family, s) for s in ("real", timed_scale)}, "text_tokens": TEXT_TOKENS,
            "timed_text_tokens": a.text_tokens, "cells": cells, "per_block": per_block(a.family, cells)}


def _rows(cell: DiTCell, a, timed: bool, measure, log, t0: float, where: str) -> dict:
    """Each configuration of one cell: FLOPs (shapes only), kept bytes (fake model only), timing when ``timed``."""
    import time

    from torch._subclasses.fake_tensor import FakeTensorMode

    rows: dict = {}
    # backward_through marks an in-place model (Flux) on its first failed backward and runs it again: let that
    # happen here, on shapes only, so no row counts or times the wasted first try.
    probe = cell.probe()
    with cell.fake or FakeTensorMode(allow_non_fake_inputs=True):
        cell.run("zecon-early", probe)
    cell.terms["zecon-early"].reset_rng(0)
    for name in [n for n in CONFIGS if n == "plain" or not a.only or n in a.only.split(",")]:
        late = timed and a.deadline_s and time.perf_counter() - t0 > a.deadline_s
        log(f"{where}: {name}{' (past the deadline: FLOPs only)' if late else ''}")
        try:
            rows[name] = measure(cell, name, a.repeats, timed and not late)
        except torch.cuda.OutOfMemoryError:
            gc_cuda()
            rows[name] = {**measure(cell, name, a.repeats, False), "oom": True}
        if late:
            rows[name]["skipped"] = "deadline"
        if cell.fake is not None and name != "plain":
            kept = KeptBytes(cell.base.diffusion_model)
            probe = cell.probe()  # outside the mode: the probe reads sigmas as numbers
            with cell.fake:
                cell.run(name, probe, kept)
            cell.terms[name].reset_rng(0)
            rows[name]["kept_bytes"] = kept.total
        r = rows[name]
        log(f"  {r.get('median_s', float('nan')):.3f} s, {r['flops'] / 1e12:.2f} TFLOPs"
            + (f", kept {r['kept_bytes'] / 1e9:.2f} GB" if "kept_bytes" in r else ""))
    return rows


def gc_cuda() -> None:
    """Free what an out-of-memory row left on the GPU."""
    import gc

    gc.collect()
    torch.cuda.empty_cache()


def per_block(family: str, cells: dict) -> dict:
    """Activations kept per block at the largest real size, from the ZeCon rows (the pass stops at a known block)."""
    from losses.dit_presets import dit_zecon_blocks
    from losses.model_features import DEFAULT_ZECON_MODEL_PRESET

    fam = FAMILIES[family]
    real = [k for k in cells if k.startswith("real ")]
    if not real:
        return {}
    key = max(real, key=lambda k: int(k.split()[1]))
    rows, n = cells[key], n_blocks(fam, fam.real)
    if not all("kept_bytes" in rows.get(r, {}) for r in ("zecon", "zecon-early", "zecon-early+rc")):
        return {}
    early = max(dit_zecon_blocks(ZECON_EARLY, n, "bench", family)) + 1  # blocks the early pass runs
    deep = max(dit_zecon_blocks(DEFAULT_ZECON_MODEL_PRESET, n, "bench", family)) + 1
    first = rows["zecon-early"]["kept_bytes"] / early  # Flux: double blocks; Qwen-Image: joint blocks
    out = {"size": int(key.split()[1]), "first_kind_gb": first / 1e9, "first_kind_blocks": early,
           "checkpointed_gb": (rows["zecon-early+rc"]["kept_bytes"] - first) / (early - 1) / 1e9}
    if fam.singles:  # the default pass adds single blocks only (Flux: the early third is the double blocks)
        out["single_gb"] = (rows["zecon"]["kept_bytes"] - rows["zecon-early"]["kept_bytes"]) / (deep - early) / 1e9
    return out


# ---------------------------------------------------------------- report
def markdown(result: dict, header: list[str]) -> str:
    """The DiT tables: one per (scale, size), then the activations kept per block."""
    lines = [*header, f"Models: {'; '.join(result['scales'].values())}. Text: {result['text_tokens']} tokens at real "
             f"size, {result['timed_text_tokens']} in the timed runs. `real` rows are counted on shapes only "
             "(FakeTensorMode, bf16): FLOPs and the bytes autograd keeps for the backward after the term's forward "
             "(saved tensors by storage, weights left out; a recomputed block's own activations during the backward "
             "come on top). Floor = (plain + term) / plain in FLOPs.", ""]
    for key, rows in result["cells"].items():
        scale, size = key.split()
        plain = rows["plain"]
        lines += [f"## {result['scales'][scale]}, {size} px", "",
                  "| config | median s | ratio to plain | FLOP floor | TFLOPs | kept for bwd GB | peak memory MiB | "
                  "per run (content features) |", "|---|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            floor = "1.00" if name == "plain" else f"{(plain['flops'] + r['flops']) / plain['flops']:.2f}"
            if "median_s" in r:
                median = f"{r['median_s']:.3f}"
                ratio = "1.00" if name == "plain" else f"{(plain['median_s'] + r['median_s']) / plain['median_s']:.2f}"
                mem = f"{r.get('cuda_peak_growth', r['rss_growth']) / 2**20:.0f}"
            else:
                median = ratio = mem = "out of memory" if r.get("oom") else (
                    "(past deadline)" if r.get("skipped") else "-")
            kept = f"{r['kept_bytes'] / 1e9:.2f}" if "kept_bytes" in r else "-"
            per_run = f"{r['content_flops'] / 1e12:.2f} TFLOPs" if "content_flops" in r else "-"
            lines.append(f"| {name} | {median} | {ratio} | {floor} | {r['flops'] / 1e12:.2f} | {kept} | {mem} | {per_run} |")
        lines.append("")
    pb = result.get("per_block")
    if pb:
        first = "double block" if "single_gb" in pb else "joint block"
        lines += [f"## Activations kept per block, {pb['size']} px, bf16 (by accounting on shapes)", "",
                  f"- per {first}: {pb['first_kind_gb']:.2f} GB (zecon-early's kept bytes / its {pb['first_kind_blocks']} blocks)"]
        if "single_gb" in pb:
            lines.append(f"- per single block: {pb['single_gb']:.2f} GB ((zecon - zecon-early) / the single blocks between)")
        lines += [f"- per checkpointed block with recompute: {pb['checkpointed_gb'] * 1e3:.0f} MB (its inputs only)", ""]
    lines += ["Configurations:", ""] + [f"- **{k}**: {v}" for k, v in CONFIGS.items()] + [""]
    return "\n".join(lines)
