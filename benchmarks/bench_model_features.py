"""What the model-feature terms cost per guided evaluation, at real model size, inside a real ComfyUI.

The real-size SD1.5 UNet (SDXL with ``--family sdxl``) is ComfyUI's own BaseModel with seeded
random weights (built in memory, no file), loaded by ComfyUI's model management; conditioning is
random of the right shape and processed by ComfyUI's ``process_conds``. Every figure is one
guided evaluation in x0 mode, the way the engine runs it: a probe from :func:`make_probe` on a
ProbeContext like a post-CFG hook's, the term's value and its gradient w.r.t. x0.

    plain        one sampling evaluation: the UNet at the CFG batch (cond + uncond), no grad
    zecon        ZeCon (model features), default preset (input blocks 0,2,5,8,11): encoder fwd+bwd
    zecon-fine   ZeCon, 'fine levels' preset (input blocks 0,2,5): the pass stops after block 5
    ad           Attention Distillation, the paper's layers (last 6 self-attentions): style fwd +
                 output fwd+bwd through (nearly) the whole UNet

For each: median wall time over ``--repeats`` runs after a warm-up, the guided/plain ratio
((plain + term) / plain: what a guided evaluation costs against a plain one), its FLOP floor
(``torch.utils.flop_counter.FlopCounterMode`` on the same calls, counted in the warm-up), and peak
memory above the loaded model (CPU: peak RSS growth; GPU: ``torch.cuda.max_memory_allocated``
growth). FLOPs are counted on shapes only (``FakeTensorMode``: the same calls, nothing computed;
at 64 px this gives the counts of a real run to 0.1 %), so floors at any size cost nothing;
``--time-sizes`` picks the sizes that are also run for real. ZeCon's content features are
computed once per run; that cost is listed separately.

    .venv/bin/python benchmarks/bench_model_features.py --threads 2            # CPU: 256 and 512 px
    .venv/bin/python benchmarks/bench_model_features.py --sizes 256,512 --time-sizes 128 --repeats 1  # a busy CPU
    .venv/bin/python benchmarks/bench_model_features.py --gpu --sizes 512,1024  # CUDA
    .venv/bin/python benchmarks/bench_model_features.py --dry-run              # tiny sizes, any machine

DiTs (``--family flux`` / ``qwen_image``, rows and models in ``_realsize_dit.py``): the real-size
model is counted on shapes only at ``--sizes`` (default 512,1024: FLOPs and the bytes autograd
keeps, with and without ``recompute``); the model that is timed at ``--time-sizes`` is a
reduced-depth copy at the real width on a CPU (default 256 px), the real model on a GPU (1024 px);
``--dry-run`` takes the GPU's path with a tiny one at 64 px.

    .venv/bin/python benchmarks/bench_model_features.py --family flux --threads 2 --repeats 1
    python3 benchmarks/bench_model_features.py --gpu --family flux --deadline-s 120   # gpu_run.sh's step 2

Results: Markdown on stdout and in ``benchmarks/results/<cpu|cuda>_model_features.md``
(``..._model_features_dit_<family>.md`` for a DiT), numbers in the ``.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _realsize_models as RM
from _common import (
    RESULTS_DIR,
    PeakRSS,
    command_line,
    log,
    machine_info,
    pack_info,
    setup_comfy,
    write_results,
)

WHO = "bench_model_features"
DIT_FAMILIES = ("flux", "qwen_image")  # their rows: benchmarks/_realsize_dit.py
CONFIGS = {
    "plain": "one sampling evaluation, UNet at the CFG batch (cond+uncond)",
    "zecon": "ZeCon (model features), input blocks 0,2,5,8,11: encoder fwd+bwd",
    "zecon-fine": "ZeCon, input blocks 0,2,5: stops after block 5",
    "ad": "Attention Distillation, last 6 self-attentions: style fwd + output fwd+bwd",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gpu", action="store_true", help="run on CUDA (fp16 weights)")
    p.add_argument("--family", default="sd15", choices=["sd15", "sdxl", *DIT_FAMILIES],
                   help="sd15 / sdxl (UNets) or flux / qwen_image (DiTs: see benchmarks/_realsize_dit.py)")
    p.add_argument("--sizes", default="", help="image sides in px (default 256,512)")
    p.add_argument("--time-sizes", default="", help="sizes that are also timed (default: all of --sizes; FLOPs are "
                   "always counted, shapes only, which is exact and instant; DiTs: the timed model's sizes, 'none')")
    p.add_argument("--repeats", type=int, default=0, help="timed runs per configuration after the warm-up (2 CPU, 5 GPU)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    p.add_argument("--only", default="", help=f"subset of {','.join(CONFIGS)} (plain always runs)")
    p.add_argument("--text-tokens", type=int, default=64, help="DiTs: text tokens of the timed runs (the real-size "
                   "counts use 512)")
    p.add_argument("--deadline-s", type=float, default=0, help="DiTs: rows that would start later are counted, not timed")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes, one repeat, no result files")
    p.add_argument("--out", default="", help="output stem (default benchmarks/results/<cpu|cuda>_model_features)")
    p.add_argument("--no-write", action="store_true", help="print only")
    a = p.parse_args(argv)
    dit = a.family in DIT_FAMILIES
    # DiTs on a GPU: the timed model is the real one (its FLOPs are counted too); the shapes-only copy is optional.
    default = "64" if a.dry_run else ("" if a.gpu else "512,1024") if dit else "256,512"
    a.sizes = [int(s) for s in (a.sizes or default).split(",") if s]
    if dit:  # the real-size DiT is counted at --sizes; the timed model (reduced on a CPU) runs at --time-sizes
        a.time_sizes = [int(s) for s in (a.time_sizes or ("64" if a.dry_run else "1024" if a.gpu else "256")).split(",")
                        if s.isdigit()]  # "none": counts only
        return _finish(a)
    a.time_sizes = [int(s) for s in a.time_sizes.split(",") if s] if a.time_sizes else list(a.sizes)
    a.sizes = sorted(set(a.sizes) | set(a.time_sizes))
    return _finish(a)


def _finish(a: argparse.Namespace) -> argparse.Namespace:
    a.repeats = 1 if a.dry_run else (a.repeats or (5 if a.gpu else 2))
    a.no_write = a.no_write or a.dry_run
    if a.family in DIT_FAMILIES and a.dry_run:
        a.text_tokens = min(a.text_tokens, 16)
    return a


# ---------------------------------------------------------------- the model, in memory
def _fill_(module, seed: int, gain: float = 0.5) -> None:
    """Seeded random weights at this benchmark's gain (ComfyUI's ops skip init)."""
    from headless.testbed.standins.common import seeded_fill_

    seeded_fill_(module, seed, gain)


def build_model(family: str, cuda: bool):
    """ComfyUI's BaseModel for the family's real-size UNet, wrapped in a ModelPatcher."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as sm
    import torch

    config = dict(RM.SD15_UNET if family == "sd15" else RM.SDXL_UNET)
    mc = (sm.SD15 if family == "sd15" else sm.SDXL)(config)
    dtype = torch.float16 if cuda else torch.float32
    mc.set_inference_dtype(dtype, None)
    with torch.inference_mode(False):
        base = mc.get_model({}, "model.diffusion_model.", device="cpu")
        base.diffusion_model.to(dtype)
        _fill_(base.diffusion_model, 10 if family == "sd15" else 20)
    patcher = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    return patcher


def conditioning(family: str, seed: int) -> list:
    import torch

    tokens, dim, pooled = RM.CONDITIONING[family]
    gen = torch.Generator().manual_seed(seed)
    extra = {}
    if pooled:
        extra = {"pooled_output": torch.randn(1, pooled, generator=gen), "width": 1024, "height": 1024,
                 "target_width": 1024, "target_height": 1024, "crop_w": 0, "crop_h": 0}
    return [[torch.randn(1, tokens, dim, generator=gen), extra]]


# ---------------------------------------------------------------- one size
class Cell:
    """Everything for one image size: processed conds, a context, the terms, the runs."""

    def __init__(self, pk, patcher, family: str, size: int, cuda: bool) -> None:
        import comfy.sampler_helpers
        import comfy.samplers
        import torch

        self.pk, self.patcher, self.cuda = pk, patcher, cuda
        base = patcher.model
        self.base = base
        dev = patcher.load_device
        h = w = size // 8
        gen = torch.Generator().manual_seed(size)
        self.x = (torch.randn(1, 4, h, w, generator=gen) * 3).to(dev)
        noise = torch.zeros_like(self.x)
        conds = {"positive": comfy.sampler_helpers.convert_cond(conditioning(family, 1)),
                 "negative": comfy.sampler_helpers.convert_cond(conditioning(family, 2))}
        conds = comfy.samplers.process_conds(base, noise, conds, dev, seed=0)
        self.pos, self.neg = conds["positive"], conds["negative"]
        ms = base.model_sampling
        self.sigma_f = float(ms.percent_to_sigma(0.5))
        self.sigma = torch.tensor([self.sigma_f], device=dev)
        self.opts = comfy.model_patcher.create_model_options_clone(patcher.model_options)
        self.opts.setdefault("transformer_options", {})
        latent = torch.randn(1, 4, h, w, generator=gen) * 5  # VAE-space latents of the content / style pictures
        lm = pk.lm
        self.terms = {
            "zecon": lm.ModelZeConLoss(latent),
            "zecon-fine": lm.ModelZeConLoss(latent, "fine levels (input blocks 0,2,5; cheapest)"),
            "ad": lm.AttentionDistillationLoss(torch.randn(1, 4, h, w, generator=gen) * 5),
        }
        for t in self.terms.values():
            t.reset_rng(0)

    def probe(self):
        ctx = self.pk.mf.ProbeContext(model=self.base, positive=self.pos, negative=self.neg, model_options=self.opts,
                                      sigma=self.sigma_f, x_t=self.x, seed=0)
        return self.pk.mf.make_probe(ctx)

    def run(self, name: str, probe=None) -> None:
        import comfy.samplers
        import torch

        if name == "plain":
            with torch.no_grad():
                comfy.samplers.calc_cond_batch(self.base, [self.pos, self.neg], self.x, self.sigma, self.opts)
            return
        x0 = self.base.model_sampling.calculate_denoised(self.sigma, torch.randn_like(self.x), self.x)
        with torch.inference_mode(False), torch.enable_grad():
            leaf = x0.detach().float().clone().requires_grad_(True)
            value = self.terms[name].forward_latent(leaf, probe or self.probe())
            torch.autograd.grad(value.sum(), leaf)

    def content_features(self, name: str, probe=None) -> None:
        term = self.terms[name]
        term.content_features(probe or self.probe(), self.x.shape, self.x.device)

    def sync(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()


def flops(fn, fake=False) -> int:
    """FLOPs of ``fn()``; ``fake``: shapes only (FakeTensorMode, or the one given: nothing is computed, same count)."""
    import contextlib

    from torch.utils.flop_counter import FlopCounterMode

    ctx = fake if not isinstance(fake, bool) else contextlib.nullcontext()
    if fake is True:
        from torch._subclasses.fake_tensor import FakeTensorMode

        ctx = FakeTensorMode(allow_non_fake_inputs=True)
    with ctx, FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def measure(cell: Cell, name: str, repeats: int, timed: bool) -> dict:
    """FLOPs (shapes only: exact, instant), then, when ``timed``, a warm-up and ``repeats`` timed runs."""
    import torch

    out: dict = {}
    probe = cell.probe()
    fake = getattr(cell, "fake", None) or True  # a model built under FakeTensorMode is counted in its own mode
    if name.startswith("zecon"):  # per-run cost, outside the per-evaluation figures
        out["content_flops"] = flops(lambda: cell.content_features(name, probe), fake=fake)
    out["flops"] = flops(lambda: cell.run(name, probe), fake=fake)
    if name in cell.terms:
        cell.terms[name].reset_rng(0)  # drop the shapes-only cached features
    if not timed:
        return out
    cell.run(name)  # warm-up (ZeCon: computes and caches the content features)
    times = []
    gc.collect()
    if cell.cuda:
        torch.cuda.synchronize()
        base_alloc = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as mem:
        for _ in range(repeats):
            cell.sync()
            t0 = time.perf_counter()
            cell.run(name)
            cell.sync()
            times.append(time.perf_counter() - t0)
    out["times_s"] = times
    out["median_s"] = statistics.median(times)
    out["rss_growth"] = mem.growth
    if cell.cuda:
        out["cuda_peak_growth"] = torch.cuda.max_memory_allocated() - base_alloc
    return out


# ---------------------------------------------------------------- report
def _header(result: dict) -> list[str]:
    """Title, provenance and what the columns mean (shared by the UNet and the DiT reports)."""
    cuda = result["machine"]["device"] == "cuda"
    return [f"# Model-feature terms: cost per guided evaluation ({result['family']}, {'CUDA' if cuda else 'CPU'})", "",
            f"{result['date']}; `{result['command']}`; torch {result['machine']['torch']}, "
            f"{result['machine'].get('gpu') or result['machine'].get('cpu_model')}, threads {result['machine']['torch_threads']}.",
            "Ratio = (plain + term) / plain: a guided evaluation in x0 mode against a plain one. Floor: the same ratio "
            "in FLOPs. Memory: peak above the loaded model during the term's evaluations "
            f"({'CUDA max_memory_allocated' if cuda else 'peak RSS'}).", ""]


def markdown(result: dict) -> str:
    lines = _header(result)
    for size, rows in result["cells"].items():
        plain = rows["plain"]
        lines += [f"## {size} px", "", "| config | median s | ratio to plain | FLOP floor | GFLOPs | peak memory MiB | per run (content features) |",
                  "|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            timed = "median_s" in r
            floor = "1.00" if name == "plain" else f"{(plain['flops'] + r['flops']) / plain['flops']:.2f}"
            if not timed:
                ratio = median = mem = "(not timed)"
            else:
                ratio = "1.00" if name == "plain" else f"{(plain['median_s'] + r['median_s']) / plain['median_s']:.2f}"
                median = f"{r['median_s']:.3f}"
                mem = f"{r.get('cuda_peak_growth', r['rss_growth']) / 2**20:.0f}"
            per_run = f"{r['content_flops'] / 1e9:.1f} GFLOPs" if "content_flops" in r else "-"
            lines.append(f"| {name} | {median} | {ratio} | {floor} | {r['flops'] / 1e9:.1f} | {mem} | {per_run} |")
        lines.append("")
    lines += ["Configurations:", ""] + [f"- **{k}**: {v}" for k, v in CONFIGS.items()] + [""]
    return "\n".join(lines)


def _pack_modules():
    from types import SimpleNamespace

    from headless.testbed.base import PACK_DIRNAME

    for name, mod in list(sys.modules.items()):
        if name.endswith(PACK_DIRNAME) and hasattr(mod, "STYLE_GUIDANCE_VERSION"):
            import importlib

            return SimpleNamespace(mf=importlib.import_module(f"{name}.sampler.model_probe"),
                                   lm=importlib.import_module(f"{name}.losses.model_features"))
    raise RuntimeError("the style_guidance pack was not loaded by ComfyUI")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    base_dir = Path(tempfile.mkdtemp(prefix="sg_bench_mf_"))
    comfy_root, _ = setup_comfy(base_dir, a.gpu, lambda models: None, who=WHO)
    cuda = a.gpu and torch.cuda.is_available()
    if a.gpu and not cuda and not a.dry_run:  # a dry run tries the GPU's path on a CPU
        sys.exit(f"{WHO}: --gpu given but CUDA is not available")
    import comfy.model_management as mm

    pk = _pack_modules()
    if a.family in DIT_FAMILIES:
        return _main_dit(a, argv, pk, comfy_root, cuda)
    log(WHO, f"building the real-size {a.family} UNet in memory")
    patcher = build_model(a.family, cuda)
    mm.load_models_gpu([patcher], force_full_load=True)
    patcher.pre_run()
    names = ["plain", *[n for n in CONFIGS if n != "plain" and (not a.only or n in a.only.split(","))]]
    cells: dict = {}
    try:
        for size in a.sizes:
            cell = Cell(pk, patcher, a.family, size, cuda)
            rows = {}
            for name in names:
                log(WHO, f"{size} px: {name}")
                rows[name] = measure(cell, name, a.repeats, size in a.time_sizes)
                log(WHO, f"  {rows[name].get('median_s', float('nan')):.3f} s, {rows[name]['flops'] / 1e9:.1f} GFLOPs")
            cells[str(size)] = rows
            del cell
            gc.collect()
    finally:
        patcher.cleanup()
    result = {"benchmark": WHO, "date": _dt.datetime.now().isoformat(timespec="seconds"), "family": a.family,
              "command": command_line(__file__, argv), "machine": machine_info(comfy_root, cuda), "pack": pack_info(),
              "repeats": a.repeats, "cells": cells}
    md = markdown(result)
    print(md)
    if not a.no_write:
        write_results(result, md, a.out, RESULTS_DIR / f"{'cuda' if cuda else 'cpu'}_model_features",
                      lambda t: log(WHO, t))
    return 0


def _main_dit(a: argparse.Namespace, argv: list[str] | None, pk, comfy_root: Path, cuda: bool) -> int:
    """The DiT rows (benchmarks/_realsize_dit.py): counted at real size, timed on the model the machine can run."""
    import _realsize_dit as RD

    out = RD.run(a, pk, cuda, measure, lambda t: log(WHO, t))
    result = {"benchmark": WHO, "date": _dt.datetime.now().isoformat(timespec="seconds"), "family": a.family,
              "command": command_line(__file__, argv), "machine": machine_info(comfy_root, cuda), "pack": pack_info(),
              "repeats": a.repeats, **out}
    md = RD.markdown(result, _header(result))
    print(md)
    if not a.no_write:
        write_results(result, md, a.out, RESULTS_DIR / f"{'cuda' if cuda else 'cpu'}_model_features_dit_{a.family}",
                      lambda t: log(WHO, t))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
